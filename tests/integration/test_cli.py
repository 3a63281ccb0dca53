"""The CLI end to end on real files and SQLite: demo → run → outputs and store."""

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from forecaster.cli import main
from forecaster.store import Store, ingest_problems, series_status
from tests.conftest import wait_for, write_config
from tests.readback import stored

SMALL_DEMO = {"communities": 10, "years": 0.6, "seed": 5}
# These tests are about the command line and ingest; model choice has its own tests.
FAST = {"model": "naive"}


@pytest.fixture
def workdir(tmp_path):
    write_config(tmp_path, {"demo": SMALL_DEMO, "forecast": FAST})
    return tmp_path


def run_cli(workdir, command, *args):
    return main([command, "--config", str(workdir / "config.yaml"), *args])


def test_demo_then_run_writes_series_csv_and_records_the_run(workdir, capsys):
    assert run_cli(workdir, "demo", "--as-of", "2026-11-23") == 0
    assert "10 communities" in capsys.readouterr().out
    assert run_cli(workdir, "run", "--as-of", "2026-11-23") == 0
    out = capsys.readouterr().out
    assert "as of 2026-11-23 (Asia/Shanghai)" in out
    assert "problems   3 rows skipped, 3 fields cleared" in out
    assert "tickets: 1 skipped, duplicate ticket_id (first kept) (e.g. ticket_id=WO" in out
    # 10 metrics and 6 service lines; a community's series it has no data for are left out.
    shown = re.search(r"series     (\d+) from 10 communities × 16 metrics", out)
    assert shown, out
    assert "status     ok (exit 0)" in out

    csv = workdir / "out" / "2026-11-23" / "series.csv"
    assert csv.read_bytes().startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(csv, encoding="utf-8-sig")
    assert list(frame.columns) == ["community_id", "community_name", "metric", "ds", "y"]
    assert frame["ds"].max() == "2026-11-22"
    assert frame["ds"].min() == "2026-07-26"  # output.history_days = 120 before the as-of day
    assert len(frame.groupby(["community_id", "metric"])) == int(shown.group(1))  # every series made is in it
    assert frame["community_name"].str.contains("·").all()

    store = Store(f"sqlite:///{workdir / 'data' / 'forecaster.db'}")
    [run] = store.last_runs()
    assert run.status == "ok" and run.communities == 10 and run.series == int(shown.group(1)) and run.rows_skipped == 3
    status = stored(store, series_status, run.run_id)
    assert len(status) == 10 * 16  # every community × metric, those without data recorded as no_data
    assert (status["status"] != "no_data").sum() == run.series
    assert set(stored(store, ingest_problems, run.run_id)["table_name"]) == {"tickets", "surveys"}


def test_dry_run_writes_nothing(workdir, capsys):
    run_cli(workdir, "demo", "--as-of", "2026-11-23")
    assert run_cli(workdir, "run", "--as-of", "2026-11-23", "--dry-run") == 0
    assert "dry run, nothing written" in capsys.readouterr().out
    assert not (workdir / "out").exists()
    assert not (workdir / "data" / "forecaster.db").exists()


def test_config_error_exits_2_before_any_work(tmp_path, capsys):
    write_config(tmp_path, {"forecast": {"horizon": -1}, "demo": SMALL_DEMO})
    assert run_cli(tmp_path, "run") == 2
    err = capsys.readouterr().err
    assert "forecast.horizon" in err and "config.yaml" in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()
    assert run_cli(tmp_path, "check-config") == 2


def test_empty_source_exits_2_and_the_failed_run_is_recorded(tmp_path, capsys):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "communities.csv").write_text("community_id,name\nA1,x\n", encoding="utf-8")
    (tmp_path / "csv" / "tickets.csv").write_text("ticket_id,community_id,created_at\n", encoding="utf-8")
    write_config(tmp_path, {"source": {"type": "csv", "csv": {"directory": "csv"}, "tables": {"surveys": None}}, "forecast": FAST})
    assert run_cli(tmp_path, "run", "--as-of", "2026-11-23") == 2
    out = capsys.readouterr().out
    assert "no tickets or surveys between" in out and "status     failed (exit 2)" in out
    [run] = Store(f"sqlite:///{tmp_path / 'data' / 'forecaster.db'}").last_runs()
    assert run.status == "failed" and "no tickets or surveys" in run.error


