"""The outbox: every message is in the store before it is sent, and stays there.

* `Outbox.enqueue` writes a run's messages and the routes' new memory of what they were told in
  one transaction: either both are stored or neither.
* `drain` sends what is due, oldest first and in order within each message group, keeping each
  robot under its rate limit (counted from the attempts table, so a restart or a second process
  respects it too) and leaving a robot alone while it throttles us. Retryable failures back off
  exponentially until ``give_up_after_h``; permanent ones are marked ``failed`` with the
  platform's code and message at once.
* Crash safety: a message is claimed (``sending``) in its own committed transaction before the
  request and settled (``sent`` / back to ``pending`` / ``failed``) in another right after the
  answer. A delivered message is therefore never sent again, and an unsent one is always sent
  after a restart. The one window left, a crash between the robot's answer and the settling
  write (milliseconds), makes that message *at least once*: after ``claim_timeout_s`` it is sent
  again, with the same ``X-Wuye-Message-Id`` / ``Idempotency-Key`` so a receiver that can
  deduplicate will.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import requests
import sqlalchemy as sa

from forecaster.alerts.notifiers import Delivery, Notifier
from forecaster.alerts.policy import Alerted, Decision, Silence, release_time
from forecaster.config import DeliveryConfig
from forecaster.store import (
    Store,
    alert_attempts,
    alert_messages,
    alert_state,
    channel_state,
    silences,
    utc_naive,
)
from forecaster.util.clock import Clock

__all__ = ["NewMessage", "OutboxMessage", "Outbox", "DrainReport", "drain", "new_message_id"]

_UTC = dt.timezone.utc


def new_message_id() -> str:
    return uuid.uuid4().hex


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=_UTC)


@dataclass(frozen=True)
class NewMessage:
    kind: str
    route: str
    channel: str
    manager: str | None
    group_key: str
    part: int
    parts: int
    title: str
    payload: dict[str, Any]
    finding_ids: tuple[str, ...] = ()
    run_id: str | None = None
    message_id: str = field(default_factory=new_message_id)


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    message_id: str
    run_id: str | None
    kind: str
    route: str
    channel: str
    manager: str | None
    group_key: str
    part: int
    parts: int
    title: str | None
    payload: dict[str, Any]
    finding_ids: list[str]
    status: str
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    claimed_at: dt.datetime | None
    sent_at: dt.datetime | None
    last_code: str | None
    last_error: str | None


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        message_id=row["message_id"],
        run_id=row["run_id"],
        kind=row["kind"],
        route=row["route"],
        channel=row["channel"],
        manager=row["manager"],
        group_key=row["group_key"],
        part=row["part"],
        parts=row["parts"],
        title=row["title"],
        payload=json.loads(row["body"]),
        finding_ids=json.loads(row["finding_ids"] or "[]"),
        status=row["status"],
        attempts=row["attempts"],
        created_at=_aware(row["created_at"]),  # type: ignore[arg-type]
        next_attempt_at=_aware(row["next_attempt_at"]),  # type: ignore[arg-type]
        claimed_at=_aware(row["claimed_at"]),
        sent_at=_aware(row["sent_at"]),
        last_code=row["last_code"],
        last_error=row["last_error"],
    )


class Outbox:
    def __init__(self, store: Store):
        self.store = store
        self.engine = store.engine

    # ------------------------------------------------------------------ writing
    def enqueue(
        self,
        messages: list[NewMessage],
        *,
        now: dt.datetime,
        decisions: list[tuple[Decision, str | None]] = (),  # type: ignore[assignment]
    ) -> None:
        """Store ``messages`` and, in the same transaction, what each decision means for the
        route's memory (``(decision, message_id of the part that carries it)``)."""
        at = utc_naive(now)
        rows = [
            {
                "message_id": m.message_id,
                "run_id": m.run_id,
                "kind": m.kind,
                "route": m.route[:128],
                "channel": m.channel[:64],
                "manager": (m.manager or None) and m.manager[:128],
                "group_key": m.group_key,
                "part": m.part,
                "parts": m.parts,
                "title": m.title[:255],
                "body": json.dumps(m.payload, ensure_ascii=False),
                "finding_ids": json.dumps(list(m.finding_ids)),
                "status": "pending",
                "attempts": 0,
                "created_at": at,
                "next_attempt_at": at,
            }
            for m in messages
        ]

        def write(conn) -> None:
            if rows:
                conn.execute(alert_messages.insert(), rows)
            for decision, message_id in decisions:
                if not decision.changes_state:
                    continue
                key = (alert_state.c.route == decision.route) & (alert_state.c.finding_id == decision.finding_id)
                if decision.finding is None or decision.reason in ("resolved", "expired"):
                    conn.execute(
                        alert_state.update().where(key).values(
                            state="resolved", alerted_at=at, **({"message_id": message_id} if message_id else {})
                        )
                    )
                    continue
                f = decision.finding
                prev = decision.previous
                if prev is not None and prev.finding_id != f.finding_id:
                    # The episode now goes by this finding's id: the old row is closed, quietly.
                    conn.execute(
                        alert_state.update()
                        .where((alert_state.c.route == decision.route) & (alert_state.c.finding_id == prev.finding_id))
                        .values(state="resolved")
                    )
                conn.execute(alert_state.delete().where(key))
                conn.execute(
                    alert_state.insert().values(
                        route=decision.route[:128],
                        finding_id=f.finding_id,
                        community_id=f.community_id,
                        metric=f.metric,
                        kind=f.kind,
                        severity=f.severity,
                        first_day=f.first_day,
                        last_day=f.last_day,
                        state="open",
                        message_id=message_id,
                        alerted_at=at,
                    )
                )

        self.store.write("queue alert messages", write)

    # ------------------------------------------------------------------ reading
    def alerted(self) -> dict[str, dict[str, Alerted]]:
        """Per route, per finding id: what the route was last told; ``told`` is False when the
        message that told it failed for good."""
        query = sa.select(alert_state, alert_messages.c.status.label("message_status")).select_from(
            alert_state.outerjoin(alert_messages, alert_messages.c.message_id == alert_state.c.message_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        out: dict[str, dict[str, Alerted]] = {}
        for r in rows:
            out.setdefault(r["route"], {})[r["finding_id"]] = Alerted(
                route=r["route"],
                finding_id=r["finding_id"],
                community_id=r["community_id"],
                metric=r["metric"],
                kind=r["kind"],
                severity=r["severity"],
                first_day=r["first_day"],
                last_day=r["last_day"],
                state=r["state"],
                alerted_at=_aware(r["alerted_at"]),  # type: ignore[arg-type]
                told=r["message_status"] != "failed",
            )
        return out

    def messages(self, *, status: str | None = None, run_id: str | None = None, limit: int | None = 50) -> list[OutboxMessage]:
        query = sa.select(alert_messages).order_by(alert_messages.c.id.desc())
        if status:
            query = query.where(alert_messages.c.status == status)
        if run_id:
            query = query.where(alert_messages.c.run_id == run_id)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_message(r) for r in conn.execute(query).mappings().all()]

    def get(self, message_id: str) -> OutboxMessage | None:
        query = sa.select(alert_messages).where(alert_messages.c.message_id.like(f"{message_id}%")).limit(2)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return _message(rows[0]) if len(rows) == 1 else None

    def attempts(self, message_id: str) -> list[dict[str, Any]]:
        query = sa.select(alert_attempts).where(alert_attempts.c.message_id == message_id).order_by(alert_attempts.c.id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def counts(self, *, run_id: str | None = None) -> dict[str, int]:
        query = sa.select(alert_messages.c.status, sa.func.count()).group_by(alert_messages.c.status)
        if run_id:
            query = query.where(alert_messages.c.run_id == run_id)
        with self.engine.connect() as conn:
            return {s: int(n) for s, n in conn.execute(query).all()}

    def retry(self, message_ids: list[str] | None, *, now: dt.datetime) -> int:
        """Put failed messages back in the queue (all of them when ``message_ids`` is None)."""
        query = alert_messages.update().where(alert_messages.c.status == "failed")
        if message_ids is not None:
            query = query.where(alert_messages.c.message_id.in_(message_ids))
        at = utc_naive(now)
        result = self.store.write(
            "requeue messages",
            lambda c: c.execute(query.values(status="pending", next_attempt_at=at, created_at=at, attempts=0)),
        )
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------ silences
    def silences(self, now: dt.datetime, *, include_ended: bool = False) -> list[Silence]:
        query = sa.select(silences).where(silences.c.removed_at.is_(None)).order_by(silences.c.id)
        if not include_ended:
            query = query.where(silences.c.ends_at > utc_naive(now))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Silence(
                silence_id=r["id"],
                starts_at=_aware(r["starts_at"]),
                ends_at=_aware(r["ends_at"]),  # type: ignore[arg-type]
                reason=r["reason"],
                community_id=r["community_id"],
                metric=r["metric"],
                route=r["route"],
            )
            for r in rows
        ]

    def add_silence(
        self,
        *,
        ends_at: dt.datetime,
        reason: str,
        now: dt.datetime,
        community_id: str | None = None,
        metric: str | None = None,
        route: str | None = None,
        created_by: str | None = None,
    ) -> int:
        values = dict(
            community_id=community_id,
            metric=metric,
            route=route,
            starts_at=utc_naive(now),
            ends_at=utc_naive(ends_at),
            reason=reason,
            created_by=created_by,
            created_at=utc_naive(now),
        )
        result = self.store.write("add the silence", lambda c: c.execute(silences.insert().values(**values)))
        return int(result.inserted_primary_key[0])

    def remove_silence(self, silence_id: int, *, now: dt.datetime) -> bool:
        query = silences.update().where((silences.c.id == silence_id) & silences.c.removed_at.is_(None))
        result = self.store.write("remove the silence", lambda c: c.execute(query.values(removed_at=utc_naive(now))))
        return bool(result.rowcount)

    # ------------------------------------------------------------------ delivery steps
    def _claim(self, message_id: str, worker: str, now: dt.datetime) -> bool:
        query = (
            alert_messages.update()
            .where((alert_messages.c.message_id == message_id) & (alert_messages.c.status == "pending"))
            .values(status="sending", claimed_by=worker[:64], claimed_at=utc_naive(now))
        )
        return bool(self.store.write("claim a message", lambda c: c.execute(query)).rowcount)

    def _settle(self, msg: OutboxMessage, delivery: Delivery, now: dt.datetime, next_at: dt.datetime | None, pause_until: dt.datetime | None, *, final: str | None = None) -> None:
        at = utc_naive(now)
        status = "sent" if delivery.outcome == "delivered" else "failed" if (delivery.outcome == "failed" or final) else "pending"
        detail = final or delivery.detail

        def write(conn) -> None:
            conn.execute(
                alert_attempts.insert().values(
                    message_id=msg.message_id,
                    channel=msg.channel,
                    at=at,
                    outcome=delivery.outcome,
                    code=delivery.code[:32] or None,
                    detail=delivery.detail[:2000] or None,
                )
            )
            values: dict[str, Any] = dict(
                status=status,
                attempts=alert_messages.c.attempts + 1,
                last_code=delivery.code[:32] or None,
                last_error=None if status == "sent" else detail[:2000] or None,
                claimed_by=None,
            )
            if status == "sent":
                values["sent_at"] = at
            if status == "pending" and next_at is not None:
                values["next_attempt_at"] = utc_naive(next_at)
            conn.execute(alert_messages.update().where(alert_messages.c.message_id == msg.message_id).values(**values))
            if pause_until is not None:
                conn.execute(channel_state.delete().where(channel_state.c.channel == msg.channel))
                conn.execute(
                    channel_state.insert().values(
                        channel=msg.channel, blocked_until=utc_naive(pause_until), reason=delivery.describe()[:2000]
                    )
                )

        self.store.write("record a delivery", write)

    def _fail(self, msg: OutboxMessage, code: str, reason: str, now: dt.datetime) -> None:
        self._settle(msg, Delivery("failed", code, reason), now, None, None)

    def _reclaim(self, now: dt.datetime, claim_timeout_s: float) -> int:
        """Messages left ``sending`` by a sender that died go back to the queue."""
        cutoff = utc_naive(now - dt.timedelta(seconds=claim_timeout_s))
        at = utc_naive(now)

        def write(conn) -> int:
            stale = conn.execute(
                sa.select(alert_messages.c.message_id, alert_messages.c.channel).where(
                    (alert_messages.c.status == "sending") & (alert_messages.c.claimed_at < cutoff)
                )
            ).all()
            for message_id, channel in stale:
                conn.execute(
                    alert_attempts.insert().values(
                        message_id=message_id,
                        channel=channel,
                        at=at,
                        outcome="retry",
                        code="interrupted",
                        detail="the sender stopped while delivering; sending again",
                    )
                )
                conn.execute(
                    alert_messages.update()
                    .where((alert_messages.c.message_id == message_id) & (alert_messages.c.status == "sending"))
                    .values(status="pending", claimed_by=None, next_attempt_at=at, last_code="interrupted")
                )
            return len(stale)

        return self.store.write("requeue interrupted messages", write)

    def _queue(self) -> list[OutboxMessage]:
        query = (
            sa.select(alert_messages)
            .where(alert_messages.c.status.in_(("pending", "sending")))
            .order_by(alert_messages.c.id)
        )
        with self.engine.connect() as conn:
            return [_message(r) for r in conn.execute(query).mappings().all()]

    def _blocked_until(self) -> dict[str, dt.datetime]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(channel_state.c.channel, channel_state.c.blocked_until)).all()
        return {c: _aware(b) for c, b in rows if b is not None}  # type: ignore[misc]

    def _recent_attempts(self, channel: str, since: dt.datetime) -> list[dt.datetime]:
        query = (
            sa.select(alert_attempts.c.at)
            .where(
                (alert_attempts.c.channel == channel)
                & (alert_attempts.c.at > utc_naive(since))
                & (alert_attempts.c.code != "interrupted")
            )
            .order_by(alert_attempts.c.at)
        )
        with self.engine.connect() as conn:
            return [_aware(r[0]) for r in conn.execute(query).all()]  # type: ignore[misc]


