"""Incremental reading: which tickets a night has to read, given the day sums saved before.

Reading every ticket of a three-year window every night costs most of the night for thousands
of communities. The day sums (`forecaster.ingest.aggregate.day_sums`) of days long past
rarely change, so the store keeps them, and a night reads only:

* the tickets created or closed in the last few days (``source.incremental.reread_days``, which
  also picks up late entries and corrections of those days) and the surveys dated in them;
* one slice of the older history, created or closed (or surveyed) in it, so that every day of
  the window is read again once every ``source.incremental.history_reread_nights`` nights (edits
  of old tickets, deleted or back-dated tickets): the days are cut into blocks by calendar date
  and each night takes the blocks whose turn it is, so the cost is spread evenly over the nights.

Days recomputed tonight come wholly from what was read (every ticket created, answered, closed
or rated on them is in it, and every ticket whose deadline falls on them: those created up to
the longest deadline of metrics.sla before, or due on them by their own ``due_at``); the other
days come from the store. A full read happens instead, and replaces
the saved sums, when there are none yet, when the source or metric settings that shape them
changed, when a community was added (its history may have been imported), and when the history
window reaches further back than the saved days. A night for a date not after the saved days (a
re-run of an old night) reads in full and leaves the saved sums alone. Pure: the store and the
reading are the caller's.

One approximation, corrected when the day's slice comes round: a rating given to a ticket that
was still open (counted on its creation day) and which is closed later is counted again on its
closing day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.config import Config
from forecaster.util.secret import mask_url

__all__ = ["DaySumsState", "ReadPlan", "history_slices", "day_sums_fingerprint", "plan_read"]

# Bump when day_sums changes what it computes: saved sums of an older version are re-read.
DAY_SUMS_VERSION = 2  # 2: response times, deadlines, overdue tickets, service lines, NPS


@dataclass(frozen=True)
class DaySumsState:
    """What the saved day sums hold (one row in the store)."""

    fingerprint: str  # day_sums_fingerprint of the settings they were computed with
    start: dt.date  # first day held
    through: dt.date  # last day held (the day before the as-of date of the night that saved them)
    full_read_on: dt.date  # as-of date of the last full read
    communities: tuple[str, ...]  # the communities known then


@dataclass(frozen=True)
class ReadPlan:
    mode: str  # full | incremental
    since: dt.date | None  # incremental: days from here on are read afresh...
    reason: str  # why, for the run summary
    save: bool = True  # whether the night's sums replace the saved ones
    slices: tuple[tuple[dt.date, dt.date], ...] = ()  # ...and these older days [first, end) too

    @property
    def incremental(self) -> bool:
        return self.mode == "incremental"

    @property
    def ranges(self) -> tuple[tuple[dt.date, dt.date | None], ...]:
        """The days an incremental night recomputes, as [first, end) (end None: open): from
        ``since`` on, and the slices."""
        return ((self.since, None), *self.slices) if self.incremental else ()

    def recomputed(self, ds: pd.Series) -> np.ndarray:
        """Which of these days tonight's reading recomputes (all of them on a full read)."""
        if not self.incremental:
            return np.ones(len(ds), dtype=bool)
        out = np.zeros(len(ds), dtype=bool)
        for first, end in self.ranges:
            inside = ds >= pd.Timestamp(first)
            if end is not None:
                inside &= ds < pd.Timestamp(end)
            out = out | inside.to_numpy()
        return out

    def describe(self) -> str:
        if not self.incremental:
            return f"full ({self.reason})"
        older = " and ".join(f"{a}…{b - dt.timedelta(days=1)}" for a, b in self.slices)
        again = f", history {older} again" if older else ""
        return f"incremental: tickets created or closed since {self.since}{again} ({self.reason})"


def history_slices(as_of: dt.date, start: dt.date, end: dt.date, nights: int) -> tuple[tuple[dt.date, dt.date], ...]:
    """Tonight's share of the days [start, end): the calendar is cut into blocks of
    ceil((end − start) / nights) days by date, and tonight takes the blocks whose number is
    ``as_of``'s ordinal modulo ``nights``; any day comes round once every ``nights`` nights."""
    span = (end - start).days
    if span <= 0 or nights <= 1:
        return ((start, end),) if span > 0 else ()
    size = -(-span // nights)
    turn = as_of.toordinal() % nights
    out = []
    for block in range(start.toordinal() // size, (end.toordinal() - 1) // size + 1):
        if block % nights == turn:
            a = max(dt.date.fromordinal(block * size), start)
            b = min(dt.date.fromordinal((block + 1) * size), end)
            if a < b:
                out.append((a, b))
    return tuple(out)


def day_sums_fingerprint(config: Config) -> str:
    """A short hash of every setting that shapes the day sums: where and how the source is read,
    the timezones, and how metrics count (not which metrics are enabled)."""
    source = config.source
    where = {
        "sql": lambda: mask_url(source.sql.url.get()),
        "csv": lambda: str(source.csv.directory),
        "http": lambda: mask_url(source.http.base_url),
    }[source.type]()
    metrics = config.metrics
    settings = {
        "version": DAY_SUMS_VERSION,
        "source": [source.type, where, source.tables.model_dump(mode="json")],
        "timezones": [config.source_timezone, config.timezone],
        "metrics": [
            sorted(metrics.category_lines.items()),
            {k: v.model_dump() for k, v in sorted(metrics.sla.items())},
            metrics.rating_scale,
            metrics.survey_scale,
            sorted(metrics.satisfaction_from),
            metrics.satisfaction.sources,
        ],
    }
    text = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_read(
    state: DaySumsState | None,
    *,
    as_of: dt.date,
    start: dt.date,
    communities: list[str] | set[str],
    fingerprint: str,
    reread_days: int,
    history_reread_nights: int,
) -> ReadPlan:
    """Full or incremental, from which day, and which older days again (``start``: the history
    window's first day)."""
    if state is None:
        return ReadPlan("full", None, "no saved day sums yet")
    if state.fingerprint != fingerprint:
        return ReadPlan("full", None, "source or metric settings changed since the saved day sums")
    if as_of <= state.through:
        return ReadPlan(
            "full", None, f"as-of {as_of} is not after the saved days (through {state.through}); saved sums kept", save=False
        )
    if start < state.start:
        return ReadPlan("full", None, f"history window starts {start}, before the saved days ({state.start})")
    added = sorted(set(communities) - set(state.communities))
    if added:
        shown = ", ".join(added[:3]) + (f" and {len(added) - 3} more" if len(added) > 3 else "")
        return ReadPlan("full", None, f"{len(added)} new communit{'y' if len(added) == 1 else 'ies'} ({shown})")
    last = min(as_of, state.through + dt.timedelta(days=1))
    since = max(last - dt.timedelta(days=reread_days), start)
    slices = history_slices(as_of, start, since, history_reread_nights)
    return ReadPlan(
        "incremental",
        since,
        f"the rest saved; every day read again over {history_reread_nights} nights; last full read {state.full_read_on}",
        slices=slices,
    )
