"""Daily series per community × metric, from validated tickets and surveys. Pure, vectorised.

Metrics (DESIGN.md, the series frame contract; their names and kinds are in ``forecaster/vocab.py``,
their computations here):

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

__all__ = [
    "DailySeries",
    "DAY_SUM_COLUMNS",
    "day_sums",
    "combine_day_sums",
    "empty_day_sums",
    "series_from_day_sums",
]


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


# Additive day sums per community: what a day's metrics are computed from. Sums (not means)
# so that the sums of one day read in different batches, or on different nights, add up.
DAY_SUM_COLUMNS = ("created", "complaints", "closed", "hours", "sat_w", "sat_wy", "surveyed")


def day_sums(tickets: pd.DataFrame, surveys: pd.DataFrame, metrics: MetricsConfig) -> pd.DataFrame:
    """Day sums per community from validated tickets and surveys → ``community_id, ds`` and
    `DAY_SUM_COLUMNS`, one row per community and day with anything on it:

    * ``created`` / ``complaints``: tickets created that day / of them complaints;
    * ``closed`` / ``hours``: tickets closed that day / their hours from creation to closing;
    * ``sat_w`` / ``sat_wy``: satisfaction weight and weighted score given that day (survey
      responses; a ticket's rating on its closing day, or creation day if still open);
    * ``surveyed``: survey rows that day (with ``created``, where a community's history starts).
    """
    cid = tickets["community_id"]
    t_day = tickets["created_at"].dt.normalize()
    complaints = {c.strip().lower() for c in metrics.complaint_categories}
    is_complaint = tickets["category"].str.strip().str.lower().isin(complaints).fillna(False).to_numpy(bool)
    pieces = [
        pd.DataFrame({"created": 1, "complaints": is_complaint.astype(np.int64)}, index=tickets.index)
        .groupby([cid, t_day])
        .sum()
    ]
    closed = tickets["closed_at"].notna()
    if closed.any():
        c_at = tickets.loc[closed, "closed_at"]
        hours = (c_at - tickets.loc[closed, "created_at"]).dt.total_seconds() / 3600.0
        pieces.append(
            pd.DataFrame({"closed": 1, "hours": hours}).groupby([cid[closed], c_at.dt.normalize()]).sum()
        )
    if "surveys" in metrics.satisfaction_from and len(surveys):
        pieces.append(
            pd.DataFrame(
                {"sat_w": surveys["responses"], "sat_wy": surveys["score"] * surveys["responses"], "surveyed": 1}
            )
            .groupby([surveys["community_id"], surveys["date"]])
            .sum()
        )
    if "ratings" in metrics.satisfaction_from:
        rated = tickets["rating"].notna()
        if rated.any():
            r_day = tickets.loc[rated, "closed_at"].fillna(tickets.loc[rated, "created_at"]).dt.normalize()
            pieces.append(
                pd.DataFrame({"sat_w": 1.0, "sat_wy": tickets.loc[rated, "rating"]}).groupby([cid[rated], r_day]).sum()
            )
    return combine_day_sums(pieces)


def combine_day_sums(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """Add up day sums (indexed or with ``community_id, ds`` columns) into one row per community
    and day, columns ``community_id, ds`` and `DAY_SUM_COLUMNS`."""
    frames = []
    for piece in pieces:
        if "community_id" in piece.columns:
            piece = piece.set_index(["community_id", "ds"])
        piece.index = piece.index.set_names(["community_id", "ds"])
        frames.append(piece)
    if not frames:
        return empty_day_sums()
    both = pd.concat(frames).fillna(0)
    summed = both.groupby(level=["community_id", "ds"], sort=True).sum() if len(frames) > 1 else both
    for col in DAY_SUM_COLUMNS:
        if col not in summed.columns:
            summed[col] = 0
    out = summed[list(DAY_SUM_COLUMNS)].reset_index()
    out["community_id"] = out["community_id"].astype("string")
    out["ds"] = out["ds"].astype("datetime64[ns]")
    for col in ("created", "complaints", "closed", "surveyed"):
        out[col] = out[col].astype(np.int64)
    for col in ("hours", "sat_w", "sat_wy"):
        out[col] = out[col].astype("float64")
    return out


def empty_day_sums() -> pd.DataFrame:
    frame = pd.DataFrame({"community_id": pd.Series(dtype="string"), "ds": pd.Series(dtype="datetime64[ns]")})
    for col in DAY_SUM_COLUMNS:
        frame[col] = pd.Series(dtype="int64" if col in ("created", "complaints", "closed", "surveyed") else "float64")
    return frame


def series_from_day_sums(
    sums: pd.DataFrame,
    as_of: dt.date,
    metrics: MetricsConfig,
    *,
    min_history_days: int,
    communities: pd.Series | None = None,
) -> DailySeries:
    """Daily series up to the day before ``as_of`` from day sums (`day_sums`; a community and
    day may appear more than once: its sums are added up).

    ``communities`` (ids) lists every known community, so that one without any data in the
    window still appears in ``stats`` as ``no_data``.
    """
    end = pd.Timestamp(as_of) - pd.Timedelta(days=1)
    if sums.duplicated(["community_id", "ds"]).any():
        sums = combine_day_sums([sums])
    sums = sums[sums["ds"] <= end]
    starts = sums[(sums["created"] > 0) | (sums["surveyed"] > 0)]
    first = starts.groupby("community_id", sort=True)["ds"].min().astype("datetime64[ns]")
    index = _grid(first, end)
    p = sums.set_index(["community_id", "ds"]).reindex(index)

    daily = pd.DataFrame(index=index)
    daily["ticket_count"] = p["created"].fillna(0).astype("float64")
    daily["complaint_count"] = p["complaints"].fillna(0).astype("float64")
    daily["resolution_hours"] = (p["hours"] / p["closed"]).where(p["closed"] > 0)
    daily["satisfaction"] = (p["sat_wy"] / p["sat_w"]).where(p["sat_w"] > 0)

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
