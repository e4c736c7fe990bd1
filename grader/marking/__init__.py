"""Pure functions from predictions to marks: no I/O, no TensorFlow."""
