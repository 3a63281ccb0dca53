"""Ingest: read communities, tickets and surveys from the configured source, validate them into
tidy frames, and report what was read, skipped or cleared (with examples) per table.

    data = load_daily(config, as_of, saved=…)   # -> DailyData: day sums, batch by batch
    series = series_from_parts(data.parts, as_of, config.metrics, …)   # forecaster.ingest.aggregate
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pandas as pd
import requests

from forecaster.config import Config
from forecaster.prefetch import prefetch
from forecaster.errors import EmptySourceError
from forecaster.ingest.aggregate import combine_parts, daily_parts
from forecaster.ingest.csvfiles import CsvSource
from forecaster.ingest.httpapi import HttpSource
from forecaster.ingest.incremental import PartsState, ReadPlan, parts_fingerprint, plan_read
from forecaster.ingest.sql import SqlSource
from forecaster.secret import mask_url
from forecaster.ingest.validate import (
    RawTable,
    SeenKeys,
    TableReport,
    validate_communities,
    validate_surveys,
    validate_tickets,
)

__all__ = [
    "SourceData",
    "DailyData",
    "SavedParts",
    "make_source",
    "describe_source",
    "check_source",
    "load_source",
    "load_daily",
    "history_start",
]


@dataclass
class SourceData:
    communities: pd.DataFrame
    tickets: pd.DataFrame
    surveys: pd.DataFrame
    reports: list[TableReport] = field(default_factory=list)
    describe: str = ""

    @property
    def rows_read(self) -> int:
        return sum(r.rows_read for r in self.reports)

    @property
    def rows_skipped(self) -> int:
        return sum(r.rows_skipped for r in self.reports)


def make_source(config: Config, session: requests.Session | None = None):
    """The reader for ``config.source.type``; anything with ``read(name, tmap, since)`` and ``close()``."""
    source = config.source
    if source.type == "sql":
        return SqlSource(source.sql.url.get())
    if source.type == "csv":
        return CsvSource(source.csv)
    return HttpSource(source.http, session=session)


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
    since = dt.datetime.combine(dt.date.today() - dt.timedelta(days=days), dt.time())
    reader = make_source(config, session)
    lines = []
    try:
        for name, tmap in config.source.tables.items():
            raw = reader.read(name, tmap, None if name == "communities" else since)
            window = "" if name == "communities" else f" (read from {since.date()} on)"
            lines.append(f"{name}: {raw.origin}, columns ok, {len(raw.frame):,} rows{window}")
    finally:
        reader.close()
    return lines


def history_start(config: Config, as_of: dt.date) -> dt.date:
    return as_of - dt.timedelta(days=config.source.history_days)


def _empty_surveys() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "community_id": pd.Series(dtype="string"),
            "date": pd.Series(dtype="datetime64[ns]"),
            "score": pd.Series(dtype="float64"),
            "responses": pd.Series(dtype="float64"),
        }
    )


def load_source(config: Config, as_of: dt.date, session: requests.Session | None = None) -> SourceData:
    """Read and validate all tables, whole. Rows on or after ``as_of`` (incomplete days) and
    before the history window are left out. Raises `SourceError` when a source cannot be read and
    `EmptySourceError` when it holds no usable communities or no tickets and surveys.

    The nightly run uses `load_daily` instead, which never holds every ticket at once."""
    reader = make_source(config, session)
    try:
        communities, comm_report = _read_communities(reader, config)
        reports = [comm_report]
        read = _TableReader(reader, config, communities, as_of, None)
        tickets = _concat(list(read.tickets(reports)), _empty_tickets())
        surveys = _concat(list(read.surveys(reports)), _empty_surveys())
    finally:
        reader.close()
    describe = describe_source(config)
    if tickets.empty and surveys.empty:
        raise _nothing_read(config, as_of, describe)
    return SourceData(communities, tickets, surveys, reports, describe)


@dataclass
class DailyData:
    """What a night needs from the source: communities and the day sums of the history window."""

    communities: pd.DataFrame
    parts: pd.DataFrame  # day sums (forecaster.ingest.aggregate.daily_parts) of the whole window
    reports: list[TableReport]
    describe: str
    plan: ReadPlan
    fresh: pd.DataFrame  # the sums of the days read tonight (plan.ranges, or all of them on a full read)


@dataclass
class SavedParts:
    """Day sums saved by earlier nights (`PartsState`) and how to load them (from a day on)."""

    state: PartsState | None
    load: Callable[[dt.date], pd.DataFrame]


def load_daily(
    config: Config,
    as_of: dt.date,
    session: requests.Session | None = None,
    saved: SavedParts | None = None,
) -> DailyData:
    """Read the source into day sums per community, batch by batch: validated rows are summed
    and let go, so memory holds one batch of rows and the sums, not every ticket.

    With ``saved`` day sums (and ``source.incremental.enabled``) only the tickets created or
    closed in recent days, and recent surveys, are read; earlier days come from ``saved`` (see
    `forecaster.ingest.incremental`). Errors as `load_source`."""
    start = history_start(config, as_of)
    inc = config.source.incremental
    reader = make_source(config, session)
    try:
        communities, comm_report = _read_communities(reader, config)
        known = communities["community_id"].tolist()
        if saved is not None and inc.enabled:
            plan = plan_read(
                saved.state,
                as_of=as_of,
                start=start,
                communities=known,
                fingerprint=parts_fingerprint(config),
                reread_days=inc.reread_days,
                history_reread_nights=inc.history_reread_nights,
            )
        else:
            why = "source.incremental.enabled is false" if not inc.enabled else "no store to keep day sums in"
            plan = ReadPlan("full", None, why, save=False)
        reports = [comm_report]
        read = _TableReader(reader, config, communities, as_of, plan)
        pieces = [daily_parts(batch, _empty_surveys(), config.metrics) for batch in read.tickets(reports)]
        pieces += [daily_parts(_empty_tickets(), batch, config.metrics) for batch in read.surveys(reports)]
    finally:
        reader.close()
    fresh = combine_parts(pieces)
    parts = fresh
    if plan.incremental:
        # Days read afresh come wholly from tonight's rows; a day outside them may have a few
        # (a ticket created on it and closed lately): those days come from the saved sums.
        fresh = fresh[plan.recomputed(fresh["ds"])].reset_index(drop=True)
        old = saved.load(start)
        old = old[~plan.recomputed(old["ds"]) & old["community_id"].isin(set(known)).to_numpy()]
        parts = pd.concat([old, fresh], ignore_index=True)
    describe = describe_source(config)
    if not (parts["created"] > 0).any() and not (parts["surveyed"] > 0).any():
        raise _nothing_read(config, as_of, describe)
    return DailyData(communities, parts, reports, describe, plan, fresh)


class _TableReader:
    """Tickets and surveys of the history window, batch by batch, validated; each table's
    report (all its batches) is appended to ``reports`` when its first batch arrives."""

    def __init__(self, reader, config: Config, communities: pd.DataFrame, as_of: dt.date, plan: ReadPlan | None = None):
        self.reader, self.config, self.as_of = reader, config, as_of
        self.known = set(communities["community_id"])
        self.start = history_start(config, as_of)
        self.plan = plan if plan is not None and plan.incremental else None

    def _batches(self, name: str, reports: list[TableReport], validate) -> Iterator[pd.DataFrame]:
        tmap = getattr(self.config.source.tables, name)
        since, changed, ranges = _moment(self.start), None, ()
        if self.plan is not None:
            # Only the rows of the days recomputed tonight (tickets created or closed on them).
            changed = _moment(self.plan.since)
            ranges = tuple((_moment(a), _moment(b)) for a, b in self.plan.slices)
        report = None
        # The next batch is read from the source while this one is validated.
        for raw in prefetch(self.reader.read_batches(name, tmap, since, changed, ranges)):
            frame, batch_report = validate(raw)
            if report is None:
                report = TableReport(table=batch_report.table, origin=batch_report.origin)
                reports.append(report)
            report.add(batch_report)
            yield frame

    def tickets(self, reports: list[TableReport]) -> Iterator[pd.DataFrame]:
        lo, hi = pd.Timestamp(self.start), pd.Timestamp(self.as_of)
        seen = SeenKeys()
        for frame in self._batches("tickets", reports, lambda raw: _validate_tickets(raw, self.known, self.config, seen)):
            frame = frame[(frame["created_at"] >= lo) & (frame["created_at"] < hi)].reset_index(drop=True)
            # A ticket closed after the as-of date was still open then, and not rated yet (a
            # rating comes with the closing).
            later = (frame["closed_at"] >= hi).to_numpy()
            frame["closed_at"] = frame["closed_at"].mask(later)
            frame["rating"] = frame["rating"].mask(later)
            yield frame

    def surveys(self, reports: list[TableReport]) -> Iterator[pd.DataFrame]:
        if self.config.source.tables.surveys is None:
            return
        lo, hi = pd.Timestamp(self.start), pd.Timestamp(self.as_of)
        for frame in self._batches("surveys", reports, lambda raw: _validate_surveys(raw, self.known, self.config)):
            yield frame[(frame["date"] >= lo) & (frame["date"] < hi)].reset_index(drop=True)


def _moment(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def _read_communities(reader, config: Config) -> tuple[pd.DataFrame, TableReport]:
    raw = reader.read("communities", config.source.tables.communities)
    communities, report = validate_communities(raw)
    if communities.empty:
        raise EmptySourceError(
            f"{raw.origin}: no communities ({report.rows_read} rows read, {report.rows_skipped} skipped); nothing to forecast"
        )
    return communities, report


def _nothing_read(config: Config, as_of: dt.date, describe: str) -> EmptySourceError:
    start = history_start(config, as_of)
    return EmptySourceError(
        f"{describe}: no tickets or surveys between {start} and {as_of - dt.timedelta(days=1)} "
        f"(source.history_days = {config.source.history_days}); nothing to forecast"
    )


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty


def _empty_tickets() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticket_id": pd.Series(dtype="string"),
            "community_id": pd.Series(dtype="string"),
            "created_at": pd.Series(dtype="datetime64[ns]"),
            "closed_at": pd.Series(dtype="datetime64[ns]"),
            "category": pd.Series(dtype="string"),
            "rating": pd.Series(dtype="float64"),
        }
    )


def _validate_tickets(raw: RawTable, known: set[str], config: Config, seen: SeenKeys | None = None):
    if raw.frame.empty and not len(raw.frame.columns):
        raw = RawTable(raw.name, raw.origin, pd.DataFrame(columns=["ticket_id", "community_id", "created_at"]), raw.labels)
    return validate_tickets(
        raw,
        known,
        source_tz=config.source_timezone,
        timezone=config.timezone,
        rating_scale=config.metrics.rating_scale,
        seen=seen,
    )


def _validate_surveys(raw: RawTable, known: set[str], config: Config):
    if raw.frame.empty and not len(raw.frame.columns):
        raw = RawTable(raw.name, raw.origin, pd.DataFrame(columns=["community_id", "date", "score"]), raw.labels)
    return validate_surveys(raw, known, timezone=config.timezone, score_scale=config.metrics.survey_scale)
