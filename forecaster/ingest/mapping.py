"""Column mapping shared by all sources: the company's names → our canonical names.

A required column that is absent (or an optional one the config explicitly maps but that is
absent) is a `SourceError` naming the source, the column it looked for, the columns that are
there, and the config key to fix.
"""

from __future__ import annotations

import pandas as pd

from forecaster.config import TABLE_COLUMNS, TableMap
from forecaster.util.errors import SourceError

__all__ = ["select_columns", "table_key", "make_labels", "KeyLabels"]


def table_key(name: str) -> str:
    return f"source.tables.{name}"


def select_columns(frame: pd.DataFrame, name: str, tmap: TableMap, origin: str) -> pd.DataFrame:
    """Keep the mapped columns, renamed to canonical names. Raises `SourceError` on a missing one."""
    spec = TABLE_COLUMNS[name]
    present = {str(c) for c in frame.columns}
    # Case-insensitive fallback: many exports upper-case headers (TICKET_ID).
    by_lower = {c.lower(): c for c in present}
    rename: dict[str, str] = {}
    for canonical in spec.all:
        wanted = tmap.source_column(canonical)
        found = wanted if wanted in present else by_lower.get(wanted.lower())
        if found is not None:
            rename[found] = canonical
        elif canonical in spec.required or canonical in tmap.columns:
            there = ", ".join(sorted(present)) or "none"
            raise SourceError(
                f"{origin}: column {wanted!r} not found (needed as {canonical}); columns there: {there}. "
                f"Map it with {table_key(name)}.columns.{canonical}: <your column name>"
            )
    return frame[list(rename)].rename(columns=rename)


class KeyLabels:
    """Row labels such as ``ticket_id=T0042`` or ``community_id=C01, date=2024-03-05``, made
    only for the rows a problem report shows (not for every one of millions of rows)."""

    def __init__(self, frame: pd.DataFrame, keys: tuple[str, ...]):
        self.frame, self.keys = frame, [k for k in keys if k in frame.columns]

    def rows(self, positions) -> list[str]:
        picked = self.frame.iloc[positions]
        return [", ".join(f"{k}={rec[k]}" for k in self.keys) for _, rec in picked.iterrows()]


def make_labels(frame: pd.DataFrame, keys: tuple[str, ...]) -> KeyLabels:
    """Labels of ``frame``'s rows by their key columns (see `KeyLabels`)."""
    return KeyLabels(frame, keys)
