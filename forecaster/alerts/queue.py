"""The message queue: the ``alert_messages`` rows, their delivery attempts and the robots' throttles.

Crash safety rests on three writes, each its own committed transaction: a message is claimed
(``sending``) before the request (`claim`), settled (``sent`` / back to ``pending`` / ``failed``)
right after the answer (`settle`), and a claim whose sender died is put back after
``claim_timeout_s`` (`reclaim`). See `forecaster.alerts.outbox` for the argument.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from forecaster.alerts.notifiers import Delivery
from forecaster.alerts.tables import alert_attempts, alert_messages, channel_state
from forecaster.store import Store, aware, utc_naive

__all__ = ["NewMessage", "OutboxMessage", "MessageQueue", "insert_messages", "message_rows", "new_message_id"]


def new_message_id() -> str:
    return uuid.uuid4().hex


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
        created_at=aware(row["created_at"]),  # type: ignore[arg-type]
        next_attempt_at=aware(row["next_attempt_at"]),  # type: ignore[arg-type]
        claimed_at=aware(row["claimed_at"]),
        sent_at=aware(row["sent_at"]),
        last_code=row["last_code"],
        last_error=row["last_error"],
    )


def message_rows(messages: list[NewMessage], at: dt.datetime) -> list[dict[str, Any]]:
    """The ``alert_messages`` rows for new messages, due at ``at`` (UTC, no zone). Pure."""
    return [
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


def insert_messages(conn: sa.Connection, messages: list[NewMessage], at: dt.datetime) -> None:
    """Queue ``messages`` within the caller's transaction."""
    rows = message_rows(messages, at)
    if rows:
        conn.execute(alert_messages.insert(), rows)


def _settled_values(delivery: Delivery, status: str, detail: str, at: dt.datetime, next_at: dt.datetime | None) -> dict[str, Any]:
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
    return values


class MessageQueue:
    """The stored queue: reading it (the ``outbox`` command, status, metrics) and the delivery steps."""

    def __init__(self, store: Store):
        self.store = store
        self.engine = store.engine

    # ------------------------------------------------------------------ reading
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

    # ------------------------------------------------------------------ delivery steps
    def unsent(self) -> list[OutboxMessage]:
        """Every message not yet settled (pending or being sent), oldest first."""
        query = (
            sa.select(alert_messages)
            .where(alert_messages.c.status.in_(("pending", "sending")))
            .order_by(alert_messages.c.id)
        )
        with self.engine.connect() as conn:
            return [_message(r) for r in conn.execute(query).mappings().all()]

    def blocked_until(self) -> dict[str, dt.datetime]:
        """The robots that throttled us, and until when."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(channel_state.c.channel, channel_state.c.blocked_until)).all()
        return {c: aware(b) for c, b in rows if b is not None}  # type: ignore[misc]

    def recent_attempts(self, channel: str, since: dt.datetime) -> list[dt.datetime]:
        """When ``channel`` was sent to after ``since``, oldest first: every recorded attempt, and
        every claim with no outcome yet (a message being sent, or left ``sending`` by a sender
        that died: its request may well have reached the robot, which counts it). A claim that
        was put back by `reclaim` is recorded at the time it was claimed, so it still counts."""
        at = utc_naive(since)
        tried = sa.select(alert_attempts.c.at.label("at")).where((alert_attempts.c.channel == channel) & (alert_attempts.c.at > at))
        claimed = sa.select(alert_messages.c.claimed_at.label("at")).where(
            (alert_messages.c.channel == channel) & (alert_messages.c.status == "sending") & (alert_messages.c.claimed_at > at)
        )
        query = sa.union_all(tried, claimed).subquery()
        with self.engine.connect() as conn:
            return [aware(r[0]) for r in conn.execute(sa.select(query.c.at).order_by(query.c.at)).all()]  # type: ignore[misc]

    def claim(self, message_id: str, worker: str, now: dt.datetime) -> bool:
        query = (
            alert_messages.update()
            .where((alert_messages.c.message_id == message_id) & (alert_messages.c.status == "pending"))
            .values(status="sending", claimed_by=worker[:64], claimed_at=utc_naive(now))
        )
        return bool(self.store.write("claim a message", lambda c: c.execute(query)).rowcount)

    def settle(
        self,
        msg: OutboxMessage,
        delivery: Delivery,
        now: dt.datetime,
        next_at: dt.datetime | None = None,
        pause_until: dt.datetime | None = None,
    ) -> None:
        """Record the attempt and the message's new status; a throttle pauses the whole robot."""
        at = utc_naive(now)
        status = "sent" if delivery.outcome == "delivered" else "failed" if delivery.outcome == "failed" else "pending"
        values = _settled_values(delivery, status, delivery.detail, at, next_at)

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
            conn.execute(alert_messages.update().where(alert_messages.c.message_id == msg.message_id).values(**values))
            if pause_until is not None:
                conn.execute(channel_state.delete().where(channel_state.c.channel == msg.channel))
                conn.execute(
                    channel_state.insert().values(
                        channel=msg.channel, blocked_until=utc_naive(pause_until), reason=delivery.describe()[:2000]
                    )
                )

        self.store.write("record a delivery", write)

    def fail(self, msg: OutboxMessage, code: str, reason: str, now: dt.datetime) -> None:
        self.settle(msg, Delivery("failed", code, reason), now)

    def reclaim(self, now: dt.datetime, claim_timeout_s: float) -> int:
        """Messages left ``sending`` by a sender that died go back to the queue."""
        cutoff = utc_naive(now - dt.timedelta(seconds=claim_timeout_s))
        at = utc_naive(now)

        def write(conn) -> int:
            stale = conn.execute(
                sa.select(alert_messages.c.message_id, alert_messages.c.channel, alert_messages.c.claimed_at).where(
                    (alert_messages.c.status == "sending") & (alert_messages.c.claimed_at < cutoff)
                )
            ).all()
            for message_id, channel, claimed_at in stale:
                conn.execute(
                    alert_attempts.insert().values(
                        message_id=message_id,
                        channel=channel,
                        at=claimed_at,  # when the request went out (the rate limit counts it then)
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
