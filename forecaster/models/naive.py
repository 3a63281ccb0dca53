"""Weekly seasonal naive: each future day repeats the last observed value of the same weekday.

The baseline every other model must beat, and the fallback when they fail. Intervals come
from the empirical distribution of week-on-week changes, widened with the square root of the
number of weeks ahead.
"""

from __future__ import annotations

import numpy as np

from forecaster.models.base import Forecast, ModelError

__all__ = ["SeasonalNaive", "seasonal_naive_scale"]

SEASON = 7


def seasonal_naive_scale(y: np.ndarray, season: int = SEASON) -> float:
    """Mean absolute week-on-week change: the MASE denominator (missing days ignored)."""
    if len(y) <= season:
        return float("nan")
    diff = np.abs(y[season:] - y[:-season])
    diff = diff[np.isfinite(diff)]
    return float(diff.mean()) if len(diff) else float("nan")


class SeasonalNaive:
    name = "naive"

    def __init__(self, season: int = SEASON, lookback_weeks: int = 8):
        self.season = season
        self.lookback_weeks = lookback_weeks

    def forecast(self, z, ds, h, level, features=None, future=None) -> Forecast:
        n, m = len(z), self.season
        finite = np.isfinite(z)
        if not finite.any():
            raise ModelError("no observations")
        fallback = float(np.nanmean(z[max(0, n - 4 * m) :])) if finite[max(0, n - 4 * m) :].any() else float(z[finite][-1])
        last = np.empty(m)
        for j in range(m):
            # Value of the weekday that day n + j falls on: last observed one within the lookback.
            idx = n - m + j
            value = fallback
            for k in range(self.lookback_weeks):
                i = idx - k * m
                if i < 0:
                    break
                if finite[i]:
                    value = float(z[i])
                    break
            last[j] = value
        mean = np.array([last[j % m] for j in range(h)])
        changes = z[m:] - z[:-m]
        changes = changes[np.isfinite(changes)][-365:]
        alpha = (1 - level / 100) / 2
        if len(changes) >= 10:
            lo_q, hi_q = np.quantile(changes, [alpha, 1 - alpha])
        else:
            spread = float(np.nanstd(z)) if finite.sum() > 1 else 0.0
            lo_q, hi_q = -1.28 * spread, 1.28 * spread
        weeks = np.sqrt(np.arange(h) // m + 1)
        return Forecast(mean, mean + lo_q * weeks, mean + hi_q * weeks)
