"""Coordination through the store, so several service instances can share one database.

* `claim_slot`: the first instance to insert ``(job, due time)`` runs it; the others skip it.
  The holder pushes ``expires_at`` forward while it works (`renew_slot`); a slot whose holder
  died (expired while ``running``) can be taken over, and its run is recorded as interrupted.
* `acquire_lease` / `release_lease`: a short exclusive lease by name (one outbox sender at a time).
* `schedule_since`: since when an instance's job has had its current schedule (a due time before
  that was never this install's to run, so it was not missed).

Each step is one small transaction whose outcome is decided by the database (a primary-key
insert, or a conditional update that affects one row or none), so it is safe on SQLite,
PostgreSQL and MySQL alike without table locks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from forecaster.store import Store, aware, interrupt_run, job_schedules, job_slots, leases, utc_naive

__all__ = [
    "Claim",
    "claim_slot",
    "renew_slot",
    "finish_slot",
    "recover_expired",
    "acquire_lease",
    "release_lease",
    "release_predecessor_leases",
    "schedule_since",
    "scheduled_since",
]


@dataclass(frozen=True)
class Claim:
    claimed: bool
    holder: str  # who holds it now
    took_over: str | None = None  # the dead holder whose slot we took


def claim_slot(store: Store, job: str, slot: str, holder: str, *, now: dt.datetime, ttl_s: float, trigger: str, run_id: str) -> Claim:
    at, expires = utc_naive(now), utc_naive(now + dt.timedelta(seconds=ttl_s))
    try:
        with store.engine.begin() as conn:
            conn.execute(
                job_slots.insert().values(
                    job=job, slot=slot, holder=holder[:128], run_id=run_id, status="running", trigger=trigger,
                    started_at=at, expires_at=expires,
                )
            )
        return Claim(True, holder)
    except IntegrityError:
        pass
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(job_slots).where((job_slots.c.job == job) & (job_slots.c.slot == slot))).mappings().first()
        if row is None:
            return Claim(False, "?")
        if row["status"] != "running" or row["expires_at"] >= at:
            return Claim(False, row["holder"])
        taken = conn.execute(
            job_slots.update()
            .where(
                (job_slots.c.job == job)
                & (job_slots.c.slot == slot)
                & (job_slots.c.status == "running")
                & (job_slots.c.holder == row["holder"])
                & (job_slots.c.expires_at < at)
            )
            .values(holder=holder[:128], run_id=run_id, trigger=trigger, started_at=at, expires_at=expires)
        ).rowcount
        if not taken:
            return Claim(False, row["holder"])
        if row["run_id"]:
            interrupt_run(conn, row["run_id"], at, f"the service instance {row['holder']} stopped during the run")
    return Claim(True, holder, took_over=row["holder"])


def renew_slot(store: Store, job: str, slot: str, holder: str, *, now: dt.datetime, ttl_s: float) -> bool:
    with store.engine.begin() as conn:
        return bool(
            conn.execute(
                job_slots.update()
                .where((job_slots.c.job == job) & (job_slots.c.slot == slot) & (job_slots.c.holder == holder[:128]))
                .values(expires_at=utc_naive(now + dt.timedelta(seconds=ttl_s)))
            ).rowcount
        )


def finish_slot(store: Store, job: str, slot: str, holder: str, *, now: dt.datetime, status: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            job_slots.update()
            .where((job_slots.c.job == job) & (job_slots.c.slot == slot) & (job_slots.c.holder == holder[:128]))
            .values(status=status, finished_at=utc_naive(now), expires_at=utc_naive(now))
        )


def recover_expired(store: Store, *, now: dt.datetime, predecessor: str | None = None) -> list[str]:
    """Slots whose holder died mid-run: the slot and its run are marked interrupted. Returns
    the run ids (the service calls this at start-up and from its watchdog). ``predecessor``
    (``"instance:"``) also recovers at once the slots of an earlier process of this instance:
    a service starting under its own name knows that process is gone."""
    at = utc_naive(now)
    dead = job_slots.c.expires_at < at
    if predecessor:
        dead = dead | job_slots.c.holder.startswith(predecessor, autoescape=True)
    out = []
    with store.engine.begin() as conn:
        rows = conn.execute(sa.select(job_slots).where((job_slots.c.status == "running") & dead)).mappings().all()
        for row in rows:
            done = conn.execute(
                job_slots.update()
                .where(
                    (job_slots.c.job == row["job"])
                    & (job_slots.c.slot == row["slot"])
                    & (job_slots.c.status == "running")
                    & (job_slots.c.holder == row["holder"])
                )
                .values(status="interrupted", finished_at=at)
            ).rowcount
            if done and row["run_id"]:
                interrupt_run(conn, row["run_id"], at, f"the service instance {row['holder']} stopped during the run")
                out.append(row["run_id"])
    return out


def acquire_lease(store: Store, name: str, holder: str, *, now: dt.datetime, ttl_s: float) -> bool:
    at, expires = utc_naive(now), utc_naive(now + dt.timedelta(seconds=ttl_s))
    try:
        with store.engine.begin() as conn:
            conn.execute(leases.insert().values(name=name, holder=holder[:128], expires_at=expires))
        return True
    except IntegrityError:
        pass
    with store.engine.begin() as conn:
        return bool(
            conn.execute(
                leases.update()
                .where((leases.c.name == name) & ((leases.c.expires_at < at) | (leases.c.holder == holder[:128])))
                .values(holder=holder[:128], expires_at=expires)
            ).rowcount
        )


def release_predecessor_leases(store: Store, predecessor: str) -> None:
    """Leases held by an earlier process of this instance (``"instance:"``): it is gone."""
    with store.engine.begin() as conn:
        conn.execute(leases.delete().where(leases.c.holder.startswith(predecessor, autoescape=True)))


def release_lease(store: Store, name: str, holder: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(leases.delete().where((leases.c.name == name) & (leases.c.holder == holder[:128])))


def schedule_since(store: Store, instance: str, job: str, spec: str, *, now: dt.datetime) -> dt.datetime:
    """Record that ``instance`` runs ``job`` on schedule ``spec`` and return since when: kept while
    the schedule stays the same (a restart changes nothing), ``now`` when it is new or changed."""
    key = (job_schedules.c.instance == instance[:64]) & (job_schedules.c.job == job)
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(job_schedules.c.spec, job_schedules.c.since).where(key)).first()
        if row is not None and row.spec == spec[:255]:
            return aware(row.since)  # type: ignore[return-value]
        if row is not None:
            conn.execute(job_schedules.update().where(key).values(spec=spec[:255], since=utc_naive(now)))
        else:
            conn.execute(job_schedules.insert().values(instance=instance[:64], job=job, spec=spec[:255], since=utc_naive(now)))
    return now


def scheduled_since(store: Store, instance: str, job: str) -> dt.datetime | None:
    """Since when ``instance`` has run ``job`` on its current schedule (None: never recorded)."""
    key = (job_schedules.c.instance == instance[:64]) & (job_schedules.c.job == job)
    with store.engine.connect() as conn:
        since = conn.execute(sa.select(job_schedules.c.since).where(key)).scalar()
    return aware(since)
