"""The routes' memory: what each route was last told about each finding (``alert_state``).

`policy.decide` reads it (`AlertMemory.alerted`) to tell news from repeats; `remember` writes
what tonight's decisions change, inside the transaction that queues the messages carrying them
(`outbox.enqueue`), so the memory never claims a message that was not stored.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from forecaster.alerts.policy import Alerted, Decision
from forecaster.alerts.tables import alert_messages, alert_state
from forecaster.store import Store, aware

__all__ = ["AlertMemory", "remember"]


class AlertMemory:
    def __init__(self, store: Store):
        self.store = store
        self.engine = store.engine

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
                alerted_at=aware(r["alerted_at"]),  # type: ignore[arg-type]
                told=r["message_status"] != "failed",
            )
        return out


def remember(conn: sa.Connection, decisions: list[tuple[Decision, str | None]], at: dt.datetime) -> None:
    """What each decision means for its route's memory (``(decision, message_id of the part that
    carries it)``), written within the caller's transaction at ``at`` (UTC, no zone)."""
    for decision, message_id in decisions:
        if not decision.changes_state:
            continue
        if decision.finding is None or decision.reason in ("resolved", "expired"):
            _close(conn, decision, message_id, at)
        else:
            _open(conn, decision, message_id, at)


def _key(route: str, finding_id: str):
    return (alert_state.c.route == route) & (alert_state.c.finding_id == finding_id)


def _close(conn: sa.Connection, decision: Decision, message_id: str | None, at: dt.datetime) -> None:
    conn.execute(
        alert_state.update()
        .where(_key(decision.route, decision.finding_id))
        .values(state="resolved", alerted_at=at, **({"message_id": message_id} if message_id else {}))
    )


def _open(conn: sa.Connection, decision: Decision, message_id: str | None, at: dt.datetime) -> None:
    f = decision.finding
    assert f is not None
    prev = decision.previous
    if prev is not None and prev.finding_id != f.finding_id:
        # The episode now goes by this finding's id: the old row is closed, quietly.
        conn.execute(alert_state.update().where(_key(decision.route, prev.finding_id)).values(state="resolved"))
    conn.execute(alert_state.delete().where(_key(decision.route, decision.finding_id)))
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
