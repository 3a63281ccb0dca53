"""The outbox: every message is in the store before it is sent, and stays there.

* `enqueue` writes a run's messages (`queue`) and the routes' new memory of what they were
  told (`memory`) in one transaction: either both are stored or neither.
* `drain` sends what is due, oldest first and in order within each message group. Whether a
  message goes now is `delivery.decide` (pure): each robot stays under its rate limit (counted
  from the store, so a restart or a second process respects it too: every attempt, and every
  claim without an outcome, since a message in flight when its sender died may have reached the
  robot) and is left alone while it throttles us; quiet hours and backoffs wait. Retryable failures back off
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
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import requests

from forecaster.alerts import delivery as gates
from forecaster.alerts.memory import remember
from forecaster.alerts.notifiers import Notifier
from forecaster.alerts.policy import Decision
from forecaster.alerts.queue import MessageQueue, NewMessage, OutboxMessage, insert_messages
from forecaster.config import DeliveryConfig
from forecaster.store import Store, utc_naive
from forecaster.util.clock import Clock

__all__ = ["DrainReport", "drain", "enqueue"]


def enqueue(
    store: Store,
    messages: list[NewMessage],
    *,
    now: dt.datetime,
    decisions: list[tuple[Decision, str | None]] = (),  # type: ignore[assignment]
) -> None:
    """Store ``messages`` and, in the same transaction, what each decision means for the
    route's memory (``(decision, message_id of the part that carries it)``)."""
    at = utc_naive(now)

    def write(conn) -> None:
        insert_messages(conn, messages, at)
        remember(conn, list(decisions), at)

    store.write("queue alert messages", write)


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


@dataclass
class _Sender:
    """One drain's collaborators: the queue, the channels, the clock and the settings."""

    queue: MessageQueue
    channels: dict[str, Notifier]
    session: requests.Session
    clock: Clock
    delivery: DeliveryConfig
    rules: gates.Rules
    worker: str
    report: DrainReport
    should_stop: Callable[[], bool]

    def view(self, name: str, blocked: dict[str, dt.datetime], now: dt.datetime) -> gates.ChannelView | None:
        """What the gates need to know of channel ``name`` now (None: it is not configured)."""
        channel = self.channels.get(name)
        if channel is None:
            return None
        config = channel.config
        since = now - dt.timedelta(seconds=config.rate_window_s)
        recent = _Attempts(lambda: self.queue.recent_attempts(name, since))
        return gates.ChannelView(channel.messages_per_window, config.rate_window_s, blocked.get(name), recent)

    def one_pass(self) -> tuple[list[OutboxMessage], list[tuple[dt.datetime, str]], bool]:
        """Each group's next message once: sent, failed or left waiting. Returns the queue as it
        was, why messages wait, and whether anything was sent or settled."""
        now = self.clock.now()
        queue = self.queue.unsent()
        heads: dict[tuple[str, str], OutboxMessage] = {}
        for msg in queue:
            heads.setdefault((msg.group_key, msg.channel), msg)
        blocked = self.queue.blocked_until()
        waits: list[tuple[dt.datetime, str]] = []
        progressed = False
        for msg in sorted(heads.values(), key=lambda m: m.id):
            if self.should_stop():
                break
            if msg.status != "pending":
                continue  # in flight in another sender (or reclaimed later)
            verdict = gates.decide(msg, now, self.view(msg.channel, blocked, now), self.rules)
            if verdict.action == "wait":
                waits.append((verdict.until, verdict.why))  # type: ignore[arg-type]
            elif verdict.action == "fail":
                self.queue.fail(msg, verdict.code, verdict.why, now)
                self.report.failed += 1
                self.report.failures.append(verdict.report)
                progressed = True
            elif self.queue.claim(msg.message_id, self.worker, self.clock.now()):  # not the pass's start: the rate limit counts a claim from then
                self.send(msg, self.channels[msg.channel], blocked)
                progressed = True
        return queue, waits, progressed

    def send(self, msg: OutboxMessage, channel: Notifier, blocked: dict[str, dt.datetime]) -> None:
        """Send a claimed message and settle it at once (the claim-send-settle order is the
        crash-safety argument: see the module doc)."""
        result = channel.send(msg.payload, message_id=msg.message_id, session=self.session, now=self.clock.now())
        after = self.clock.now()
        if result.retryable:
            next_at, pause = gates.after_retry(msg.attempts + 1, result, after, self.delivery)
            self.queue.settle(msg, result, after, next_at, pause)
            if pause is not None:
                blocked[msg.channel] = pause  # the other groups on this robot wait too
            self.report.retried += 1
            return
        self.queue.settle(msg, result, after)
        if result.outcome == "delivered":
            self.report.delivered += 1
        else:
            self.report.failed += 1
            self.report.failures.append(f"{msg.channel}: {result.describe()}")


class _Attempts:
    """A channel's recent attempts, read from the store only if a gate looks at them (most
    waiting messages stop at an earlier gate: quiet hours, backoff, a throttle)."""

    def __init__(self, load: Callable[[], list[dt.datetime]]):
        self.load, self.rows = load, None

    def __iter__(self):
        if self.rows is None:
            self.rows = self.load()
        return iter(self.rows)


def drain(
    store: Store,
    channels: dict[str, Notifier],
    *,
    session: requests.Session,
    clock: Clock,
    delivery: DeliveryConfig,
    timezone: str,
    quiet: dict[str, tuple[dt.time, dt.time] | None] | None = None,
    max_wait_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
    worker: str | None = None,
) -> DrainReport:
    """Send every due message; wait (at most ``max_wait_s`` in all) for rate limits, throttles,
    quiet hours and backoffs that end within that budget; leave the rest for the next drain."""
    queue = MessageQueue(store)
    report = DrainReport()
    sender = _Sender(
        queue=queue,
        channels=channels,
        session=session,
        clock=clock,
        delivery=delivery,
        rules=gates.Rules(delivery.give_up_after_h, timezone, quiet or {}),
        worker=worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        report=report,
        should_stop=should_stop,
    )
    report.reclaimed = queue.reclaim(clock.now(), delivery.claim_timeout_s)
    deadline = clock.monotonic() + max_wait_s
    waits: list[tuple[dt.datetime, str]] = []
    while not should_stop():
        unsent, waits, progressed = sender.one_pass()
        if progressed:
            continue
        if not unsent or not waits or should_stop():
            break
        target, _ = min(waits)
        delay = (target - clock.now()).total_seconds()
        if clock.monotonic() + delay > deadline:
            break
        sleep(max(delay, 0.05))
    _left_waiting(report, queue.unsent(), waits)
    return report


def _left_waiting(report: DrainReport, left: list[OutboxMessage], waits: list[tuple[dt.datetime, str]]) -> None:
    """How many messages wait for the next drain, and why."""
    report.pending = len(left)
    if left:
        reasons = dict.fromkeys(why for _, why in sorted(waits))
        reasons.update(dict.fromkeys(f"{m.channel}: being sent by another process" for m in left if m.status == "sending"))
        report.waiting = list(reasons) or [f"{m.channel}: waiting" for m in left[:1]]
