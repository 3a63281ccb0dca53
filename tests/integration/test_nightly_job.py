import datetime as dt
import logging

from forecaster.demo import make_demo_frames, write_demo_sql
from forecaster.store import Store
from forecaster.util.clock import FixedClock
from jobs import nightly_job
from tests.conftest import write_config

# 02:00 in Shanghai on 23 November is still 22 November in UTC: the job must use the company's day.
NIGHT = dt.datetime(2026, 11, 22, 18, 0, tzinfo=dt.timezone.utc)


def test_nightly_job_runs_as_of_the_company_day_and_logs_start_and_end(tmp_path, caplog):
    write_demo_sql(f"sqlite:///{tmp_path / 'data' / 'demo.db'}", make_demo_frames(dt.date(2026, 11, 23), communities=4, years=0.5, seed=1), seed=1)
    path = write_config(tmp_path, {"forecast": {"model": "naive"}})
    with caplog.at_level(logging.INFO, logger="forecaster.jobs"):
        result = nightly_job(path, clock=FixedClock(NIGHT))
    assert result.as_of == dt.date(2026, 11, 23) and result.exit_code == 0
    [run] = Store(f"sqlite:///{tmp_path / 'data' / 'forecaster.db'}").last_runs()
    assert run.trigger == "schedule" and run.status == "ok"
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == f"nightly run {result.run_id[:8]} starting as of 2026-11-23 (schedule)"
    assert messages[-1].startswith(f"nightly run {result.run_id[:8]} as of 2026-11-23 finished: ok in ")


def test_invalid_config_fails_the_night_without_raising(tmp_path, caplog):
    path = write_config(tmp_path, {"timezone": "Nowhere/Land"})
    with caplog.at_level(logging.ERROR, logger="forecaster.jobs"):
        assert nightly_job(path, clock=FixedClock(NIGHT)) is None
    assert "nightly run not started" in caplog.text and "timezone" in caplog.text
