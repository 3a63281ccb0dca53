"""Reading source tables from any SQLAlchemy URL (SQLite, PostgreSQL, MySQL/MariaDB, …).

Only the mapped columns are selected, tickets and surveys only from the history window (a day
of margin either side of the cut, since the column's timezone is applied later) and, on an
incremental night, only the tickets created or closed on the days read afresh (surveys dated on
them); rows come in batches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from forecaster.config import TABLE_COLUMNS, TableMap
from forecaster.ingest.mapping import make_labels, select_columns, table_key
from forecaster.ingest.request import BatchedSource, Capabilities, ReadRequest, Shard
from forecaster.ingest.validate import RawTable
from forecaster.util.db import first_line, make_engine, sqlite_in_memory
from forecaster.util.errors import SourceError
from forecaster.util.secret import mask_url

__all__ = ["SqlSource"]

# The column of each table that the history window applies to.
WINDOW_COLUMN = {"tickets": "created_at", "surveys": "date"}
FETCH_ROWS = 100_000
LABEL_COLUMNS = {"communities": ("community_id",), "tickets": ("ticket_id",), "surveys": ("community_id", "date")}


class SqlSource(BatchedSource):
    capabilities = Capabilities(window=True, changes=True, shards=True)

    def __init__(self, url: str):
        self.url = url
        self._engine: sa.Engine | None = None
        self._tables: dict[str, sa.Table] = {}

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            missing = _missing_sqlite_file(self.url)
            if missing is not None:
                # SQLite would create an empty database there, and the night would then say
                # that it has no tables: a mistyped path must say so (the store creates its own).
                raise SourceError(
                    f"{missing}: SQLite file not found; a source is only read, never created. "
                    f"Check source.sql.url ({mask_url(self.url)}; a relative path is relative to the config file)"
                )
            self._engine = make_engine(self.url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def _reflect(self, name: str, tmap: TableMap) -> sa.Table:
        schema, _, table_name = tmap.table.rpartition(".")
        try:
            inspector = sa.inspect(self.engine)
            if schema and self.engine.dialect.name == "sqlite" and schema not in inspector.get_schema_names():
                # SQLite itself would say "no such table: crm.sqlite_master".
                there = ", ".join(inspector.get_schema_names())
                raise SourceError(
                    f"{mask_url(self.url)}: table {tmap.table!r}: SQLite has no schema {schema!r} (databases there: {there}); "
                    f"a SQLite file has no schemas, only attached databases: set {table_key(name)}.table to {table_name!r}"
                )
            if not inspector.has_table(table_name, schema=schema or None):
                there = ", ".join(sorted(inspector.get_table_names(schema=schema or None))) or "none"
                raise SourceError(
                    f"{mask_url(self.url)}: table {tmap.table!r} not found (tables there: {there}). "
                    f"Set {table_key(name)}.table to your {name} table"
                )
            return sa.Table(table_name, sa.MetaData(), schema=schema or None, autoload_with=self.engine)
        except SQLAlchemyError as exc:
            raise SourceError(f"{mask_url(self.url)}: cannot read {tmap.table!r}: {first_line(exc)}") from None

    def _read_batches(self, request: ReadRequest) -> Iterator[RawTable]:
        """The table's rows in batches of `FETCH_ROWS` (at least one batch, maybe empty).

        The request's ``since`` starts the history window; its ``changes`` ask only for the rows
        of those days: for tickets, those created or closed on them; for surveys, those dated on
        them. Each cut is applied in the query when its column is a date/time column there (a
        day early and late: the timezone is applied later); otherwise more rows come back, which
        is never wrong (the caller filters).

        Its ``shard`` = (lo, hi) asks only for the rows whose window column holds a value in
        [lo, hi) as stored (None: no bound): shards cut at the same moments hold every row once.
        When the column is not a date/time column there, the shard without a lower bound has
        every row and the others none."""
        name, tmap = request.table, request.tmap
        table = self._reflect(name, tmap)
        origin = f"table {tmap.table} in {mask_url(self.url)}"
        # Map on an empty frame with the real column names first: errors name the missing column.
        select_columns(pd.DataFrame(columns=[c.name for c in table.columns]), name, tmap, origin)
        yield from self._fetch(self._query(table, request), name, origin)

    def _query(self, table: sa.Table, request: ReadRequest) -> sa.Select:
        """The mapped columns under their canonical names, cut as the request asks."""
        name = request.table
        column = _finder(table, request.tmap)
        cols = []
        for canonical in TABLE_COLUMNS[name].all:
            col = column(canonical)
            if col is not None:
                if self.engine.dialect.name == "sqlite" and _dated(col):
                    # SQLite keeps times as text: take the text and let validation parse it, in
                    # one vectorised pass instead of SQLAlchemy's per-row conversion (which is
                    # also strict: it rejects text that is not its own ISO format).
                    col = sa.type_coerce(col, sa.String)
                cols.append(col.label(canonical))
        window = column(WINDOW_COLUMN[name]) if name in WINDOW_COLUMN else None
        others = [column(c) for c in ("closed_at", "responded_at", "due_at")] if name == "tickets" else []
        query = _cut_days(sa.select(*cols), request, window, [c for c in others if c is not None])
        return _cut_shard(query, request.shard, window)

    def _fetch(self, query: sa.Select, name: str, origin: str) -> Iterator[RawTable]:
        try:
            with self.engine.connect() as conn:
                result = conn.execute(query)
                columns = list(result.keys())
                # Rows straight from the driver's cursor: SQLAlchemy's per-row objects cost as
                # much as the database itself on a few million tickets. In batches, so that only
                # one batch is ever held as Python tuples, and validated before the next is read.
                batches = 0
                while result.cursor is not None:
                    rows = result.cursor.fetchmany(FETCH_ROWS)
                    if not rows:
                        break
                    frame = pd.DataFrame(rows, columns=columns)
                    batches += 1
                    yield RawTable(name, origin, frame, make_labels(frame, LABEL_COLUMNS[name]))
                result.close()
        except SQLAlchemyError as exc:
            raise SourceError(f"{origin}: query failed: {first_line(exc)}") from None
        if not batches:
            frame = pd.DataFrame(columns=columns)
            yield RawTable(name, origin, frame, make_labels(frame, LABEL_COLUMNS[name]))


def _missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it does not exist (None: it does, or no such file)."""
    try:
        parsed = sa.engine.make_url(url)
    except (SQLAlchemyError, ValueError):
        return None  # make_engine says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or sqlite_in_memory(parsed):
        return None
    database = parsed.database
    if parsed.query.get("uri") and database.startswith("file:"):
        database = database.removeprefix("file:")
    path = Path(database)
    return None if path.exists() else path


