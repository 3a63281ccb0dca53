"""The alert commands end to end: run → outbox → robot server; notify-test; silence; retry."""

from __future__ import annotations

import pytest

from forecaster.alerts.queue import MessageQueue
from forecaster.cli import main
from forecaster.store import Store
from tests.conftest import write_config
from tests.robots import RobotServer

TOKEN, SECRET, BAD = "cli-token-4a1b2c", "SECcli-secret-77", "cli-wrong-token-9z"


@pytest.fixture
def server():
    srv = RobotServer(dingtalk={TOKEN: SECRET}, wecom={"cli-wecom-key-31"}).start()
    yield srv
    srv.stop()


def config(tmp_path, server, token=TOKEN, **extra):
    data = {
        "demo": {"communities": 8, "years": 0.6, "seed": 5},
        "forecast": {"model": "naive"},
        "alerts": {
            "channels": {
                "north": {"type": "dingtalk", "url": server.dingtalk_url(token), "secret": SECRET},
                "south": {"type": "wecom", "url": server.wecom_url("cli-wecom-key-31")},
            },
            "routes": [{"name": "北方", "regions": ["华北", "东北"], "channels": ["north"]}],
            "default_channels": ["south"],
            "report_base_url": "https://intranet.example.com/wuye",
            **extra,
        },
    }
    write_config(tmp_path, data)
    return str(tmp_path / "config.yaml")


def test_run_sends_each_managers_alerts_and_a_second_run_sends_nothing_new(tmp_path, server, capsys):
    cfg = config(tmp_path, server)
    assert main(["demo", "--config", cfg, "--as-of", "2026-11-23"]) == 0
    assert main(["run", "--config", cfg, "--as-of", "2026-11-23"]) == 0
    out = capsys.readouterr().out
    assert "alerts     " in out and "delivery   " in out and "failed" not in out.split("delivery")[1].split("\n")[0]
    assert server.delivered, "the demo has findings; some must reach the robots"
    platforms = {r.platform for r in server.delivered}
    assert platforms <= {"dingtalk", "wecom"}
    for r in server.delivered:
        if r.payload.get("msgtype") == "markdown" and r.platform == "dingtalk":
            assert "https://intranet.example.com/wuye/2026-11-23/report.html" in r.text()
    first = len(server.delivered)
    assert main(["run", "--config", cfg, "--as-of", "2026-11-23"]) == 0
    out = capsys.readouterr().out
    assert "already sent" in out and len(server.delivered) == first
    assert TOKEN not in out and SECRET not in out
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8-sig")
            assert TOKEN not in text and SECRET not in text, path


def test_a_bad_token_makes_run_exit_1_and_outbox_shows_why_until_fixed_and_retried(tmp_path, server, capsys):
    cfg = config(tmp_path, server, token=BAD)
    main(["demo", "--config", cfg, "--as-of", "2026-11-23"])
    code = main(["run", "--config", cfg, "--as-of", "2026-11-23"])
    out = capsys.readouterr().out
    assert code == 1
    assert "failed: north: 300001 token is not exist" in out and BAD not in out
    assert main(["outbox", "--config", cfg, "--status", "failed"]) == 1
    listing = capsys.readouterr().out
    assert "300001" in listing and BAD not in listing
    store = Store(f"sqlite:///{tmp_path / 'data' / 'forecaster.db'}")
    failed = MessageQueue(store).messages(status="failed")
    store.close()
    assert main(["outbox", "--config", cfg, "--show", failed[0].message_id[:10]]) == 0
    shown = capsys.readouterr().out
    assert "物业预警" in shown and "attempt" in shown and "failed" in shown
    # The token is fixed; failed messages go out again.
    cfg = config(tmp_path, server)
    assert main(["outbox", "--config", cfg, "--retry-failed", "--send"]) == 0
    out = capsys.readouterr().out
    assert f"{len(failed)} failed message(s) back in the queue" in out and f"{len(failed)} sent" in out
    assert sum(r.platform == "dingtalk" for r in server.delivered) == len(failed)


def test_notify_test_reports_each_platforms_answer(tmp_path, server, capsys):
    cfg = config(tmp_path, server)
    assert main(["notify-test", "--config", cfg, "--route", "北方"]) == 0
    assert "北方 → north (dingtalk): delivered" in capsys.readouterr().out
    assert "测试消息" in server.delivered[-1].text()
    bad = config(tmp_path, server, token=BAD)
    assert main(["notify-test", "--config", bad, "--route", "北方"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 300001 token is not exist" in out and BAD not in out
    assert main(["notify-test", "--config", bad, "--route", "西部"]) == 2
    assert "no route named '西部'" in capsys.readouterr().err


def test_silence_add_list_remove(tmp_path, server, capsys):
    cfg = config(tmp_path, server)
    assert main(["silence", "add", "--config", cfg, "--community", "C003", "--for", "3d", "--reason", "外墙施工"]) == 0
    assert "silence 1 added until" in capsys.readouterr().out
    assert main(["silence", "add", "--config", cfg, "--route", "北方", "--metric", "complaint_count", "--until", "2099-12-31", "--reason", "x"]) == 0
    assert "until 2100-01-01 00:00" in capsys.readouterr().out
    assert main(["silence", "list", "--config", cfg]) == 0
    listing = capsys.readouterr().out
    assert "community=C003" in listing and "外墙施工" in listing and "metric=complaint_count route=北方" in listing
    assert main(["silence", "remove", "--config", cfg, "1"]) == 0
    main(["silence", "list", "--config", cfg])
    assert "C003" not in capsys.readouterr().out
    assert main(["silence", "add", "--config", cfg, "--route", "nope", "--for", "1d", "--reason", "x"]) == 2
    assert main(["silence", "add", "--config", cfg, "--for", "3 weeks", "--reason", "x"]) == 2
    assert "use a number and h, d or w" in capsys.readouterr().err


def test_a_silence_names_what_exists_and_everything_must_be_asked_for(tmp_path, server, capsys):
    """`silence add --for 3d` with no target silenced every alert without asking; an unknown
    community was accepted; --for 99999999d raised OverflowError."""
    cfg = config(tmp_path, server)
    assert main(["demo", "--config", cfg, "--as-of", "2026-11-23"]) == 0
    assert main(["run", "--config", cfg, "--as-of", "2026-11-23", "--no-send"]) in (0, 1)
    capsys.readouterr()
    assert main(["silence", "add", "--config", cfg, "--for", "3d", "--reason", "x"]) == 2
    assert "pass --everything to pause every alert" in capsys.readouterr().err
    assert main(["silence", "add", "--config", cfg, "--community", "NOPE", "--for", "3d", "--reason", "x"]) == 2
    assert "--community 'NOPE': the last run saw no such community (8 known: C001" in capsys.readouterr().err
    assert main(["silence", "add", "--config", cfg, "--for", "99999999d", "--community", "C003", "--reason", "x"]) == 2
    assert "too long; give an end date with --until" in capsys.readouterr().err
    assert main(["silence", "add", "--config", cfg, "--community", "C003", "--for", "3d", "--reason", "施工"]) == 0
    assert main(["silence", "add", "--config", cfg, "--everything", "--for", "2h", "--reason", "系统升级"]) == 0
    capsys.readouterr()
    assert main(["silence", "list", "--config", cfg]) == 0
    listing = capsys.readouterr().out
    assert "community=C003" in listing and "everything  — 系统升级" in listing
