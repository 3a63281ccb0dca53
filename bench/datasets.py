"""Real public data sets from ../shared/data (see its SOURCES.md) as long frames ``series_id, ds, y``.

Nothing here is copied into the project: the files are read where they lie.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def koubei(data: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """Daily customer visits of ``n`` Koubei shops (Chinese cities; National Day, Mid-Autumn…)
    sampled at random among those open over the whole period (< 3% missing days: 219 of 2,000)."""
    wide = pd.read_csv(data / "koubei" / "shop_pay_everyday.csv", index_col=0)
    wide = wide.set_index("shop_id")
    values = wide.to_numpy(dtype=float)
    live = np.isfinite(values).mean(axis=1) > 0.97
    ids = wide.index[live]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(n, len(ids)), replace=False)
    sub = wide.loc[sorted(chosen)]
    long = sub.stack(future_stack=True).rename("y").reset_index()
    long.columns = ["series_id", "ds", "y"]
    long["series_id"] = "shop" + long["series_id"].astype(str)
    long["ds"] = pd.to_datetime(long["ds"])
    return long.sort_values(["series_id", "ds"]).reset_index(drop=True)


def koubei_partial(data: Path, n: int, seed: int = 0, *, min_days: int = 180, recent_days: int = 120) -> pd.DataFrame:
    """Koubei shops that were *not* open throughout (1,781 of 2,000): those that opened late or
    closed for stretches. Each series starts on the shop's first day with customers; days it was
    closed stay missing (models skip them, scores ignore them). Kept: shops with at least
    ``min_days`` open days, open on 80% of the last ``recent_days`` (the scored folds; 1,191
    shops); ``n`` of them sampled."""
    wide = pd.read_csv(data / "koubei" / "shop_pay_everyday.csv", index_col=0).set_index("shop_id")
    values = wide.to_numpy(dtype=float)
    seen = np.isfinite(values)
    keep = (seen.mean(axis=1) <= 0.97) & (seen.sum(axis=1) >= min_days) & (seen[:, -recent_days:].mean(axis=1) >= 0.8)
    ids = wide.index[keep]
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(ids, size=min(n, len(ids)), replace=False))
    days = pd.to_datetime(wide.columns)
    parts = []
    for shop in sorted(chosen):
        row = wide.loc[shop].to_numpy(dtype=float)
        start = int(np.argmax(np.isfinite(row)))
        parts.append(pd.DataFrame({"series_id": f"shop{shop}", "ds": days[start:], "y": row[start:]}))
    return pd.concat(parts, ignore_index=True)


def boston311(data: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """Daily 311 requests in 2015: each neighbourhood's total, and neighbourhood × reason for the
    busiest reasons (absent rows are days without requests, so zero). ``n`` series at most."""
    daily = pd.read_csv(data / "boston311" / "boston311_2015_daily_by_neighborhood_type.csv.gz", parse_dates=["date"])
    daily = daily[daily["neighborhood"].notna() & (daily["neighborhood"].str.strip() != "")]
    total = daily.groupby(["neighborhood", "date"])["n"].sum().reset_index()
    total["series_id"] = total["neighborhood"] + " | all"
    by_reason = daily.groupby(["neighborhood", "REASON", "date"])["n"].sum().reset_index()
    volume = by_reason.groupby(["neighborhood", "REASON"])["n"].sum()
    busy = volume[volume >= 2 * 365].index  # two a day on average
    by_reason = by_reason.set_index(["neighborhood", "REASON"]).loc[busy].reset_index()
    by_reason["series_id"] = by_reason["neighborhood"] + " | " + by_reason["REASON"]
    long = pd.concat([total, by_reason])[["series_id", "date", "n"]]
    long.columns = ["series_id", "ds", "y"]
    ids = long["series_id"].unique()
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(ids, size=min(n, len(ids)), replace=False))
    long = long[long["series_id"].isin(chosen)]
    full = []
    days = pd.date_range("2015-01-01", "2015-12-31", freq="D")
    for sid, g in long.groupby("series_id"):
        s = g.set_index("ds")["y"].reindex(days, fill_value=0).astype(float)
        full.append(pd.DataFrame({"series_id": sid, "ds": days, "y": s.to_numpy()}))
    return pd.concat(full, ignore_index=True)
