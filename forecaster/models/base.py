"""The one interface every model implements, and what they share.

A model sees a series in *model space* (after the transform: ``log1p`` for non-negative
series such as counts and hours) as a float array with NaN for missing days, the dates, and
the calendar features of history and horizon. It returns mean and interval bounds in model
space; `predict_with` transforms back and applies the series' bounds (counts ≥ 0,
satisfaction 0–100). Models never read config files or databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

__all__ = ["Forecast", "SeriesSpec", "Model", "ModelError", "FIT_ERRORS", "predict_with", "weekday_dummies", "fourier_terms"]


class ModelError(Exception):
    """A model could not fit or forecast this series (the caller falls back)."""


# What fitting or forecasting a series can raise when the model cannot handle it (the caller falls back).
FIT_ERRORS = (ModelError, np.linalg.LinAlgError, ValueError)


@dataclass
class Forecast:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        for name in ("mean", "lower", "upper"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if not np.all(np.isfinite(arr)):
                raise ModelError(f"non-finite {name} in forecast")
            setattr(self, name, arr)


@dataclass(frozen=True)
class SeriesSpec:
    """How to treat a series: its transform and the range its values can take."""

    transform: str = "none"  # none | log1p
    lower: float | None = None
    upper: float | None = None
    # A level carried from day to day (open tickets): the seasonal-naive baseline competes in
    # auto's choice as a candidate of its own, not only as the fallback (on Boston's backlogs
    # every other model did worse than it: docs/benchmarks.md).
    baseline_competes: bool = False

    @classmethod
    def for_values(cls, y: np.ndarray, *, lower: float | None = None, upper: float | None = None) -> "SeriesSpec":
        """``log1p`` and a floor of 0 for non-negative data (counts, hours), else as given."""
        finite = y[np.isfinite(y)]
        if lower is None and len(finite) and finite.min() >= 0:
            lower = 0.0
        transform = "log1p" if lower == 0.0 and upper is None else "none"
        return cls(transform, lower, upper)

    def forward(self, y: np.ndarray) -> np.ndarray:
        return np.log1p(np.maximum(y, 0.0)) if self.transform == "log1p" else y

    def backward(self, z: np.ndarray) -> np.ndarray:
        if self.transform == "log1p":
            z = np.expm1(np.minimum(z, 50.0))
        return self.clip(z)

    def clip(self, y: np.ndarray) -> np.ndarray:
        lo = -np.inf if self.lower is None else self.lower
        hi = np.inf if self.upper is None else self.upper
        return np.clip(y, lo, hi)


class Model(Protocol):
    name: str

    def forecast(
        self,
        z: np.ndarray,
        ds: pd.DatetimeIndex,
        h: int,
        level: float,
        features: pd.DataFrame | None,
        future: pd.DataFrame | None,
    ) -> Forecast:
        """Forecast ``h`` days after ``ds[-1]`` from ``z`` (model space; NaN = missing)."""


def predict_with(
    model: Model,
    y: np.ndarray,
    ds: pd.DatetimeIndex,
    h: int,
    level: float,
    spec: SeriesSpec,
    features: pd.DataFrame | None = None,
    future: pd.DataFrame | None = None,
) -> Forecast:
    """Forecast in the original space: transform, forecast, transform back, clip to the bounds."""
    z = spec.forward(np.asarray(y, dtype=float))
    if np.isfinite(z).sum() < 2:
        raise ModelError("fewer than two observations")
    fc = model.forecast(z, ds, h, level, features, future)
    mean, lower, upper = spec.backward(fc.mean), spec.backward(fc.lower), spec.backward(fc.upper)
    lower, upper = np.minimum(lower, mean), np.maximum(upper, mean)
    return Forecast(mean, lower, upper)


def weekday_dummies(ds: pd.DatetimeIndex) -> np.ndarray:
    """Six 0/1 columns, Tuesday … Sunday (Monday is the baseline)."""
    dow = ds.day_of_week.to_numpy()
    return (dow[:, None] == np.arange(1, 7)[None, :]).astype(float)


def fourier_terms(ds: pd.DatetimeIndex, order: int, period: float = 365.25) -> np.ndarray:
    """Yearly seasonality as ``2 × order`` sine/cosine columns of the day number."""
    t = (ds - pd.Timestamp("2000-01-01")).days.to_numpy(dtype=float)
    k = np.arange(1, order + 1)[None, :]
    angle = 2 * np.pi * k * t[:, None] / period
    return np.hstack([np.sin(angle), np.cos(angle)])