def test_a_store_that_cannot_record_the_run_says_so_and_claims_nothing(tmp_path, capsys):
    """A store that refuses writes at the start of a run (locked past its busy timeout, or read
    only): the summary used to say both "run recorded" and "cannot record the run start"."""
    write_config(tmp_path, {"demo": SMALL_DEMO, "forecast": FAST})
    assert run_cli(tmp_path, "demo", "--as-of", "2026-11-23") == 0
    assert run_cli(tmp_path, "run", "--as-of", "2026-11-23") == 0  # the store's tables exist
    store_file = tmp_path / "data" / "forecaster.db"
    engine = sa.create_engine(f"sqlite:///{store_file}")
    with engine.begin() as conn:  # the store refuses the run's first write, as a locked one does
        conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'database is locked'); END")
    engine.dispose()
    capsys.readouterr()
    assert run_cli(tmp_path, "run", "--as-of", "2026-11-24") == 2
    out = capsys.readouterr().out
    assert "cannot record the run start" in out and "not recorded: see the error" in out
    assert "recorded)" not in out and "status     failed (exit 2)" in out
    assert [r.as_of for r in Store(f"sqlite:///{store_file}").last_runs()] == [dt.date(2026, 11, 23)]


def _runs_recorded(path: Path) -> int:
    """Rows in the store's runs table, read without creating anything (the run creates it)."""
    import sqlite3

    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as conn:
            return conn.execute("select count(*) from runs").fetchone()[0]
    except sqlite3.OperationalError:  # not there yet, or locked while the tables are made
        return 0


