"""The scheduled service with a real APScheduler, real databases and real processes.

Nothing here asserts on elapsed time: tests wait for states in the store (a run recorded, a
message sent) with a generous limit that only stops a hung test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from forecaster.alerts.queue import MessageQueue
from forecaster.demo import make_demo_frames, write_demo_sql
from forecaster.store import Store, job_slots
from forecaster.util.clock import FixedClock, SystemClock, today_in
from jobs.service import Service, last_due
from tests.conftest import wait_for, write_config
from tests.robots import RobotServer

REPO = Path(__file__).resolve().parents[2]
ALIGNED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)  # interval triggers of every instance tick together


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("service-demo")
    today = today_in(SystemClock(), "Asia/Shanghai")
    url = f"sqlite:///{root / 'demo.db'}"
    write_demo_sql(url, make_demo_frames(today, communities=6, years=0.5, seed=11), seed=11)
    return url


@pytest.fixture
def server():
    srv = RobotServer().start()
    yield srv
    srv.stop()


def service_config(tmp_path: Path, demo_db: str, server: RobotServer, store_url: str | None = None, **extra) -> Path:
    data = {
        "source": {"sql": {"url": demo_db}},
        "metrics": {"enabled": ["satisfaction", "ticket_count"]},
        "forecast": {"model": "naive", "horizon": 30},
        "thresholds": {"defaults": {"satisfaction": {"below": 99.5}}},  # every community has something to say
        "engine": {"backend": "serial"},
        "store": {"url": store_url or f"sqlite:///{tmp_path / 'store.db'}"},
        "alerts": {
            "channels": {"hook": {"type": "webhook", "url": server.webhook_url()}},
            "routes": [{"name": "全部", "channels": ["hook"]}],
            "ops_route": "全部",
        },
        "schedule": {"lease_s": 10},
    }
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return write_config(tmp_path, data)


def runs_of(store_url: str) -> list:
    store = Store(store_url)
    try:
        return store.last_runs(100)
    finally:
        store.close()


def outbox_of(store_url: str) -> list[tuple]:
    """The outbox as (kind, channel, status, claimed_by, attempts, last_code, next_attempt_at) rows."""
    from forecaster.alerts.tables import alert_messages as m

    store = Store(store_url)
    try:
        with store.engine.connect() as conn:
            cols = [m.c.kind, m.c.channel, m.c.status, m.c.claimed_by, m.c.attempts, m.c.last_code, m.c.next_attempt_at]
            return [tuple(r) for r in conn.execute(sa.select(*cols).order_by(m.c.id))]
    finally:
        store.close()


def slots_of(store_url: str) -> list[dict]:
    store = Store(store_url)
    try:
        with store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(job_slots).where(job_slots.c.job == "nightly")).mappings()]
    finally:
        store.close()


def test_the_service_runs_the_cycle_records_it_and_drains_the_outbox(tmp_path, demo_db, server):
    cfg = service_config(tmp_path, demo_db, server, schedule={"metrics_port": 0})
    svc = Service(
        cfg,
        instance="one",
        nightly_trigger=IntervalTrigger(seconds=3, start_date=ALIGNED),
        outbox_trigger=IntervalTrigger(seconds=1, start_date=ALIGNED),
    )
    store_url = svc.config.store.url.get()
    svc.start()
    try:
        wait_for(lambda: any(r.status == "ok" for r in runs_of(store_url)), "a nightly run")
        wait_for(lambda: len(server.delivered) > 0, "alerts at the webhook")
        port = svc.metrics_server.server_address[1]
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").read())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    finally:
        svc.stop()
    run = next(r for r in runs_of(store_url) if r.status == "ok")
    assert run.trigger == "schedule" and run.summary["alerts"]["messages"] > 0
    slots = slots_of(store_url)
    assert run.run_id in {s["run_id"] for s in slots}
    assert all(s["status"] != "running" for s in slots)  # a clean stop leaves nothing half-done
    assert health["status"] == "ok" and health["last_run"]["status"] in ("ok", "running")
    assert 'wuye_last_run_ok{status="ok"} 1.0' in metrics and "wuye_outbox_messages" in metrics
    findings = [f for r in server.delivered for f in r.payload["findings"]]
    assert {f["community_id"] for f in findings} and all(f["metric"] == "satisfaction" for f in findings)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_services_on_one_database_run_each_due_time_once(tmp_path, demo_db, server, backend, request):
    if backend == "sqlite":
        store_url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        from tests.conftest import SERVICE_ENV, _scratch_database, require_service

        gen = _scratch_database(require_service(SERVICE_ENV["postgresql"], "postgresql"))
        store_url = next(gen)
        request.addfinalizer(lambda: next(gen, None))
    cfg = service_config(tmp_path, demo_db, server, store_url=store_url)
    services = [
        Service(cfg, instance=name, nightly_trigger=IntervalTrigger(seconds=2, start_date=ALIGNED),
                outbox_trigger=IntervalTrigger(seconds=1, start_date=ALIGNED))
        for name in ("east", "west")
    ]
    for svc in services:
        svc.start()
    try:
        wait_for(lambda: sum(s["status"] == "ok" for s in slots_of(store_url)) >= 3, "three nightly due times done")
    finally:
        for svc in services:
            svc.stop()
    slots = [s for s in slots_of(store_url) if s["status"] != "missed"]
    runs = runs_of(store_url)
    assert len(runs) == len(slots)  # no run without its claim, no due time run twice
    assert sorted(r.run_id for r in runs) == sorted(s["run_id"] for s in slots)
    ids = [r.message_id for r in server.delivered]
    assert len(ids) == len(set(ids))  # no message sent twice by the two senders


def test_two_instances_firing_at_the_same_moment_run_once(tmp_path, demo_db, server):
    cfg = service_config(tmp_path, demo_db, server)
    trigger = CronTrigger.from_crontab("0 2 * * *", timezone="Asia/Shanghai")
    a = Service(cfg, instance="a", nightly_trigger=trigger)
    b = Service(cfg, instance="b", nightly_trigger=trigger)
    barrier = threading.Barrier(2)

    def fire(svc):
        barrier.wait()
        svc.nightly()

    threads = [threading.Thread(target=fire, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store_url = a.config.store.url.get()
    assert len(runs_of(store_url)) == 1
    [slot] = slots_of(store_url)
    assert slot["holder"].split(":")[0] in ("a", "b") and slot["trigger"] in ("late", "schedule")
    for svc in (a, b):
        svc.store.close()


def test_a_missed_night_runs_once_at_start_up_and_is_recorded_late(tmp_path, demo_db, server):
    now = dt.datetime.now(dt.timezone.utc).astimezone(dt.timezone(dt.timedelta(hours=8)))
    earlier = now - dt.timedelta(hours=3)
    cron = f"{earlier.minute} {earlier.hour} * * *"  # daily, last due three hours ago
    cfg = service_config(tmp_path, demo_db, server, schedule={"nightly": cron, "misfire_grace_s": 5 * 86400})
    first = Service(cfg, instance="solo")
    store_url = first.config.store.url.get()
    first.start()
    first.scheduler.pause()
    # The service "was down" for three nights: its stored schedule says the next run was three days ago.
    first.scheduler.modify_job("nightly", next_run_time=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    first.stop()
    assert runs_of(store_url) == []

    second = Service(cfg, instance="solo")
    second.start()
    try:
        wait_for(lambda: any(r.status != "running" for r in runs_of(store_url)), "the missed night to run")
        nightly = second.scheduler.get_job("nightly")
        assert nightly.next_run_time > dt.datetime.now(dt.timezone.utc)  # nothing else is pending
    finally:
        second.stop()
    [run] = runs_of(store_url)  # once, not once per missed night
    assert run.trigger == "late" and run.status == "ok"


def test_a_failed_run_and_a_missed_night_alert_operations_once(tmp_path, demo_db, server):
    cfg = service_config(tmp_path, demo_db, server, source={"sql": {"url": f"sqlite:///{tmp_path / 'nope' / 'missing.db'}"}})
    trigger = CronTrigger.from_crontab("0 2 * * *", timezone="Asia/Shanghai")
    svc = Service(cfg, instance="ops", nightly_trigger=trigger)
    svc.nightly()  # the source is missing: the run fails
    svc.drain()
    texts = [r.payload["text"] for r in server.delivered]
    assert any("夜间预测" in t and "失败" in t for t in texts)
    # A night nobody ran: the watchdog says so once.
    svc.config = svc.config.model_copy(update={"schedule": svc.config.schedule.model_copy(update={"misfire_grace_s": 0})})
    # Due one and a half to two and a half hours ago, at half past: never the 02:00 Shanghai slot
    # the failed run above took (at minute 0 it was that slot from 20:00 to 21:00 UTC).
    past = CronTrigger.from_crontab(f"30 {(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)).hour} * * *", timezone="UTC")
    svc.nightly_trigger = past
    svc.watchdog()
    svc.watchdog()
    svc.drain()
    missed = [r for r in server.delivered if "未按时运行" in r.payload["text"]]
    assert len(missed) == 1
    store_url = svc.config.store.url.get()
    assert any(s["status"] == "missed" for s in slots_of(store_url))
    assert MessageQueue(svc.store).counts() == {"sent": len(server.delivered)}
    svc.store.close()


def _serve_script(cfg: Path, instance: str, nightly: str = "IntervalTrigger(seconds=2, start_date=aligned)", hold: Path | None = None) -> list[str]:
    """`serve` as a subprocess, stopped by SIGTERM: the nightly cycle on ``nightly`` (a trigger's
    Python text; ``aligned`` is 2026-01-01 UTC), the outbox and the watchdog every second. With
    ``hold``, a night waits before reading its source for as long as that file exists, so a test
    knows the night is running when it kills the process (instead of racing a night's length)."""
    code = (
        "import logging, signal, threading, time, datetime as dt, os\n"
        "from apscheduler.triggers.interval import IntervalTrigger\n"
        "from jobs.service import Service\n"
        "logging.basicConfig(level=logging.INFO)\n"
    )
    if hold is not None:
        code += (
            "import forecaster.pipeline as pipeline\n"
            "_read = pipeline.load_daily\n"
            "def held(*args, **kwargs):\n"
            f"    while os.path.exists({str(hold)!r}):\n"
            "        time.sleep(0.1)\n"
            "    return _read(*args, **kwargs)\n"
            "pipeline.load_daily = held\n"
        )
    code += (
        "aligned = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)\n"
        f"svc = Service({str(cfg)!r}, instance={instance!r},\n"
        f"    nightly_trigger={nightly},\n"
        "    outbox_trigger=IntervalTrigger(seconds=1, start_date=aligned),\n"
        "    watchdog_trigger=IntervalTrigger(seconds=1, start_date=aligned))\n"
        "stop = threading.Event()\n"
        "signal.signal(signal.SIGTERM, lambda *a: stop.set())\n"
        "svc.start()\n"
        "stop.wait()\n"
        "svc.stop()\n"
    )
    return [sys.executable, "-c", code]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_service_stopped_mid_run_and_restarted_leaves_a_consistent_store(tmp_path, demo_db, server, how):
    # The kill may also land while the outbox job has a message in flight: it is sent again once
    # its claim times out (at least once; the webhook's Idempotency-Key lets the receiver dedupe).
    cfg = service_config(tmp_path, demo_db, server, forecast={"model": "arima", "horizon": 30}, alerts={"delivery": {"claim_timeout_s": 2}})
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(_serve_script(cfg, "crashy"), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: any(r.status == "running" for r in runs_of(store_url)), "a run in progress")
    first.send_signal(getattr(signal, how))
    out, _ = first.communicate(timeout=180)
    if how == "SIGTERM":
        assert first.returncode == 0, out
        # A graceful stop: the run ended at its next checkpoint, or finished; never left running.
        assert all(r.status in ("interrupted", "ok") for r in runs_of(store_url)), out
    else:
        assert first.returncode == -signal.SIGKILL

    second = subprocess.Popen(_serve_script(cfg, "crashy"), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: all(r.status != "running" for r in runs_of(store_url)) and any(r.status == "ok" for r in runs_of(store_url)),
                 "the dead run recorded and a new run done")
        wait_for(lambda: set(outbox_counts(store_url)) == {"sent"}, "the outbox drained, nothing pending or in flight")
    finally:
        second.send_signal(signal.SIGTERM)
        out2, _ = second.communicate(timeout=180)
    assert second.returncode == 0, out2
    runs = runs_of(store_url)
    assert not [r for r in runs if r.status == "running"]
    if how == "SIGKILL":
        assert any(r.status == "interrupted" and "stopped during the run" in (r.error or "") for r in runs)
    assert all(s["status"] != "running" for s in slots_of(store_url))
    ids = [r.message_id for r in server.delivered]
    assert len(ids) == len(set(ids))  # nothing sent twice
    counts = outbox_counts(store_url)
    assert set(counts) <= {"sent", "pending"}  # none stuck in flight or failed; pending ones wait for the next start


def outbox_counts(store_url: str) -> dict[str, int]:
    store = Store(store_url)
    try:
        return MessageQueue(store).counts()
    finally:
        store.close()


def test_last_due_for_cron_and_interval_triggers():
    cron = CronTrigger.from_crontab("0 2 * * *", timezone="Asia/Shanghai")
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)  # 20:00 in Shanghai
    assert last_due(cron, now) == dt.datetime(2026, 11, 23, 2, 0, tzinfo=cron.timezone)
    interval = IntervalTrigger(seconds=7, start_date=ALIGNED)
    due = last_due(interval, now)
    assert due <= now < due + dt.timedelta(seconds=7) and (due - ALIGNED).total_seconds() % 7 == 0


