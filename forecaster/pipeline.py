"""One nightly cycle, as data flowing one way: ingest → aggregate → forecast → detect → outputs → store.

`run_once` never lets one bad piece stop the rest: bad rows are skipped and reported by
ingest, a series too short to model gets the baseline (``fallback``, with the reason), a series
whose forecast fails is ``failed`` and the others go on; the run is recorded in the store with
what failed and why. Exit codes: 0 every series usable, 1 some series failed, 2 a
configuration, source or store error (nothing could be done).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import requests

from forecaster.alerts.notify import QueueReport, queue_alerts
from forecaster.calendar import FeatureBook
from forecaster.config import Config
from forecaster.detect import Finding, carry_identity, detect_findings, findings_frame
from forecaster.export import findings_table, forecast_table, write_csv, write_series_csv, write_text
from forecaster.forecasting import SeriesOutcome, forecast_communities
from forecaster.ingest import DailyData, SavedDaySums, describe_source, load_daily
from forecaster.ingest.aggregate import series_from_day_sums
from forecaster.ingest.incremental import DaySumsState, day_sums_fingerprint
from forecaster.ingest.validate import TableReport
from forecaster.report import make_report_html
from forecaster.store import Store
from forecaster.util.clock import Clock, SystemClock, today_in
from forecaster.util.engine import Interrupted
from forecaster.util.errors import ForecasterError, OutputError
from forecaster.util.secret import redact

__all__ = ["RunResult", "run_once"]

log = logging.getLogger(__name__)

EXCEL_ROWS = 1_048_575  # data rows below the header


@dataclass
class RunResult:
    run_id: str
    as_of: dt.date
    status: str  # ok | partial | failed | interrupted
    exit_code: int
    dry_run: bool = False
    source: str = ""
    store: str = ""
    reports: list[TableReport] = field(default_factory=list)
    communities: int = 0
    series_stats: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    output_rows: dict[str, int] = field(default_factory=dict)
    findings: list = field(default_factory=list)
    alerts: "QueueReport | None" = None
    reused_choices: int = 0  # series refit with the model chosen on an earlier night
    read: str = ""  # how the source was read: full (why) or incremental (since when)
    output_error: str | None = None  # the outputs could not be written (the rest of the night went on)
    error: str | None = None
    recorded: bool = False  # the run has its row in the store (its start, and then its end, recorded)

    @property
    def duration_s(self) -> float:
        return sum(self.timings.values())

    @property
    def status_counts(self) -> dict[str, int]:
        if self.series_stats.empty:
            return {}
        return {k: int(v) for k, v in self.series_stats["status"].value_counts().items()}

    @property
    def rows_read(self) -> int:
        return sum(r.rows_read for r in self.reports)

    @property
    def rows_skipped(self) -> int:
        return sum(r.rows_skipped for r in self.reports)

    def summary_dict(self) -> dict:
        return {
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "series_by_status": self.status_counts,
            "reused_choices": self.reused_choices,
            "read": self.read,
            "tables": {
                r.table: {"read": r.rows_read, "kept": r.rows_kept, "skipped": r.rows_skipped, "cleared": r.fields_cleared}
                for r in self.reports
            },
            "outputs": {k: str(v) for k, v in self.outputs.items()},
            "findings_by_severity": self.findings_by_severity,
            "alerts": self.alerts.summary() if self.alerts is not None else None,
        }

    @property
    def findings_by_severity(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.findings:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        return counts


class _Timer:
    def __init__(self, clock: Clock, timings: dict[str, float]):
        self.clock, self.timings = clock, timings

    def __call__(self, stage: str) -> "_Timer":
        self.stage = stage
        return self

    def __enter__(self) -> None:
        self.t0 = self.clock.monotonic()

    def __exit__(self, *exc) -> None:
        self.timings[self.stage] = self.timings.get(self.stage, 0.0) + self.clock.monotonic() - self.t0


def run_once(
    config: Config,
    as_of: dt.date | None = None,
    *,
    clock: Clock | None = None,
    session: requests.Session | None = None,
    dry_run: bool = False,
    trigger: str = "cli",
    run_id: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunResult:
    """Run one cycle as of ``as_of`` (default: today in the configured timezone).

    History ends the day before ``as_of`` (the last complete day); forecasts start on it.
    When ``should_stop()`` turns true (a service shutting down) the run stops at the next stage
    or forecast chunk and is recorded as ``interrupted``; nothing half-written is queued.
    """
    clock = clock or SystemClock()
    as_of = as_of or today_in(clock, config.timezone)
    result = RunResult(run_id=run_id or uuid.uuid4().hex, as_of=as_of, status="failed", exit_code=2, dry_run=dry_run)
    night = _Night(config, as_of, clock, result, _Timer(clock, result.timings), should_stop)
    started = clock.now()  # before the store opens (it may create tables or drop old indexes first)
    try:
        if not dry_run:
            with night.timer("store"):
                night.store = Store(config.store.url.get())
                result.store = night.store.describe
                for dead in night.store.interrupt_dead_runs(started):
                    log.warning("run %s (as of %s) was left running by a process that is gone; recorded as interrupted", dead.run_id[:8], dead.as_of)
                night.store.start_run(result.run_id, as_of, trigger, started, source=describe_source(config))
                result.recorded = True
        night.check()
        data = _ingest(night, session)
        series = _aggregate(night, data)
        night.check()
        forecasts, outcomes = _forecast(night, series, data)
        found, book = _detect(night, series, forecasts, data)
        night.check()
        if not dry_run:
            _write_and_queue(night, data, series.frame, forecasts, outcomes, found, book)
        failed = result.status_counts.get("failed", 0)
        result.status, result.exit_code = ("partial", 1) if failed else ("ok", 0)
        if result.output_error:
            result.status, result.exit_code, result.error = "partial", 2, result.output_error
    except Interrupted:
        result.error, result.exit_code, result.status = "stopped on request (the service shutting down, or SIGTERM or Ctrl-C to the command) before it finished", 1, "interrupted"
    except ForecasterError as exc:
        result.error, result.exit_code, result.status = redact(str(exc)), exc.exit_code, "failed"
    except Exception as exc:  # a bug: record it, keep the traceback in the log
        log.exception("run %s failed unexpectedly", result.run_id)
        result.error, result.exit_code, result.status = redact(f"internal error: {type(exc).__name__}: {exc}"), 1, "failed"
    finally:
        if night.store is not None:
            if result.recorded:  # (a run whose start could not be recorded has no row to finish)
                _finish(night.store, result, clock)
            night.store.close()
    return result


@dataclass
class _Night:
    """What every stage of one run needs: its settings, date, clock, record, timer and store."""

    config: Config
    as_of: dt.date
    clock: Clock
    result: RunResult
    timer: _Timer
    should_stop: Callable[[], bool]
    store: Store | None = None  # None on a dry run

    def check(self) -> None:
        if self.should_stop():
            raise Interrupted()


def _ingest(night: _Night, session: requests.Session | None) -> DailyData:
    """Read the source (incrementally where the saved day sums allow) and keep tonight's sums."""
    config, store, result = night.config, night.store, night.result
    with night.timer("ingest"):
        saved = None if store is None else SavedDaySums(store.day_sums_state(), store.load_day_sums, _last_full_rows(store))
        data = load_daily(config, night.as_of, session=session, saved=saved, now=night.clock.now())
    result.source, result.reports, result.communities = data.describe, data.reports, len(data.communities)
    result.read = data.plan.describe()
    if store is not None and data.plan.save:
        with night.timer("store"):
            _save_day_sums(store, config, night.as_of, data, saved.state, night.clock)
    return data


