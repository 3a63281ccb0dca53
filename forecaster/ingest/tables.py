"""The source's tickets and surveys of a history window, read batch by batch and validated.

    reader = make_source(config)
    for frame in TableReader(reader, config, known, as_of, plan).tickets(reports): ...

Used by the nightly read (`forecaster.ingest.load_daily`) and by each process of a partitioned
read (`forecaster.ingest.partitions`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pandas as pd
import requests

from forecaster.config import TABLE_COLUMNS, Config
from forecaster.ingest.csvfiles import CsvSource
from forecaster.ingest.httpapi import HttpSource
from forecaster.ingest.incremental import ReadPlan
from forecaster.ingest.request import ReadRequest, Shard, moment
from forecaster.ingest.sql import SqlSource
from forecaster.ingest.validate import RawTable, SeenKeys, TableReport, validate_communities, validate_surveys, validate_tickets
from forecaster.util.errors import EmptySourceError
from forecaster.util.prefetch import prefetch

__all__ = ["TableReader", "latest_credible", "make_source", "read_communities", "history_start", "empty_tickets", "empty_surveys"]


def make_source(config: Config, session: requests.Session | None = None):
    """The reader for ``config.source.type`` (a `forecaster.ingest.request.BatchedSource`)."""
    source = config.source
    if source.type == "sql":
        return SqlSource(source.sql.url.get())
    if source.type == "csv":
        return CsvSource(source.csv)
    return HttpSource(source.http, session=session)


def history_start(config: Config, as_of: dt.date) -> dt.date:
    return as_of - dt.timedelta(days=config.source.history_days)


def read_communities(reader, config: Config) -> tuple[pd.DataFrame, TableReport]:
    """The communities, validated, whole. Raises `EmptySourceError` when none is usable."""
    raw = reader.read(ReadRequest("communities", config.source.tables.communities))
    communities, report = validate_communities(raw)
    if communities.empty:
        raise EmptySourceError(
            f"{raw.origin}: no communities ({report.rows_read} rows read, {report.rows_skipped} skipped); nothing to forecast"
        )
    return communities, report


class TableReader:
    """Tickets and surveys of the history window, batch by batch, validated; each table's
    report (all its batches) is appended to ``reports`` when its first batch arrives."""

    def __init__(
        self,
        reader,
        config: Config,
        known: set[str],
        as_of: dt.date,
        plan: ReadPlan | None = None,
        latest: pd.Timestamp | None = None,
    ):
        """``latest``: the latest credible local time (`latest_credible`); rows dated after it
        are reported as in the future."""
        self.reader, self.config, self.as_of = reader, config, as_of
        self.known, self.latest = known, latest
        self.start = history_start(config, as_of)
        self.plan = plan if plan is not None and plan.incremental else None

    def request(self, name: str, shard: Shard | None = None) -> ReadRequest:
        """What tonight asks of the table: the history window and, on an incremental night, only
        the rows of the days recomputed (tickets created or closed on them)."""
        changes = ()
        if self.plan is not None:
            changes = tuple((moment(a), None if b is None else moment(b)) for a, b in self.plan.ranges)
        return ReadRequest(
            name, getattr(self.config.source.tables, name), moment(self.start), changes, shard=shard, lead=deadline_lead(self.config)
        )

    def _batches(self, name: str, reports: list[TableReport], validate, shard: Shard | None = None) -> Iterator[pd.DataFrame]:
        report = None
        # The next batch is read from the source while this one is validated.
        for raw in prefetch(self.reader.read_batches(self.request(name, shard))):
            frame, batch_report = validate(raw)
            if report is None:
                report = TableReport(table=batch_report.table, origin=batch_report.origin)
                reports.append(report)
            report.add(batch_report)
            yield frame

    def tickets(self, reports: list[TableReport], shard: Shard | None = None, seen: SeenKeys | None = None) -> Iterator[pd.DataFrame]:
        """``shard``: only that shard of the table (sources with ``capabilities.shards``);
        ``seen``: the ticket ids met before (in earlier shards), duplicates here."""
        lo, hi = pd.Timestamp(self.start), pd.Timestamp(self.as_of)
        seen = SeenKeys() if seen is None else seen
        validate = lambda raw: _validate_tickets(raw, self.known, self.config, seen, self.latest)  # noqa: E731
        for frame in self._batches("tickets", reports, validate, shard):
            frame = frame[(frame["created_at"] >= lo) & (frame["created_at"] < hi)].reset_index(drop=True)
            # A ticket closed after the as-of date was still open then, and not rated yet (a
            # rating comes with the closing).
            later = (frame["closed_at"] >= hi).to_numpy()
            frame["closed_at"] = frame["closed_at"].mask(later)
            frame["rating"] = frame["rating"].mask(later)
            frame["responded_at"] = frame["responded_at"].mask(frame["responded_at"] >= hi)
            yield frame

    def surveys(self, reports: list[TableReport]) -> Iterator[pd.DataFrame]:
        if self.config.source.tables.surveys is None:
            return
        lo, hi = pd.Timestamp(self.start), pd.Timestamp(self.as_of)
        validate = lambda raw: _validate_surveys(raw, self.known, self.config, self.latest)  # noqa: E731
        for frame in self._batches("surveys", reports, validate):
            yield frame[(frame["date"] >= lo) & (frame["date"] < hi)].reset_index(drop=True)


def deadline_lead(config: Config) -> dt.timedelta:
    """The longest deadline of metrics.sla: a ticket created that long before a day can have its
    deadline on it."""
    hours = max(max(s.respond_hours, s.close_hours) for s in config.metrics.sla.values())
    return dt.timedelta(hours=hours)


# The columns and types of validated tickets and surveys (`forecaster.ingest.validate`).
TICKET_DTYPES = {
    "ticket_id": "string",
    "community_id": "string",
    "created_at": "datetime64[ns]",
    "responded_at": "datetime64[ns]",
    "closed_at": "datetime64[ns]",
    "closed_untimed": "bool",
    "due_at": "datetime64[ns]",
    "category": "string",
    "line": "string",
    "rating": "float64",
}
SURVEY_DTYPES = {
    "community_id": "string",
    "date": "datetime64[ns]",
    "score": "float64",
    "responses": "float64",
    "source": "string",
    "recommend": "float64",
}


def empty_tickets() -> pd.DataFrame:
    return _empty(TICKET_DTYPES)


def empty_surveys() -> pd.DataFrame:
    return _empty(SURVEY_DTYPES)


def _empty(dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})


def _with_columns(raw: RawTable) -> RawTable:
    """An empty batch without any columns (an empty HTTP answer) given the required ones, so
    that it validates into an empty table instead of failing on them."""
    if raw.frame.empty and not len(raw.frame.columns):
        columns = list(TABLE_COLUMNS[raw.name].required)
        return RawTable(raw.name, raw.origin, pd.DataFrame(columns=columns), raw.labels)
    return raw


def _validate_tickets(raw: RawTable, known: set[str], config: Config, seen: SeenKeys | None, latest: pd.Timestamp | None):
    return validate_tickets(
        _with_columns(raw),
        known,
        source_tz=config.source_timezone,
        timezone=config.timezone,
        rating_scale=config.metrics.rating_scale,
        seen=seen,
        latest=latest,
        lines=config.metrics.category_lines,
    )


def _validate_surveys(raw: RawTable, known: set[str], config: Config, latest: pd.Timestamp | None):
    return validate_surveys(
        _with_columns(raw), known, timezone=config.timezone, score_scale=config.metrics.survey_scale,
        max_responses=config.metrics.max_survey_responses, latest=latest,
    )


# Clocks differ a little (the database server's, the ticket system's, this one's).
CLOCK_SLACK = dt.timedelta(minutes=15)


def latest_credible(now: dt.datetime, timezone: str) -> pd.Timestamp:
    """The latest time a row can carry, in naive local time as validated rows are: ``now``
    (aware) plus `CLOCK_SLACK`."""
    return pd.Timestamp((now + CLOCK_SLACK).astimezone(ZoneInfo(timezone)).replace(tzinfo=None))
