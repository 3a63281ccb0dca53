"""Choosing a model per series by rolling-origin backtest, with fallbacks and calibrated intervals.

One primitive, `evaluate_folds`, fits each candidate at several forecast origins (train on
everything before the origin, forecast the next ``h`` days) and keeps the forecasts. From it:

* `forecast_series` (the nightly path) picks the candidate with the lowest mean MASE over the
  most recent folds, refits it on the whole history and forecasts the horizon. Its interval is
  calibrated on the same folds (conformal scaling: widened or narrowed until it would have
  covered ``level``% of the backtest points). A series too short to backtest, or whose chosen
  model fails, gets the seasonal-naive baseline, and the reason is recorded.
* `backtest_series` (the ``backtest`` command and the benchmarks) scores every candidate and
  ``auto`` on the last ``folds`` folds, where ``auto`` picks each fold's model from the folds
  *before* it, exactly as the nightly run would have, so its score is honest.

MASE is the mean absolute error divided by the mean absolute week-on-week change of the
training history (the weekly seasonal-naive scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecaster.models.arima import Arima
from forecaster.models.base import Forecast, ModelError, SeriesSpec, predict_with
from forecaster.models.naive import SeasonalNaive, seasonal_naive_scale
from forecaster.models.prophet import ProphetModel

__all__ = [
    "MODELS",
    "Settings",
    "SeriesForecast",
    "FoldForecast",
    "make_model",
    "fold_origins",
    "evaluate_folds",
    "forecast_series",
    "backtest_series",
    "holiday_window_mask",
    "summarise_backtest",
]

MODELS = {"naive": SeasonalNaive, "arima": Arima, "prophet": ProphetModel}


def make_model(name: str):
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


@dataclass(frozen=True)
class Settings:
    horizon: int = 90
    level: float = 80.0
    min_history_days: int = 56
    model: str = "auto"
    candidates: tuple[str, ...] = ("naive", "arima", "prophet")
    folds: int = 2
    fold_horizon: int = 28
    step: int = 28
    calibrate: bool = True

    @classmethod
    def from_config(cls, forecast) -> "Settings":
        return cls(
            horizon=forecast.horizon,
            level=forecast.level,
            min_history_days=forecast.min_history_days,
            model=forecast.model,
            candidates=tuple(forecast.candidates),
            folds=forecast.backtest_folds,
            fold_horizon=forecast.backtest_horizon,
            step=forecast.backtest_step,
        )


@dataclass
class FoldForecast:
    origin: int  # index of the first forecast day
    y: np.ndarray
    forecast: Forecast | None
    scale: float
    error: str | None = None

    @property
    def mase(self) -> float:
        if self.forecast is None:
            return float("nan")
        ok = np.isfinite(self.y)
        if not ok.any() or not np.isfinite(self.scale) or self.scale <= 0:
            return float("nan")
        return float(np.mean(np.abs(self.y[ok] - self.forecast.mean[ok])) / self.scale)


@dataclass
class SeriesForecast:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    model: str
    status: str  # ok | fallback
    reason: str = ""
    score: float = float("nan")  # backtest MASE of the chosen model
    scores: dict[str, float] = field(default_factory=dict)
    calibration: float = 1.0


def fold_origins(n: int, h: int, folds: int, step: int, min_train: int) -> list[int]:
    """Origins (oldest first) of up to ``folds`` folds of ``h`` days ending at the last day."""
    last = n - h
    origins = [last - k * step for k in range(folds)]
    return sorted(o for o in origins if o >= min_train)


def evaluate_folds(
    model,
    y: np.ndarray,
    ds: pd.DatetimeIndex,
    spec: SeriesSpec,
    features: pd.DataFrame | None,
    origins: list[int],
    h: int,
    level: float,
) -> list[FoldForecast]:
    out = []
    spec = getattr(model, "spec", None) or spec  # a baseline may insist on its own (e.g. raw values)
    for o in origins:
        scale = seasonal_naive_scale(y[:o])
        hist = None if features is None else features.iloc[:o]
        fut = None if features is None else features.iloc[o : o + h]
        try:
            fc = predict_with(model, y[:o], ds[:o], h, level, spec, hist, fut)
            out.append(FoldForecast(o, y[o : o + h], fc, scale))
        except (ModelError, np.linalg.LinAlgError, ValueError) as exc:
            out.append(FoldForecast(o, y[o : o + h], None, scale, error=str(exc)))
    return out


def _mean_mase(folds: list[FoldForecast]) -> float:
    if not folds or any(f.forecast is None for f in folds):
        return float("nan")
    values = [f.mase for f in folds]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def calibration_factor(folds: list[FoldForecast], level: float, *, min_points: int = 20) -> float:
    """How much to scale the interval's half-widths so that it would have covered ``level``%
    of the backtest points (1.0 when there are too few points to tell)."""
    ratios = []
    for f in folds:
        if f.forecast is None:
            continue
        m, lo, hi = f.forecast.mean, f.forecast.lower, f.forecast.upper
        for y, mu, a, b in zip(f.y, m, lo, hi):
            if not np.isfinite(y):
                continue
            width = (b - mu) if y >= mu else (mu - a)
            dist = abs(y - mu)
            ratios.append(dist / width if width > 1e-9 else (0.0 if dist <= 1e-9 else 10.0))
    if len(ratios) < min_points:
        return 1.0
    return float(np.clip(np.quantile(ratios, level / 100), 0.5, 4.0))


def _scaled(fc: Forecast, factor: float, spec: SeriesSpec) -> Forecast:
    if factor == 1.0 or fc is None:
        return fc
    lower = spec.clip(fc.mean - factor * (fc.mean - fc.lower))
    upper = spec.clip(fc.mean + factor * (fc.upper - fc.mean))
    return Forecast(fc.mean, np.minimum(lower, fc.mean), np.maximum(upper, fc.mean))


def forecast_series(
    y: np.ndarray,
    ds: pd.DatetimeIndex,
    spec: SeriesSpec,
    features: pd.DataFrame | None,
    future: pd.DataFrame | None,
    settings: Settings,
) -> SeriesForecast:
    """The nightly choice for one series: backtest, choose, refit, forecast, calibrate."""
    h, level = settings.horizon, settings.level
    n_obs = int(np.isfinite(y).sum())

    def baseline(reason: str) -> SeriesForecast:
        fc = predict_with(SeasonalNaive(), y, ds, h, level, spec, features, future)
        return SeriesForecast(fc.mean, fc.lower, fc.upper, "naive", "fallback", reason)

    if len(y) < settings.min_history_days or n_obs < 14:
        return baseline(f"history of {len(y)} days ({n_obs} observed) < min_history_days {settings.min_history_days}")

    candidates = [settings.model] if settings.model != "auto" else list(settings.candidates)
    origins = fold_origins(len(y), settings.fold_horizon, settings.folds, settings.step, settings.min_history_days)
    folds = {
        name: evaluate_folds(make_model(name), y, ds, spec, features, origins, settings.fold_horizon, level)
        for name in candidates
    }
    scores = {name: _mean_mase(f) for name, f in folds.items()}
    failed = {name: next(f.error for f in fs if f.error) for name, fs in folds.items() if any(f.error for f in fs)}
    # Best backtest first; a forced model is tried even when its backtest failed.
    order = [name for s, name in sorted((s, name) for name, s in scores.items()) if np.isfinite(s)]
    if not order and settings.model != "auto":
        order = [settings.model]
    notes = [f"{name} failed in backtest: {err}" for name, err in failed.items()]
    for name in order:
        try:
            fc = predict_with(make_model(name), y, ds, h, level, spec, features, future)
        except (ModelError, np.linalg.LinAlgError, ValueError) as exc:
            notes.append(f"{name} failed: {exc}")
            continue
        factor = calibration_factor(folds.get(name, []), level) if settings.calibrate else 1.0
        fc = _scaled(fc, factor, spec)
        best_first = name == order[0]
        status = "ok" if best_first else "fallback"
        return SeriesForecast(
            fc.mean, fc.lower, fc.upper, name, status, "; ".join(notes), scores.get(name, float("nan")), scores, factor
        )
    if not origins and settings.model == "auto":
        notes.append("history too short for a backtest")
    result = baseline("; ".join(notes) or "no candidate model produced a forecast")
    result.scores = scores
    return result


# ----------------------------------------------------------------------------- backtest reports


def holiday_window_mask(features: pd.DataFrame) -> np.ndarray:
    """Days off for a public holiday or inside a holiday's before/after window."""
    cols = [c for c in features.columns if c.startswith(("hol_", "pre_", "post_"))]
    if not cols:
        return np.zeros(len(features), dtype=bool)
    return features[cols].to_numpy().max(axis=1) > 0