def _last_full_rows(store: Store) -> dict[str, int] | None:
    """Rows kept per table by the last completed night, if it read the source in full (what a
    full read tonight is judged by: `forecaster.ingest.volume`)."""
    last = store.last_completed_run()
    if last is None or not str(last.summary.get("read", "")).startswith("full"):
        return None
    return {name: int(t.get("kept", 0)) for name, t in last.summary.get("tables", {}).items()}


def _aggregate(night: _Night, data: DailyData):
    """The daily series per community and metric, from the day sums (which are then let go)."""
    with night.timer("aggregate"):
        series = series_from_day_sums(
            data.day_sums,
            night.as_of,
            night.config.metrics,
            min_history_days=night.config.forecast.min_history_days,
            communities=data.communities["community_id"],
        )
        data.day_sums = data.fresh = data.day_sums.iloc[:0]
    return series


def _forecast(night: _Night, series, data: DailyData) -> tuple[pd.DataFrame, list[SeriesOutcome]]:
    with night.timer("forecast"):
        choices = night.store.model_choices() if night.store is not None else {}
        forecasts, outcomes = forecast_communities(
            series.frame, night.config, data.communities, should_stop=night.should_stop, choices=choices, as_of=night.as_of
        )
    night.result.reused_choices = sum(o.reused for o in outcomes)
    night.result.series_stats = _merge_outcomes(series.stats, outcomes)
    return forecasts, outcomes


