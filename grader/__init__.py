"""grader: grade Keras .h5 coursework submissions safely, exactly and fast.

`from grader import check; check("model.h5")` checks one file as the instructor's run would.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Deferred: `import grader` (and `grade --help`) must not pay for numpy, h5py or the pipeline.
    if name == "check":
        from grader.checking import check

        return check
    raise AttributeError(f"module 'grader' has no attribute {name!r}")
