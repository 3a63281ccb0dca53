"""A sender process killed during delivery and started again (real processes, real SIGKILL).

The outbox claims a message before sending and settles it right after the answer, so:
* killed between messages (here: while waiting for the robot's rate limit, mid-backlog), the
  restarted sender delivers every message exactly once, in order;
* killed while a request is in flight (the server holds the request, then the sender dies),
  the message is sent again after ``claim_timeout_s`` with the same message id, so a receiver
  that deduplicates on ``Idempotency-Key`` gets every message exactly once.

No assertion depends on timing: the tests wait for states (a count in the store, a held
request), then act.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from forecaster.alerts.notifiers import make_notifier
from forecaster.alerts.outbox import enqueue
from forecaster.alerts.queue import MessageQueue, NewMessage
from forecaster.config import ChannelConfig
from forecaster.store import Store
from tests.conftest import wait_for
from tests.robots import RobotServer

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, channel: dict, claim_timeout_s: float = 120) -> Path:
    path = tmp_path / "config.yaml"
    data = {
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "alerts": {
            "channels": {"robot": channel},
            "routes": [{"name": "华北", "channels": ["robot"]}],
            "delivery": {"claim_timeout_s": claim_timeout_s, "wait_s": 600},
        },
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _enqueue(tmp_path: Path, channel: dict, n: int, *, groups: bool = False) -> list[str]:
    """``n`` messages: the parts of one group, or (``groups``) each its own group, as for ``n`` managers."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    ch = make_notifier("robot", ChannelConfig(**channel))
    messages = [
        NewMessage(
            kind="alert", route="华北", channel="robot", manager="张三", group_key=f"g{i + 1}" if groups else "g1", part=i + 1, parts=n,
            title=f"物业预警（{i + 1}/{n}）", payload=ch.build(f"物业预警（{i + 1}/{n}）", f"**物业预警** 第{i + 1}条"),
        )
        for i in range(n)
    ]
    enqueue(store, messages, now=dt.datetime.now(dt.timezone.utc))
    store.close()
    return [m.message_id for m in messages]


