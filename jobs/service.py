"""`forecaster serve`: APScheduler runs the nightly cycle, drains the outbox and watches itself.

* Jobs live in the service database (``SQLAlchemyJobStore``, one table per instance: APScheduler
  jobs must not be shared between schedulers), so the schedule and a missed night survive a
  restart. Each job has ``coalesce`` and ``max_instances=1``: a night missed while the service
  was down runs once at start-up if within ``schedule.misfire_grace_s``, recorded as ``late``.
* Several instances may share one database: each due time is claimed in ``job_slots`` by the
  first instance (`locks.claim_slot`), the holder renews its claim while it runs, and a claim
  whose holder died expires, so exactly one run happens per due time and a crash never blocks:
  within the misfire grace another instance's watchdog takes the night over and runs it.
* SIGTERM/SIGINT: no new job starts, a running cycle stops at its next stage or forecast chunk
  and is recorded ``interrupted``, queued messages stay in the outbox for the next start.
* The watchdog records runs whose holder died, notices a night that did not run, and sends
  operations alerts (``alerts.ops_route``) for those and for failed runs and delivery failures.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import pickle
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import requests
import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from forecaster.alerts.notify import all_routes, ops_messages, send_pending
from forecaster.alerts.outbox import enqueue
from forecaster.config import Config, load_config
from forecaster.store import Store, aware, instance_name, job_slots, jobs_table
from forecaster.util.clock import Clock, SystemClock
from forecaster.util.errors import ConfigError
from forecaster.util.secret import redact
from jobs.locks import (
    acquire_lease,
    claim_slot,
    finish_slot,
    recover_expired,
    release_lease,
    release_predecessor_leases,
    renew_slot,
    schedule_since,
    scheduled_since,
)
from jobs.nightly import nightly_job

__all__ = ["Service", "last_due", "LATE_AFTER_S"]

log = logging.getLogger("forecaster.service")

# A scheduled run starting more than this after its due time is recorded as late.
LATE_AFTER_S = 300
# The watchdog calls a night missed when it has not started this long after its due time.
MISSED_AFTER_S = 1800
# The trigger recorded for a night a standby took over from a dead instance.
TAKEOVER = "takeover"

_SERVICES: dict[str, "Service"] = {}


# The scheduler stores jobs by reference to these module-level functions (they must be importable
# by name when the service restarts); each finds its running service by instance name.
def nightly_tick(instance: str) -> None:
    _SERVICES[instance].nightly()


def outbox_tick(instance: str) -> None:
    _SERVICES[instance].drain()


def watchdog_tick(instance: str) -> None:
    _SERVICES[instance].watchdog()


def command_tick(instance: str, name: str) -> None:
    _SERVICES[instance].command(name)


def last_due(trigger: BaseTrigger, now: dt.datetime, *, lookback: dt.timedelta = dt.timedelta(days=8)) -> dt.datetime | None:
    """The latest time ``trigger`` fired at or before ``now`` (its due time)."""
    if isinstance(trigger, IntervalTrigger):
        start = trigger.start_date
        if start > now:
            return None
        steps = (now - start) // trigger.interval
        return start + steps * trigger.interval
    moment = trigger.get_next_fire_time(None, now - lookback)
    last = None
    while moment is not None and moment <= now:
        last = moment
        moment = trigger.get_next_fire_time(moment, moment + dt.timedelta(microseconds=1))
    return last


def within_grace(due: dt.datetime, now: dt.datetime, grace_s: float | None) -> bool:
    """Whether a night due at ``due`` may still run at ``now``: the scheduler's misfire rule
    (``schedule.misfire_grace_s``; 0 or None: no limit), used for a night taken over too."""
    return not grace_s or (now - due).total_seconds() <= grace_s


def night_missed(due: dt.datetime | None, now: dt.datetime, *, since: dt.datetime | None, wait_s: float) -> bool:
    """Whether the night due at ``due``, if nobody took it, counts as missed at ``now``: it has not
    started ``wait_s`` after its due time, and it was due to this install, after its schedule took
    effect (``since``: the first start, or the last change of the cron). A due time before that
    was never going to run (the scheduler only fires times after a job is added), so calling it
    missed would be a false alarm. ``since`` None (no record: a service never started) does not
    hold a night back."""
    if due is None or (now - due).total_seconds() < wait_s:
        return False
    return since is None or due > since


# Where the scheduler's job functions lived before `jobs/` became a top-level package. A stored job
# naming an old place would be dropped by APScheduler at start (with its next run time, so a night
# missed across the upgrade would not run); `upgrade_job_refs` points such jobs here instead.
_OLD_JOB_MODULES = {"forecaster.jobs.service:": "jobs.service:"}


def upgrade_job_refs(engine: sa.Engine, table: str) -> int:
    """Rewrite stored jobs whose function is named by a module path this code no longer has.
    Returns how many jobs were rewritten."""
    if not sa.inspect(engine).has_table(table):
        return 0
    jobs = sa.Table(table, sa.MetaData(), autoload_with=engine)
    changed = 0
    with engine.begin() as conn:
        for job_id, blob in conn.execute(sa.select(jobs.c.id, jobs.c.job_state)).all():
            state = pickle.loads(blob)
            func = state.get("func")
            for old, new in _OLD_JOB_MODULES.items():
                if isinstance(func, str) and func.startswith(old):
                    state["func"] = new + func[len(old):]
                    conn.execute(jobs.update().where(jobs.c.id == job_id).values(job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL)))
                    changed += 1
    return changed


class Service:
    def __init__(
        self,
        config_path: str | Path | None = None,
        *,
        clock: Clock | None = None,
        instance: str | None = None,
        nightly_trigger: BaseTrigger | None = None,
        outbox_trigger: BaseTrigger | None = None,
        watchdog_trigger: BaseTrigger | None = None,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ):
        self.config_path = config_path
        self.config: Config = load_config(config_path)
        self.clock = clock or SystemClock()
        schedule = self.config.schedule
        self.instance = instance or instance_name(schedule.instance)
        self.holder = f"{self.instance}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.zone = self.config.timezone
        self.nightly_trigger = nightly_trigger or CronTrigger.from_crontab(schedule.nightly, timezone=self.zone)
        self.outbox_trigger = outbox_trigger or IntervalTrigger(seconds=schedule.outbox_every_s, timezone=self.zone)
        self.watchdog_trigger = watchdog_trigger or IntervalTrigger(seconds=schedule.watchdog_every_s, timezone=self.zone)
        self.session_factory = session_factory
        self.stopping = threading.Event()
        self._drain_lock = threading.Lock()
        self.store = Store(self.config.store.url.get())
        upgrade_job_refs(self.store.engine, jobs_table(self.instance))
        self.scheduler = BackgroundScheduler(
            timezone=self.zone,
            jobstores={"default": SQLAlchemyJobStore(engine=self.store.engine, tablename=jobs_table(self.instance))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": schedule.misfire_grace_s or None},
        )
        self.metrics_server = None
        self._takeovers: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.instance in _SERVICES and _SERVICES[self.instance] is not self:
            raise ConfigError(f"a service named {self.instance!r} is already running in this process")
        _SERVICES[self.instance] = self
        # An earlier process of this instance is gone (instance names are unique per running
        # service): what it held is ours to recover now, not when its claims expire.
        predecessor = f"{self.instance}:"
        release_predecessor_leases(self.store, predecessor)
        for run_id in recover_expired(self.store, now=self.clock.now(), predecessor=predecessor):
            log.warning("run %s was interrupted when its service stopped; recorded as interrupted", run_id[:8])
        self.scheduler.start(paused=True)
        wanted = {
            "nightly": (nightly_tick, self.nightly_trigger, [self.instance]),
            "outbox": (outbox_tick, self.outbox_trigger, [self.instance]),
            "watchdog": (watchdog_tick, self.watchdog_trigger, [self.instance]),
        }
        for cmd in self.config.schedule.commands:
            wanted[f"command:{cmd.name}"] = (command_tick, CronTrigger.from_crontab(cmd.cron, timezone=self.zone), [self.instance, cmd.name])
        for job in self.scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()
        for job_id, (func, trigger, args) in wanted.items():
            self._ensure_job(job_id, func, trigger, args)
        schedule_since(self.store, self.instance, "nightly", str(self.nightly_trigger), now=self.clock.now())
        self.scheduler.resume()
        if self.config.schedule.metrics_port is not None:
            from jobs.metrics import start_metrics_server

            self.metrics_server = start_metrics_server(self, self.config.schedule.metrics_host, self.config.schedule.metrics_port)
        nightly = self.scheduler.get_job("nightly")
        log.info(
            "service %s started: nightly next at %s, outbox %s, jobs in table %s",
            self.instance,
            nightly.next_run_time.isoformat() if nightly and nightly.next_run_time else "-",
            str(self.outbox_trigger).replace("interval[", "every [", 1),
            jobs_table(self.instance),
        )

    def _ensure_job(self, job_id: str, func, trigger: BaseTrigger, args: list[Any]) -> None:
        existing = self.scheduler.get_job(job_id)
        if existing is not None and str(existing.trigger) == str(trigger) and list(existing.args) == args:
            return  # keep its next run time: a night missed while the service was down still fires
        self.scheduler.add_job(func, trigger, id=job_id, name=job_id, args=args, replace_existing=True)

    def stop(self) -> None:
        """Stop taking new work; let a running cycle stop at its next checkpoint; wait for it."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("service %s stopping: no new jobs; a running cycle stops at its next stage", self.instance)
        try:
            # Detach the job store first: APScheduler advances a due job's next run time even when
            # submitting it fails during shutdown, which would silently drop that night. Detached,
            # the persisted schedule is left as it was and the next start runs what is due.
            self.scheduler.pause()
            self.scheduler.remove_jobstore("default", shutdown=False)
            self.scheduler.shutdown(wait=True)
        except Exception:  # already stopped
            log.debug("scheduler already stopped", exc_info=True)
        for thread in self._takeovers:
            thread.join()  # a night taken over stops at its next checkpoint too
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        _SERVICES.pop(self.instance, None)
        self.store.close()
        log.info("service %s stopped", self.instance)

    # ------------------------------------------------------------------ jobs
    def nightly(self) -> None:
        if self.stopping.is_set():
            return
        now = self.clock.now()
        due = last_due(self.nightly_trigger, now) or now
        slot = due.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
        trigger = "late" if (now - due).total_seconds() > LATE_AFTER_S else "schedule"
        run_id = uuid.uuid4().hex
        claim = claim_slot(self.store, "nightly", slot, self.holder, now=now, ttl_s=self.config.schedule.lease_s, trigger=trigger, run_id=run_id)
        if not claim.claimed:
            log.info("nightly run due %s is taken by %s; not running it here", slot, claim.holder)
            return
        self._run_night(slot, trigger, run_id, claim)

    def take_over(self, now: dt.datetime) -> threading.Thread | None:
        """Run the night a dead instance was running, if its claim has expired and the night is
        still within the misfire grace (as a night missed while the service was down would be).
        The slot is claimed here, before the watchdog records expired runs as interrupted, and
        the night runs in its own thread (`stop` waits for it). Returns that thread, if any."""
        due = last_due(self.nightly_trigger, now)
        if due is None or not within_grace(due, now, self.config.schedule.misfire_grace_s):
            return None
        slot = due.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
        with self.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(job_slots.c.status, job_slots.c.expires_at).where((job_slots.c.job == "nightly") & (job_slots.c.slot == slot))
            ).first()
        if row is None or row.status != "running" or aware(row.expires_at) >= now:
            return None  # nobody started it (the scheduler's business), it ended, or its holder lives
        run_id = uuid.uuid4().hex
        claim = claim_slot(self.store, "nightly", slot, self.holder, now=now, ttl_s=self.config.schedule.lease_s, trigger=TAKEOVER, run_id=run_id)
        if not claim.claimed:
            return None  # another standby was quicker
        thread = threading.Thread(target=self._run_night, args=(slot, TAKEOVER, run_id, claim), name="nightly-takeover", daemon=True)
        self._takeovers.append(thread)
        thread.start()
        return thread

    def _run_night(self, slot: str, trigger: str, run_id: str, claim) -> None:
        """Run the claimed night ``slot``: renew the claim while it runs, settle it after."""
        if claim.took_over:
            log.warning("nightly run due %s: took over from %s, which stopped", slot, claim.took_over)
            self.ops_alert(f"夜间预测中断后由 {self.instance} 接手（原实例 {claim.took_over} 已停止）")
        ttl = self.config.schedule.lease_s
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(ttl / 3):
                renew_slot(self.store, "nightly", slot, self.holder, now=self.clock.now(), ttl_s=ttl)

        beat = threading.Thread(target=heartbeat, name="nightly-heartbeat", daemon=True)
        beat.start()
        status = "failed"
        try:
            result = nightly_job(self.config_path, clock=self.clock, trigger=trigger, run_id=run_id, should_stop=self.stopping.is_set)
            if result is None:
                self.ops_alert("夜间预测未能开始：配置文件有误，请运行 forecaster check-config")
            else:
                status = result.status
                if result.status in ("failed", "partial"):
                    failed = result.status_counts.get("failed", 0)
                    what = result.error or (f"{failed} 个序列失败" if result.status == "partial" else "运行失败")
                    self.ops_alert(f"夜间预测（{result.as_of}）{'部分完成' if status == 'partial' else '失败'}：{what}")
        except Exception:
            log.exception("nightly run %s crashed", run_id[:8])
        finally:
            done.set()
            beat.join()
            finish_slot(self.store, "nightly", slot, self.holder, now=self.clock.now(), status=status)
        if not self.stopping.is_set():
            self.drain()

    def drain(self) -> None:
        if self.stopping.is_set() or not self._drain_lock.acquire(blocking=False):
            return
        try:
            ttl = max(self.config.schedule.lease_s, self.config.schedule.outbox_every_s * 2)
            if not acquire_lease(self.store, "outbox", self.holder, now=self.clock.now(), ttl_s=ttl):
                return  # another instance is sending
            try:
                config = self._fresh_config()
                with self.session_factory() as session:
                    report = send_pending(
                        config,
                        self.store,
                        session=session,
                        clock=self.clock,
                        max_wait_s=max(0.0, self.config.schedule.outbox_every_s * 0.8),
                        should_stop=self.stopping.is_set,
                    )
                if report.attempted or report.failed:
                    log.info(
                        "outbox: %d sent, %d retrying, %d failed, %d waiting",
                        report.delivered, report.retried, report.failed, report.pending,
                    )
                for failure in report.failures:
                    log.error("alert delivery failed: %s", failure)
            finally:
                release_lease(self.store, "outbox", self.holder)
        except Exception:
            log.exception("outbox drain failed")
        finally:
            self._drain_lock.release()

    def watchdog(self) -> None:
        if self.stopping.is_set():
            return
        now = self.clock.now()
        self.take_over(now)  # before the expired runs are recorded interrupted: this one is not over
        for run_id in recover_expired(self.store, now=now):
            log.error("run %s: its service stopped during the run; recorded as interrupted", run_id[:8])
            self.ops_alert(f"夜间预测运行 {run_id[:8]} 中断：所在服务已停止")
        due = last_due(self.nightly_trigger, now)
        # Within the misfire grace the scheduler still runs a late night itself; only after it is
        # the night missed (and then said once, whichever instance's watchdog sees it first).
        wait = max(MISSED_AFTER_S, (self.config.schedule.misfire_grace_s or 0) + 60)
        if not night_missed(due, now, since=scheduled_since(self.store, self.instance, "nightly"), wait_s=wait):
            return
        slot = due.astimezone(dt.timezone.utc).isoformat(timespec="seconds")  # type: ignore[union-attr]
        with self.store.engine.connect() as conn:
            seen = conn.execute(
                job_slots.select().where((job_slots.c.job == "nightly") & (job_slots.c.slot == slot))
            ).first()
        if seen is not None:
            return
        claim = claim_slot(self.store, "nightly", slot, self.holder, now=now, ttl_s=0, trigger="missed", run_id="")
        if claim.claimed:
            finish_slot(self.store, "nightly", slot, self.holder, now=now, status="missed")
            local = due.astimezone(ZoneInfo(self.zone))
            log.error("nightly run due %s did not run", local.isoformat(timespec="minutes"))
            self.ops_alert(f"夜间预测未按时运行：应于 {local:%m月%d日 %H:%M} 运行，至今未开始")

    def command(self, name: str) -> None:
        cmd = next((c for c in self.config.schedule.commands if c.name == name), None)
        if cmd is None or self.stopping.is_set():
            return
        started = self.clock.monotonic()
        log.info("job %s starting: %s", name, redact(" ".join(cmd.argv)))
        try:
            done = subprocess.run(cmd.argv, capture_output=True, text=True, timeout=cmd.timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("job %s failed: %s", name, redact(str(exc)))
            self.ops_alert(f"数据任务 {name} 失败：{redact(str(exc))[:200]}")
            return
        for line in (done.stdout + done.stderr).splitlines()[-20:]:
            log.info("job %s: %s", name, redact(line))
        took = self.clock.monotonic() - started
        if done.returncode != 0:
            log.error("job %s exited %d after %.1f s", name, done.returncode, took)
            self.ops_alert(f"数据任务 {name} 失败（退出码 {done.returncode}）")
        else:
            log.info("job %s finished in %.1f s", name, took)

    # ------------------------------------------------------------------ helpers
    def _fresh_config(self) -> Config:
        try:
            return load_config(self.config_path)
        except ConfigError as exc:
            log.error("config no longer valid, using the one loaded at start: %s", exc)
            return self.config

    def ops_alert(self, text: str) -> None:
        """Queue an operations message to ``alerts.ops_route`` (logged only when none is set)."""
        config = self._fresh_config()
        route_name = config.alerts.ops_route
        log.warning("ops: %s", text)
        if not route_name:
            return
        route = next((r for r in all_routes(config.alerts) if r.name == route_name), None)
        if route is None:
            return
        now = self.clock.now()
        enqueue(self.store, ops_messages(config, route, text, instance=self.instance), now=now)


def serve(config_path: str | Path | None = None) -> int:
    """Run the service until SIGTERM or SIGINT."""
    import signal

    service = Service(config_path)
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    stop.wait()
    service.stop()
    return 0