def _detect(night: _Night, series, forecasts: pd.DataFrame, data: DailyData) -> tuple[list[Finding], FeatureBook]:
    """Tonight's findings, carrying the identity of last night's where they are the same."""
    config, as_of = night.config, night.as_of
    with night.timer("detect"):
        book = FeatureBook(
            as_of - dt.timedelta(days=70),
            as_of + dt.timedelta(days=config.forecast.horizon),
            country=config.forecast.country,
            calendar=config.calendar,
        )
        found = detect_findings(series.frame, forecasts, config, data.communities, as_of, book)
        previous = _previous_findings(night.store, night.result.run_id) if night.store is not None else []
        carry_identity(found, previous)
    night.result.findings = found
    return found, book


def _write_and_queue(
    night: _Night,
    data: DailyData,
    frame: pd.DataFrame,
    forecasts: pd.DataFrame,
    outcomes: list[SeriesOutcome],
    found: list[Finding],
    book: FeatureBook,
) -> None:
    """The outputs, the night's record in the store, and the alerts queued in the outbox."""
    config, as_of, store, result = night.config, night.as_of, night.store, night.result
    with night.timer("outputs"):
        try:
            _write_outputs(config, as_of, data, frame, forecasts, found, book, result)
        except OutputError as exc:  # the files are lost for tonight; the record and the alerts are not
            result.output_error = redact(str(exc))
            log.error("outputs not written: %s", result.output_error)
    with night.timer("store"):
        store.add_series_status(result.run_id, result.series_stats)
        store.add_ingest_problems(result.run_id, data.reports)
        store.add_forecasts(result.run_id, forecasts)
        store.save_model_choices({o.series_id: o.choice for o in outcomes if o.choice is not None and not o.reused})
        store.add_findings(result.run_id, findings_frame(found))
        store.prune_forecasts(as_of - dt.timedelta(days=config.store.keep_forecasts_days))
    with night.timer("alerts"):
        # Queued, not sent: delivery is the outbox's job (`send_pending`, the service).
        result.alerts = queue_alerts(
            config,
            store,
            run_id=result.run_id,
            as_of=as_of,
            findings=found,
            communities=data.communities,
            forecast_series=set(zip(forecasts["community_id"], forecasts["metric"])) if len(forecasts) else set(),
            now=night.clock.now(),
        )


