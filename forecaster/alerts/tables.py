"""The alert tables, on the store's `metadata` (`forecaster.store.TABLE_MODULES` lists this module,
so every `Store` creates them).

* ``alert_messages`` / ``alert_attempts``: the queue and every delivery attempt (`alerts.queue`).
* ``alert_state``: what each route was last told about each finding (`alerts.memory`).
* ``silences``: muted communities, metrics or routes (`alerts.silences`).
* ``channel_state``: a robot that throttled us, left alone until then (`alerts.queue`).

Times are UTC without a zone, like the rest of the store.
"""

from __future__ import annotations

import sqlalchemy as sa

from forecaster.store import Moment, metadata

__all__ = ["alert_messages", "alert_attempts", "alert_state", "silences", "channel_state"]

# The outbox: every message is written here before it is sent (forecaster.alerts.queue).
# ``body`` is the platform's JSON without any signature or token (those are added when sending).
alert_messages = sa.Table(
    "alert_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # send order
    sa.Column("message_id", sa.String(32), nullable=False, unique=True),
    sa.Column("run_id", sa.String(32), index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # alert | mention | test | ops
    sa.Column("route", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False, index=True),
    sa.Column("manager", sa.String(128)),
    sa.Column("group_key", sa.String(64), nullable=False),  # parts of one message group, in order
    sa.Column("part", sa.Integer, nullable=False),
    sa.Column("parts", sa.Integer, nullable=False),
    sa.Column("title", sa.String(255)),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("finding_ids", sa.Text),  # JSON list
    sa.Column("status", sa.String(16), nullable=False, index=True),  # pending | sending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", Moment, nullable=False),
    sa.Column("next_attempt_at", Moment, nullable=False),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_at", sa.DateTime),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("last_code", sa.String(32)),
    sa.Column("last_error", sa.Text),
)

alert_attempts = sa.Table(
    "alert_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(32), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("at", Moment, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # delivered | retry | failed
    sa.Column("code", sa.String(32)),
    sa.Column("detail", sa.Text),
    sa.Index("ix_alert_attempts_channel_at", "channel", "at"),
)

# What each route was last told about each finding (the deduplication memory).
alert_state = sa.Table(
    "alert_state",
    metadata,
    sa.Column("route", sa.String(128), primary_key=True),
    sa.Column("finding_id", sa.String(32), primary_key=True),
    sa.Column("community_id", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("first_day", sa.Date, nullable=False),
    sa.Column("last_day", sa.Date, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # open | resolved
    sa.Column("message_id", sa.String(32)),
    sa.Column("alerted_at", Moment, nullable=False),
)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("community_id", sa.String(128)),
    sa.Column("metric", sa.String(32)),
    sa.Column("route", sa.String(128)),
    sa.Column("starts_at", Moment, nullable=False),
    sa.Column("ends_at", Moment, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(128)),
    sa.Column("created_at", Moment, nullable=False),
    sa.Column("removed_at", sa.DateTime),
)

# A robot that told us to slow down (DingTalk's 10-minute throttle) is left alone until then.
channel_state = sa.Table(
    "channel_state",
    metadata,
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("blocked_until", sa.DateTime),
    sa.Column("reason", sa.Text),
)


