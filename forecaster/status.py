"""`forecaster status`: what the service did and will do, read from the store."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger

from forecaster.alerts.queue import MessageQueue
from forecaster.config import Config
from forecaster.store import Store, describe_process, instance_name, job_slots, jobs_table, series_status

__all__ = ["format_status"]


def _local(moment: dt.datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _gone(run) -> str:
    return (
        f"its process ({describe_process(run.summary.get('process'))}) is gone: killed or crashed; "
        "the next run records it as interrupted"
    )


def _scheduled(store: Store, config: Config) -> tuple[str, dict[str, dt.datetime | None]]:
    """Next run times from the service's job table (or, before it first ran, from config)."""
    instance = instance_name(config.schedule.instance)
    table = jobs_table(instance)
    if sa.inspect(store.engine).has_table(table):
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        jobstore = SQLAlchemyJobStore(engine=store.engine, tablename=table)
        jobstore.start(None, "default")  # type: ignore[arg-type]
        try:
            return f"instance {instance}", {job.id: job.next_run_time for job in jobstore.get_all_jobs()}
        except Exception as exc:  # a job the code no longer knows
            return f"instance {instance} (jobs unreadable: {exc})", {}
    trigger = CronTrigger.from_crontab(config.schedule.nightly, timezone=config.timezone)
    nxt = trigger.get_next_fire_time(None, dt.datetime.now(dt.timezone.utc))
    return f"instance {instance} (service not started yet)", {"nightly": nxt}


def format_status(config: Config, *, runs: int = 5) -> tuple[str, int]:
    """The status text, and an exit code: 0 healthy, 1 when the last run or a delivery failed."""
    zone = ZoneInfo(config.timezone)
    store = Store(config.store.url.get())
    try:
        who, jobs = _scheduled(store, config)
        lines = [f"service    {who} · timezone {config.timezone} · store {store.describe}"]
        nxt = [f"nightly {_local(jobs.get('nightly'), zone)}"]
        nxt += [f"{job} {_local(when, zone)}" for job, when in sorted(jobs.items()) if job.startswith("command:")]
        nxt.append(f"outbox every {config.schedule.outbox_every_s} s")
        lines.append("next       " + " · ".join(nxt))
        with store.engine.connect() as conn:
            slot = conn.execute(
                sa.select(job_slots).where(job_slots.c.job == "nightly").order_by(job_slots.c.slot.desc()).limit(1)
            ).mappings().first()
        healthy = True
        if slot is not None:
            due = dt.datetime.fromisoformat(slot["slot"])
            run = f" (run {slot['run_id'][:8]})" if slot["run_id"] else ""
            lines.append(f"nightly    due {_local(due, zone)}: {slot['status']} on {slot['holder']}{run}")
            healthy = slot["status"] in ("running", "ok", "partial")
        records = store.last_runs(runs)
        dead = {r.run_id for r in store.dead_runs()}
        if records:
            lines.append("runs       newest first")
        for r in records:
            by = r.summary.get("series_by_status") or {}
            series = ", ".join(f"{n} {k}" for k, n in by.items())
            found = sum((r.summary.get("findings_by_severity") or {}).values())
            took = f"{r.duration_s:.1f} s" if r.duration_s is not None else "-"
            lines.append(
                f"  {r.run_id[:8]}  {_local(r.started_at, zone)}  {r.trigger:<8} {r.status:<11} as of {r.as_of}  "
                f"{r.series or 0} series ({series or '-'})  {found} findings  {took}"
                + (f"  — {r.error}" if r.error else "")
                + (f"  — {_gone(r)}" if r.run_id in dead else "")
            )
        # The newest run failed, was interrupted, or was left running by a process that is gone:
        # tonight's forecasts and alerts are missing.
        if records and (records[0].status in ("failed", "interrupted") or records[0].run_id in dead):
            healthy = False
        older_dead = dead - {r.run_id for r in records}
        if older_dead:
            healthy = False
            lines.append(f"           {len(older_dead)} older run(s) left running by a process that is gone")
        counts = MessageQueue(store).counts()
        order = ("pending", "sending", "sent", "failed")
        lines.append("outbox     " + (" · ".join(f"{k} {counts[k]}" for k in order if counts.get(k)) or "empty"))
        if counts.get("failed"):
            healthy = False
            lines.append("           see `forecaster outbox --status failed`")
        last_done = store.last_completed_run()
        if last_done is not None:
            with store.engine.connect() as conn:
                failing = conn.execute(
                    sa.select(series_status.c.series_id, series_status.c.reason)
                    .where((series_status.c.run_id == last_done.run_id) & (series_status.c.status == "failed"))
                    .limit(6)
                ).all()
            if failing:
                lines.append(f"failing    in run {last_done.run_id[:8]}:")
                lines += [f"  {sid}: {(reason or '')[:120]}" for sid, reason in failing]
            else:
                lines.append(f"failing    none in run {last_done.run_id[:8]}")
        return "\n".join(lines), 0 if healthy else 1
    finally:
        store.close()
