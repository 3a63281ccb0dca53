"""Ingest: read communities, tickets and surveys from the configured source, validate them into
tidy frames, and report what was read, skipped or cleared (with examples) per table.

    data = load_source(config, as_of)          # -> SourceData
    series = make_daily_series(data, config, as_of)   # see `forecaster.ingest.aggregate`
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
import requests

from forecaster.config import Config
from forecaster.errors import EmptySourceError
from forecaster.ingest.csvfiles import CsvSource
from forecaster.ingest.httpapi import HttpSource
from forecaster.ingest.sql import SqlSource
from forecaster.secret import mask_url
from forecaster.ingest.validate import (
    RawTable,
    TableReport,
    validate_communities,
    validate_surveys,
    validate_tickets,
)

__all__ = ["SourceData", "make_source", "describe_source", "check_source", "load_source", "history_start"]


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
    """Read and validate all tables. Rows on or after ``as_of`` (incomplete days) and before the
    history window are left out. Raises `SourceError` when a source cannot be read and
    `EmptySourceError` when it holds no usable communities or no tickets and surveys."""
    start = history_start(config, as_of)
    since = dt.datetime.combine(start, dt.time())
    tables = config.source.tables
    reader = make_source(config, session)
    try:
        raw_communities = reader.read("communities", tables.communities)
        communities, comm_report = validate_communities(raw_communities)
        if communities.empty:
            raise EmptySourceError(
                f"{raw_communities.origin}: no communities "
                f"({comm_report.rows_read} rows read, {comm_report.rows_skipped} skipped); nothing to forecast"
            )
        known = set(communities["community_id"])
        raw_tickets = reader.read("tickets", tables.tickets, since)
        tickets, ticket_report = _validate_tickets(raw_tickets, known, config)
        reports = [comm_report, ticket_report]
        surveys = _empty_surveys()
        if tables.surveys is not None:
            raw_surveys = reader.read("surveys", tables.surveys, since)
            surveys, survey_report = _validate_surveys(raw_surveys, known, config)
            reports.append(survey_report)
    finally:
        reader.close()

    lo, hi = pd.Timestamp(start), pd.Timestamp(as_of)
    tickets = tickets[(tickets["created_at"] >= lo) & (tickets["created_at"] < hi)].reset_index(drop=True)
    surveys = surveys[(surveys["date"] >= lo) & (surveys["date"] < hi)].reset_index(drop=True)
    # A ticket closed after the as-of date was still open then.
    tickets["closed_at"] = tickets["closed_at"].where(tickets["closed_at"] < hi)
    describe = describe_source(config)
    if tickets.empty and surveys.empty:
        raise EmptySourceError(
            f"{describe}: no tickets or surveys between {start} and {as_of - dt.timedelta(days=1)} "
            f"(source.history_days = {config.source.history_days}); nothing to forecast"
        )
    return SourceData(communities, tickets, surveys, reports, describe)


def _validate_tickets(raw: RawTable, known: set[str], config: Config):
    if raw.frame.empty and not len(raw.frame.columns):
        raw = RawTable(raw.name, raw.origin, pd.DataFrame(columns=["ticket_id", "community_id", "created_at"]), raw.labels)
    return validate_tickets(
        raw,
        known,
        source_tz=config.source_timezone,
        timezone=config.timezone,
        rating_scale=config.metrics.rating_scale,
    )


def _validate_surveys(raw: RawTable, known: set[str], config: Config):
    if raw.frame.empty and not len(raw.frame.columns):
        raw = RawTable(raw.name, raw.origin, pd.DataFrame(columns=["community_id", "date", "score"]), raw.labels)
    return validate_surveys(raw, known, timezone=config.timezone, score_scale=config.metrics.survey_scale)
