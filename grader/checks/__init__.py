"""Judging a file before it runs: screening (is it safe and loadable) and architecture specs."""
