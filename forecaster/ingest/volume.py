"""Whether tonight's read is as large as the source usually delivers: pure, no I/O.

A source that suddenly delivers nothing, or far less than before, is broken, not quiet: an
export that came out header-only, an emptied table, an API that changed its date format so that
every row is rejected. Taken as true, such a night would save zeros as the day totals of the
days it re-reads (which a restored source would not repair until their turn came round), and
would send all-clears for every warning. So the night is refused with a `ShortReadError` before
anything is saved: the saved totals are kept, the run is recorded failed and operations are told.

What "usual" is, most precise first:

* every row of a table rejected by validation: never usual;
* days re-read tonight that earlier nights saved (an incremental night): tonight's tickets (and
  survey rows) on them against the saved ones. Re-reading the same days gives nearly the same
  count (a few edits and deletions), so less than ``source.drop_guard.min_share`` of it is a
  cut-short source;
* the days new tonight: none at all, where the re-read days make many expected;
* a full read: its rows against the last full read's (a window that slides by a day or two
  changes them a little, not by half);
* the tickets table empty for the whole window of a full read that found surveys.

A real drop (a table purged on purpose, communities handed over; never a table whose every row
is rejected) passes with
``source.drop_guard.min_share: 0`` for one night.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from forecaster.config import DropGuardConfig
from forecaster.ingest.incremental import ReadPlan
from forecaster.ingest.validate import TableReport
from forecaster.util.errors import ShortReadError

__all__ = ["Usual", "judge_read"]

# The day-sum column that counts each table's rows (`forecaster.ingest.aggregate.day_sums`).
_COUNTED = {"tickets": "created", "surveys": "surveyed"}
_OVERRIDE = "source.drop_guard.min_share: 0"


@dataclass(frozen=True)
class Usual:
    """What earlier nights saw, to judge tonight's read by."""

    saved: pd.DataFrame | None = None  # the saved day sums (an incremental night), known communities only
    through: dt.date | None = None  # the last day they hold
    last_full_rows: dict[str, int] | None = None  # rows kept per table by the last full read


def judge_read(
    reports: list[TableReport],
    fresh: pd.DataFrame,
    plan: ReadPlan,
    usual: Usual,
    guard: DropGuardConfig,
    *,
    window: tuple[dt.date, dt.date],
) -> None:
    """Raise `ShortReadError` when tonight's read is far short of the usual (see the module).

    ``fresh``: the day sums of the days read tonight; ``window``: the history window's first day
    and the as-of date."""
    for report in reports:
        if report.table in _COUNTED and report.rows_read and not report.rows_kept:
            raise ShortReadError(_all_rejected(report))
    if guard.min_share <= 0:
        return
    by_table = {r.table: r for r in reports}
    if plan.incremental and usual.saved is not None and usual.through is not None:
        for table, column in _COUNTED.items():
            _judge_days(table, column, fresh, plan, usual, guard, by_table.get(table), window[1])
        return
    tickets, surveys = by_table.get("tickets"), by_table.get("surveys")
    if tickets is not None and not tickets.rows_read and surveys is not None and surveys.rows_kept:
        # (Nothing at all, tickets nor surveys, is the caller's `EmptySourceError`.)
        first, as_of = window
        raise ShortReadError(
            f"tickets: {tickets.origin} delivered no rows at all for {first}…{as_of - dt.timedelta(days=1)}, "
            f"while {surveys.origin} gave {surveys.rows_kept:,} surveys: an empty export or an emptied table is "
            "taken as a broken source, not a quiet night. Nothing was saved"
        )
    for table, before in (usual.last_full_rows or {}).items():
        report = by_table.get(table)
        if report is None or before < guard.min_rows:
            continue
        if report.rows_kept < guard.min_share * before:
            raise ShortReadError(
                f"{table}: {report.origin} gave {report.rows_kept:,} usable rows, against {before:,} on the last "
                f"full read ({_share(report.rows_kept, before)}); the source looks cut short. {_kept()}"
            )


def _judge_days(
    table: str,
    column: str,
    fresh: pd.DataFrame,
    plan: ReadPlan,
    usual: Usual,
    guard: DropGuardConfig,
    report: TableReport | None,
    as_of: dt.date,
) -> None:
    saved = usual.saved
    through = pd.Timestamp(usual.through)
    again = saved[plan.recomputed(saved["ds"]) & (saved["ds"] <= through).to_numpy()]
    before = _count(again, column)
    if before < guard.min_rows:
        return
    now = _count(fresh[fresh["ds"] <= through], column)
    origin = report.origin if report is not None else table
    days = _days(again["ds"])
    if now < guard.min_share * before:
        raise ShortReadError(
            f"{table}: {origin} gave {now:,} rows on the {days} re-read tonight, against {before:,} saved for them "
            f"by earlier nights ({_share(now, before)}); the source looks cut short. {_kept()}"
        )
    # The days new tonight: nothing at all on them, where the re-read days make many expected.
    last = as_of - dt.timedelta(days=1)
    new_days = (pd.Timestamp(last) - through).days
    expected = before / max(again["ds"].nunique(), 1) * new_days
    if new_days > 0 and expected >= guard.min_rows and not _count(fresh[fresh["ds"] > through], column):
        first = (through + pd.Timedelta(days=1)).date()
        span = f"{first}" if new_days == 1 else f"{first}…{last}"
        raise ShortReadError(
            f"{table}: {origin} gave no rows for {span}, where about {expected:,.0f} were expected from the days "
            f"before; the export or table looks out of date. {_kept()}"
        )


def _count(sums: pd.DataFrame, column: str) -> int:
    """The rows a table gave on these days (day sums always have every `_COUNTED` column)."""
    return int(sums[column].sum())


def _all_rejected(report: TableReport) -> str:
    worst = sorted(report.problems, key=lambda p: -p.count)[:3]
    why = "; ".join(p.describe() for p in worst) or "every row rejected"
    return (
        f"{report.table}: every one of the {report.rows_read:,} rows read from {report.origin} was rejected "
        f"({why}). A changed export or API format looks likely: fix the column mapping or the source and run "
        "again. The night is refused and the saved day totals are kept"
    )


def _days(ds: pd.Series) -> str:
    first, last = ds.min().date(), ds.max().date()
    n = ds.nunique()
    return f"{n} day{'s' if n != 1 else ''} {first}…{last}" if n > 1 else f"day {first}"


def _share(now: int, before: int) -> str:
    return f"{now / before:.0%}" if before else "-"


def _kept() -> str:
    return (
        "The night is refused and the saved day totals are kept. Fix the source and run again; if the drop "
        f"is real (a table purged, communities handed over), set {_OVERRIDE} for one night"
    )
