"""Running untrusted work: the sandbox, the TensorFlow worker, the scheduler that feeds it, and staging."""
