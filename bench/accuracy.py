"""Accuracy on real data: auto-selection vs its candidates and two baselines, in one run.

    .venv/bin/python bench/accuracy.py                      # defaults below
    .venv/bin/python bench/accuracy.py --koubei 400 --koubei-partial 2000 --boston 200 --jobs 2   # every qualifying series
    .venv/bin/python bench/accuracy.py --fast       # only naive and linear: seconds
    .venv/bin/python bench/accuracy.py --koubei 0 --koubei-partial 0 --boston 0 --boston-kpis 20   # the KPI series only

For each data set, a rolling-origin backtest (``--folds`` folds of ``--horizon`` days at the end
of the history; auto-selection chooses each fold's model from the folds before it (`forecast.backtest_folds`, 3), as the
nightly run does) scores: the weekly seasonal-naive baseline, our linear model, ARIMA and
Prophet (with the calendar features) and their means (``linear_naive``, ``ensemble``),
``auto`` (the per-series choice among the default candidates, with calibrated intervals),
``auto_all`` (the choice among all of them: add arima, prophet and ensemble to
``forecast.candidates``) and "default Prophet": ``Prophet()`` with ``add_country_holidays`` on
the raw series, as most people would start. It prints MASE, sMAPE and interval coverage overall
and on holiday windows (days off for a public holiday and the configured days around them), and
the autos' ratios to both baselines. The Boston KPI data sets are the service's own
closed_on_time and open_backlog per neighbourhood, daily, computed by its ingest from the 2015
tickets (`bench.datasets.boston311_kpis`). ``--fast`` leaves out ARIMA, Prophet and default Prophet
(seconds instead of minutes; ``auto_all`` is then not scored). ``--reused-after 6`` also scores
each auto as the nightly run does on the nights it reuses a choice, here the oldest one it
reuses (made six days earlier; afresh where a major holiday entered the horizon since).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import DEFAULT_DATA, boston311, boston311_kpis, koubei, koubei_partial  # noqa: E402
from forecaster.forecasting import backtest_long  # noqa: E402
from forecaster.models.backtest import summarise_backtest  # noqa: E402
from forecaster.models.base import Forecast, ModelError, SeriesSpec  # noqa: E402
from forecaster.models.prophet import quiet_prophet  # noqa: E402
from forecaster.models.select import Settings  # noqa: E402
from forecaster.vocab import COMBINATIONS  # noqa: E402


class DefaultProphet:
    """``Prophet()`` + ``add_country_holidays(country)`` on raw values, default settings."""

    name = "default_prophet"
    spec = SeriesSpec("none", None, None)

    def __init__(self, country: str):
        self.country = country

    def forecast(self, z, ds, h, level, features=None, future=None) -> Forecast:
        quiet_prophet()
        from prophet import Prophet

        ok = np.isfinite(z)
        m = Prophet(interval_width=level / 100)
        m.add_country_holidays(country_name=self.country)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                m.fit(pd.DataFrame({"ds": ds[ok], "y": z[ok]}))
                out = m.predict(pd.DataFrame({"ds": pd.date_range(ds[-1] + pd.Timedelta(days=1), periods=h)}))
            except Exception as exc:
                raise ModelError(str(exc)) from None
        return Forecast(out["yhat"].to_numpy(), out["yhat_lower"].to_numpy(), out["yhat_upper"].to_numpy())


def _chunk(args):
    frame, country, horizon, folds, fast, reused_after = args
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    models = ("naive", "linear") if fast else ("naive", "linear", "arima", "prophet")
    autos = {"auto": Settings().candidates}
    if not fast:
        autos["auto_all"] = (*models, *COMBINATIONS)
    return backtest_long(
        frame,
        horizon=horizon,
        folds=folds,
        models=models,
        country=country,
        extra_models=None if fast else {"default_prophet": DefaultProphet(country)},
        min_train=90,
        selection_folds=Settings().folds,  # as the nightly run chooses
        autos=autos,
        reused_after=reused_after,
    )


def run(
    name: str,
    frame: pd.DataFrame,
    country: str,
    horizon: int,
    folds: int,
    jobs: int,
    fast: bool = False,
    reused_after: int = 0,
) -> pd.DataFrame:
    ids = frame["series_id"].unique()
    chunks = [frame[frame["series_id"].isin(part)] for part in np.array_split(ids, max(1, jobs * 4)) if len(part)]
    t0 = time.perf_counter()
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            parts = list(pool.map(_chunk, [(c, country, horizon, folds, fast, reused_after) for c in chunks]))
    else:
        parts = [_chunk((c, country, horizon, folds, fast, reused_after)) for c in chunks]
    points = pd.concat(parts, ignore_index=True)
    elapsed = time.perf_counter() - t0
    table = summarise_backtest(points)
    print(f"\n## {name}: {len(ids)} series, {folds} folds × {horizon} days ({elapsed:.0f} s on {jobs} processes)\n")
    print(markdown(table))
    t = table.set_index("model")
    lines = []
    for auto in ("auto", "auto_all"):
        for base in ("naive", "default_prophet"):
            if base in t.index and auto in t.index:
                r = t.loc[auto, "mase"] / t.loc[base, "mase"]
                hr = t.loc[auto, "holiday_mase"] / t.loc[base, "holiday_mase"] if "holiday_mase" in t.columns else float("nan")
                lines.append(f"{auto} / {base}: MASE ×{r:.3f}, holiday-window MASE ×{hr:.3f}")
        reused = f"{auto}_reused{reused_after}d"
        if reused in t.index and auto in t.index:
            r = t.loc[reused, "mase"] / t.loc[auto, "mase"]
            hr = t.loc[reused, "holiday_mase"] / t.loc[auto, "holiday_mase"]
            lines.append(f"{reused} / {auto}: MASE ×{r:.3f}, holiday-window MASE ×{hr:.3f}")
    print("\n" + "  \n".join(lines))
    table.insert(0, "dataset", name)
    return table


def markdown(table: pd.DataFrame) -> str:
    cols = ["model", "mase", "holiday_mase", "smape", "holiday_smape", "coverage", "holiday_coverage", "points", "holiday_points", "failed"]
    cols = [c for c in cols if c in table.columns]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)
    rows = []
    for rec in table[cols].to_dict("records"):
        cells = []
        for c in cols:
            v = rec[c]
            if isinstance(v, float):
                cells.append(f"{v:.1%}" if "coverage" in c else f"{v:.3f}" if "mase" in c else f"{v:.1f}" if "smape" in c else f"{v:.0f}")
            else:
                cells.append(str(v))
        rows.append("| " + " | ".join(cells) + " |")
    return head + "\n" + "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared/data folder")
    p.add_argument(
        "--koubei", type=int, default=120, metavar="N", help="Koubei shops sampled (219 of the 2,000 were open throughout; more = all)"
    )
    p.add_argument(
        "--koubei-partial", type=int, default=120, metavar="N",
        help="Koubei shops that opened late or closed for stretches, sampled (1,191 qualify; scored where open)",
    )
    p.add_argument("--boston", type=int, default=60, metavar="N", help="Boston 311 series sampled")
    p.add_argument(
        "--boston-kpis", type=int, default=20, metavar="N",
        help="Boston 311 neighbourhoods whose closed_on_time and open_backlog are scored (as the service computes them; 18 qualify)",
    )
    p.add_argument("--horizon", type=int, default=28)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, help="write the tables as CSV")
    p.add_argument("--fast", action="store_true", help="only the fast models (no ARIMA, Prophet, default Prophet)")
    p.add_argument(
        "--reused-after", type=int, default=0, metavar="DAYS",
        help="also score each auto as a night reusing the choice made DAYS earlier (6: the oldest a nightly run reuses)",
    )
    args = p.parse_args()
    if not args.data.is_dir():
        print(f"data folder not found: {args.data} (pass --data)", file=sys.stderr)
        return 2
    tables = []
    if args.koubei:
        tables.append(run("Koubei shops (CN)", koubei(args.data, args.koubei, args.seed), "CN", args.horizon, args.folds, args.jobs, args.fast, args.reused_after))
    if args.koubei_partial:
        frame = koubei_partial(args.data, args.koubei_partial, args.seed)
        tables.append(run("Koubei shops with partial histories (CN)", frame, "CN", args.horizon, args.folds, args.jobs, args.fast, args.reused_after))
    if args.boston:
        tables.append(run("Boston 311 (US)", boston311(args.data, args.boston, args.seed), "US", args.horizon, args.folds, args.jobs, args.fast, args.reused_after))
    if args.boston_kpis:
        kpis = boston311_kpis(args.data)
        hoods = sorted(kpis["community_id"].unique())
        rng = np.random.default_rng(args.seed)
        chosen = set(rng.choice(hoods, size=min(args.boston_kpis, len(hoods)), replace=False))
        for metric in ("closed_on_time", "open_backlog"):
            frame = kpis[(kpis["metric"] == metric) & kpis["community_id"].isin(chosen)]
            name = f"Boston 311 {metric}, per neighbourhood (US)"
            tables.append(run(name, frame, "US", args.horizon, args.folds, args.jobs, args.fast, args.reused_after))
    if args.output:
        pd.concat(tables).to_csv(args.output, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
