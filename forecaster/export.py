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

from forecaster.util.distinct import map_distinct

__all__ = ["write_csv", "write_text", "neutralise_cell", "write_series_csv"]

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def neutralise_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    return value


def _atomic_write(path: Path, encoding: str, write) -> Path:
    """Write through ``write(handle)`` into a temporary file beside ``path``, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the permissions a plain write would.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            write(handle)
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


def write_csv(frame: pd.DataFrame, path: Path, *, neutralise: bool = True, float_format: str | None = None) -> Path:
    """Write ``frame`` to ``path`` atomically as UTF-8 with BOM."""
    out = frame
    if neutralise:
        text_cols = [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c])]
        if text_cols:
            out = frame.copy()
            for col in text_cols:
                out[col] = map_distinct(out[col], neutralise_cell)
    return _atomic_write(
        path,
        "utf-8-sig",
        lambda h: out.to_csv(h, index=False, float_format=float_format, date_format="%Y-%m-%d %H:%M:%S"),
    )


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically as UTF-8 (HTML reports)."""
    return _atomic_write(path, "utf-8", lambda h: h.write(text))


def write_series_csv(series: pd.DataFrame, communities: pd.DataFrame, path: Path) -> Path:
    """The aggregated daily history: ``community_id, community_name, metric, ds, y``."""
    names = communities.set_index("community_id")["name"]
    out = pd.DataFrame(
        {
            "community_id": series["community_id"],
            "community_name": series["community_id"].map(names),
            "metric": series["metric"],
            "ds": map_distinct(series["ds"], lambda d: d.strftime("%Y-%m-%d")),
            "y": series["y"].round(3),
        }
    )
    return write_csv(out, path)
