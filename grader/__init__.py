"""grader: grade deep-learning coursework submissions safely, exactly and fast.

The notebook API:
- `grader.grade("submissions/", assignment=..., heldout=..., out="reports/")` grades a cohort (the `grade`
  command; `cluster="tcp://host:8786"` or `"local:4"` evaluates on Dask) and returns its summary;
- `grader.check("model.h5")` checks one file as the instructor's run would;
- `grader.read_marks("reports/")` and `grader.read_results("reports/")` return pandas DataFrames;
- `with grader.keep_workers_warm(): ...` lets the runs inside reuse each other's warm TensorFlow workers.
Each result renders as an HTML table in Jupyter.
"""

from __future__ import annotations

from typing import Any

from grader.release import VERSION as __version__

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # Deferred: `import grader` (and `grade --help`) must not pay for numpy, h5py or the pipeline.
    if name == "check":
        from grader.checking import check

        return check
    if name == "grade":
        from grader.cohort import grade_cohort

        return grade_cohort
    if name == "keep_workers_warm":
        from grader.evaluation.scheduler import keep_workers_warm

        return keep_workers_warm
    if name in ("read_marks", "read_results"):
        from grader.outputs import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'grader' has no attribute {name!r}")
