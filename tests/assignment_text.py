"""Pieces of assignment files the tests write: every file states its limits, and its versions when it takes models
(no coursework's are another's default)."""

LIMITS = """[limits]
max_file_bytes = 1_000_000
file_size_policy = "refuse"
max_parameters = 1_000_000
parameters_policy = "flag"
"""

VERSIONS = """[versions]
tensorflow = "2.18.0"
untagged_older_policy = "grade"
legacy_loader_policy = "flag"
"""

LIMITS_AND_VERSIONS = LIMITS + VERSIONS
