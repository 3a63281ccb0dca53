"""Speed of the whole nightly cycle, and the plain Prophet loop it must beat, in one run.

    .venv/bin/python bench/speed.py                               # 100 communities × every metric × 3 years
    .venv/bin/python bench/speed.py --communities 2000 --workers 2 --prophet-sample 20

It generates the demo company at the given size into a scratch SQLite source, then runs the
full cycle (ingest, aggregation, model choice by backtest, forecasts, detection, outputs,
store, alerts queued) on three consecutive nights:

* night 1, cold: no saved day sums and no earlier model choice: the whole history is read and
  every series runs the full backtest;
* night 2, warm: the steady state: only the tickets created or closed in the last two weeks and
  in tonight's slice of the older history are read (the rest are saved day sums), and each
  series reuses the choice made within the last ``forecast.reselect_every_days`` nights (a
  seventh of them choose afresh);
* night 3, warm with a full read (the saved day sums dropped first), as after a new community
  or a change of the settings that shape the sums.

It prints series per second, per-stage timings and peak memory for each, and the series per
second of a plain loop over default Prophet (``Prophet()`` + Chinese holidays, fit and predict
the same horizon) on a sample of the same series, on as many processes as the night has cores
(``--loop-processes``; session 8 and before: one process), measured after each night (the
machine's speed drifts during a run: each night is compared with the loop measured next to it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecaster.config import parse_config  # noqa: E402
from forecaster.demo import make_demo_frames, write_demo_sql  # noqa: E402
from forecaster.ingest.aggregate import series_from_day_sums  # noqa: E402
from forecaster.models.prophet import quiet_prophet  # noqa: E402
from forecaster.pipeline import run_once  # noqa: E402
from forecaster.store import Store  # noqa: E402


def peak_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest child (the workers), in MB.

    This process's own peak is its high-water mark since exec (VmHWM): ``getrusage``'s would
    include the parent's memory at the fork (Linux carries it over exec), i.e. the generator's."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with open("/proc/self/status") as status:
            own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        pass
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def bench_config(root: Path, workers: int | None):
    return parse_config(
        {
            "source": {"sql": {"url": f"sqlite:///{root / 'source.db'}"}},
            "store": {"url": f"sqlite:///{root / 'store.db'}"},
            "output": {"dir": str(root / "out")},
            "engine": {"workers": workers},
            "alerts": {"channels": {"none": {"type": "webhook", "url": "http://127.0.0.1:9/never"}}, "default_channels": ["none"]},
        },
        base_dir=root,
    )


def run_night(root: Path, as_of: dt.date, workers: int | None, full_read: bool) -> dict:
    """One nightly cycle in this (fresh) process; its peak memory is the run's alone."""
    config = bench_config(root, workers)
    if full_read:
        store = Store(config.store.url.get())
        store.forget_day_sums()
        store.close()
    t0 = time.perf_counter()
    result = run_once(config, as_of, trigger="bench")
    wall = time.perf_counter() - t0
    own, child = peak_mb()
    return {
        "wall": wall,
        "status": result.status,
        "series": int((result.series_stats["status"] != "no_data").sum()),
        "reused": result.reused_choices,
        "read": result.read,
        "tickets_read": next((r.rows_read for r in result.reports if r.table == "tickets"), 0),
        "timings": result.timings,
        "own_mb": own,
        "child_mb": child,
    }


def _prophet_fits(series: pd.DataFrame, horizon: int) -> int:
    """Default Prophet fit and predict on each series (one process's share of the loop)."""
    quiet_prophet()
    from prophet import Prophet

    n = 0
    for _, g in series.groupby("series_id", sort=False):
        g = g.dropna(subset=["y"])
        m = Prophet()
        m.add_country_holidays(country_name="CN")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(g[["ds", "y"]])
            m.predict(pd.DataFrame({"ds": pd.date_range(g["ds"].max() + pd.Timedelta(days=1), periods=horizon)}))
        n += 1
    return n


