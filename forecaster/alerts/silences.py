"""Silences: a community, metric and/or route muted from a start to an end time, with a reason.

Stored in the ``silences`` table; matching a finding against them is `policy.Silence.matches`.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from forecaster.alerts import tables
from forecaster.alerts.policy import Silence
from forecaster.store import Store, aware, utc_naive

__all__ = ["Silences"]


class Silences:
    def __init__(self, store: Store):
        self.store = store
        self.engine = store.engine

    def list(self, now: dt.datetime, *, include_ended: bool = False) -> list[Silence]:
        """The silences not removed; only those not yet ended unless ``include_ended``."""
        t = tables.silences
        query = sa.select(t).where(t.c.removed_at.is_(None)).order_by(t.c.id)
        if not include_ended:
            query = query.where(t.c.ends_at > utc_naive(now))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Silence(
                silence_id=r["id"],
                starts_at=aware(r["starts_at"]),
                ends_at=aware(r["ends_at"]),  # type: ignore[arg-type]
                reason=r["reason"],
                community_id=r["community_id"],
                metric=r["metric"],
                route=r["route"],
            )
            for r in rows
        ]

    def add(
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
        result = self.store.write("add the silence", lambda c: c.execute(tables.silences.insert().values(**values)))
        return int(result.inserted_primary_key[0])

    def remove(self, silence_id: int, *, now: dt.datetime) -> bool:
        t = tables.silences
        query = t.update().where((t.c.id == silence_id) & t.c.removed_at.is_(None))
        result = self.store.write("remove the silence", lambda c: c.execute(query.values(removed_at=utc_naive(now))))
        return bool(result.rowcount)
