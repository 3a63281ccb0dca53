"""Real public data sets from ../shared/data (see its SOURCES.md) as long frames ``series_id, ds, y``.

Nothing here is copied into the project: the files are read where they lie.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

# The shared real-data folder: FORECASTER_SHARED_DATA (.ci/run sets it), else ../shared/data
# beside the repository.
DEFAULT_DATA = Path(os.environ.get("FORECASTER_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


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


# ------------------------------------------------------------------ Boston 311 as a CSV source
BOSTON_CASES = Path("boston311") / "boston311_2015_cases_slim.csv.gz"
BOSTON_AS_OF = "2016-01-01"  # the night after the last day of 2015
BOSTON_TZ = "America/New_York"


def boston311_cases(data: Path) -> pd.DataFrame:
    """The 2015 Boston 311 tickets as published (one row per case), times parsed (local, naive),
    ``neighborhood`` trimmed (blank → missing)."""
    cases = pd.read_csv(data / BOSTON_CASES, dtype={"CASE_ENQUIRY_ID": str})
    for col in ("OPEN_DT", "CLOSED_DT", "TARGET_DT"):
        cases[col] = pd.to_datetime(cases[col])
    hood = cases["neighborhood"].astype("string").str.strip()
    cases["neighborhood"] = hood.mask(hood == "")
    return cases


def community_id_of(neighbourhood: "pd.Series") -> "pd.Series":
    """A neighbourhood's community id: its name in lower case, runs of other characters as one
    dash ("Allston / Brighton" → "allston-brighton")."""
    return neighbourhood.str.lower().str.replace(r"[^a-z0-9]+", "-", regex=True).str.strip("-")


def boston311_source(
    data: Path,
    out_dir: Path,
    *,
    neighbourhoods: "list[str] | None" = None,
    created: "tuple[str, str] | None" = None,
    category: str = "REASON",
    targets_only: bool = False,
    as_of: str = BOSTON_AS_OF,
) -> Path:
    """Write the 2015 Boston 311 tickets as the service's CSV source and a config reading it;
    returns the config's path (``out_dir/config.yaml``; the files are in ``out_dir/csv``).

    * ``communities.csv``: one community per neighbourhood: ``community_id`` (`community_id_of`),
      ``name`` (the neighbourhood), ``city`` Boston, ``region`` (the city-council district most
      of its tickets are in, "District 7");
    * ``tickets.csv``: ``ticket_id`` = CASE_ENQUIRY_ID, ``community_id``, ``created_at`` = OPEN_DT,
      ``closed_at`` = CLOSED_DT, ``due_at`` = TARGET_DT, ``category`` = REASON (or TYPE).

    Rows without a neighbourhood are left out; ``neighbourhoods`` keeps only those, ``created``
    (first, last day, inclusive) only the tickets created in it, ``targets_only`` only those
    with a TARGET_DT (the tickets the city's OnTime_Status judges against a deadline). The
    config: csv source, no surveys, America/New_York for the source and the company, a history
    window from 2015-01-01 to ``as_of``, US holidays; its store and outputs in ``out_dir``.
    """
    import yaml

    if category not in ("REASON", "TYPE"):
        raise ValueError(f"category is REASON or TYPE, not {category!r}")
    cases = boston311_cases(data)
    cases = cases[cases["neighborhood"].notna()]
    if neighbourhoods is not None:
        unknown = set(neighbourhoods) - set(cases["neighborhood"])
        if unknown:
            raise ValueError(f"no such neighbourhood in the data: {sorted(unknown)}")
        cases = cases[cases["neighborhood"].isin(neighbourhoods)]
    if created is not None:
        lo, hi = pd.Timestamp(created[0]), pd.Timestamp(created[1]) + pd.Timedelta(days=1)
        cases = cases[(cases["OPEN_DT"] >= lo) & (cases["OPEN_DT"] < hi)]
    if targets_only:
        cases = cases[cases["TARGET_DT"].notna()]
    cases = cases.assign(community_id=community_id_of(cases["neighborhood"]))

    district = cases["city_council_district"].astype("Int64")
    region = (
        cases.assign(d=district).dropna(subset=["d"]).groupby("neighborhood")["d"].agg(lambda s: f"District {s.mode().iloc[0]}")
    )
    communities = (
        cases.groupby("neighborhood", as_index=False)["community_id"].first().rename(columns={"neighborhood": "name"})
    )
    communities["city"] = "Boston"
    communities["region"] = communities["name"].map(region)
    communities = communities[["community_id", "name", "city", "region"]].sort_values("community_id")

    def stamp(s: pd.Series) -> pd.Series:
        return s.dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")

    tickets = pd.DataFrame(
        {
            "ticket_id": cases["CASE_ENQUIRY_ID"],
            "community_id": cases["community_id"],
            "created_at": stamp(cases["OPEN_DT"]),
            "closed_at": stamp(cases["CLOSED_DT"]),
            "due_at": stamp(cases["TARGET_DT"]),
            "category": cases[category].fillna(""),
        }
    )
    out_dir = Path(out_dir)
    csv_dir = out_dir / "csv"
    csv_dir.mkdir(parents=True, exist_ok=True)
    communities.to_csv(csv_dir / "communities.csv", index=False, encoding="utf-8")
    tickets.to_csv(csv_dir / "tickets.csv", index=False, encoding="utf-8")
    as_of_day = pd.Timestamp(as_of)
    config = {
        "timezone": BOSTON_TZ,
        "source": {
            "type": "csv",
            "timezone": BOSTON_TZ,
            # From 2015-01-01 (the first day of the data) to the day before as_of.
            "history_days": max(28, int((as_of_day - pd.Timestamp("2015-01-01")).days)),
            "csv": {"directory": "csv", "encoding": "utf-8", "delimiter": ","},
            "tables": {
                "communities": {"table": "communities.csv"},
                "tickets": {"table": "tickets.csv"},
                "surveys": None,
            },
        },
        "forecast": {"country": "US"},
        "store": {"url": "sqlite:///forecaster.db"},
        "output": {"dir": "out"},
    }
    path = out_dir / "config.yaml"
    header = f"# Boston 311 tickets of 2015 as a CSV source (bench/datasets.py boston311_source); as of {as_of}.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def boston311_service_series(config_path: Path, as_of: str = BOSTON_AS_OF):
    """The service's own ingest of a `boston311_source`: (DailyData, DailySeries), read and
    aggregated as a night does (`forecaster.pipeline._ingest` / `_aggregate`, without a store)."""
    import datetime as dt

    from forecaster.config import load_config
    from forecaster.ingest import load_daily
    from forecaster.ingest.aggregate import series_from_day_sums

    config = load_config(config_path)
    day = dt.date.fromisoformat(as_of)
    data = load_daily(config, day)
    series = series_from_day_sums(
        data.day_sums, day, config.metrics,
        min_history_days=config.forecast.min_history_days, communities=data.communities["community_id"],
    )
    return data, series


def boston311_kpis(
    data: Path,
    n: int | None = None,
    seed: int = 0,
    *,
    metrics: tuple[str, ...] = ("closed_on_time", "open_backlog"),
    min_due_per_day: float = 5.0,
    work_dir: Path | None = None,
) -> pd.DataFrame:
    """Daily KPI series per neighbourhood as the service computes them from the 2015 tickets
    (`boston311_source` → `forecaster.ingest.load_daily` → `series_from_day_sums`), as
    ``series_id, ds, y`` (``<community>:<metric>``; closed_on_time is missing on days nothing
    fell due), with ``community_id`` and ``metric`` (which tells the models it is a share or a
    count: `forecaster.forecasting.spec_for_metric`). Neighbourhoods with fewer than ``min_due_per_day`` tickets due a day on average
    are left out (Chestnut Hill, 14 tickets in the year); ``n`` series at most, sampled."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        config_path = boston311_source(data, Path(work_dir or tmp))
        daily, series = boston311_service_series(config_path)
    sums = daily.day_sums
    busy = sums.groupby("community_id")["close_due"].sum() / 365.0
    keep = set(busy[busy >= min_due_per_day].index)
    frame = series.frame[series.frame["metric"].isin(metrics) & series.frame["community_id"].isin(keep)]
    long = frame[["series_id", "ds", "y", "community_id", "metric"]].reset_index(drop=True)
    ids = long["series_id"].unique()
    if n is not None and n < len(ids):
        rng = np.random.default_rng(seed)
        long = long[long["series_id"].isin(set(rng.choice(ids, size=n, replace=False)))]
    return long.sort_values(["series_id", "ds"]).reset_index(drop=True)
