"""How every message, report and page writes a tensor shape."""

from __future__ import annotations

from typing import Any


def shape_text(shape: Any, missing: str = "-") -> str:
    """A shape as Python and Keras print it, '(None, 28, 28, 1)' or '(784,)'; `missing` for none."""
    if shape is None or (isinstance(shape, list | tuple) and not shape):
        return missing
    if not isinstance(shape, list | tuple):
        return str(shape)
    inner = ", ".join("None" if size is None else str(size) for size in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"