def default_prophet_loop(series: pd.DataFrame, horizon: int, processes: int = 1) -> tuple[int, float]:
    """The plain loop a user who picked Prophet would run: on ``processes`` processes (the same
    cores the night gets), each fitting its share of the series; the pool's start counts."""
    t0 = time.perf_counter()
    if processes <= 1:
        return _prophet_fits(series, horizon), time.perf_counter() - t0
    from concurrent.futures import ProcessPoolExecutor

    ids = series["series_id"].drop_duplicates().tolist()
    shares = [series[series["series_id"].isin(set(ids[k::processes]))] for k in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        n = sum(pool.map(_prophet_fits, shares, [horizon] * processes))
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--communities", type=int, default=100)
    p.add_argument("--years", type=float, default=3.0)
    p.add_argument("--workers", type=int, default=None, help="default: all cores")
    p.add_argument("--prophet-sample", type=int, default=40, help="series in the plain Prophet loop (run after each night)")
    p.add_argument(
        "--loop-processes", type=int, default=None,
        help="processes of the plain Prophet loop (default: the night's workers: the same cores; 1: one process, as before session 9)",
    )
    p.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 11, 23))
    p.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--reuse-data", action="store_true", help="keep the source.db already in --dir (same size)")
    p.add_argument("--run-night", nargs=2, metavar=("DIR", "AS_OF"), help=argparse.SUPPRESS)
    p.add_argument("--full-read", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.run_night:
        root, as_of = Path(args.run_night[0]), dt.date.fromisoformat(args.run_night[1])
        print(json.dumps(run_night(root, as_of, args.workers, args.full_read)))
        return 0
    root = args.dir or Path(tempfile.mkdtemp(prefix="wuye-speed-"))
    root.mkdir(parents=True, exist_ok=True)
    night2 = args.as_of + dt.timedelta(days=1)
    night3 = args.as_of + dt.timedelta(days=2)
    t0 = time.perf_counter()
    if args.reuse_data and (root / "source.db").exists():
        print(f"data: reusing {root / 'source.db'} ({args.communities} communities assumed); store and outputs reset")
        for old in (root / "store.db",):
            old.unlink(missing_ok=True)
        shutil.rmtree(root / "out", ignore_errors=True)
    else:
        demo = make_demo_frames(night3, communities=args.communities, years=args.years, seed=42)
        write_demo_sql(f"sqlite:///{root / 'source.db'}", demo, seed=42)
        print(
            f"data: {args.communities} communities × every enabled metric × {args.years:g} years "
            f"({len(demo.tickets):,} tickets, {len(demo.surveys):,} surveys), generated in {time.perf_counter() - t0:.0f} s"
        )
        del demo
    config = bench_config(root, args.workers)
    processes = args.loop_processes or config.engine.workers or os.cpu_count() or 1
    rows = []
    loops = []  # (series, seconds) of the plain loop, measured after each night
    sample = None
    nights = (("night 1 (cold)", args.as_of, False), ("night 2 (warm)", night2, False), ("night 3 (warm, full read)", night3, True))
    for label, as_of, full_read in nights:
        cmd = [sys.executable, __file__, "--run-night", str(root), as_of.isoformat()] + (["--full-read"] if full_read else [])
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 1
        night = json.loads(done.stdout.strip().splitlines()[-1])
        wall, series = night["wall"], night["series"]
        rows.append((label, night, wall, series))
        stages = " · ".join(f"{k} {v:.1f}" for k, v in night["timings"].items())
        print(
            f"{label}: {series} series in {wall:.1f} s = {series / wall:.2f} series/s ({night['status']}; "
            f"{night['reused']} reused a choice); stages s: {stages}; "
            f"peak MB: main {night['own_mb']:.0f}, largest worker {night['child_mb']:.0f}; "
            f"read {night['tickets_read']:,} tickets, {night['read']}"
        )
        if sample is None:
            sample = loop_sample(config, args.as_of, args.prophet_sample)
        # The plain loop right after each night: the machine's speed drifts over a run (by a
        # quarter and more), so each night is compared with the loop measured next to it.
        n, took = default_prophet_loop(sample, config.forecast.horizon, processes)
        loops.append((n, took))
        print(f"  plain default-Prophet loop after it: {n} series in {took:.1f} s = {n / took:.2f} series/s ({processes} processes)")
    store = Store(config.store.url.get())
    run = store.last_runs(1)[0]
    store.close()
    for (label, _, wall, series), (n, took) in zip(rows, loops):
        print(f"ratio {label}: ×{series / wall / (n / took):.1f} the series/s of the plain Prophet loop measured after it")
    mean_rate = sum(n for n, _ in loops) / sum(t for _, t in loops)
    print(f"plain loop over the run: {mean_rate:.2f} series/s (" + ", ".join(f"{n / t:.2f}" for n, t in loops) + ")")
    per_community = rows[0][3] / max(args.communities, 1)
    at_scale = round(2000 * per_community)
    print(
        f"extrapolated to {at_scale:,} series (2,000 communities × {per_community:.0f} series each): "
        + ", ".join(f"{label} {at_scale * wall / max(series, 1) / 60:.1f} min" for label, _, wall, series in rows)
        + f"; last run {run.run_id[:8]} in {root}"
    )
    return 0


def loop_sample(config, as_of: dt.date, size: int) -> pd.DataFrame:
    """``size`` series (full histories, from the day sums night 1 saved) for the plain loop."""
    store = Store(config.store.url.get())
    try:
        sums = store.load_day_sums(as_of - dt.timedelta(days=config.source.history_days))
    finally:
        store.close()
    frame = series_from_day_sums(sums, as_of, config.metrics, min_history_days=config.forecast.min_history_days).frame
    ids = frame["series_id"].drop_duplicates().sample(n=min(size, frame["series_id"].nunique()), random_state=0)
    return frame[frame["series_id"].isin(set(ids))]


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
