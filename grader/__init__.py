"""grader: grade Keras .h5 coursework submissions safely, exactly and fast."""

from __future__ import annotations

__version__ = "0.1.0"