@dataclass
class DrainReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    reclaimed: int = 0
    pending: int = 0  # still waiting when the drain stopped
    failures: list[str] = field(default_factory=list)  # "channel: code message" for each permanent failure
    waiting: list[str] = field(default_factory=list)  # why pending messages wait

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.failed


def _backoff(attempts: int, config: DeliveryConfig) -> float:
    return min(config.backoff_s * (2 ** max(attempts - 1, 0)), config.backoff_max_s)


def drain(
    store: Store,
    channels: dict[str, Notifier],
    *,
    session: requests.Session,
    clock: Clock,
    delivery: DeliveryConfig,
    quiet: dict[str, tuple[dt.time, dt.time] | None] | None = None,
    timezone: str = "Asia/Shanghai",
    max_wait_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
    worker: str | None = None,
) -> DrainReport:
    """Send every due message; wait (at most ``max_wait_s`` in all) for rate limits, throttles,
    quiet hours and backoffs that end within that budget; leave the rest for the next drain."""
    outbox = Outbox(store)
    worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    quiet = quiet or {}
    report = DrainReport()
    report.reclaimed = outbox._reclaim(clock.now(), delivery.claim_timeout_s)
    deadline = clock.monotonic() + max_wait_s
    waits: list[tuple[dt.datetime, str]] = []
    while not should_stop():
        now = clock.now()
        queue = outbox._queue()
        heads: dict[tuple[str, str], OutboxMessage] = {}
        for msg in queue:
            heads.setdefault((msg.group_key, msg.channel), msg)
        blocked = outbox._blocked_until()
        waits: list[tuple[dt.datetime, str]] = []
        progressed = False
        for msg in sorted(heads.values(), key=lambda m: m.id):
            if should_stop():
                break
            if msg.status != "pending":
                continue  # in flight in another sender (or reclaimed later)
            channel = channels.get(msg.channel)
            if channel is None:
                outbox._fail(msg, "config", f"channel {msg.channel!r} is no longer configured", now)
                report.failed += 1
                report.failures.append(f"{msg.channel}: no such channel in alerts.channels")
                progressed = True
                continue
            if now - msg.created_at > dt.timedelta(hours=delivery.give_up_after_h):
                reason = f"gave up after {msg.attempts} attempts in {delivery.give_up_after_h:g} h; last: {msg.last_code or ''} {msg.last_error or ''}".strip()
                outbox._fail(msg, msg.last_code or "expired", reason, now)
                report.failed += 1
                report.failures.append(f"{msg.channel}: {reason}")
                progressed = True
                continue
            if msg.next_attempt_at > now:
                waits.append((msg.next_attempt_at, f"{msg.channel}: retry at {msg.next_attempt_at:%H:%M:%S} UTC ({msg.last_code} {msg.last_error or ''})".strip()))
                continue
            if msg.kind in ("alert", "mention"):
                release = release_time(now, quiet.get(msg.route), timezone)
                if release > now:
                    waits.append((release, f"{msg.route}: quiet hours until {release.astimezone(_zone(timezone)):%H:%M}"))
                    continue
            until = blocked.get(msg.channel)
            if until is not None and until > now:
                waits.append((until, f"{msg.channel}: throttled by the platform until {until.astimezone(_zone(timezone)):%H:%M:%S}"))
                continue
            window = dt.timedelta(seconds=channel.config.rate_window_s)
            recent = outbox._recent_attempts(msg.channel, now - window)
            if len(recent) >= channel.config.messages_per_window:
                free_at = recent[len(recent) - channel.config.messages_per_window] + window
                waits.append((free_at, f"{msg.channel}: rate limit {channel.config.messages_per_window} per {channel.config.rate_window_s:g} s"))
                continue
            if not outbox._claim(msg.message_id, worker, now):
                continue
            sent_at = clock.now()
            result = channel.send(msg.payload, message_id=msg.message_id, session=session, now=sent_at)
            after = clock.now()
            if result.outcome == "retry":
                attempts = msg.attempts + 1
                next_at = after + dt.timedelta(seconds=max(_backoff(attempts, delivery), result.pause_s))
                pause = after + dt.timedelta(seconds=result.pause_s) if result.pause_s else None
                outbox._settle(msg, result, after, next_at, pause)
                if pause is not None:
                    blocked[msg.channel] = pause  # the other groups on this robot wait too
                report.retried += 1
            else:
                outbox._settle(msg, result, after, None, None)
                if result.outcome == "delivered":
                    report.delivered += 1
                else:
                    report.failed += 1
                    report.failures.append(f"{msg.channel}: {result.describe()}")
            progressed = True
            # The claim-send-settle order above is the crash-safety argument: see the module doc.
        if progressed:
            continue
        if not queue or not waits or should_stop():
            break
        target, _ = min(waits)
        delay = (target - clock.now()).total_seconds()
        if clock.monotonic() + delay > deadline:
            break
        sleep(max(delay, 0.05))
    left = outbox._queue()
    report.pending = len(left)
    if left:
        reasons = dict.fromkeys(why for _, why in sorted(waits))
        reasons.update(dict.fromkeys(f"{m.channel}: being sent by another process" for m in left if m.status == "sending"))
        report.waiting = list(reasons) or [f"{m.channel}: waiting" for m in left[:1]]
    return report


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
