"""Ingest: read communities, tickets and surveys from the configured source, validate them into
tidy frames, and report what was read, skipped or cleared (with examples) per table.

    data = load_daily(config, as_of, saved=…)   # -> DailyData: day sums, batch by batch
    series = series_from_day_sums(data.day_sums, as_of, config.metrics, …)   # forecaster.ingest.aggregate
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import requests

from forecaster.config import Config
from forecaster.ingest.aggregate import combine_day_sums, day_sums
from forecaster.ingest.incremental import DaySumsState, ReadPlan, day_sums_fingerprint, plan_read
from forecaster.ingest.partitions import PartitionedTickets, read_workers
from forecaster.ingest.request import ReadRequest, moment
from forecaster.ingest.tables import (
    TableReader,
    empty_surveys,
    empty_tickets,
    history_start,
    latest_credible,
    make_source,
    read_communities,
)
from forecaster.ingest.validate import TableReport
from forecaster.ingest.volume import Usual, judge_read
from forecaster.util.clock import SystemClock
from forecaster.util.errors import EmptySourceError
from forecaster.util.secret import mask_url

__all__ = [
    "DailyData",
    "SavedDaySums",
    "make_source",
    "describe_source",
    "check_source",
    "load_daily",
    "history_start",
]


def describe_source(config: Config) -> str:
    """Where the data comes from, fit to print (credentials masked)."""
    source = config.source
    if source.type == "sql":
        return f"sql {mask_url(source.sql.url.get())}"
    if source.type == "csv":
        return f"csv {source.csv.directory}"
    return f"http {mask_url(source.http.base_url)}"


def check_source(config: Config, session: requests.Session | None = None, days: int = 7) -> list[str]:
    """Open the source and read each table (tickets and surveys of the last ``days`` days only):
    proves the connection, the table names and the column mapping. One line per table."""
    since = moment(dt.date.today() - dt.timedelta(days=days))
    reader = make_source(config, session)
    lines = []
    try:
        for name, tmap in config.source.tables.items():
            raw = reader.read(ReadRequest(name, tmap, None if name == "communities" else since))
            window = "" if name == "communities" else f" (read from {since.date()} on)"
            lines.append(f"{name}: {raw.origin}, columns ok, {len(raw.frame):,} rows{window}")
    finally:
        reader.close()
    return lines


@dataclass
class DailyData:
    """What a night needs from the source: communities and the day sums of the history window."""

    communities: pd.DataFrame
    day_sums: pd.DataFrame  # day sums (forecaster.ingest.aggregate.day_sums) of the whole window
    reports: list[TableReport]
    describe: str
    plan: ReadPlan
    fresh: pd.DataFrame  # the sums of the days read tonight (plan.ranges, or all of them on a full read)


@dataclass
class SavedDaySums:
    """Day sums saved by earlier nights (`DaySumsState`) and how to load them (from a day on)."""

    state: DaySumsState | None
    load: Callable[[dt.date], pd.DataFrame]
    last_full_rows: dict[str, int] | None = None  # rows kept per table by the last full read


def load_daily(
    config: Config,
    as_of: dt.date,
    session: requests.Session | None = None,
    saved: SavedDaySums | None = None,
    now: dt.datetime | None = None,
) -> DailyData:
    """Read the source into day sums per community, batch by batch: validated rows are summed
    and let go, so memory holds one batch of rows and the sums, not every ticket.

    With ``saved`` day sums (and ``source.incremental.enabled``) only the tickets created or
    closed in recent days, and recent surveys, are read; earlier days come from ``saved`` (see
    `forecaster.ingest.incremental`). Rows on or after ``as_of`` (incomplete days) and before
    the history window are left out; rows dated after ``now`` (aware; default: the system
    clock) are reported as in the future and skipped. Raises `SourceError` when a source cannot be read and
    `EmptySourceError` when it holds no usable communities or no tickets and surveys, and
    `ShortReadError` when it delivers far less than usual (`forecaster.ingest.volume`): both
    before anything is saved."""
    start = history_start(config, as_of)
    reader = make_source(config, session)
    try:
        communities, comm_report = read_communities(reader, config)
        known = communities["community_id"].tolist()
        plan = _plan(config, as_of, known, saved)
        latest = latest_credible(now or SystemClock().now(), config.timezone)
        read = TableReader(reader, config, set(known), as_of, plan, latest)
        workers = read_workers(config) if reader.capabilities.shards else 1
        tickets = None
        if workers > 1:
            # Shards of the tickets table read by a pool of processes; the saved sums and the
            # surveys here meanwhile.
            reader.close()  # no connection of this process is carried into the workers
            tickets = PartitionedTickets(config, as_of, plan, set(known), start, workers, latest)
        try:
            old = saved.load(start) if plan.incremental else None
            ticket_reports: list[TableReport] = []
            survey_reports: list[TableReport] = []
            pieces = []
            if tickets is None:
                pieces += [day_sums(batch, empty_surveys(), config.metrics) for batch in read.tickets(ticket_reports)]
            pieces += [day_sums(empty_tickets(), batch, config.metrics) for batch in read.surveys(survey_reports)]
            if tickets is not None:
                ticket_pieces, ticket_report = tickets.collect()
                pieces += ticket_pieces
                ticket_reports += [ticket_report] if ticket_report else []
        finally:
            if tickets is not None:
                tickets.close()
    finally:
        reader.close()
    reports = [comm_report, *ticket_reports, *survey_reports]
    fresh = combine_day_sums(pieces)
    # A deadline can fall on a day not over yet: that day is summed on the night after it.
    fresh = fresh[fresh["ds"] < pd.Timestamp(as_of)].reset_index(drop=True)
    sums = fresh
    if plan.incremental:
        fresh, sums = _with_saved(fresh, old, plan, set(known))
    usual = Usual(
        saved=old[old["community_id"].isin(known).to_numpy()] if plan.incremental else None,
        through=saved.state.through if plan.incremental else None,
        last_full_rows=None if saved is None else saved.last_full_rows,
    )
    judge_read(reports, fresh, plan, usual, config.source.drop_guard, window=(start, as_of))
    describe = describe_source(config)
    if not (sums["created"] > 0).any() and not (sums["surveyed"] > 0).any():
        raise _nothing_read(config, as_of, describe)
    return DailyData(communities, sums, reports, describe, plan, fresh)


def _plan(config: Config, as_of: dt.date, known: list[str], saved: SavedDaySums | None) -> ReadPlan:
    """Tonight's read: incremental when the saved day sums allow it (`plan_read`), else full."""
    inc = config.source.incremental
    if saved is None or not inc.enabled:
        why = "source.incremental.enabled is false" if not inc.enabled else "no store to keep day sums in"
        return ReadPlan("full", None, why, save=False)
    return plan_read(
        saved.state,
        as_of=as_of,
        start=history_start(config, as_of),
        communities=known,
        fingerprint=day_sums_fingerprint(config),
        reread_days=inc.reread_days,
        history_reread_nights=inc.history_reread_nights,
    )


def _with_saved(
    read: pd.DataFrame, saved: pd.DataFrame, plan: ReadPlan, known: set[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An incremental night's sums: (the days read afresh, the whole window with the saved rest).

    Days read afresh come wholly from tonight's rows; a day outside them may have a few (a
    ticket created on it and closed lately): those days come from the saved sums."""
    fresh = read[plan.recomputed(read["ds"])].reset_index(drop=True)
    saved = saved[~plan.recomputed(saved["ds"]) & saved["community_id"].isin(known).to_numpy()]
    return fresh, pd.concat([saved, fresh], ignore_index=True)


def _nothing_read(config: Config, as_of: dt.date, describe: str) -> EmptySourceError:
    start = history_start(config, as_of)
    return EmptySourceError(
        f"{describe}: no tickets or surveys between {start} and {as_of - dt.timedelta(days=1)} "
        f"(source.history_days = {config.source.history_days}); nothing to forecast"
    )
