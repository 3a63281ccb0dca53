"""Reading back, for tests, what the nightly run reads and writes, through its own components.

* `read_rows`: a source's validated rows, as `forecaster.ingest.load_daily` gets them batch by
  batch from `TableReader` (before it sums them into day sums), put together.
* `stored`: the rows a run wrote to one of the store's tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from forecaster.config import Config
from forecaster.ingest.tables import TableReader, empty_surveys, empty_tickets, latest_credible, make_source, read_communities
from forecaster.ingest.validate import TableReport
from forecaster.store import Store


@dataclass
class Rows:
    communities: pd.DataFrame
    tickets: pd.DataFrame
    surveys: pd.DataFrame
    reports: list[TableReport]

    @property
    def rows_skipped(self) -> int:
        return sum(r.rows_skipped for r in self.reports)


def read_rows(config: Config, as_of: dt.date, now: dt.datetime | None = None) -> Rows:
    """Every table of the history window read in full (no saved day sums), validated; rows
    after ``now`` (aware) reported as in the future."""
    reader = make_source(config)
    try:
        communities, report = read_communities(reader, config)
        reports = [report]
        latest = None if now is None else latest_credible(now, config.timezone)
        read = TableReader(reader, config, set(communities["community_id"]), as_of, latest=latest)
        tickets = _concat(list(read.tickets(reports)), empty_tickets())
        surveys = _concat(list(read.surveys(reports)), empty_surveys())
    finally:
        reader.close()
    return Rows(communities, tickets, surveys, reports)


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty


def stored(store: Store, table: sa.Table, run_id: str) -> pd.DataFrame:
    """The rows of ``table`` (`forecaster.store.forecasts`, `series_status`, …) of one run."""
    with store.engine.connect() as conn:
        return pd.read_sql(sa.select(table).where(table.c.run_id == run_id), conn)
