"""grader's own release, which every output records; `grader.__version__` is the same."""

VERSION = "0.1.0"
