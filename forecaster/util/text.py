"""Text values from frames, where missing comes in several shapes."""

from __future__ import annotations

import pandas as pd

__all__ = ["optional_text"]


def optional_text(value) -> str | None:
    """A cell as text, or None when it is missing (None, NaN, pd.NA) or blank."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None
