"""CSV output that planners open in Excel.

* UTF-8 with BOM, so Excel shows Chinese without an import dialog;
* written atomically (a temporary file in the same folder, then renamed), so a planner never
  opens a half-written file and a crash never leaves one;
* text cells that begin with ``= + - @`` (or a tab / carriage return) are prefixed with ``'``
  so that Excel shows them instead of evaluating them (CSV injection). Numbers are untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

__all__ = ["write_csv", "neutralise_cell", "write_series_csv"]

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    return value


def write_csv(frame: pd.DataFrame, path: Path, *, neutralise: bool = True, float_format: str | None = None) -> Path:
    """Write ``frame`` to ``path`` atomically as UTF-8 with BOM."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = frame
    if neutralise:
        text_cols = [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c])]
        if text_cols:
            out = frame.copy()
            for col in text_cols:
                out[col] = out[col].map(neutralise_cell)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as handle:
            out.to_csv(handle, index=False, float_format=float_format, date_format="%Y-%m-%d %H:%M:%S")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_series_csv(series: pd.DataFrame, communities: pd.DataFrame, path: Path) -> Path:
    """The aggregated daily history: ``community_id, community_name, metric, ds, y``."""
    names = communities.set_index("community_id")["name"]
    out = pd.DataFrame(
        {
            "community_id": series["community_id"],
            "community_name": series["community_id"].map(names),
            "metric": series["metric"],
            "ds": series["ds"].dt.strftime("%Y-%m-%d"),
            "y": series["y"].round(3),
        }
    )
    return write_csv(out, path)
