"""Daily series per community × metric, from validated tickets and surveys. Pure, vectorised.

Metrics (DESIGN.md, the series frame contract):

* ``ticket_count``: tickets created that day; 0 on a quiet day.
* ``complaint_count``: of those, the ones whose category is a complaint (``metrics.complaint_categories``).
* ``satisfaction``: 0–100, the response-weighted mean of survey scores that day and of
  post-ticket ratings given that day (a ticket's rating counts on its closing day). A day
  without any response is *missing*, never 0.
* ``resolution_hours``: mean hours from creation to closing of the tickets closed that day;
  missing on a day nothing was closed.

A community's series run from its first ticket or survey (within the history window) to the
day before ``as_of``. Days are local dates in the configured timezone (validation already
converted the timestamps).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.config import MetricsConfig

__all__ = ["DailySeries", "make_daily_series", "COUNT_METRICS", "series_id_for"]

COUNT_METRICS = frozenset({"ticket_count", "complaint_count"})


def series_id_for(community_id: str, metric: str) -> str:
    return f"{community_id}:{metric}"


@dataclass
class DailySeries:
    frame: pd.DataFrame  # series_id, community_id, metric, ds, y  (long; y NaN where missing)
    stats: pd.DataFrame  # one row per series: series_id, community_id, metric, first_ds, last_ds, n_days, n_obs, status, reason

    @property
    def n_series(self) -> int:
        return int((self.stats["status"] != "no_data").sum())


def _grid(first: pd.Series, end: pd.Timestamp) -> pd.MultiIndex:
    """(community_id, ds) for every day from each community's first day to ``end``."""
    first = first[first <= end]
    lengths = ((end - first).dt.days + 1).to_numpy()
    communities = np.repeat(first.index.to_numpy(), lengths)
    starts = np.repeat(first.to_numpy().astype("datetime64[D]"), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ds = pd.DatetimeIndex(starts + offsets.astype("timedelta64[D]")).astype("datetime64[ns]")
    return pd.MultiIndex.from_arrays([communities, ds], names=["community_id", "ds"])


def make_daily_series(
    tickets: pd.DataFrame,
    surveys: pd.DataFrame,
    as_of: dt.date,
    metrics: MetricsConfig,
    *,
    min_history_days: int,
    communities: pd.Series | None = None,
) -> DailySeries:
    """Aggregate to daily series up to the day before ``as_of``.

    ``communities`` (ids) lists every known community, so that one without any data in the
    window still appears in ``stats`` as ``no_data``.
    """
    end = pd.Timestamp(as_of) - pd.Timedelta(days=1)
    t_day = tickets["created_at"].dt.normalize()
    firsts = [t_day.groupby(tickets["community_id"]).min()]
    if "surveys" in metrics.satisfaction_from and len(surveys):
        firsts.append(surveys["date"].groupby(surveys["community_id"]).min())
    first = pd.concat(firsts).groupby(level=0).min().astype("datetime64[ns]")
    index = _grid(first, end)
    daily = pd.DataFrame(index=index)

    cid = tickets["community_id"]
    daily["ticket_count"] = tickets.groupby([cid, t_day]).size().reindex(index, fill_value=0)
    complaints = {c.strip().lower() for c in metrics.complaint_categories}
    is_complaint = tickets["category"].str.strip().str.lower().isin(complaints).fillna(False).to_numpy(bool)
    daily["complaint_count"] = (
        tickets[is_complaint].groupby([cid[is_complaint], t_day[is_complaint]]).size().reindex(index, fill_value=0)
    )

    closed = tickets["closed_at"].notna()
    c_day = tickets.loc[closed, "closed_at"].dt.normalize()
    hours = (tickets.loc[closed, "closed_at"] - tickets.loc[closed, "created_at"]).dt.total_seconds() / 3600.0
    daily["resolution_hours"] = hours.groupby([cid[closed], c_day]).mean().reindex(index)

    parts = []
    if "surveys" in metrics.satisfaction_from and len(surveys):
        parts.append(
            pd.DataFrame(
                {
                    "community_id": surveys["community_id"],
                    "ds": surveys["date"],
                    "w": surveys["responses"],
                    "wy": surveys["score"] * surveys["responses"],
                }
            )
        )
    if "ratings" in metrics.satisfaction_from:
        rated = tickets["rating"].notna()
        r_day = tickets.loc[rated, "closed_at"].fillna(tickets.loc[rated, "created_at"]).dt.normalize()
        parts.append(
            pd.DataFrame({"community_id": cid[rated], "ds": r_day, "w": 1.0, "wy": tickets.loc[rated, "rating"]})
        )
    parts = [p for p in parts if len(p)]
    if parts:
        sat = pd.concat(parts).groupby(["community_id", "ds"])[["w", "wy"]].sum()
        sat = sat[sat["w"] > 0]
        daily["satisfaction"] = (sat["wy"] / sat["w"]).reindex(index)
    else:
        daily["satisfaction"] = np.nan

    enabled = [m for m in metrics.enabled]
    long = daily[enabled].stack(future_stack=True).rename("y").reset_index()
    long = long.rename(columns={"level_2": "metric"})
    long["y"] = long["y"].astype("float64")
    long["series_id"] = long["community_id"].astype(str) + ":" + long["metric"].astype(str)
    long = long[["series_id", "community_id", "metric", "ds", "y"]]

    stats = _series_stats(long, enabled, communities, min_history_days)
    keep = stats.loc[stats["status"] != "no_data", "series_id"]
    long = long[long["series_id"].isin(set(keep))]
    long = long.sort_values(["community_id", "metric", "ds"], kind="stable").reset_index(drop=True)
    return DailySeries(long, stats)


def _series_stats(
    long: pd.DataFrame, metrics: list[str], communities: pd.Series | None, min_history_days: int
) -> pd.DataFrame:
    g = long.groupby("series_id", sort=False)
    stats = pd.DataFrame(
        {
            "community_id": g["community_id"].first(),
            "metric": g["metric"].first(),
            "first_ds": g["ds"].min(),
            "last_ds": g["ds"].max(),
            "n_days": g["ds"].size(),
            "n_obs": g["y"].count(),
        }
    ).reset_index()
    if communities is not None:
        all_ids = pd.MultiIndex.from_product([pd.Index(communities.astype(str).unique()), metrics])
        present = set(zip(stats["community_id"], stats["metric"]))
        missing = [(c, m) for c, m in all_ids if (c, m) not in present]
        if missing:
            extra = pd.DataFrame(missing, columns=["community_id", "metric"])
            extra["series_id"] = extra["community_id"] + ":" + extra["metric"]
            extra["n_days"] = 0
            extra["n_obs"] = 0
            stats = pd.concat([stats, extra], ignore_index=True)
    stats["n_days"] = stats["n_days"].astype(int)
    stats["n_obs"] = stats["n_obs"].astype(int)
    status = np.where(stats["n_obs"] == 0, "no_data", np.where(stats["n_days"] < min_history_days, "short", "ok"))
    reason = np.where(
        status == "no_data",
        "no observations in the history window",
        np.where(
            status == "short",
            "history of " + stats["n_days"].astype(str) + f" days < forecast.min_history_days ({min_history_days})",
            "",
        ),
    )
    stats["status"] = status
    stats["reason"] = reason
    return stats.sort_values(["community_id", "metric"], kind="stable").reset_index(drop=True)