def test_a_killed_run_is_not_left_running_status_says_so_and_the_next_run_records_it(tmp_path, capsys):
    """`forecaster run` killed with kill -9 (here while its source never answers): its run used
    to stay `running` for ever, with `status` exiting 0."""
    import signal
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    port = silent.getsockname()[1]
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    write_config(
        tmp_path,
        {
            "source": {"type": "http", "http": {"base_url": f"http://127.0.0.1:{port}", "timeout_s": 600, "retries": 0}},
            "store": {"url": store_url},
            "forecast": FAST,
        },
    )
    exe = Path(sys.executable).with_name("forecaster")
    proc = subprocess.Popen([str(exe), "run", "--config", str(tmp_path / "config.yaml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _runs_recorded(tmp_path / "store.db"), "the run to start")
        [started] = Store(store_url).last_runs()
        assert started.status == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        silent.close()
    capsys.readouterr()
    assert run_cli(tmp_path, "status") == 1
    out = capsys.readouterr().out
    assert f"its process (pid {proc.pid} on {socket.gethostname()}) is gone" in out
    # The next run (its source still unreachable) records the dead one as interrupted.
    assert run_cli(tmp_path, "run") == 2
    dead = Store(store_url).get_run(started.run_id)
    assert dead.status == "interrupted" and "ended without recording the end of the run" in dead.error


def test_a_run_stopped_with_sigterm_ends_at_its_next_stage_and_records_it(tmp_path, capsys):
    """`forecaster run` got Python's default for SIGTERM (die at once, the run left `running`,
    a message in flight maybe sent twice). It now finishes the step in hand, records the run
    interrupted (or finished, if the signal came while it sent) and exits 143."""
    import signal

    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    write_config(tmp_path, {"demo": SMALL_DEMO, "forecast": {"model": "arima", "horizon": 30}, "store": {"url": store_url}})
    assert run_cli(tmp_path, "demo") == 0
    exe = Path(sys.executable).with_name("forecaster")
    proc = subprocess.Popen([str(exe), "run", "--config", str(tmp_path / "config.yaml")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _runs_recorded(tmp_path / "store.db"), "the run to start")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err
    [run] = Store(store_url).last_runs()
    assert run.status in ("interrupted", "ok"), run
    if run.status == "interrupted":
        assert "stopped on request" in run.error and "status     interrupted (exit 143)" in out


def test_demo_as_csv_then_run_on_the_csv_source(tmp_path, capsys):
    write_config(tmp_path, {"source": {"type": "csv", "csv": {"directory": "exports"}}, "demo": SMALL_DEMO, "forecast": FAST})
    assert run_cli(tmp_path, "demo", "--as-of", "2026-11-23") == 0
    assert {p.name for p in (tmp_path / "exports").iterdir()} == {"communities.csv", "tickets.csv", "surveys.csv"}
    assert run_cli(tmp_path, "run", "--as-of", "2026-11-23") == 0
    out = capsys.readouterr().out
    assert "source     csv" in out and "tickets.csv" not in out.split("problems")[0]
    assert "surveys: 1 skipped, score outside 0–100 (e.g. line " in out
    # check-config says how the night reads a file: all of it, but only recent days summed afresh
    # (it used to say "read in full" while the night took the rest from the saved totals).
    assert run_cli(tmp_path, "check-config") == 0
    reading = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("reading"))
    assert "the whole file every night" in reading and "the rest comes from the saved day totals" in reading


def test_demo_never_overwrites_real_data(tmp_path, capsys):
    db = tmp_path / "company.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE tickets (ticket_id TEXT)")
        conn.exec_driver_sql("INSERT INTO tickets VALUES ('real-1')")
    write_config(tmp_path, {"source": {"sql": {"url": f"sqlite:///{db}"}}, "demo": SMALL_DEMO})
    assert run_cli(tmp_path, "demo", "--if-absent") == 0
    assert "holds real data; leaving it alone" in capsys.readouterr().out
    assert run_cli(tmp_path, "demo") == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT ticket_id FROM tickets").all() == [("real-1",)]


def test_demo_if_absent_skips_when_up_to_date_and_refreshes_when_stale(workdir, capsys):
    assert run_cli(workdir, "demo", "--if-absent", "--as-of", "2026-11-23") == 0
    assert "written to" in capsys.readouterr().out
    assert run_cli(workdir, "demo", "--if-absent", "--as-of", "2026-11-23") == 0
    assert "is up to date (ends 2026-11-22)" in capsys.readouterr().out
    assert run_cli(workdir, "demo", "--if-absent", "--as-of", "2026-11-30") == 0
    assert "written to" in capsys.readouterr().out
    # Demo data an earlier version wrote (without the columns this one writes) is written again.
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{workdir / 'data' / 'demo.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM wuye_demo_info WHERE key = 'version'")
    engine.dispose()
    assert run_cli(workdir, "demo", "--if-absent", "--as-of", "2026-11-30") == 0
    assert "written to" in capsys.readouterr().out


def test_check_config_prints_settings_with_secrets_masked(tmp_path, capsys):
    write_config(
        tmp_path,
        {
            "source": {"sql": {"url": "postgresql+psycopg://app:${DB_PW}@db/wuye", "read_workers": 3}},
            "alerts": {"channels": {"ops": {"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=${DT}", "secret": "${DT_SEC}"}}},
        },
    )
    env = {"DB_PW": "pw-31337", "DT": "tok-8a8a8a", "DT_SEC": "SEC0f0f0f0f"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert run_cli(tmp_path, "check-config", "--show") == 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out = capsys.readouterr().out
    assert "valid" in out and "ops (dingtalk)" in out and "app:***@db/wuye" in out
    assert "reading    1098 days; nightly only tickets created or closed in the last 14 days and a slice of the older ones (all of them over 7 nights); tickets read by 3 processes at once (source.sql.read_workers)" in out
    for secret in env.values():
        assert secret not in out


def test_bad_as_of_date_is_rejected_by_the_parser(workdir, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(workdir, "run", "--as-of", "23/11/2026")
    assert info.value.code == 2
    assert "use YYYY-MM-DD" in capsys.readouterr().err


def test_installed_console_script_runs(workdir):
    exe = shutil.which("forecaster", path=str(Path(sys.executable).parent))
    assert exe, "the forecaster console script is not installed next to this Python"
    env = {**os.environ, "FORECASTER_CONFIG": str(workdir / "config.yaml")}
    demo = subprocess.run([exe, "demo", "--as-of", "2026-11-23"], capture_output=True, text=True, env=env, cwd=workdir)
    assert demo.returncode == 0, demo.stderr
    run = subprocess.run([exe, "run", "--as-of", "2026-11-23"], capture_output=True, text=True, env=env, cwd="/")
    assert run.returncode == 0, run.stderr
    assert f"{workdir / 'out' / '2026-11-23' / 'series.csv'}" in run.stdout
    helptext = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
    for command in ("run", "demo", "check-config"):
        assert command in helptext


def test_the_common_options_work_before_and_after_the_command(tmp_path, capsys, monkeypatch):
    """`forecaster --config X check-config` used to read ./config.yaml (the subcommand's default
    overwrote the option given before it), and -v there was ignored."""
    path = write_config(tmp_path, {"timezone": "Asia/Tokyo"})
    monkeypatch.chdir(tmp_path.parent)  # no config.yaml here: the option must be what is read
    for argv in (["--config", str(path), "check-config"], ["check-config", "--config", str(path)], ["-c", str(path), "-v", "check-config"]):
        assert main(argv) == 0, argv
        assert "timezone   Asia/Tokyo" in capsys.readouterr().out
    from forecaster.cli import build_parser, parse_args

    assert parse_args(build_parser(), ["-vv", "status"]).verbose == 2
    assert parse_args(build_parser(), ["status", "-v"]).verbose == 1
    assert parse_args(build_parser(), ["status"]).config is None


def test_output_piped_to_a_reader_that_stops_early_is_no_traceback(tmp_path):
    """`forecaster check-config --show | head -1`: the reader closes the pipe; the command ends
    quietly with 141 (SIGPIPE's code in a shell) instead of a BrokenPipeError traceback."""
    # Far more output than a pipe holds (64 KB), so the command is still writing when it closes.
    events = {f"e{i}": {"label": f"检修{i}", "start": "2026-01-01", "end": "2026-01-02"} for i in range(3000)}
    path = write_config(tmp_path, {"calendar": {"events": events}})
    exe = shutil.which("forecaster", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen([exe, "check-config", "--show", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.readline()
    proc.stdout.close()  # as head does after its line
    err = proc.stderr.read().decode("utf-8", "replace")
    assert proc.wait() == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_an_unwritable_output_dir_loses_the_files_but_not_the_night(workdir, capsys):
    """output.dir where a file stands: the CSVs and report cannot be written. That used to be a
    PermissionError traceback, exit 1 and no alerts; now the run says which path and why, exits 2,
    and still records the night and queues the alerts. check-config --connect says so first."""
    (workdir / "blocked").write_text("a file where the output folder should be", encoding="utf-8")
    write_config(workdir, {"demo": SMALL_DEMO, "forecast": FAST, "output": {"dir": "blocked"}})
    assert run_cli(workdir, "demo", "--as-of", "2026-11-23") == 0
    capsys.readouterr()
    assert run_cli(workdir, "check-config", "--connect") == 2
    assert f"output.dir {workdir / 'blocked'}: cannot write there" in capsys.readouterr().err
    assert run_cli(workdir, "run", "--as-of", "2026-11-23", "--no-send") == 2
    out = capsys.readouterr().out
    assert f"error      {workdir / 'blocked' / '2026-11-23' / 'forecast.csv'}: cannot write it" in out
    assert "check output.dir" in out and "Traceback" not in out and "status     partial (exit 2)" in out
    store = Store(f"sqlite:///{workdir / 'data' / 'forecaster.db'}")
    [run] = store.last_runs()
    assert run.status == "partial" and "cannot write it" in run.error
    with store.engine.connect() as conn:
        queued = conn.execute(sa.text("select count(*) from alert_messages")).scalar()
    assert queued > 0  # the managers still hear of tonight's findings