def _finder(table: sa.Table, tmap: TableMap) -> Callable[[str], sa.Column | None]:
    """The table's column mapped to a canonical name (case-insensitive fallback), or None."""
    by_lower = {c.name.lower(): c for c in table.columns}

    def column(canonical: str) -> sa.Column | None:
        src = tmap.source_column(canonical)
        return table.columns.get(src) if src in table.columns else by_lower.get(src.lower())

    return column


def _dated(col: sa.Column | None) -> bool:
    return col is not None and isinstance(col.type, (sa.DateTime, sa.Date))


def _cut_days(query: sa.Select, request: ReadRequest, window: sa.Column | None, others: list[sa.Column]) -> sa.Select:
    """The history window and, on an incremental night, the days read afresh: tickets created on
    them (or up to ``request.lead`` before: a deadline may fall on them), or closed, answered or
    due on them. A day's margin either side covers the source's timezone."""
    day = dt.timedelta(days=1)
    if request.since is not None and _dated(window):
        query = query.where(window >= request.since - day)
    if request.changes and _dated(window) and all(_dated(c) for c in others):
        dates = [(window, request.lead)] + [(c, dt.timedelta(0)) for c in others]
        cuts = [
            (c >= a - day - lead) if b is None else (c >= a - day - lead) & (c < b + day)
            for a, b in request.changes
            for c, lead in dates
        ]
        query = query.where(sa.or_(*cuts))
    return query


def _cut_shard(query: sa.Select, shard: Shard | None, window: sa.Column | None) -> sa.Select:
    if shard is None or window is None:
        return query
    lo, hi = shard
    if not _dated(window):
        return query.where(sa.false()) if lo is not None else query
    if lo is not None:
        query = query.where(window >= lo)
    if hi is not None:
        query = query.where(window < hi)
    return query
