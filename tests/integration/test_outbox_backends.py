"""The outbox, the routes' memory and silences behave the same on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import requests

from forecaster.alerts.notify import queue_alerts, send_pending
from forecaster.alerts.queue import MessageQueue
from forecaster.alerts.silences import Silences
from forecaster.config import parse_config
from forecaster.store import Store
from forecaster.util.clock import FixedClock
from tests.conftest import make_finding
from tests.robots import RobotServer

START = dt.datetime(2026, 1, 20, 18, 0, 0, 250_000, tzinfo=dt.timezone.utc)


def test_queue_send_dedup_and_silence_on_each_backend(db_url):
    clock = FixedClock(START)
    server = RobotServer(dingtalk={"tok-backend-01": "SECbackend"}, rate=3, window_s=60, now=lambda: clock.now().timestamp()).start()
    try:
        config = parse_config(
            {
                "store": {"url": db_url},
                "alerts": {
                    "channels": {"dt": {"type": "dingtalk", "url": server.dingtalk_url("tok-backend-01"), "secret": "SECbackend"}},
                    "routes": [{"name": "华北", "channels": ["dt"]}],
                },
            }
        )
        store = Store(db_url)
        comms = pd.DataFrame({"community_id": ["C1", "C2", "C3", "C4"], "name": ["甲", "乙", "丙", "丁"], "manager": ["王", "李", "赵", "孙"]})
        found = [
            make_finding(community_id=c, first_day=dt.date(2026, 2, 5), peak_day=dt.date(2026, 2, 7), finding_id=f"id-{c}")
            for c in ("C1", "C2", "C3", "C4")
        ]
        outbox, silences = MessageQueue(store), Silences(store)
        silences.add(ends_at=START + dt.timedelta(days=1), reason="维修中，已知", now=START, community_id="C4")
        series = {(c, "satisfaction") for c in ("C1", "C2", "C3", "C4")}
        report = queue_alerts(config, store, run_id="r1", as_of=dt.date(2026, 1, 21), findings=found, communities=comms, forecast_series=series, now=clock.now())
        assert report.sent_reasons == {"new": 3} and report.held_reasons == {"silenced": 1}
        with requests.Session() as session:
            result = send_pending(config, store, session=session, clock=clock, max_wait_s=600, sleep=clock.advance)
        assert result.delivered == 3 and [c for _, _, c in server.requests] == [0, 0, 0]
        assert outbox.counts() == {"sent": 3}
        clock.advance(86400)
        again = queue_alerts(config, store, run_id="r2", as_of=dt.date(2026, 1, 22), findings=found[:2], communities=comms, forecast_series=series, now=clock.now())
        assert again.held_reasons["duplicate"] == 2 and again.sent_reasons == {"resolved": 1}
        assert {m.finding_ids[0] for m in outbox.messages(run_id="r2")} == {"id-C3"}
        assert [s.reason for s in silences.list(clock.now(), include_ended=True)] == ["维修中，已知"]
        assert silences.list(clock.now()) == []  # ended
        msg = outbox.messages(run_id="r1")[0]
        assert msg.created_at == START  # sub-second times survive (rate windows depend on them)
        store.close()
    finally:
        server.stop()