def _save_day_sums(
    store: Store, config: Config, as_of: dt.date, data: DailyData, previous: DaySumsState | None, clock: Clock
) -> None:
    """Keep tonight's day sums for the next nights (all of them after a full read; the days read
    afresh after an incremental one, which keeps the date of the last full read)."""
    plan = data.plan
    state = DaySumsState(
        fingerprint=day_sums_fingerprint(config),
        start=as_of - dt.timedelta(days=config.source.history_days),
        through=as_of - dt.timedelta(days=1),
        full_read_on=previous.full_read_on if plan.incremental else as_of,
        communities=tuple(data.communities["community_id"]),
    )
    store.save_day_sums(data.fresh, state, replace=list(plan.ranges) if plan.incremental else None, saved_at=clock.now())


def _merge_outcomes(stats: pd.DataFrame, outcomes: list[SeriesOutcome]) -> pd.DataFrame:
    """Series status after forecasting: ok / fallback (with why) / failed (with the error)."""
    stats = stats.copy()
    stats["model"], stats["score"] = None, np.nan
    if not outcomes:
        return stats
    by_id = {o.series_id: o for o in outcomes}
    for i, sid in enumerate(stats["series_id"]):
        o = by_id.get(sid)
        if o is None:
            continue
        stats.at[i, "status"] = o.status
        stats.at[i, "model"] = o.model or None
        stats.at[i, "score"] = o.score
        if o.reason:
            stats.at[i, "reason"] = o.reason
    return stats


def _previous_findings(store: Store, run_id: str) -> list[Finding]:
    last = store.last_completed_run(before=run_id)
    if last is None:
        return []
    frame = store.findings_frame(last.run_id)
    fields = set(Finding.__dataclass_fields__)
    out = []
    for rec in frame.to_dict("records"):
        values = {k: rec[k] for k in fields if k in rec}
        for k in ("first_day", "last_day", "peak_day"):
            values[k] = pd.Timestamp(values[k]).date()
        out.append(Finding(**values))
    return out


def _write_outputs(
    config: Config,
    as_of: dt.date,
    data: DailyData,
    frame: pd.DataFrame,
    forecasts: pd.DataFrame,
    found: list[Finding],
    book: FeatureBook,
    result: RunResult,
) -> None:
    out_dir = config.output.dir / as_of.isoformat()
    table = forecast_table(forecasts, found, data.communities, book)
    result.outputs["forecast"] = write_csv(table, out_dir / "forecast.csv")
    result.output_rows["forecast"] = len(table)
    findings_csv = findings_table(found, data.communities, chinese_headers=config.output.chinese_headers)
    result.outputs["findings"] = write_csv(findings_csv, out_dir / "findings.csv")
    result.output_rows["findings"] = len(findings_csv)
    recent = frame[frame["ds"] >= pd.Timestamp(as_of) - pd.Timedelta(days=config.output.history_days)]
    result.outputs["series"] = write_series_csv(recent, data.communities, out_dir / "series.csv")
    result.output_rows["series"] = len(recent)
    for name, rows in result.output_rows.items():
        if rows > EXCEL_ROWS:
            log.warning(
                "%s.csv has %s rows: Excel shows only the first %s (open it with a database or pandas%s)",
                name,
                f"{rows:,}",
                f"{EXCEL_ROWS:,}",
                ", or lower output.history_days" if name == "series" else "",
            )
    page = make_report_html(
        as_of, found, data.communities, frame, forecasts, book.get, run_id=result.run_id, line_labels=config.metrics.line_labels
    )
    result.outputs["report"] = write_text(page, out_dir / "report.html")


def _finish(store: Store, result: RunResult, clock: Clock) -> None:
    try:
        store.finish_run(
            result.run_id,
            status=result.status,
            finished_at=clock.now(),
            duration_s=round(result.duration_s, 3),
            summary=result.summary_dict(),
            error=result.error,
            communities=result.communities,
            series=int((result.series_stats["status"] != "no_data").sum()) if not result.series_stats.empty else 0,
            rows_read=result.rows_read,
            rows_skipped=result.rows_skipped,
        )
    except ForecasterError as exc:
        log.error("could not record the end of run %s: %s", result.run_id, exc)
        result.error = result.error or str(exc)
        result.exit_code = max(result.exit_code, 2)
        result.recorded = False
