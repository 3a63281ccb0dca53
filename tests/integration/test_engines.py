"""Every engine gives the same forecasts: serial, a local process pool, and a real Dask cluster."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from forecaster.config import parse_config
from forecaster.demo import make_demo_frames, write_demo_sql
from forecaster.forecasting import forecast_communities
from forecaster.ingest import load_daily
from forecaster.ingest.aggregate import series_from_day_sums
from forecaster.util.engine import Interrupted, map_chunks
from tests.conftest import AS_OF


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('engines') / 'demo.db'}"
    write_demo_sql(url, make_demo_frames(AS_OF, communities=5, years=0.7, seed=21), seed=21)
    config = parse_config({"source": {"sql": {"url": url}}})
    data = load_daily(config, AS_OF)
    daily = series_from_day_sums(data.day_sums, AS_OF, config.metrics, min_history_days=56, communities=data.communities["community_id"])
    return daily.frame, data.communities


@pytest.fixture(scope="module")
def cluster():
    try:
        import distributed
    except ImportError:
        message = "Dask tests need the dask extra (make test installs it: pip install -e '.[dask]')"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run them")
        pytest.skip(message)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local


def _forecast(frame, communities, **engine):
    config = parse_config({"forecast": {"candidates": ["naive", "arima"], "horizon": 21}, "engine": engine})
    forecasts, outcomes = forecast_communities(frame, config, communities)
    return forecasts.sort_values(["series_id", "ds"]).reset_index(drop=True), sorted((o.series_id, o.model, o.status) for o in outcomes)


def test_serial_process_and_dask_give_identical_results(series, cluster):
    frame, communities = series
    serial = _forecast(frame, communities, backend="serial")
    process = _forecast(frame, communities, backend="process", workers=2)
    dask = _forecast(frame, communities, backend="dask", address=cluster.scheduler_address)
    assert len(serial[0]) == frame["series_id"].nunique() * 21
    for other in (process, dask):
        pd.testing.assert_frame_equal(serial[0], other[0])
        assert serial[1] == other[1]


def _square(x: int) -> int:
    return x * x


def test_dask_map_keeps_order_reports_progress_and_stops_when_asked(cluster):
    done = []
    assert map_chunks(_square, list(range(12)), backend="dask", address=cluster.scheduler_address, on_done=done.append) == [
        i * i for i in range(12)
    ]
    assert sorted(done) == list(range(12))
    with pytest.raises(Interrupted):
        map_chunks(_square, list(range(12)), backend="dask", address=cluster.scheduler_address, should_stop=lambda: True)


# A process that forecasts with the process pool the way `serve` does: SIGTERM handled by the
# parent (so the forked workers inherit a handler that ignores it), every worker busy for ten minutes.
_BUSY_PARENT = """
import os, signal, sys, time
from forecaster.util.engine import map_chunks
def nap(chunk):
    time.sleep(600)
    return chunk
signal.signal(signal.SIGTERM, lambda *a: None)
map_chunks(nap, [[1], [2]], backend="process", workers=2)
"""


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for PID 1, which may not reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_workers_of_a_killed_parent_exit_instead_of_living_on():
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import wait_for

    repo = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", _BUSY_PARENT], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    workers: list[int] = []
    try:
        wait_for(lambda: len(_children(parent.pid)) == 2, "two workers")
        workers = _children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not any(_running(w) for w in workers), "the orphaned workers to exit", limit_s=60)
    finally:
        parent.kill()
        for w in workers:  # only if the test failed: do not leave them behind
            if _running(w):
                os.kill(w, signal.SIGKILL)
