"""Incremental reading: which tickets a night has to read, given the day sums saved before.

Reading every ticket of a three-year window every night costs most of the night for thousands
of communities. The day sums (`forecaster.ingest.aggregate.daily_parts`) of days long past do
not change, so the store keeps them, and a night reads only the tickets created or closed in
the last few days (``source.incremental.reread_days``, which also picks up late entries and
corrections of those days) and the surveys dated since; days before that come from the store.

A full read happens instead, and replaces the saved sums, when there are none yet, when the
source or metric settings that shape them changed, when a community was added (its history
may have been imported), when the history window reaches further back than the saved days,
and every ``source.incremental.full_read_every_days`` days (edits of old tickets, deleted
tickets). A night for a date not after the saved days (a re-run of an old night) reads in full
and leaves the saved sums alone. Pure: the store and the reading are the caller's.

One approximation, corrected by the next full read: a rating given to a ticket that was still
open (counted on its creation day) and which is closed in a later re-read window is counted
again on its closing day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from forecaster.config import Config
from forecaster.secret import mask_url

__all__ = ["PartsState", "ReadPlan", "parts_fingerprint", "plan_read"]

# Bump when daily_parts changes what it computes: saved sums of an older version are re-read.
PARTS_VERSION = 1


@dataclass(frozen=True)
class PartsState:
    """What the saved day sums hold (one row in the store)."""

    fingerprint: str  # parts_fingerprint of the settings they were computed with
    start: dt.date  # first day held
    through: dt.date  # last day held (the day before the as-of date of the night that saved them)
    full_read_on: dt.date  # as-of date of the last full read
    communities: tuple[str, ...]  # the communities known then


@dataclass(frozen=True)
class ReadPlan:
    mode: str  # full | incremental
    since: dt.date | None  # incremental: days from here on are read afresh, earlier ones saved
    reason: str  # why, for the run summary
    save: bool = True  # whether the night's sums replace the saved ones

    @property
    def incremental(self) -> bool:
        return self.mode == "incremental"

    def describe(self) -> str:
        if self.incremental:
            return f"incremental: tickets created or closed since {self.since} ({self.reason})"
        return f"full ({self.reason})"


def parts_fingerprint(config: Config) -> str:
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
        "version": PARTS_VERSION,
        "source": [source.type, where, source.tables.model_dump(mode="json")],
        "timezones": [config.source_timezone, config.timezone],
        "metrics": [
            sorted(c.strip().lower() for c in metrics.complaint_categories),
            metrics.rating_scale,
            metrics.survey_scale,
            sorted(metrics.satisfaction_from),
        ],
    }
    text = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_read(
    state: PartsState | None,
    *,
    as_of: dt.date,
    start: dt.date,
    communities: list[str] | set[str],
    fingerprint: str,
    reread_days: int,
    full_read_every_days: int,
) -> ReadPlan:
    """Full or incremental, and from which day (``start``: the history window's first day)."""
    if state is None:
        return ReadPlan("full", None, "no saved day sums yet")
    if state.fingerprint != fingerprint:
        return ReadPlan("full", None, "source or metric settings changed since the saved day sums")
    if as_of <= state.through:
        return ReadPlan(
            "full", None, f"as-of {as_of} is not after the saved days (through {state.through}); saved sums kept", save=False
        )
    since_full = (as_of - state.full_read_on).days
    if since_full >= full_read_every_days:
        return ReadPlan(
            "full",
            None,
            f"last full read {since_full} days ago; one every {full_read_every_days} "
            "(source.incremental.full_read_every_days)",
        )
    if start < state.start:
        return ReadPlan("full", None, f"history window starts {start}, before the saved days ({state.start})")
    added = sorted(set(communities) - set(state.communities))
    if added:
        shown = ", ".join(added[:3]) + (f" and {len(added) - 3} more" if len(added) > 3 else "")
        return ReadPlan("full", None, f"{len(added)} new communit{'y' if len(added) == 1 else 'ies'} ({shown})")
    last = min(as_of, state.through + dt.timedelta(days=1))
    since = max(last - dt.timedelta(days=reread_days), start)
    return ReadPlan("incremental", since, f"days before it saved; last full read {state.full_read_on}")