def backtest_series(
    y: np.ndarray,
    ds: pd.DatetimeIndex,
    spec: SeriesSpec,
    features: pd.DataFrame | None,
    *,
    models: tuple[str, ...],
    h: int,
    folds: int,
    step: int,
    level: float,
    min_train: int,
    selection_folds: int = 2,
    extra_models: dict | None = None,
) -> pd.DataFrame:
    """Point-level backtest results: one row per model, fold and day, with ``auto`` included.

    Columns: ``model, fold, ds, y, yhat, lo, hi, scale, holiday_window`` (``yhat`` NaN where
    the model failed, with the error in ``error``).
    """
    if "naive" not in models:
        models = ("naive", *models)
    all_origins = fold_origins(len(y), h, folds + selection_folds, step, min_train)
    evaluated = {name: evaluate_folds(make_model(name), y, ds, spec, features, all_origins, h, level) for name in models}
    for name, model in (extra_models or {}).items():
        evaluated[name] = evaluate_folds(model, y, ds, spec, features, all_origins, h, level)
    scored = all_origins[-folds:] if len(all_origins) > selection_folds else []
    hw = holiday_window_mask(features) if features is not None else np.zeros(len(y), bool)
    rows = []

    def emit(name: str, fold: FoldForecast, k: int, factor: float = 1.0) -> None:
        o = fold.origin
        idx = np.arange(o, min(o + h, len(y)))
        fc = None if fold.forecast is None else _scaled(fold.forecast, factor, spec)
        rows.append(
            pd.DataFrame(
                {
                    "model": name,
                    "fold": k,
                    "ds": ds[idx],
                    "y": y[idx],
                    "yhat": np.nan if fc is None else fc.mean[: len(idx)],
                    "lo": np.nan if fc is None else fc.lower[: len(idx)],
                    "hi": np.nan if fc is None else fc.upper[: len(idx)],
                    "scale": fold.scale,
                    "holiday_window": hw[idx],
                    "error": fold.error or "",
                }
            )
        )

    for k, origin in enumerate(scored):
        i = all_origins.index(origin)
        previous = {name: fs[i - selection_folds : i] for name, fs in evaluated.items() if name in models}
        for name, fs in evaluated.items():
            # Baselines passed as extra_models are scored as they are, uncalibrated.
            factor = calibration_factor(fs[i - selection_folds : i], level) if name in models else 1.0
            emit(name, fs[i], k, factor)
        ranked = [name for s, name in sorted((_mean_mase(p), name) for name, p in previous.items()) if np.isfinite(s)]
        usable = [name for name in ranked if evaluated[name][i].forecast is not None]
        choice = usable[0] if usable else "naive"
        if choice in evaluated:
            emit("auto", evaluated[choice][i], k, calibration_factor(previous[choice], level))
    if not rows:
        return pd.DataFrame(columns=["model", "fold", "ds", "y", "yhat", "lo", "hi", "scale", "holiday_window", "error"])
    return pd.concat(rows, ignore_index=True)


