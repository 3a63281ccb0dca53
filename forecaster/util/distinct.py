"""Per-row work done once per distinct value: columns of millions of rows (ticket categories,
community ids, dates in a history file) repeat a few thousand values."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

__all__ = ["map_distinct"]


def map_distinct(values: pd.Series, func: Callable[[Any], Any]) -> pd.Series:
    """``values.map(func)`` with ``func`` called once per distinct value; missing values stay
    missing (NaN) without a call. The result has ``values``' index and object dtype."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = pd.Series([func(v) for v in uniques], dtype=object)
    return pd.Series(mapped.reindex(codes).to_numpy(), index=values.index, dtype=object)