def _sender(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "forecaster", "outbox", "--send", "--config", str(config)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _status(tmp_path: Path) -> dict[str, int]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        return MessageQueue(store).counts()
    finally:
        store.close()


def test_a_sender_killed_mid_backlog_and_restarted_delivers_each_message_exactly_once(tmp_path):
    server = RobotServer(dingtalk={"tok-crash-1": "SECcrash"}, rate=4, window_s=4.0).start()
    try:
        channel = {"type": "dingtalk", "url": server.dingtalk_url("tok-crash-1"), "secret": "SECcrash", "rate_limit": 4, "rate_window_s": 4.0}
        ids = _enqueue(tmp_path, channel, 10)
        config = _config(tmp_path, channel)
        first = _sender(config)
        # Four go out, then the sender waits for the robot's window: kill it there, mid-delivery.
        wait_for(lambda: _status(tmp_path).get("sent", 0) >= 4, "four messages sent")
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert first.returncode == -signal.SIGKILL
        assert len(server.delivered) == 4 and _status(tmp_path) == {"sent": 4, "pending": 6}

        second = _sender(config)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, err
        received = [r.message_id for r in server.delivered]
        assert received == ids  # each exactly once, in order
        assert all(code == 0 for _, _, code in server.requests)  # the restarted sender kept the rate limit
        assert _status(tmp_path) == {"sent": 10}
    finally:
        server.stop()


def test_a_sender_killed_with_a_request_in_flight_sends_it_again_with_the_same_id(tmp_path):
    server = RobotServer().start()
    server.hold_at = 3  # the third request reaches the server, which does not answer yet
    try:
        channel = {"type": "webhook", "url": server.webhook_url()}
        ids = _enqueue(tmp_path, channel, 6)
        config = _config(tmp_path, channel, claim_timeout_s=0.5)
        first = _sender(config)
        wait_for(server.holding.is_set, "the third request to arrive")
        first.send_signal(signal.SIGKILL)
        first.wait()
        server.release.set()  # the receiver got it; the dead sender never heard back
        wait_for(lambda: len(server.requests) == 3, "the held request to be recorded")
        assert _status(tmp_path) == {"sent": 2, "sending": 1, "pending": 3}

        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        [claimed] = [m for m in MessageQueue(store).messages() if m.status == "sending"]
        store.close()
        wait_for(lambda: dt.datetime.now(dt.timezone.utc) > claimed.claimed_at + dt.timedelta(seconds=0.5), "the claim to expire")

        second = _sender(config)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, err
        assert "1 resent after an interrupted send" in out
        assert [r.message_id for r in server.delivered] == ids  # deduplicated by the receiver: once each, in order
        assert server.seen_keys[ids[2]] == 2 and all(server.seen_keys[i] == 1 for i in ids if i != ids[2])
        assert _status(tmp_path) == {"sent": 6}
        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        codes = [a["code"] for a in MessageQueue(store).attempts(ids[2])]
        store.close()
        assert codes == ["interrupted", "HTTP 200"]
    finally:
        server.stop()


def test_a_sender_killed_during_a_send_and_restarted_counts_that_send_in_the_robots_rate_limit(tmp_path):
    """The request in flight reached the robot, but the dead sender recorded no outcome for it:
    the restarted sender must count the claimed message as a send, or its next one is the
    robot's fifth in the window (here 4 per 20 s; DingTalk's 21st of the minute) and the robot
    answers 130101 and throttles us for 10 minutes."""
    server = RobotServer(dingtalk={"tok-crash-rate": "SECrate"}, rate=4, window_s=20.0).start()
    server.hold_at = 4  # the fourth request reaches the robot, which answers only after the kill
    try:
        channel = {"type": "dingtalk", "url": server.dingtalk_url("tok-crash-rate"), "secret": "SECrate", "rate_limit": 4, "rate_window_s": 20.0}
        ids = _enqueue(tmp_path, channel, 6, groups=True)  # six managers: the others need not wait for the one in flight
        config = _config(tmp_path, channel)  # claim_timeout_s 120: the claim outlives the window
        first = _sender(config)
        wait_for(server.holding.is_set, "the fourth request to arrive")
        first.send_signal(signal.SIGKILL)
        first.wait()
        server.release.set()
        wait_for(lambda: len(server.delivered) == 4, "the robot to accept the held message")
        assert _status(tmp_path) == {"sent": 3, "sending": 1, "pending": 2}

        second = _sender(config)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, err
        assert [code for _, _, code in server.requests] == [0] * 6, server.requests  # never a 130101
        assert [r.message_id for r in server.delivered] == ids
        assert server.max_in_window("tok-crash-rate") <= 4
    finally:
        server.stop()


def test_a_sender_stopped_with_sigterm_during_a_send_records_that_send_and_no_robot_sees_it_twice(tmp_path):
    """SIGTERM (systemd, a timeout, a plain `kill`) used to end `outbox --send` at once like a
    kill -9: a DingTalk robot, which cannot deduplicate, showed the message in flight twice. Now
    the sender records the answer of the request in flight, stops and says so; the next sender
    sends only what was left."""
    server = RobotServer(dingtalk={"tok-term": "SECterm"}, rate=10_000).start()
    server.hold_at = 3  # the third request reaches the robot, which does not answer yet
    try:
        channel = {"type": "dingtalk", "url": server.dingtalk_url("tok-term"), "secret": "SECterm", "rate_limit": 10_000}
        ids = _enqueue(tmp_path, channel, 6, groups=True)
        config = _config(tmp_path, channel, claim_timeout_s=0.5)
        first = _sender(config)
        wait_for(server.holding.is_set, "the third request to arrive")
        first.send_signal(signal.SIGTERM)
        server.release.set()  # the robot answers after the signal: the sender must wait for it
        out, err = first.communicate(timeout=300)
        assert first.returncode == 128 + signal.SIGTERM, err
        assert "stopped by SIGTERM" in err and "2 sent" not in out and "3 sent" in out
        assert _status(tmp_path) == {"sent": 3, "pending": 3}  # the one in flight is recorded sent

        second = _sender(config)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, err
        assert "resent" not in out
        assert [r.message_id for r in server.delivered] == ids  # a robot shows each once
        assert _status(tmp_path) == {"sent": 6}
    finally:
        server.stop()