def summarise_backtest(points: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Per model (and ``by`` columns): MASE, sMAPE and interval coverage, overall and on holiday
    windows. MASE averages scaled absolute errors over all points; sMAPE in percent."""
    by = ["model"] + (by or [])
    p = points[np.isfinite(points["y"].to_numpy(dtype=float))].copy()
    p["ae"] = (p["y"] - p["yhat"]).abs()
    p["se"] = p["ae"] / p["scale"].where(p["scale"] > 0)
    denom = p["y"].abs() + p["yhat"].abs()
    p["smape"] = (200 * p["ae"] / denom).where(denom > 0, 0.0)
    p["covered"] = ((p["y"] >= p["lo"]) & (p["y"] <= p["hi"])).astype(float).where(p["yhat"].notna())
    hw = p[p["holiday_window"]]
    out = p.groupby(by).agg(
        points=("y", "size"),
        failed=("yhat", lambda s: int(s.isna().sum())),
        mase=("se", "mean"),
        smape=("smape", "mean"),
        coverage=("covered", "mean"),
    )
    if len(hw):
        out = out.join(
            hw.groupby(by).agg(
                holiday_points=("y", "size"),
                holiday_mase=("se", "mean"),
                holiday_smape=("smape", "mean"),
                holiday_coverage=("covered", "mean"),
            )
        )
    return out.reset_index()
