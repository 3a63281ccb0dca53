"""Whether a queued message goes now: every delivery gate as one pure decision.

`decide` takes a message, ``now`` and what the sender knows (its channel's rate, throttle and
recent attempts; the route's quiet hours; how long to keep trying) and says ``send``, ``wait``
until when and why, or ``fail`` and why. Nothing here reads the clock or the store, so each
gate is tested by passing values in (as `policy.decide` is). The gates, in order:

1. the channel is no longer configured → fail;
2. the message is older than ``give_up_after_h`` → fail, with the last error;
3. it backs off after a retryable failure → wait until ``next_attempt_at``;
4. its route is in quiet hours (alerts and their mentions only) → wait until they end;
5. the robot throttled us → wait until it said;
6. the channel's rate window is full → wait until its oldest attempt leaves the window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from forecaster.alerts.notifiers import Delivery
from forecaster.alerts.policy import release_time
from forecaster.config import DeliveryConfig

if TYPE_CHECKING:
    from forecaster.alerts.queue import OutboxMessage

__all__ = ["ChannelView", "Rules", "Verdict", "SEND", "decide", "backoff_s", "after_retry", "QUIET_KINDS"]

QUIET_KINDS = ("alert", "mention")  # tests and operations messages are sent in quiet hours too


@dataclass(frozen=True)
class ChannelView:
    """What the sender knows of the message's channel right now."""

    messages_per_window: int
    window_s: float
    blocked_until: dt.datetime | None = None  # the robot throttled us until then
    # Its attempts, oldest first (those before the window are ignored). Read only by the last gate:
    # the sender passes an iterable that asks the store when it is first iterated.
    recent: Iterable[dt.datetime] = ()


@dataclass(frozen=True)
class Rules:
    """The delivery settings that hold for every message of one drain."""

    give_up_after_h: float
    timezone: str  # the company's (config.timezone): quiet hours and report times read in it
    quiet: Mapping[str, tuple[dt.time, dt.time] | None] = field(default_factory=dict)  # per route

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(ZoneInfo(self.timezone))

    def clock(self, moment: dt.datetime, spec: str = "%H:%M:%S") -> str:
        """``moment`` as a wait's end is written everywhere: the company's time, labelled with its
        zone, so two waits on consecutive lines never read in two zones."""
        return f"{self.local(moment):{spec}} {self.timezone}"


@dataclass(frozen=True)
class Verdict:
    action: Literal["send", "wait", "fail"]
    why: str = ""  # wait: why it waits (for the drain report); fail: the reason stored with it
    until: dt.datetime | None = None  # wait: when it may go
    code: str = ""  # fail: the code stored with it
    report: str = ""  # fail: the line for the drain report ("channel: …")


SEND = Verdict("send")


def _wait(until: dt.datetime, why: str) -> Verdict:
    return Verdict("wait", why, until)


def _fail(code: str, reason: str, report: str) -> Verdict:
    return Verdict("fail", reason, code=code, report=report)


def decide(msg: OutboxMessage, now: dt.datetime, channel: ChannelView | None, rules: Rules) -> Verdict:
    """Send ``msg`` now, let it wait, or fail it (see the module doc for the gates' order)."""
    if channel is None:
        reason = f"channel {msg.channel!r} is no longer configured"
        return _fail("config", reason, f"{msg.channel}: no such channel in alerts.channels")
    if now - msg.created_at > dt.timedelta(hours=rules.give_up_after_h):
        last = f"{msg.last_code or ''} {msg.last_error or ''}"
        reason = f"gave up after {msg.attempts} attempts in {rules.give_up_after_h:g} h; last: {last}".strip()
        return _fail(msg.last_code or "expired", reason, f"{msg.channel}: {reason}")
    if msg.next_attempt_at > now:
        last = f"{msg.last_code} {msg.last_error or ''}"
        return _wait(msg.next_attempt_at, f"{msg.channel}: retry at {rules.clock(msg.next_attempt_at)} ({last})".strip())
    if msg.kind in QUIET_KINDS:
        release = release_time(now, rules.quiet.get(msg.route), rules.timezone)
        if release > now:
            return _wait(release, f"{msg.route}: quiet hours until {rules.clock(release, '%H:%M')}")
    until = channel.blocked_until
    if until is not None and until > now:
        return _wait(until, f"{msg.channel}: throttled by the platform until {rules.clock(until)}")
    window = dt.timedelta(seconds=channel.window_s)
    recent = [t for t in channel.recent if t > now - window]
    limit = channel.messages_per_window
    if len(recent) >= limit:
        free = recent[len(recent) - limit] + window
        return _wait(free, f"{msg.channel}: rate limit {limit} per {channel.window_s:g} s, next at {rules.clock(free)}")
    return SEND


def backoff_s(attempts: int, config: DeliveryConfig) -> float:
    """The wait after the ``attempts``-th retryable failure: doubling, up to ``backoff_max_s``."""
    return min(config.backoff_s * (2 ** max(attempts - 1, 0)), config.backoff_max_s)


def after_retry(
    attempts: int, result: Delivery, after: dt.datetime, config: DeliveryConfig
) -> tuple[dt.datetime, dt.datetime | None]:
    """When a message that failed retryably (its ``attempts``-th try) goes next, and until when its
    robot is left alone (None: the robot did not ask for a pause)."""
    next_at = after + dt.timedelta(seconds=max(backoff_s(attempts, config), result.pause_s))
    pause = after + dt.timedelta(seconds=result.pause_s) if result.pause_s else None
    return next_at, pause
