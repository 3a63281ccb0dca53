"""How often does a sender killed during sends deliver a message twice? (README: at least once.)

    .venv/bin/python bench/duplicates.py --kills 20                    # SIGKILL, sending flat out
    .venv/bin/python bench/duplicates.py --kills 20 --per-second 5     # SIGKILL, paced by a rate limit
    .venv/bin/python bench/duplicates.py --kills 20 --signal TERM      # a plain `kill` / systemd stop

Each trial queues ``--messages`` DingTalk messages (each its own group, the robot's rate limit
out of the way), starts ``forecaster outbox --send`` against the robot server of the tests on
127.0.0.1, kills it with SIGKILL at a random moment while it sends (uniform over the first
``--window-s`` after the robot got its first request), starts it again and lets it finish. A
robot cannot deduplicate, so a message it received twice is a duplicate: the kill landed
between the robot's answer and the settling write, or while the request was in flight. Prints
the duplicates per kill and in all. (The webhook's ``Idempotency-Key`` lets a receiver drop
them; a robot shows them.) ``--signal TERM`` sends SIGTERM instead, which the sender answers by
recording the request in flight before it stops. ``--per-second`` paces the robot as its rate limit
does (DingTalk allows 20 a minute, so a night's backlog is sent one message every 3 s): the kill
then mostly lands in a wait, as it would in production.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecaster.alerts.notifiers import make_notifier  # noqa: E402
from forecaster.alerts.outbox import enqueue  # noqa: E402
from forecaster.alerts.queue import MessageQueue, NewMessage  # noqa: E402
from forecaster.config import ChannelConfig  # noqa: E402
from forecaster.store import Store  # noqa: E402
from tests.robots import RobotServer  # noqa: E402

TOKEN, SECRET = "bench-dup-token", "SECbench-dup"


def _trial(root: Path, messages: int, window_s: float, rng: random.Random, sig: signal.Signals, per_second: int) -> tuple[int, int]:
    """One kill: (duplicates, messages the robot got) once the restarted sender is done."""
    server = RobotServer(dingtalk={TOKEN: SECRET}, rate=per_second or 10_000, window_s=1.0).start()
    try:
        channel = {"type": "dingtalk", "url": server.dingtalk_url(TOKEN), "secret": SECRET, "rate_limit": per_second or 10_000,
                   "rate_window_s": 1.0}
        url = f"sqlite:///{root / 'store.db'}"
        config = root / "config.yaml"
        config.write_text(yaml.safe_dump({
            "store": {"url": url},
            "alerts": {"channels": {"robot": channel}, "routes": [{"name": "华北", "channels": ["robot"]}],
                       "delivery": {"claim_timeout_s": 0.1, "wait_s": 60}},
        }, allow_unicode=True), encoding="utf-8")
        store = Store(url)
        notifier = make_notifier("robot", ChannelConfig(**channel))
        enqueue(store, [
            NewMessage(kind="alert", route="华北", channel="robot", manager=f"经理{i}", group_key=f"g{i}", part=1, parts=1,
                       title="物业预警", payload=notifier.build("物业预警", f"**物业预警** 第{i}条"))
            for i in range(messages)
        ], now=dt.datetime.now(dt.timezone.utc))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-m", "forecaster", "outbox", "--send", "--config", str(config)]
        first = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not server.requests and first.poll() is None:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, window_s))
        first.send_signal(sig)
        first.wait()
        time.sleep(0.2)  # past claim_timeout_s: the restarted sender requeues the claim
        subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        counts = MessageQueue(store).counts()
        store.close()
        if set(counts) != {"sent"}:
            raise SystemExit(f"not everything was sent: {counts}")
        received = Counter(r.message_id for r in server.delivered)
        return sum(n - 1 for n in received.values()), len(received)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--window-s", type=float, default=None,
                        help="kill within this long after the first request (default 0.3 s, or the whole sending time when paced)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--signal", choices=("KILL", "TERM"), default="KILL")
    parser.add_argument("--per-second", type=int, default=0, help="the robot's rate limit per second (0: none)")
    args = parser.parse_args(argv)
    sig = signal.Signals[f"SIG{args.signal}"]
    window_s = args.window_s if args.window_s is not None else (args.messages / args.per_second if args.per_second else 0.3)
    rng = random.Random(args.seed)
    total = 0
    for k in range(args.kills):
        with tempfile.TemporaryDirectory() as tmp:
            duplicates, got = _trial(Path(tmp), args.messages, window_s, rng, sig, args.per_second)
        total += duplicates
        print(f"kill {k + 1:>3}: {duplicates} duplicate(s), {got} of {args.messages} messages received")
    pace = f", paced at {args.per_second}/s" if args.per_second else ", sending flat out"
    print(f"SIG{args.signal}{pace}: {total} duplicate(s) in {args.kills} kills ({total / args.kills:.2f} per kill)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
