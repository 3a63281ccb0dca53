"""The service's own database: its tables and the few queries the rest of the code needs.

Runs and their per-series status and ingest problems; each night's forecasts and findings; the
model choices reused between nights; the day sums incremental nights start from; the service's
job slots and leases; and the alert outbox (messages, attempts, what each route was told,
silences, channel throttles).

SQLAlchemy 2.x Core; the same code runs on SQLite, PostgreSQL and MySQL/MariaDB. Tables are
created on first use. Timestamps are stored as UTC without a zone (portable across the three);
dates (``as_of``, ``first_ds``…) are local calendar days in the configured timezone.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import SQLAlchemyError

from forecaster.ingest.incremental import DaySumsState
from forecaster.ingest.validate import TableReport
from forecaster.util.db import first_line, make_engine
from forecaster.util.errors import ForecasterError
from forecaster.util.secret import mask_url

__all__ = [
    "Store",
    "StoreError",
    "metadata",
    "TABLE_MODULES",
    "declared_metadata",
    "runs",
    "series_status",
    "ingest_problems",
    "forecasts",
    "findings",
    "job_slots",
    "leases",
    "jobs_table",
    "instance_name",
    "model_choices",
    "day_parts",
    "day_parts_state",
    "utc_naive",
    "aware",
    "bulk_insert",
    "RunRecord",
]


class StoreError(ForecasterError):
    """The service database cannot be opened or written."""

    exit_code = 2


metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False, index=True),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | ok | partial | failed | interrupted
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("duration_s", sa.Float),
    sa.Column("source", sa.String(512)),
    sa.Column("communities", sa.Integer),
    sa.Column("series", sa.Integer),
    sa.Column("rows_read", sa.BigInteger),
    sa.Column("rows_skipped", sa.BigInteger),
    sa.Column("summary", sa.Text),  # JSON: timings, counts by status, outputs
    sa.Column("error", sa.Text),
)

series_status = sa.Table(
    "series_status",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("series_id", sa.String(191), primary_key=True),
    sa.Column("community_id", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # ok | fallback | failed | short | no_data
    sa.Column("model", sa.String(16)),
    sa.Column("score", sa.Float),  # backtest MASE of the chosen model
    sa.Column("n_days", sa.Integer),
    sa.Column("n_obs", sa.Integer),
    sa.Column("first_ds", sa.Date),
    sa.Column("last_ds", sa.Date),
    sa.Column("reason", sa.Text),
)

ingest_problems = sa.Table(
    "ingest_problems",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("table_name", sa.String(32), nullable=False),
    sa.Column("origin", sa.String(512)),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("examples", sa.Text),  # JSON list
)


forecasts = sa.Table(
    "forecasts",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("series_id", sa.String(191), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("community_id", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("yhat", sa.Float, nullable=False),
    sa.Column("yhat_lower", sa.Float, nullable=False),
    sa.Column("yhat_upper", sa.Float, nullable=False),
    sa.Column("model", sa.String(16), nullable=False),
)

# One row per run and finding: a finding seen on several nights has one row per night, with the
# same finding_id (see forecaster.detect.carry_identity).
findings = sa.Table(
    "findings",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("finding_id", sa.String(32), primary_key=True),
    sa.Column("community_id", sa.String(128), nullable=False, index=True),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("first_day", sa.Date, nullable=False),
    sa.Column("last_day", sa.Date, nullable=False),
    sa.Column("peak_day", sa.Date, nullable=False),
    sa.Column("expected", sa.Float),
    sa.Column("limit_value", sa.Float),
    sa.Column("reference", sa.String(64)),
    sa.Column("baseline", sa.Float),
    sa.Column("depth", sa.Float),
    sa.Column("probability", sa.Float),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("window_label", sa.String(128)),
    sa.Column("estimated", sa.Boolean),
    sa.Column("days", sa.Integer),
    sa.Column("status", sa.String(16)),  # new | updated | unchanged
)

# ------------------------------------------------------------------------------ moments
# Delivery and lease times need sub-second precision (rate windows); MySQL's DATETIME defaults to seconds.
Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

# The alert tables (alert_messages, alert_attempts, alert_state, silences, channel_state) are
# declared beside their code, in forecaster.alerts.tables, on this same `metadata` (TABLE_MODULES).

# Each series' model choice from its last full backtest, reused for up to
# forecast.reselect_every_days nights (forecaster.models.select.Choice).
model_choices = sa.Table(
    "model_choices",
    metadata,
    sa.Column("series_id", sa.String(191), primary_key=True),
    sa.Column("model", sa.String(16), nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("ordinary", sa.Float, nullable=False),
    sa.Column("holiday", sa.Float, nullable=False),
    sa.Column("ahead", sa.String(255), nullable=False),  # comma-separated major holidays ahead
    sa.Column("chosen_on", sa.Date, nullable=False),
)

# Day sums per community (forecaster.ingest.aggregate.day_sums) kept between nights, so a
# night reads only recent tickets (forecaster.ingest.incremental); one state row says what they hold.
# The tables keep their first names (day_parts, day_parts_state): stores in use have them.
day_parts = sa.Table(
    "day_parts",
    metadata,
    sa.Column("community_id", sa.String(128), primary_key=True),
    # No index on ds alone: the sums are read by a scan, and one cost two thirds of saving them
    # (docs/benchmarks.md, session 5). Stores made before drop it (_drop_old_indexes).
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("complaints", sa.Integer, nullable=False),
    sa.Column("closed", sa.Integer, nullable=False),
    # Sums added up night after night: DOUBLE (MySQL's FLOAT keeps 7 digits).
    sa.Column("hours", sa.Double, nullable=False),
    sa.Column("sat_w", sa.Double, nullable=False),
    sa.Column("sat_wy", sa.Double, nullable=False),
    sa.Column("surveyed", sa.Integer, nullable=False),
    # Since day sums version 2 (response times, deadlines, overdue tickets, NPS).
    *(
        sa.Column(c, sa.Integer, nullable=False)
        for c in ("closed_untimed", "responded", "resp_due", "resp_met", "close_due", "close_met", "overdue_in", "overdue_out")
    ),
    *(sa.Column(c, sa.Double, nullable=False) for c in ("resp_hours", "rec_w", "promoters", "detractors")),
)

# Tickets created per service line and day (the day sums' ``created.<line>``), where any.
day_line_parts = sa.Table(
    "day_line_parts",
    metadata,
    sa.Column("community_id", sa.String(128), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("line", sa.String(32), primary_key=True),
    sa.Column("created", sa.Integer, nullable=False),
)
# Tables that only keep what can be read again (the day sums): a store made by an earlier
# version whose columns differ has them made afresh, and the next night reads in full.
CACHE_TABLES = ("day_parts", "day_line_parts", "day_parts_state")

day_parts_state = sa.Table(
    "day_parts_state",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),  # "source"
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("start", sa.Date, nullable=False),
    sa.Column("through", sa.Date, nullable=False),
    sa.Column("full_read_on", sa.Date, nullable=False),
    sa.Column("communities", sa.Text, nullable=False),  # JSON list
    sa.Column("saved_at", sa.DateTime, nullable=False),
)

# ----------------------------------------------------------------------------- service
# One row per scheduled job and due time: the instance that inserts it runs it, so two services
# on one database never run the same night twice. ``expires_at`` is pushed forward while the job
# runs; a row whose holder stopped heartbeating can be taken over (a crashed holder never blocks).
job_slots = sa.Table(
    "job_slots",
    metadata,
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("slot", sa.String(40), primary_key=True),  # the due time, ISO
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("run_id", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),  # running | ok | partial | failed | interrupted | skipped
    sa.Column("trigger", sa.String(16)),  # schedule | late
    sa.Column("started_at", Moment, nullable=False),
    sa.Column("finished_at", Moment),
    sa.Column("expires_at", Moment, nullable=False),
)

# Since when each instance's job has had its schedule (``spec``, the trigger as text): a due time
# before ``since`` was never due to this install, so it cannot have been missed.
job_schedules = sa.Table(
    "job_schedules",
    metadata,
    sa.Column("instance", sa.String(64), primary_key=True),
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("spec", sa.String(255), nullable=False),
    sa.Column("since", Moment, nullable=False),
)

# Short-lived exclusive leases (e.g. "outbox": one sender at a time across instances).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", Moment, nullable=False),
)



def instance_name(configured: str | None = None) -> str:
    """The service instance's name: ``schedule.instance``, or this host's short name (also what
    ``forecaster status`` looks up, so both agree without the CLI importing the service)."""
    if configured:
        return configured
    name = socket.gethostname().split(".")[0] or "forecaster"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]


def this_process() -> dict[str, Any]:
    """Where a run runs: this machine's name and this process's id."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def process_gone(process: dict[str, Any] | None) -> bool:
    """Whether a recorded process (`this_process`) has ended: only known on the same machine
    (False for another machine's, or a run recorded before processes were)."""
    if not process or process.get("host") != socket.gethostname() or not isinstance(process.get("pid"), int):
        return False
    try:
        os.kill(process["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def describe_process(process: dict[str, Any] | None) -> str:
    """A recorded process (`this_process`) as a person reads it."""
    process = process or {}
    return f"pid {process.get('pid')} on {process.get('host')}"


def interrupt_run(conn: sa.Connection, run_id: str, at: dt.datetime, why: str) -> None:
    """Record a run that is still ``running`` as interrupted at ``at`` (UTC, naive), with why."""
    conn.execute(
        runs.update()
        .where((runs.c.run_id == run_id) & (runs.c.status == "running"))
        .values(status="interrupted", finished_at=at, error=why)
    )


def jobs_table(instance: str) -> str:
    """The APScheduler job table of one instance (jobs must not be shared between schedulers)."""
    return "wuye_jobs_" + "".join(c if c.isalnum() else "_" for c in instance.lower())[:40]


_FINDING_COLUMNS = {"limit": "limit_value", "window": "window_label"}


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    as_of: dt.date
    trigger: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_s: float | None
    source: str | None
    communities: int | None
    series: int | None
    rows_read: int | None
    rows_skipped: int | None
    summary: dict[str, Any]
    error: str | None


_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def bulk_insert(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame, chunk: int = 20_000) -> int:
    """Insert ``frame``'s rows (columns named as ``table``'s; dates, numbers, text) through the
    driver's own executemany: SQLAlchemy's per-row parameter handling costs more than the
    database itself on hundreds of thousands of rows (docs/benchmarks.md, session 4). Missing values become NULL; dates go to SQLite as its ISO text, as SQLAlchemy writes them."""
    mark = _PLACEHOLDER.get(conn.dialect.paramstyle)
    if mark is None or any(isinstance(table.c[name].type, sa.DateTime) for name in frame.columns):
        # The portable way: SQLAlchemy converts (an unknown placeholder style, or timestamps).
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        for lo in range(0, len(records), chunk):
            conn.execute(table.insert(), records[lo : lo + chunk])
        return len(records)
    sqlite = conn.dialect.name == "sqlite"
    columns = []
    for name in frame.columns:
        kind = table.c[name].type
        values = frame[name]
        if isinstance(kind, sa.Date):
            days = pd.to_datetime(values)
            values = days.dt.strftime("%Y-%m-%d") if sqlite else days.dt.date
        elif isinstance(kind, sa.Float):
            values = values.astype("float64")
        values = values.astype(object)
        columns.append(values.where(values.notna(), None).tolist())
    prep = conn.dialect.identifier_preparer
    names = ", ".join(prep.quote(str(c)) for c in frame.columns)
    sql = f"INSERT INTO {prep.format_table(table)} ({names}) VALUES ({', '.join([mark] * len(frame.columns))})"
    rows = list(zip(*columns))
    for lo in range(0, len(rows), chunk):
        conn.exec_driver_sql(sql, rows[lo : lo + chunk])
    return len(rows)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """A moment as stored: UTC, no zone (portable across the three databases)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time (UTC, no zone) as an aware datetime: the inverse of `utc_naive`."""
    return None if value is None else value.replace(tzinfo=dt.timezone.utc)


# Indexes earlier versions made that only slow writing down: (table, index, column).
OLD_INDEXES = (("day_parts", "ix_day_parts_ds", "ds"),)


def _renew_cache_tables(engine: sa.Engine) -> None:
    """Drop the cache tables (`CACHE_TABLES`) when one of them lacks a column declared now (a
    store of an earlier version): they are made afresh and the next night reads in full."""
    inspector = sa.inspect(engine)
    stale = False
    for name in CACHE_TABLES:
        if inspector.has_table(name):
            have = {c["name"] for c in inspector.get_columns(name)}
            stale |= not set(metadata.tables[name].columns.keys()) <= have
    if stale:
        with engine.begin() as conn:
            for name in CACHE_TABLES:
                sa.Table(name, sa.MetaData()).drop(conn, checkfirst=True)


def _drop_old_indexes(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    for table, name, column in OLD_INDEXES:
        if inspector.has_table(table) and any(ix["name"] == name for ix in inspector.get_indexes(table)):
            # On a table of its own metadata: an index made on ours would be created again.
            alone = sa.Table(table, sa.MetaData(), sa.Column(column, sa.Date))
            with engine.begin() as conn:
                sa.Index(name, alone.c[column]).drop(conn)


# Modules that declare more tables on `metadata`, beside their own code (store.py imports nothing
# from them). `Store` imports them before it creates tables, so a fresh database always gets every
# table, whichever command opens it first.
TABLE_MODULES = ("forecaster.alerts.tables",)


def declared_metadata() -> sa.MetaData:
    """`metadata` with every table declared, here and in `TABLE_MODULES`."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return metadata


class Store:
    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        self.describe = mask_url(url)
        self.engine = make_engine(url, create_dir=True)
        if create:
            try:
                _renew_cache_tables(self.engine)
                declared_metadata().create_all(self.engine, checkfirst=True)
                _drop_old_indexes(self.engine)
            except SQLAlchemyError as exc:
                raise StoreError(f"store {self.describe}: cannot create tables: {first_line(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def write(self, what: str, fn) -> Any:
        """Run ``fn(connection)`` in one transaction; a database error becomes a `StoreError`
        saying what could not be done (``what``) and where."""
        try:
            with self.engine.begin() as conn:
                return fn(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"store {self.describe}: cannot {what}: {first_line(exc)}") from None

    # ------------------------------------------------------------------ runs
    def start_run(self, run_id: str, as_of: dt.date, trigger: str, started_at: dt.datetime, source: str) -> None:
        """The run's row, ``running``, with the process that runs it (`this_process`): a run whose
        process is gone without recording its end is found by that (`dead_runs`)."""
        self.write(
            "record the run start",
            lambda c: c.execute(
                runs.insert().values(
                    run_id=run_id,
                    as_of=as_of,
                    trigger=trigger,
                    status="running",
                    started_at=utc_naive(started_at),
                    source=source[:512],
                    summary=json.dumps({"process": this_process()}),
                )
            ),
        )

    def dead_runs(self) -> list[RunRecord]:
        """Runs still ``running`` whose process, on this machine, is gone (killed with kill -9, out
        of memory): they will never record their end. Runs of other machines are not judged."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.status == "running")).mappings().all()
        return [r for r in map(_record, rows) if process_gone(r.summary.get("process"))]

    def interrupt_dead_runs(self, now: dt.datetime) -> list[RunRecord]:
        """Record `dead_runs` as interrupted, saying which process ended without a word."""
        dead = self.dead_runs()
        for run in dead:
            error = (
                f"its process ({describe_process(run.summary.get('process'))}) ended without recording the end of "
                "the run: killed (kill -9, out of memory) or the machine stopped"
            )
            self.write(
                "record a dead run as interrupted",
                lambda c, run=run, error=error: interrupt_run(c, run.run_id, utc_naive(now), error),
            )
        return dead

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        finished_at: dt.datetime,
        duration_s: float,
        summary: dict[str, Any],
        error: str | None = None,
        communities: int | None = None,
        series: int | None = None,
        rows_read: int | None = None,
        rows_skipped: int | None = None,
    ) -> None:
        values = dict(
            status=status,
            finished_at=utc_naive(finished_at),
            duration_s=duration_s,
            summary=json.dumps(summary, ensure_ascii=False, default=str),
            error=error,
            communities=communities,
            series=series,
            rows_read=rows_read,
            rows_skipped=rows_skipped,
        )
        done = self.write("record the run end", lambda c: c.execute(runs.update().where(runs.c.run_id == run_id).values(**values)))
        if not done.rowcount:
            raise StoreError(f"store {self.describe}: cannot record the run end: run {run_id[:8]} has no row (its start was not recorded)")

    def add_series_status(self, run_id: str, stats: pd.DataFrame) -> None:
        if stats.empty:
            return
        frame = stats.assign(run_id=run_id)
        rows = []
        for rec in frame.to_dict("records"):
            rows.append(
                {
                    "run_id": run_id,
                    "series_id": rec["series_id"],
                    "community_id": rec["community_id"],
                    "metric": rec["metric"],
                    "status": rec["status"],
                    "model": rec.get("model") or None,
                    "score": None if pd.isna(rec.get("score", float("nan"))) else float(rec["score"]),
                    "n_days": int(rec["n_days"]),
                    "n_obs": int(rec["n_obs"]),
                    "first_ds": None if pd.isna(rec.get("first_ds")) else pd.Timestamp(rec["first_ds"]).date(),
                    "last_ds": None if pd.isna(rec.get("last_ds")) else pd.Timestamp(rec["last_ds"]).date(),
                    "reason": rec.get("reason") or None,
                }
            )
        self.write("record series status", lambda c: c.execute(series_status.insert(), rows))

    def add_ingest_problems(self, run_id: str, reports: list[TableReport]) -> None:
        rows = [
            {
                "run_id": run_id,
                "table_name": r.table,
                "origin": r.origin[:512],
                "reason": p.reason[:255],
                "action": p.action,
                "count": p.count,
                "examples": json.dumps(p.examples, ensure_ascii=False),
            }
            for r in reports
            for p in r.problems
        ]
        if rows:
            self.write("record ingest problems", lambda c: c.execute(ingest_problems.insert(), rows))

    def add_forecasts(self, run_id: str, frame: pd.DataFrame, chunk: int = 20_000) -> None:
        """``frame``: series_id, community_id, metric, ds, yhat, yhat_lower, yhat_upper, model."""
        if frame.empty:
            return
        cols = ["series_id", "community_id", "metric", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]
        out = frame[cols].assign(run_id=run_id)
        self.write("record forecasts", lambda conn: bulk_insert(conn, forecasts, out, chunk))

    def prune_forecasts(self, before: dt.date) -> int:
        """Delete the forecast rows of runs as of a day before ``before``; returns how many."""
        old = sa.select(runs.c.run_id).where(runs.c.as_of < before)
        return self.write("prune old forecasts", lambda c: c.execute(forecasts.delete().where(forecasts.c.run_id.in_(old))).rowcount)

    def add_findings(self, run_id: str, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        names = [c.name for c in findings.columns]
        rows = []
        for rec in frame.rename(columns=_FINDING_COLUMNS).to_dict("records"):
            row = {k: rec.get(k) for k in names if k != "run_id"}
            row["run_id"] = run_id
            for k, v in row.items():
                if isinstance(v, float) and v != v:
                    row[k] = None
                elif hasattr(v, "item"):
                    row[k] = v.item()
            rows.append(row)
        self.write("record findings", lambda c: c.execute(findings.insert(), rows))

    def model_choices(self) -> dict:
        from forecaster.models.select import Choice

        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(model_choices)).mappings().all()
        return {
            r["series_id"]: Choice(
                r["model"],
                float("nan") if r["score"] is None else r["score"],
                r["ordinary"],
                r["holiday"],
                tuple(a for a in r["ahead"].split(",") if a),
                r["chosen_on"].isoformat(),
            )
            for r in rows
        }

    def save_model_choices(self, choices: dict) -> None:
        """Replace the stored choice of each series in ``choices`` (series id → Choice)."""
        if not choices:
            return
        rows = [
            {
                "series_id": sid,
                "model": c.model,
                "score": None if c.score != c.score else float(c.score),
                "ordinary": float(c.ordinary),
                "holiday": float(c.holiday),
                "ahead": ",".join(c.ahead),
                "chosen_on": dt.date.fromisoformat(c.chosen_on),
            }
            for sid, c in choices.items()
        ]
        ids = list(choices)

        def write(conn) -> None:
            for lo in range(0, len(ids), 500):
                conn.execute(model_choices.delete().where(model_choices.c.series_id.in_(ids[lo : lo + 500])))
            conn.execute(model_choices.insert(), rows)

        self.write("record model choices", write)

    # ------------------------------------------------------------------ day sums
    def day_sums_state(self) -> DaySumsState | None:
        """What the saved day sums hold, or None when there are none."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(day_parts_state).where(day_parts_state.c.name == "source")).mappings().first()
        if row is None:
            return None
        return DaySumsState(
            row["fingerprint"],
            _as_date(row["start"]),
            _as_date(row["through"]),
            _as_date(row["full_read_on"]),
            tuple(json.loads(row["communities"])),
        )

    def load_day_sums(self, start: dt.date, batch: int = 100_000) -> pd.DataFrame:
        """The saved day sums from ``start`` on (columns as `day_sums`)."""
        from forecaster.ingest.aggregate import DAY_SUM_COLUMNS, LINE_PREFIX, combine_day_sums, empty_day_sums

        names = ["community_id", "ds", *DAY_SUM_COLUMNS]
        # The whole table, in storage order, filtered here: the table holds little more than the
        # window (older days are dropped on saving), and a scan by the ds index visits the rows in
        # random order (slower warm, far slower from a cold disk: docs/benchmarks.md, session 4).
        query = sa.select(*[day_parts.c[n] for n in names])
        frames = []
        with self.engine.connect() as conn:
            result = conn.execute(query)
            # Straight from the driver's cursor, like the source reader: millions of rows.
            while result.cursor is not None:
                rows = result.cursor.fetchmany(batch)
                if not rows:
                    break
                frames.append(pd.DataFrame.from_records(rows, columns=names))
            result.close()
            lines = pd.DataFrame(conn.execute(sa.select(day_line_parts)).fetchall(), columns=["community_id", "ds", "line", "created"])
        if not frames:
            return empty_day_sums()
        frame = pd.concat(frames, ignore_index=True)
        frame["ds"] = pd.to_datetime(frame["ds"])
        if len(lines):
            lines["ds"] = pd.to_datetime(lines["ds"])
            wide = lines.pivot_table(index=["community_id", "ds"], columns="line", values="created", aggfunc="sum", fill_value=0)
            wide.columns = [LINE_PREFIX + str(c) for c in wide.columns]
            frame = frame.merge(wide.reset_index(), on=["community_id", "ds"], how="left")
        return combine_day_sums([frame[frame["ds"] >= pd.Timestamp(start)]])

    def save_day_sums(
        self,
        sums: pd.DataFrame,
        state: DaySumsState,
        *,
        replace: list[tuple[dt.date, dt.date | None]] | None,
        saved_at: dt.datetime,
        chunk: int = 20_000,
    ) -> int:
        """Save day sums and what they hold. ``replace`` None: ``sums`` replace all saved sums
        (a full read); a list of day ranges [first, end) (end None: open): they replace the sums
        of those days, and days before ``state.start`` are dropped (an incremental night). One
        transaction; returns the rows written."""
        from forecaster.ingest.aggregate import DAY_SUM_COLUMNS, LINE_PREFIX, line_columns

        out = sums[["community_id", "ds", *DAY_SUM_COLUMNS]]
        per_line = sums[["community_id", "ds", *line_columns(sums)]].melt(["community_id", "ds"], var_name="line", value_name="created")
        per_line = per_line[per_line["created"] > 0]
        per_line["line"] = per_line["line"].str.removeprefix(LINE_PREFIX)
        row = {
            "name": "source",
            "fingerprint": state.fingerprint,
            "start": state.start,
            "through": state.through,
            "full_read_on": state.full_read_on,
            "communities": json.dumps(list(state.communities), ensure_ascii=False),
            "saved_at": utc_naive(saved_at),
        }

        def write(conn) -> int:
            for table in (day_parts, day_line_parts):
                if replace is None:
                    conn.execute(table.delete())
                else:
                    ds = table.c.ds
                    ranges = [(ds >= a) if b is None else ((ds >= a) & (ds < b)) for a, b in replace]
                    conn.execute(table.delete().where(sa.or_(ds < state.start, *ranges)))
            written = bulk_insert(conn, day_parts, out, chunk)
            bulk_insert(conn, day_line_parts, per_line, chunk)
            conn.execute(day_parts_state.delete())
            conn.execute(day_parts_state.insert().values(**row))
            return written

        return self.write("save the day sums", write)

    def forget_day_sums(self) -> None:
        """Drop the saved day sums: the next night reads in full."""

        def write(conn) -> None:
            conn.execute(day_parts_state.delete())
            conn.execute(day_parts.delete())
            conn.execute(day_line_parts.delete())

        self.write("drop the day sums", write)

    # ------------------------------------------------------------------ reads
    def get_run(self, run_id: str) -> RunRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
        return None if row is None else _record(row)

    def last_runs(self, limit: int = 10) -> list[RunRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)).mappings().all()
        return [_record(r) for r in rows]

    def last_completed_run(self, *, before: str | None = None) -> RunRecord | None:
        """The newest run that produced forecasts (ok or partial), other than ``before``."""
        query = sa.select(runs).where(runs.c.status.in_(("ok", "partial"))).order_by(runs.c.started_at.desc())
        if before:
            query = query.where(runs.c.run_id != before)
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).mappings().first()
        return None if row is None else _record(row)

    def known_communities(self) -> set[str]:
        """The communities the newest completed run had series for (empty before the first run)."""
        last = self.last_completed_run()
        if last is None:
            return set()
        query = sa.select(series_status.c.community_id).where(series_status.c.run_id == last.run_id).distinct()
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(query)}

    def findings_frame(self, run_id: str) -> pd.DataFrame:
        with self.engine.connect() as conn:
            frame = pd.read_sql(sa.select(findings).where(findings.c.run_id == run_id), conn)
        return frame.rename(columns={v: k for k, v in _FINDING_COLUMNS.items()})


def _record(row: Any) -> RunRecord:
    data = dict(row)
    data["summary"] = json.loads(data["summary"]) if data.get("summary") else {}
    return RunRecord(**data)