def test_command_jobs_log_their_output_and_a_failure_alerts_operations(tmp_path, demo_db, server, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="forecaster.service")
    cfg = service_config(
        tmp_path, demo_db, server,
        schedule={"commands": [
            {"name": "export", "cron": "30 1 * * *", "argv": [sys.executable, "-c", "print('exported 120 rows')"]},
            {"name": "broken", "cron": "30 1 * * *", "argv": [sys.executable, "-c", "import sys; sys.exit(3)"]},
        ]},
    )
    svc = Service(cfg, instance="cmd")
    svc.command("export")
    svc.command("broken")
    svc.drain()
    assert "job export: exported 120 rows" in caplog.text and "job broken exited 3" in caplog.text
    assert [r.payload["text"] for r in server.delivered if "数据任务" in r.payload["text"]] == [
        "**物业预警服务 运维提醒**\n\n数据任务 broken 失败（退出码 3）\n\n实例：cmd"
    ]
    svc.store.close()


def test_status_shows_next_runs_last_runs_outbox_and_failing_series(tmp_path, demo_db, server, capsys):
    from forecaster.cli import main

    cfg = service_config(tmp_path, demo_db, server, schedule={"instance": "stat"})
    assert main(["status", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "instance stat (service not started yet)" in out and "nightly 20" in out and "outbox     empty" in out
    # The first night runs an hour after its due time (02:00 Shanghai), whatever the time of day
    # the test runs at: recorded as late (the real clock would make it on time for 5 minutes a day).
    due = last_due(CronTrigger.from_crontab("0 2 * * *", timezone="Asia/Shanghai"), SystemClock().now())
    svc = Service(cfg, clock=FixedClock(due + dt.timedelta(hours=1)))
    svc.nightly()
    svc.store.close()
    svc = Service(cfg)
    svc.start()
    svc.stop()
    assert main(["status", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "instance stat ·" in out and "late     ok" in out and "as of " in out, out
    assert "nightly    due" in out and ": ok on stat:" in out and "failing    none" in out
    assert "outbox     sent" in out or "outbox     pending" in out


def test_json_logs_are_one_object_per_line_with_secrets_masked(capsys):
    import logging

    from forecaster.util.logs import configure_logging
    from forecaster.util.secret import Secret

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    for h in list(root.handlers):
        root.removeHandler(h)
    try:
        configure_logging("json", "INFO")
        Secret("https://x/send?access_token=json-log-token-123", is_url=True)
        logging.getLogger("forecaster.service").info("sending to https://x/send?access_token=json-log-token-123 小区")
        err = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    entry = json.loads(err)
    assert entry["level"] == "INFO" and entry["logger"] == "forecaster.service"
    assert "json-log-token-123" not in err and "小区" in entry["message"]


def test_a_restarted_instance_takes_over_what_its_dead_predecessor_held_at_once(tmp_path, demo_db, server):
    from jobs.locks import acquire_lease, claim_slot

    cfg = service_config(tmp_path, demo_db, server)
    svc = Service(cfg, instance="east_1")
    now = dt.datetime.now(dt.timezone.utc)
    # A process of east_1 that was killed: its claims would last another hour.
    assert acquire_lease(svc.store, "outbox", "east_1:999:dead", now=now, ttl_s=3600)
    assert claim_slot(svc.store, "nightly", "2026-01-01T00:00:00+00:00", "east_1:999:dead", now=now, ttl_s=3600, trigger="schedule", run_id="").claimed
    # ... and another instance whose name only looks alike ('_' is a LIKE wildcard).
    assert acquire_lease(svc.store, "other", "eastX1:5:alive", now=now, ttl_s=3600)
    svc.start()
    try:
        assert acquire_lease(svc.store, "outbox", svc.holder, now=now, ttl_s=60)
        assert not acquire_lease(svc.store, "other", svc.holder, now=now, ttl_s=60)
        assert [s["status"] for s in slots_of(svc.config.store.url.get()) if s["slot"].startswith("2026-01-01")] == ["interrupted"]
    finally:
        svc.stop()


def test_jobs_stored_under_the_old_module_path_keep_their_next_run(tmp_path, demo_db, server):
    """A store written when the jobs lived in forecaster.jobs: its jobs are pointed at jobs.service
    instead of being dropped at start (with them, a night missed across the upgrade)."""
    import pickle

    from forecaster.store import jobs_table
    from jobs.service import upgrade_job_refs

    path = service_config(tmp_path, demo_db, server)
    first = Service(path, instance="upgrade", outbox_trigger=IntervalTrigger(hours=1, start_date=ALIGNED))
    first.start()
    due = first.scheduler.get_job("nightly").next_run_time
    first.stop()
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    table = sa.Table(jobs_table("upgrade"), sa.MetaData(), autoload_with=store.engine)
    with store.engine.begin() as conn:
        for job_id, blob in conn.execute(sa.select(table.c.id, table.c.job_state)).all():
            state = pickle.loads(blob)
            state["func"] = "forecaster.jobs.service:" + state["func"].split(":", 1)[1]
            conn.execute(table.update().where(table.c.id == job_id).values(job_state=pickle.dumps(state)))
    assert upgrade_job_refs(store.engine, jobs_table("upgrade")) == 3
    assert upgrade_job_refs(store.engine, jobs_table("upgrade")) == 0
    store.close()
    second = Service(path, instance="upgrade", outbox_trigger=IntervalTrigger(hours=1, start_date=ALIGNED))
    second.start()
    try:
        assert second.scheduler.get_job("nightly").next_run_time == due
    finally:
        second.stop()


def test_a_new_install_or_a_changed_schedule_reports_no_missed_night_it_was_never_due(tmp_path, demo_db, server):
    from forecaster.cli import main

    now = dt.datetime.now(dt.timezone.utc)
    two_hours_ago = now - dt.timedelta(hours=2)
    cron = f"{two_hours_ago.minute} {two_hours_ago.hour} * * *"  # due two hours ago, in UTC
    cfg = service_config(tmp_path, demo_db, server, timezone="UTC", schedule={"nightly": cron, "misfire_grace_s": 0, "instance": "fresh"})
    store_url = f"sqlite:///{tmp_path / 'store.db'}"

    def watch(service: Service) -> None:
        service.start()
        service.scheduler.pause()
        service.watchdog()
        service.drain()
        service.stop()

    watch(Service(cfg))  # an empty store: that night was due before this install existed
    three_hours_ago = now - dt.timedelta(hours=3)
    changed = service_config(tmp_path, demo_db, server, timezone="UTC",
                             schedule={"nightly": f"{three_hours_ago.minute} {three_hours_ago.hour} * * *", "misfire_grace_s": 0, "instance": "fresh"})
    watch(Service(changed))  # the cron changed: its last due time was never this schedule's
    assert [s for s in slots_of(store_url) if s["status"] == "missed"] == []
    assert not [r for r in server.delivered if "未按时运行" in r.payload["text"]]
    assert main(["status", "--config", str(changed)]) == 0

    # A night due after the schedule took effect and never run is still said, once.
    later = Service(changed, clock=FixedClock(now + dt.timedelta(days=1)))
    later.watchdog()
    later.drain()
    later.store.close()
    assert [s["status"] for s in slots_of(store_url)] == ["missed"]
    assert len([r for r in server.delivered if "未按时运行" in r.payload["text"]]) == 1


def _standby_script(cfg: Path, instance: str, due: dt.datetime, hold: Path) -> list[str]:
    """`serve` as a subprocess whose nightly cycle is due once, at ``due`` (the same for every
    instance started with it), with the outbox and the watchdog every second; its night waits
    while ``hold`` exists."""
    return _serve_script(cfg, instance, f"IntervalTrigger(days=1, start_date=dt.datetime.fromisoformat({due.isoformat()!r}))", hold)


def test_a_standby_takes_over_the_night_of_an_instance_killed_during_it(tmp_path, demo_db, server, request):
    """Two `serve` processes on one PostgreSQL store; the one holding the night is killed during
    it. When its claim expires, still within the misfire grace, the standby runs the night and
    tells operations so."""
    from tests.conftest import SERVICE_ENV, _scratch_database, require_service

    gen = _scratch_database(require_service(SERVICE_ENV["postgresql"], "postgresql"))
    store_url = next(gen)
    request.addfinalizer(lambda: next(gen, None))
    cfg = service_config(tmp_path, demo_db, server, store_url=store_url)
    hold = tmp_path / "hold"
    hold.touch()  # the first night waits before reading its source until the test lets it go
    due = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=10)).replace(microsecond=0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = {
        name: subprocess.Popen(_standby_script(cfg, name, due, hold), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name in ("east", "west")
    }
    try:
        wait_for(lambda: any(s["status"] == "running" for s in slots_of(store_url)) and runs_of(store_url), "the night to start")
        [slot] = slots_of(store_url)
        holder, standby = (("east", "west") if slot["holder"].startswith("east:") else ("west", "east"))
        assert [r.status for r in runs_of(store_url)] == ["running"]  # held: still going when its holder dies
        procs[holder].send_signal(signal.SIGKILL)
        procs[holder].wait()
        hold.unlink()
        wait_for(lambda: any(r.status == "ok" for r in runs_of(store_url)), "the standby to run the night", limit_s=600)
        # The operations message goes out when the standby's sender gets the outbox lease (the
        # killed holder's may still run): wait for it before stopping the standby.
        told = lambda: any("接手" in r.payload.get("text", "") for r in server.delivered)  # noqa: E731
        wait_for(told, "operations to be told of the takeover", limit_s=600)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        outputs = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
        for name, text in outputs.items():  # shown by pytest when the test fails
            print(f"----- serve {name} -----\n{text}")
        print("----- outbox -----\n" + "\n".join(map(str, outbox_of(store_url))))
    runs = sorted(runs_of(store_url), key=lambda r: r.started_at)
    assert [(r.status, r.trigger) for r in runs] == [("interrupted", "schedule"), ("ok", "takeover")], outputs[standby]
    [slot] = slots_of(store_url)
    assert slot["status"] == "ok" and slot["holder"].startswith(f"{standby}:") and slot["run_id"] == runs[1].run_id
    assert told()  # operations are told
