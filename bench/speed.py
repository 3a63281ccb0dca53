"""Speed of the whole nightly cycle, and the plain Prophet loop it must beat, in one run.

    .venv/bin/python bench/speed.py                               # 100 communities × 4 metrics × 3 years
    .venv/bin/python bench/speed.py --communities 2000 --workers 2 --prophet-sample 40

It generates the demo company at the given size into a scratch SQLite source, then runs the
full cycle (ingest, aggregation, model choice by backtest, forecasts, detection, outputs,
store, alerts queued) on two consecutive nights:

* night 1, cold: no earlier model choice, every series runs the full backtest;
* night 2, warm: the steady state, where each series reuses the choice made within the last
  ``forecast.reselect_every_days`` nights and a seventh of them choose afresh.

It prints series per second, per-stage timings and peak memory for both, and the series per
second of a plain loop over default Prophet (``Prophet()`` + Chinese holidays, fit and predict
the same horizon) on a sample of the same series, one process, measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
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
from forecaster.models.prophet import quiet_prophet  # noqa: E402
from forecaster.pipeline import run_once  # noqa: E402
from forecaster.store import Store  # noqa: E402


def peak_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest child (the workers), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def default_prophet_loop(series: pd.DataFrame, horizon: int) -> tuple[int, float]:
    quiet_prophet()
    from prophet import Prophet

    t0 = time.perf_counter()
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
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--communities", type=int, default=100)
    p.add_argument("--years", type=float, default=3.0)
    p.add_argument("--workers", type=int, default=None, help="default: all cores")
    p.add_argument("--prophet-sample", type=int, default=40, help="series in the plain Prophet loop")
    p.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 11, 23))
    p.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)

    root = args.dir or Path(tempfile.mkdtemp(prefix="wuye-speed-"))
    root.mkdir(parents=True, exist_ok=True)
    night2 = args.as_of + dt.timedelta(days=1)
    t0 = time.perf_counter()
    demo = make_demo_frames(night2, communities=args.communities, years=args.years, seed=42)
    source = f"sqlite:///{root / 'source.db'}"
    write_demo_sql(source, demo, seed=42)
    print(
        f"data: {args.communities} communities × 4 metrics × {args.years:g} years "
        f"({len(demo.tickets):,} tickets, {len(demo.surveys):,} surveys), generated in {time.perf_counter() - t0:.0f} s"
    )
    config = parse_config(
        {
            "source": {"sql": {"url": source}},
            "store": {"url": f"sqlite:///{root / 'store.db'}"},
            "output": {"dir": str(root / "out")},
            "engine": {"workers": args.workers},
            "alerts": {"channels": {"none": {"type": "webhook", "url": "http://127.0.0.1:9/never"}}, "default_channels": ["none"]},
        },
        base_dir=root,
    )
    rows = []
    for label, as_of in (("night 1 (cold)", args.as_of), ("night 2 (warm)", night2)):
        t0 = time.perf_counter()
        result = run_once(config, as_of, trigger="bench")
        wall = time.perf_counter() - t0
        series = int((result.series_stats["status"] != "no_data").sum())
        own, child = peak_mb()
        rows.append((label, result, wall, series, own, child))
        stages = " · ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
        print(
            f"{label}: {series} series in {wall:.1f} s = {series / wall:.2f} series/s ({result.status}; "
            f"{result.reused_choices} reused a choice); stages s: {stages}; peak MB: main {own:.0f}, largest worker {child:.0f}"
        )
    store = Store(config.store.url.get())
    run = store.last_runs(1)[0]
    frame = pd.read_csv(root / "out" / night2.isoformat() / "series.csv", encoding="utf-8-sig", parse_dates=["ds"])
    store.close()
    frame["series_id"] = frame["community_id"] + ":" + frame["metric"]
    ids = frame["series_id"].drop_duplicates().sample(n=min(args.prophet_sample, frame["series_id"].nunique()), random_state=0)
    n, took = default_prophet_loop(frame[frame["series_id"].isin(set(ids))], config.forecast.horizon)
    loop_rate = n / took
    print(f"plain default-Prophet loop: {n} series in {took:.1f} s = {loop_rate:.2f} series/s (one process)")
    for label, result, wall, series, *_ in rows:
        print(f"ratio {label}: ×{series / wall / loop_rate:.1f} the series/s of the plain Prophet loop")
    cold, warm = rows[0], rows[1]
    per_series = warm[2] / max(warm[3], 1)
    print(
        f"extrapolated to 8,000 series (2,000 communities × 4 metrics) at the warm rate: {8000 * per_series / 60:.1f} min "
        f"(cold: {8000 * cold[2] / max(cold[3], 1) / 60:.1f} min); run {run.run_id[:8]} in {root}"
    )
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
