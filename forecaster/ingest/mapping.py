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
    """Keep the mapped columns, renamed to canonical names. Raises `SourceError` on a missing
    one, and on a mapped one that is there twice (or twice but for case): which one holds the
    values is unclear. A column that is not mapped may be there twice: it is not read."""
    spec = TABLE_COLUMNS[name]
    written = [str(c) for c in frame.columns]
    present = set(written)
    # Case-insensitive fallback: many exports upper-case headers (TICKET_ID).
    by_lower: dict[str, list[str]] = {}
    for c in sorted(present):
        by_lower.setdefault(c.lower(), []).append(c)
    rename: dict[str, str] = {}
    for canonical in spec.all:
        wanted = tmap.source_column(canonical)
        found = wanted if wanted in present else _one(by_lower.get(wanted.lower()), wanted, canonical, name, origin)
        if found is not None and written.count(found) > 1:
            at = [str(i + 1) for i, c in enumerate(written) if c == found]
            raise SourceError(
                f"{origin}: column {found!r} appears {len(at)} times (columns {', '.join(at[:-1])} and {at[-1]}), "
                f"so which one holds {canonical} is unclear. Rename or remove the others at the source, "
                f"or map another column with {table_key(name)}.columns.{canonical}"
            )
        if found is not None:
            rename[found] = canonical
        elif canonical in spec.required or canonical in tmap.columns:
            there = ", ".join(sorted(present)) or "none"
            raise SourceError(
                f"{origin}: column {wanted!r} not found (needed as {canonical}); columns there: {there}. "
                f"Map it with {table_key(name)}.columns.{canonical}: <your column name>"
            )
    return frame[list(rename)].rename(columns=rename)


def _one(candidates: list[str] | None, wanted: str, canonical: str, name: str, origin: str) -> str | None:
    """The one column whose name is ``wanted`` but for case; a `SourceError` when several are."""
    if not candidates or len(candidates) == 1:
        return candidates[0] if candidates else None
    raise SourceError(
        f"{origin}: columns {', '.join(map(repr, candidates))} are all {wanted!r} but for case, so which one holds "
        f"{canonical} is unclear. Map one of them exactly with {table_key(name)}.columns.{canonical}"
    )


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
