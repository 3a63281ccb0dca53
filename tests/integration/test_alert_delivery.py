"""Alert delivery against a real HTTP server on 127.0.0.1 that checks signatures, timestamps,
sizes and rate limits like the platforms do (tests/robots.py). The sender and the server share
one `FixedClock`, moved by the sender's sleeps, so waiting a minute for a rate limit takes no
time and nothing depends on the wall clock."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from forecaster.alerts.notify import queue_alerts, send_pending
from forecaster.alerts.queue import MessageQueue
from forecaster.alerts.silences import Silences
from forecaster.cli import main
from forecaster.config import parse_config
from forecaster.detect import Finding
from forecaster.store import Store
from forecaster.summary import format_delivery
from forecaster.util.clock import FixedClock
from forecaster.util.secret import RedactingFilter
from tests.conftest import make_finding
from tests.robots import RobotServer

AS_OF = dt.date(2026, 1, 21)
START = dt.datetime(2026, 1, 20, 18, 0, tzinfo=dt.timezone.utc)  # 02:00 in Shanghai

DT_TOKEN, DT_SECRET = "dt-token-7f3a9c", "SECdingtalk-secret-51b2"
WC_KEY = "wecom-key-0d4e88"
FS_HOOK, FS_SECRET = "feishu-hook-93ab", "feishu-secret-c2e1"
WH_SECRET = "webhook-secret-6a0f"
SECRETS = (DT_TOKEN, DT_SECRET, WC_KEY, FS_HOOK, FS_SECRET, WH_SECRET)


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def server(clock):
    srv = RobotServer(
        dingtalk={DT_TOKEN: DT_SECRET, "other-token": None},
        wecom={WC_KEY},
        feishu={FS_HOOK: FS_SECRET},
        webhook_secret=WH_SECRET,
        keywords={DT_TOKEN: "预警"},
        now=lambda: clock.now().timestamp(),
    ).start()
    yield srv
    srv.stop()


def alerts_config(server: RobotServer, tmp_path, **alerts) -> "Config":  # noqa: F821
    channels = {
        "dt": {"type": "dingtalk", "url": server.dingtalk_url(DT_TOKEN), "secret": DT_SECRET, "keyword": "预警"},
        "wc": {"type": "wecom", "url": server.wecom_url(WC_KEY)},
        "fs": {"type": "feishu", "url": server.feishu_url(FS_HOOK), "secret": FS_SECRET},
        "wh": {"type": "webhook", "url": server.webhook_url(), "secret": WH_SECRET},
    }
    data = {
        "channels": channels,
        "routes": [{"name": "华北", "channels": ["dt", "wc", "fs", "wh"]}],
        "report_base_url": "https://intranet.example.com/wuye",
    }
    data.update(alerts)
    return parse_config({"store": {"url": f"sqlite:///{tmp_path / 'store.db'}"}, "alerts": data})


def communities(n: int, managers: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "community_id": [f"C{i:03d}" for i in range(n)],
            "name": [f"阳光花园{i}期" for i in range(n)],
            "city": "北京",
            "region": "华北",
            "manager": [f"经理{i % managers}" for i in range(n)],
            "manager_mobile": [f"1380000{i % managers:04d}" for i in range(n)],
        }
    )


def findings(n: int, n_communities: int) -> list[Finding]:
    out = []
    for i in range(n):
        first = dt.date(2026, 2, 1) + dt.timedelta(days=i % 12)
        metric = ("satisfaction", "ticket_count", "complaint_count")[i % 3]
        out.append(
            make_finding(
                community_id=f"C{i % n_communities:03d}", metric=metric, first_day=first, days=6,
                peak_day=first + dt.timedelta(days=2), depth=0.12, probability=0.6 + (i % 5) / 20,
                severity=("提醒", "警告", "严重")[i % 3], finding_id=f"f{i:03d}",
            )
        )
    return out


def queue(config, store, found, comms, clock, run_id="run1"):
    return queue_alerts(
        config, store, run_id=run_id, as_of=AS_OF, findings=found, communities=comms,
        forecast_series={(f.community_id, f.metric) for f in found} | {(c, m) for c in comms["community_id"] for m in ("satisfaction", "ticket_count", "complaint_count")},
        now=clock.now(),
    )


def drain(config, store, clock, max_wait_s=3600.0):
    with requests.Session() as session:
        return send_pending(config, store, session=session, clock=clock, max_wait_s=max_wait_s, sleep=clock.advance)


def test_sixty_findings_for_one_manager_arrive_complete_in_order_signed_and_within_limits(server, clock, tmp_path):
    config = alerts_config(server, tmp_path)
    store = Store(config.store.url.get())
    found = findings(60, 20)
    report = queue(config, store, found, communities(20), clock)
    assert report.sent_reasons == {"new": 60} and report.groups == 1

    result = drain(config, store, clock)
    assert (result.failed, result.pending, result.retried) == (0, 0, 0)
    assert all(code in (0, 200) for _, _, code in server.requests), server.requests  # signatures, keyword, sizes ok
    order = [f.finding_id for f in sorted(found, key=lambda f: (-("提醒", "警告", "严重").index(f.severity), f.first_day, -f.probability, f.community_id))]
    for platform in ("dingtalk", "wecom", "feishu", "webhook"):
        got = [r for r in server.delivered if r.platform == platform]
        ids = [fid for r in got for fid in _ids_of(r, store)]
        assert ids == order, platform  # every finding once, most severe first, parts in order
        assert server.max_in_window(got[0].robot) <= 20
    dingtalk = [r for r in server.delivered if r.platform == "dingtalk"]
    assert len(dingtalk) == 8 and "@13800000000" in dingtalk[0].text() and dingtalk[0].payload["at"]["atMobiles"] == ["13800000000"]
    assert all(len(json.dumps(r.payload, ensure_ascii=False).encode()) <= 20_000 for r in dingtalk)
    assert "[查看报告与图表](https://intranet.example.com/wuye/2026-01-21/report.html)" in dingtalk[-1].text()
    wecom = [r for r in server.delivered if r.platform == "wecom"]
    assert wecom[-1].payload["msgtype"] == "text" and wecom[-1].payload["text"]["mentioned_mobile_list"] == ["13800000000"]
    assert MessageQueue(store).counts() == {"sent": 8 * 3 + 1 + 1}  # 8 parts × 3 robots, 1 webhook, 1 WeCom @


def _ids_of(receipt, store) -> list[str]:
    """The finding ids a received message carries, looked up by its message id in the outbox."""
    msg = MessageQueue(store).get(receipt.message_id)
    assert msg is not None and msg.status == "sent"
    return msg.finding_ids


def test_many_groups_wait_for_the_rate_limit_instead_of_being_throttled(server, clock, tmp_path):
    config = alerts_config(server, tmp_path, routes=[{"name": "华北", "channels": ["dt"]}])
    store = Store(config.store.url.get())
    queue(config, store, findings(45, 45), communities(45, managers=45), clock)
    result = drain(config, store, clock)
    assert result.delivered == 45 and result.pending == 0
    assert [c for _, _, c in server.requests] == [0] * 45  # never a 130101
    assert server.max_in_window(DT_TOKEN) == 20
    assert clock.now() - START >= dt.timedelta(seconds=120)  # it waited two windows
    assert len({r.message_id for r in server.delivered}) == 45


def test_a_throttled_robot_is_left_alone_for_ten_minutes_then_finished(server, clock, tmp_path):
    config = alerts_config(server, tmp_path, routes=[{"name": "华北", "channels": ["dt"]}])
    fast = config.alerts.channels["dt"].model_copy(update={"rate_limit": 100})  # wrong: faster than the robot allows
    config = config.model_copy(update={"alerts": config.alerts.model_copy(update={"channels": {"dt": fast}})})
    store = Store(config.store.url.get())
    queue(config, store, findings(30, 30), communities(30, managers=30), clock)
    result = drain(config, store, clock, max_wait_s=3600)
    codes = [c for _, _, c in server.requests]
    assert codes.count(130101) == 1  # one refusal, then we waited out the throttle
    assert result.delivered == 30 and len({r.message_id for r in server.delivered}) == 30
    assert clock.now() - START >= dt.timedelta(minutes=10)


def test_webhook_down_for_an_hour_then_everything_is_delivered(server, clock, tmp_path):
    config = alerts_config(server, tmp_path, routes=[{"name": "华北", "channels": ["wh"]}])
    store = Store(config.store.url.get())
    queue(config, store, findings(30, 10), communities(10, managers=3), clock)
    port = server.port
    server.stop()  # connection refused
    minute = 0
    reports = []
    while minute < 150:
        if minute == 30:
            server.port = port
            server.start()
            server.script.extend([502] * 1000)  # up, but its backend is not
        if minute == 60:
            server.script.clear()
        reports.append(drain(config, store, clock, max_wait_s=0))  # the service drains every minute
        clock.advance(60)
        minute += 1
    assert sum(r.delivered for r in reports) == 3 and sum(r.failed for r in reports) == 0
    assert len(server.delivered) == 3 and sum(len(r.payload["findings"]) for r in server.delivered) == 30
    outbox = MessageQueue(store)
    attempts = [a for m in outbox.messages() for a in outbox.attempts(m.message_id)]
    assert {"connection", "HTTP 502"} <= {a["code"] for a in attempts}
    assert any(a["detail"] == "connection refused" for a in attempts)
    # Exponential backoff: a handful of attempts per message in the hour, not one a minute.
    first = outbox.messages()[-1]
    assert 4 <= len(outbox.attempts(first.message_id)) <= 10
    waiting = [r for r in reports[:30] if r.pending]
    assert any("connection refused" in w for r in waiting for w in r.waiting)


def test_a_bad_token_fails_once_with_the_platforms_words_and_shows_in_the_outbox(server, clock, tmp_path, capsys):
    config = alerts_config(server, tmp_path, channels={"dt": {"type": "dingtalk", "url": server.dingtalk_url("wrong-token-1234")}},
                           routes=[{"name": "华北", "channels": ["dt"]}])
    store = Store(config.store.url.get())
    queue(config, store, findings(3, 3), communities(3), clock)
    result = drain(config, store, clock)
    assert (result.delivered, result.failed) == (0, 1)
    assert "300001" in format_delivery(result) and "token is not exist" in format_delivery(result)
    again = drain(config, store, clock)
    assert again.attempted == 0 and len(server.requests) == 1  # not retried forever
    [msg] = MessageQueue(store).messages()
    assert msg.status == "failed" and msg.last_code == "300001" and "access_token is not valid" in msg.last_error

    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"store": {"url": config.store.url.get()}, "alerts": {"channels": {"dt": {"type": "dingtalk", "url": server.dingtalk_url("wrong-token-1234")}}, "routes": [{"name": "华北", "channels": ["dt"]}]}}), encoding="utf-8")
    assert main(["outbox", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "failed 1" in out and "300001" in out and "wrong-token-1234" not in out
    # Tomorrow the finding is not taken as told: it is queued again.
    report = queue(config, store, findings(3, 3), communities(3), clock, run_id="run2")
    assert report.sent_reasons == {"unsent": 3}


def test_the_same_findings_tomorrow_are_not_sent_again_but_changes_and_all_clears_are(server, clock, tmp_path):
    config = alerts_config(server, tmp_path, routes=[{"name": "华北", "channels": ["wh"]}])
    store = Store(config.store.url.get())
    comms = communities(6)
    first = findings(6, 6)
    queue(config, store, first, comms, clock)
    drain(config, store, clock)
    clock.advance(86400)
    second = [f for f in first if f.finding_id != "f005"]  # f005's dip is gone
    second[0] = Finding(**{**second[0].__dict__, "severity": "严重"}) if second[0].severity != "严重" else second[0]
    report = queue(config, store, second, comms, clock, run_id="run2")
    assert report.held_reasons["duplicate"] == 4
    assert report.sent_reasons == {"worse": 1, "resolved": 1}
    drain(config, store, clock)
    last = server.delivered[-1].payload["findings"]
    assert {(f["finding_id"], f["reason"]) for f in last} == {("f000", "worse"), ("f005", "resolved")}
    assert "✅ 解除" in server.delivered[-1].payload["text"]


def test_silenced_communities_and_quiet_hours(server, clock, tmp_path):
    config = alerts_config(server, tmp_path, routes=[{"name": "华北", "channels": ["wh"], "quiet_hours": "22:00-07:30"}])
    store = Store(config.store.url.get())
    Silences(store).add(ends_at=clock.now() + dt.timedelta(days=2), reason="外墙施工", now=clock.now(), community_id="C001")
    report = queue(config, store, findings(4, 4), communities(4), clock)
    assert report.held_reasons == {"silenced": 1} and report.sent_reasons == {"new": 3}
    result = drain(config, store, clock, max_wait_s=60)  # 02:00: quiet until 07:30
    assert result.delivered == 0 and result.pending == 1 and any("quiet hours until 07:30" in w for w in result.waiting)
    result = drain(config, store, clock, max_wait_s=6 * 3600)
    assert result.delivered == 1
    assert clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%H:%M") == "07:30"
    assert "C001" not in {f["community_id"] for f in server.delivered[0].payload["findings"]}


def test_tokens_and_secrets_never_reach_logs_errors_or_the_store(server, clock, tmp_path, caplog):
    caplog.handler.addFilter(RedactingFilter())
    caplog.set_level(logging.DEBUG)  # urllib3 logs request lines, token included, at DEBUG
    config = alerts_config(server, tmp_path)
    store = Store(config.store.url.get())
    queue(config, store, findings(5, 5), communities(5), clock)
    port = server.port
    server.stop()
    down = drain(config, store, clock, max_wait_s=0)  # connection errors carry the URL
    server.port = port
    server.start()
    clock.advance(3600)
    up = drain(config, store, clock)
    assert up.delivered >= 4
    bad = alerts_config(server, tmp_path, channels={"dt": {"type": "dingtalk", "url": server.dingtalk_url(DT_TOKEN), "secret": "SECwrong-secret-99"}},
                        routes=[{"name": "华北-钉钉", "channels": ["dt"]}])
    queue(bad, store, findings(2, 2), communities(2), clock, run_id="run2")
    failed = drain(bad, store, clock)
    assert failed.failed == 1
    assert "urllib3" in caplog.text or "Starting new HTTP connection" in caplog.text
    dumped = []
    with store.engine.connect() as conn:
        meta = sa.MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            dumped += [repr(tuple(row)) for row in conn.execute(sa.select(table))]
    from forecaster.config import describe_config

    texts = [caplog.text, "\n".join(dumped), format_delivery(down), format_delivery(up), format_delivery(failed), describe_config(config)]
    for secret in (*SECRETS, "SECwrong-secret-99"):
        for text in texts:
            assert secret not in text


def test_four_channels_failing_four_ways_are_each_reported_and_the_exit_status_is_the_real_one(server, clock, tmp_path):
    from forecaster.pipeline import RunResult
    from forecaster.summary import format_run_summary, run_exit_code

    config = alerts_config(server, tmp_path, channels={
        "dt": {"type": "dingtalk", "url": server.dingtalk_url(DT_TOKEN), "secret": "SECwrong-secret-42"},
        "wc": {"type": "wecom", "url": server.wecom_url("wecom-key-revoked")},
        "fs": {"type": "feishu", "url": server.feishu_url(FS_HOOK), "secret": "feishu-wrong-secret"},
        "wh": {"type": "webhook", "url": server.webhook_url(), "secret": "webhook-wrong-secret"},
    }, routes=[{"name": f"路线{c}", "channels": [c]} for c in ("dt", "wc", "fs", "wh")])
    store = Store(config.store.url.get())
    queue(config, store, findings(6, 6), communities(6, managers=3), clock)  # three groups per channel
    report = drain(config, store, clock)
    assert report.failed >= 12
    text = format_delivery(report)
    for channel, code in (("dt", "310000"), ("wc", "93000"), ("fs", "19021"), ("wh", "HTTP 401")):
        [line] = [line for line in text.splitlines() if f"failed: {channel}: " in line]
        assert code in line and " messages)" in line, text  # each channel once, with how many of its messages
    result = RunResult(run_id="0123456789abcdef", as_of=AS_OF, status="ok", exit_code=0)
    assert run_exit_code(result, report) == 1
    summary = format_run_summary(result, timezone="Asia/Shanghai", delivery=report)
    assert summary.splitlines()[-1].endswith("(exit 1)") and "(exit 0)" not in summary, summary
