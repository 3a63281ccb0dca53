"""The delivery decision: each gate on a fixed clock (pure, nothing read from the store)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from forecaster.alerts.delivery import SEND, ChannelView, Rules, after_retry, backoff_s, decide
from forecaster.alerts.notifiers import Delivery
from forecaster.alerts.queue import OutboxMessage
from forecaster.config import DeliveryConfig

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 20, 18, 0, tzinfo=UTC)  # 02:00 in Shanghai
RULES = Rules(give_up_after_h=24, timezone="Asia/Shanghai", quiet={"华北": (dt.time(22), dt.time(7, 30))})
FREE = ChannelView(messages_per_window=20, window_s=60)


def message(**changes) -> OutboxMessage:
    base = OutboxMessage(
        id=1, message_id="m1", run_id="r1", kind="alert", route="华南", channel="dt", manager="王", group_key="g",
        part=1, parts=1, title="物业预警", payload={}, finding_ids=["f1"], status="pending", attempts=0,
        created_at=NOW - dt.timedelta(minutes=5), next_attempt_at=NOW - dt.timedelta(minutes=5),
        claimed_at=None, sent_at=None, last_code=None, last_error=None,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_a_due_message_on_a_free_channel_is_sent():
    assert decide(message(), NOW, FREE, RULES) == SEND


def test_a_channel_no_longer_configured_fails_the_message():
    v = decide(message(), NOW, None, RULES)
    assert (v.action, v.code, v.why) == ("fail", "config", "channel 'dt' is no longer configured")
    assert v.report == "dt: no such channel in alerts.channels"


def test_a_message_older_than_give_up_after_fails_with_its_last_error():
    old = message(created_at=NOW - dt.timedelta(hours=24, seconds=1), attempts=7, last_code="HTTP 502", last_error="bad gateway")
    v = decide(old, NOW, FREE, RULES)
    assert (v.action, v.code) == ("fail", "HTTP 502")
    assert v.why == "gave up after 7 attempts in 24 h; last: HTTP 502 bad gateway"
    assert v.report == "dt: " + v.why
    never = decide(message(created_at=NOW - dt.timedelta(hours=25)), NOW, FREE, RULES)
    assert (never.code, never.why) == ("expired", "gave up after 0 attempts in 24 h; last:")
    assert decide(message(created_at=NOW - dt.timedelta(hours=24)), NOW, FREE, RULES) == SEND  # exactly 24 h: not yet


def test_a_message_backing_off_waits_until_its_next_attempt():
    later = NOW + dt.timedelta(seconds=90)
    v = decide(message(next_attempt_at=later, last_code="connection", last_error="connection refused"), NOW, FREE, RULES)
    assert (v.action, v.until) == ("wait", later)
    assert v.why == "dt: retry at 02:01:30 Asia/Shanghai (connection connection refused)"


def test_quiet_hours_hold_alerts_and_mentions_but_not_tests_or_operations():
    v = decide(message(route="华北"), NOW, FREE, RULES)
    assert (v.action, v.until, v.why) == ("wait", dt.datetime(2026, 1, 20, 23, 30, tzinfo=UTC), "华北: quiet hours until 07:30 Asia/Shanghai")
    assert decide(message(route="华北", kind="mention"), NOW, FREE, RULES).action == "wait"
    assert decide(message(route="华北", kind="test"), NOW, FREE, RULES) == SEND
    assert decide(message(route="华北", kind="ops"), NOW, FREE, RULES) == SEND
    assert decide(message(route="华北"), NOW + dt.timedelta(hours=6), FREE, RULES) == SEND  # 08:00


def test_a_throttled_robot_is_left_alone_until_it_said():
    until = NOW + dt.timedelta(minutes=10)
    v = decide(message(), NOW, dataclasses.replace(FREE, blocked_until=until), RULES)
    assert (v.action, v.until, v.why) == ("wait", until, "dt: throttled by the platform until 02:10:00 Asia/Shanghai")
    assert decide(message(), NOW, dataclasses.replace(FREE, blocked_until=NOW), RULES) == SEND  # ended


def test_a_full_rate_window_waits_until_its_oldest_attempt_leaves_it():
    sent = tuple(NOW - dt.timedelta(seconds=s) for s in (50, 40, 30))  # oldest first
    full = ChannelView(messages_per_window=3, window_s=60, recent=sent)
    v = decide(message(), NOW, full, RULES)
    assert (v.action, v.until, v.why) == ("wait", NOW + dt.timedelta(seconds=10), "dt: rate limit 3 per 60 s, next at 02:00:10 Asia/Shanghai")
    older = ChannelView(messages_per_window=3, window_s=60, recent=(NOW - dt.timedelta(seconds=61), *sent[1:]))
    assert decide(message(), NOW, older, RULES) == SEND  # one attempt is out of the window
    five = ChannelView(messages_per_window=3, window_s=60, recent=tuple(NOW - dt.timedelta(seconds=s) for s in (55, 50, 40, 30, 20)))
    assert decide(message(), NOW, five, RULES).until == NOW + dt.timedelta(seconds=20)  # the third-newest frees it


def test_the_gates_apply_in_order():
    throttled_and_full = ChannelView(1, 60, blocked_until=NOW + dt.timedelta(hours=1), recent=(NOW,))
    quiet = message(route="华北", next_attempt_at=NOW + dt.timedelta(seconds=5))
    assert "retry at" in decide(quiet, NOW, throttled_and_full, RULES).why  # backoff before quiet hours
    assert "quiet hours" in decide(message(route="华北"), NOW, throttled_and_full, RULES).why  # before the throttle
    assert "throttled" in decide(message(), NOW, throttled_and_full, RULES).why  # before the rate limit
    expired = message(created_at=NOW - dt.timedelta(days=2), next_attempt_at=NOW + dt.timedelta(hours=1))
    assert decide(expired, NOW, throttled_and_full, RULES).action == "fail"  # giving up comes first


def test_retries_back_off_exponentially_and_respect_the_robots_pause():
    config = DeliveryConfig(backoff_s=30, backoff_max_s=600)
    assert [backoff_s(n, config) for n in (1, 2, 3, 4, 5, 6)] == [30, 60, 120, 240, 480, 600]
    assert after_retry(1, Delivery("retry", "HTTP 502"), NOW, config) == (NOW + dt.timedelta(seconds=30), None)
    throttled = Delivery("retry", "130101", "send too fast", pause_s=600)
    assert after_retry(1, throttled, NOW, config) == (NOW + dt.timedelta(seconds=600), NOW + dt.timedelta(seconds=600))


def test_every_wait_is_said_in_the_company_timezone_and_labelled():
    """One moment, one way of writing it: a backoff and a throttle ending at the same instant
    read the same (they were 01:10:03 UTC and an unlabelled 09:10:03 on consecutive lines)."""
    until = NOW + dt.timedelta(minutes=10, seconds=3)
    retry = decide(message(next_attempt_at=until, last_code="130101", last_error="send too fast"), NOW, FREE, RULES)
    throttled = decide(message(), NOW, dataclasses.replace(FREE, blocked_until=until), RULES)
    full = decide(message(), NOW, ChannelView(1, 603, recent=(NOW,)), RULES)
    for verdict in (retry, throttled, full):
        assert "02:10:03 Asia/Shanghai" in verdict.why, verdict.why
        assert "UTC" not in verdict.why
    assert decide(message(route="华北"), NOW, FREE, RULES).why.endswith("until 07:30 Asia/Shanghai")
