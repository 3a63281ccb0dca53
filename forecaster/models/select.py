"""Choosing a model per series from its backtest, with fallbacks and calibrated intervals.

The folds come from `forecaster.models.backtest`: each candidate fitted at several forecast
origins, scored by MASE. From them:

* `forecast_series` (the nightly path) picks the candidate with the lowest mean MASE over the
  most recent folds, refits it on the whole history and forecasts the horizon. Its interval is
  calibrated on the same folds (conformal scaling: widened or narrowed until it would have
  covered ``level``% of the backtest points). A series too short to backtest, or whose chosen
  model fails, gets the seasonal-naive baseline, and the reason is recorded.
* `backtest_series` (the ``backtest`` command and the benchmarks) scores every candidate and
  ``auto`` on the last ``folds`` folds, where ``auto`` picks each fold's model from the folds
  *before* it, exactly as the nightly run would have, so its score is honest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecaster.config import ForecastConfig
from forecaster.models.arima import Arima
from forecaster.models.backtest import (
    FoldForecast,
    evaluate_folds,
    fold_origins,
    holiday_window_mask,
    majors_ahead,
    score_candidates,
    selection_origins,
    window_masks,
)
from forecaster.models.base import FIT_ERRORS, Forecast, SeriesSpec, predict_with
from forecaster.models.linear import LinearModel
from forecaster.models.naive import SeasonalNaive
from forecaster.models.prophet import ProphetModel
from forecaster.vocab import AUTO, BASELINE, COMBINATIONS, SINGLE_MODELS

__all__ = [
    "MODELS",
    "Settings",
    "SeriesForecast",
    "make_model",
    "forecast_series",
    "Choice",
    "Calibration",
    "calibration_factor",
    "backtest_series",
]

MODELS = {model.name: model for model in (SeasonalNaive, LinearModel, Arima, ProphetModel)}
assert tuple(MODELS) == SINGLE_MODELS
# Candidates made of others (vocab.COMBINATIONS) are the mean of their members' forecasts. Scored
# from the members' backtest forecasts, so they cost no extra fit in the backtest.
_DEFAULTS = ForecastConfig()  # the config schema holds every default


def make_model(name: str):
    if name in COMBINATIONS:
        return Combination(name, [MODELS[m]() for m in COMBINATIONS[name]])
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join([*MODELS, *COMBINATIONS])}") from None


def combine(forecasts: list[Forecast]) -> Forecast:
    return Forecast(*(np.mean([getattr(f, part) for f in forecasts], axis=0) for part in ("mean", "lower", "upper")))


class Combination:
    """The mean of several models' forecasts (in the original space, after each one's bounds)."""

    def __init__(self, name: str, members: list):
        self.name, self.members = name, members

    def predict(self, y, ds, h, level, spec, features, future) -> Forecast:
        return combine([predict_with(m, y, ds, h, level, spec, features, future) for m in self.members])


def _add_combinations(folds: dict[str, list[FoldForecast]]) -> None:
    """Derive each combination's fold forecasts from its members' (when all are present)."""
    for name, members in COMBINATIONS.items():
        if all(m in folds for m in members):
            parts = [folds[m] for m in members]
            folds[name] = [
                FoldForecast(
                    fs[0].origin,
                    fs[0].y,
                    None if any(f.forecast is None for f in fs) else combine([f.forecast for f in fs]),
                    fs[0].scale,
                    next((f.error for f in fs if f.error), None),
                    fs[0].holiday,
                )
                for fs in zip(*parts)
            ]


@dataclass(frozen=True)
class Settings:
    horizon: int = _DEFAULTS.horizon
    level: float = _DEFAULTS.level
    min_history_days: int = _DEFAULTS.min_history_days
    model: str = _DEFAULTS.model
    candidates: tuple[str, ...] = tuple(_DEFAULTS.candidates)
    folds: int = _DEFAULTS.backtest_folds
    fold_horizon: int = _DEFAULTS.backtest_horizon
    step: int = _DEFAULTS.backtest_step
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


@dataclass(frozen=True)
class Choice:
    """A series' model choice from a full backtest, reusable on the nights after it: the model,
    its backtest MASE, its interval calibration, and the major holidays that were ahead (a new
    one coming into the horizon calls for a new choice)."""

    model: str
    score: float
    ordinary: float
    holiday: float
    ahead: tuple[str, ...]
    chosen_on: str  # ISO date of the last history day when it was chosen


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
    calibration: "Calibration | None" = None
    choice: Choice | None = None
    reused: bool = False  # the model and calibration came from an earlier night's choice


@dataclass(frozen=True)
class SeriesInput:
    """A series as the models take it: values (NaN = missing), dates, how to treat it, and the
    calendar features of its history and (for a forecast) of the horizon."""

    y: np.ndarray
    ds: pd.DatetimeIndex
    spec: SeriesSpec
    features: pd.DataFrame | None
    future: pd.DataFrame | None = None

    def forecast(self, model, settings: Settings) -> Forecast:
        """``model`` fitted on the whole history, forecasting the horizon (in the original space)."""
        args = (self.y, self.ds, settings.horizon, settings.level, self.spec, self.features, self.future)
        return model.predict(*args) if isinstance(model, Combination) else predict_with(model, *args)

    def future_holidays(self) -> np.ndarray | None:
        """Which horizon days fall in a holiday window (None without calendar features)."""
        return holiday_window_mask(self.future) if self.future is not None else None


@dataclass(frozen=True)
class Calibration:
    """Factors for the interval half-widths: ordinary days, and days in a holiday window
    (errors there are larger; their factor is never below the ordinary one)."""

    ordinary: float = 1.0
    holiday: float = 1.0

    def per_day(self, holiday: np.ndarray | None, h: int) -> np.ndarray:
        if holiday is None:
            return np.full(h, self.ordinary)
        return np.where(holiday[:h], self.holiday, self.ordinary)


def holiday_volatility(y: np.ndarray, holiday: np.ndarray | None, *, min_days: int = 5, cap: float = 2.0) -> float:
    """How much more the series moves week on week in holiday windows than on ordinary days:
    the ratio of the 80th percentiles of |y[t] − y[t−7]|, between 1 and ``cap`` (1 when the
    history holds fewer than ``min_days`` holiday-window days)."""
    if holiday is None or len(y) <= 7:
        return 1.0
    change = np.abs(y[7:] - y[:-7])
    flags = np.asarray(holiday[7 : len(y)], dtype=bool)
    ok = np.isfinite(change)
    on, off = change[ok & flags], change[ok & ~flags]
    if len(on) < min_days or len(off) < min_days:
        return 1.0
    base = np.quantile(off, 0.8)
    if base <= 0:
        return 1.0
    return float(np.clip(np.quantile(on, 0.8) / base, 1.0, cap))


def calibration_factor(
    folds: list[FoldForecast],
    level: float,
    *,
    min_points: int = 20,
    min_holiday_points: int = 5,
    holiday_ratio: float = 1.0,
) -> Calibration:
    """Scale the interval so that it would have covered ``level``% of the backtest points
    (conformal calibration), separately for holiday-window days when there are enough of them;
    when there are not, holiday days get the ordinary factor times ``holiday_ratio`` (see
    `holiday_volatility`). Factors stay within 0.5–4; too few points leave the interval as the
    model gave it."""
    ratios, holiday = [], []
    for f in folds:
        if f.forecast is None:
            continue
        m, lo, hi = f.forecast.mean, f.forecast.lower, f.forecast.upper
        flags = f.holiday if f.holiday is not None else np.zeros(len(f.y), bool)
        for y, mu, a, b, flag in zip(f.y, m, lo, hi, flags):
            if not np.isfinite(y):
                continue
            width = (b - mu) if y >= mu else (mu - a)
            dist = abs(y - mu)
            ratios.append(dist / width if width > 1e-9 else (0.0 if dist <= 1e-9 else 10.0))
            holiday.append(bool(flag))
    if len(ratios) < min_points:
        return Calibration()
    ratios_arr, holiday_arr = np.asarray(ratios), np.asarray(holiday)

    def factor(values: np.ndarray) -> float:
        # Split-conformal quantile with its finite-sample correction: level × (n + 1) / n.
        q = min(1.0, level / 100 * (len(values) + 1) / len(values))
        return float(np.clip(np.quantile(values, q), 0.5, 4.0))

    off_holiday = ratios_arr[~holiday_arr]
    ordinary = factor(off_holiday if len(off_holiday) >= min_points else ratios_arr)
    on_holiday = ratios_arr[holiday_arr]
    if len(on_holiday) >= min_holiday_points:
        special = max(ordinary, factor(on_holiday))
    else:
        special = min(ordinary * holiday_ratio, 4.0)
    return Calibration(ordinary, special)


def calibrate_interval(
    fc: Forecast | None, calibration: Calibration, holiday: np.ndarray | None, h: int, spec: SeriesSpec
) -> Forecast | None:
    """``fc`` with its interval half-widths scaled by ``calibration`` (holiday-window days by
    their own factor), clipped to the series' bounds and never inside the mean."""
    factor = calibration.per_day(holiday, h)
    if fc is None or np.all(factor == 1.0):
        return fc
    lower = spec.clip(fc.mean - factor * (fc.mean - fc.lower))
    upper = spec.clip(fc.mean + factor * (fc.upper - fc.mean))
    return Forecast(fc.mean, np.minimum(lower, fc.mean), np.maximum(upper, fc.mean))


def evaluate_candidates(
    names: Iterable[str], series: SeriesInput, origins: list[int], h: int, level: float
) -> dict[str, list[FoldForecast]]:
    """Fold forecasts of every model that ``names`` need (each combination's members, fitted
    once), and of every combination whose members are all there."""
    members = {m for c in names for m in COMBINATIONS.get(c, (c,))}
    y, ds, spec, features = series.y, series.ds, series.spec, series.features
    folds = {name: evaluate_folds(make_model(name), y, ds, spec, features, origins, h, level) for name in members}
    _add_combinations(folds)
    return folds


def first_errors(folds: dict[str, list[FoldForecast]]) -> dict[str, str]:
    """Each candidate that failed on some fold, with its first error."""
    return {name: next(f.error for f in fs if f.error) for name, fs in folds.items() if any(f.error for f in fs)}


def rank_candidates(scores: dict[str, float]) -> list[str]:
    """Candidates with a score, best first (ties by name)."""
    return [name for s, name in sorted((s, name) for name, s in scores.items()) if np.isfinite(s)]


def make_fallback(series: SeriesInput, settings: Settings, reason: str) -> SeriesForecast:
    """The seasonal-naive baseline's forecast, marked as a fallback for ``reason``."""
    fc = series.forecast(SeasonalNaive(), settings)
    return SeriesForecast(fc.mean, fc.lower, fc.upper, BASELINE, "fallback", reason)


def can_reuse(
    choice: Choice | None, last_day: pd.Timestamp, ahead: set[str], candidates: list[str], settings: Settings, reuse_days: int
) -> bool:
    """Whether an earlier night's ``choice`` still holds: auto-selection, a model still among the
    candidates, younger than ``reuse_days`` and the same major holidays ahead."""
    if choice is None or settings.model != AUTO or choice.model not in candidates or reuse_days <= 1:
        return False
    age = (last_day.date() - pd.Timestamp(choice.chosen_on).date()).days
    return 0 <= age < reuse_days and tuple(sorted(ahead)) == tuple(choice.ahead)


def forecast_reused(choice: Choice, series: SeriesInput, settings: Settings) -> SeriesForecast | None:
    """The chosen model refit on the whole history, with the choice's stored calibration
    (None if the refit fails: the caller chooses afresh)."""
    try:
        fc = series.forecast(make_model(choice.model), settings)
    except FIT_ERRORS:
        return None
    calibration = Calibration(choice.ordinary, choice.holiday) if settings.calibrate else Calibration()
    fc = calibrate_interval(fc, calibration, series.future_holidays(), settings.horizon, series.spec)
    return SeriesForecast(fc.mean, fc.lower, fc.upper, choice.model, "ok", "", choice.score, {}, calibration, choice, reused=True)


def forecast_series(
    y: np.ndarray,
    ds: pd.DatetimeIndex,
    spec: SeriesSpec,
    features: pd.DataFrame | None,
    future: pd.DataFrame | None,
    settings: Settings,
    *,
    choice: Choice | None = None,
    reuse_days: int = 0,
) -> SeriesForecast:
    """The nightly choice for one series: backtest, choose, refit, forecast, calibrate.

    With an earlier ``choice`` younger than ``reuse_days`` (and the same major holidays ahead),
    the backtest is skipped: the chosen model is refit on the whole history and its stored
    calibration applied. That is one fit instead of one per candidate and fold."""
    h, level = settings.horizon, settings.level
    series = SeriesInput(y, ds, spec, features, future)
    n_obs = int(np.isfinite(y).sum())
    if len(y) < settings.min_history_days or n_obs < 14:
        reason = f"history of {len(y)} days ({n_obs} observed) < min_history_days {settings.min_history_days}"
        return make_fallback(series, settings, reason)

    candidates = [settings.model] if settings.model != AUTO else auto_candidates(settings.candidates, spec)
    ahead = majors_ahead(window_masks(future), 0, settings.horizon) if future is not None else set()
    if can_reuse(choice, ds[-1], ahead, candidates, settings, reuse_days):
        reused = forecast_reused(choice, series, settings)
        if reused is not None:
            return reused
    masks = window_masks(features)
    recent, choose, calibrate = selection_origins(
        len(y), settings.fold_horizon, settings.folds, settings.step, settings.min_history_days, masks, ahead
    )
    origins = sorted(set(recent + choose + calibrate))
    folds = evaluate_candidates(candidates, series, origins, settings.fold_horizon, level)
    folds = {name: fs for name, fs in folds.items() if name in candidates}
    scores = score_candidates(folds, set(recent + choose))
    # Best backtest first; a forced model is tried even when its backtest failed.
    order = rank_candidates(scores) or ([settings.model] if settings.model != AUTO else [])
    notes = [f"{name} failed in backtest: {err}" for name, err in first_errors(folds).items()]
    for name in order:
        try:
            fc = series.forecast(make_model(name), settings)
        except FIT_ERRORS as exc:
            notes.append(f"{name} failed: {exc}")
            continue
        calibration = (
            calibration_factor(folds.get(name, []), level, holiday_ratio=holiday_volatility(y, masks.get("any")))
            if settings.calibrate
            else Calibration()
        )
        fc = calibrate_interval(fc, calibration, series.future_holidays(), h, spec)
        best_first = name == order[0]
        score = scores.get(name, float("nan"))
        chosen = (
            Choice(name, score, calibration.ordinary, calibration.holiday, tuple(sorted(ahead)), ds[-1].date().isoformat())
            if best_first and settings.model == AUTO
            else None
        )
        status = "ok" if best_first else "fallback"
        return SeriesForecast(fc.mean, fc.lower, fc.upper, name, status, "; ".join(notes), score, scores, calibration, chosen)
    if not origins and settings.model == AUTO:
        notes.append("history too short for a backtest")
    result = make_fallback(series, settings, "; ".join(notes) or "no candidate model produced a forecast")
    result.scores = scores
    return result


# ----------------------------------------------------------------------------- the backtest: replaying the choice


POINT_COLUMNS = ["model", "fold", "ds", "y", "yhat", "lo", "hi", "scale", "holiday_window", "error"]


def plan_nights(
    scored: list[int], masks: dict[str, np.ndarray], h: int, min_train: int, reused_after: int
) -> tuple[dict[int, set[str]], dict[int, int | None]]:
    """The nights a backtest replays: ``(ahead, earlier)``. ``ahead`` has the major holidays
    ahead of each scored origin and, with ``reused_after`` > 0, of the earlier night whose choice
    it reuses; ``earlier`` maps a scored origin to that night (None where a major holiday entered
    the horizon since: it chooses afresh)."""
    ahead = {o: majors_ahead(masks, o, o + h) if masks else set() for o in scored}
    earlier = {}
    for o in scored:
        e = o - reused_after
        if reused_after > 0 and e >= min_train:
            ahead[e] = majors_ahead(masks, e, e + h) if masks else set()
            earlier[o] = e if ahead[e] == ahead[o] else None
    return ahead, earlier


def calibrate_on(at: dict[int, FoldForecast], deciding: tuple[list[int], list[int], list[int]], level: float, ratio: float) -> Calibration:
    """The calibration a night makes from a model's folds that decide it (see `selection_origins`)."""
    recent, choose, calibrate = deciding
    return calibration_factor([at[o] for o in sorted(set(recent + choose + calibrate))], level, holiday_ratio=ratio)


def choose_replayed(
    at: dict[str, dict[int, FoldForecast]],
    candidates: list[str],
    deciding: tuple[list[int], list[int], list[int]],
    usable_at: int,
    level: float,
    ratio: float,
) -> tuple[str, Calibration]:
    """The choice among ``candidates`` and calibration a night makes from the folds ``deciding`` it, as
    `forecast_series` would; a model without a forecast at ``usable_at`` is passed over (the
    baseline if none is left)."""
    recent, choose, _ = deciding
    ranked = rank_candidates(score_candidates({name: at[name].values() for name in candidates}, set(recent + choose)))
    usable = [name for name in ranked if at[name][usable_at].forecast is not None]
    choice = usable[0] if usable else BASELINE
    return choice, calibrate_on(at[choice], deciding, level, ratio)


def make_points(
    name: str, k: int, fold: FoldForecast, calibration: Calibration, series: SeriesInput, hw: np.ndarray, h: int
) -> pd.DataFrame:
    """One fold's backtest points (`POINT_COLUMNS`) for ``name``, its interval calibrated."""
    o, y, ds = fold.origin, series.y, series.ds
    idx = np.arange(o, min(o + h, len(y)))
    fc = calibrate_interval(fold.forecast, calibration, hw[o : o + h], h, series.spec)
    return pd.DataFrame(
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


def auto_candidates(candidates, spec: SeriesSpec) -> list[str]:
    """What auto chooses among for this series: the configured candidates, and the baseline too
    for a level carried from day to day (`SeriesSpec.baseline_competes`)."""
    out = list(candidates)
    if spec.baseline_competes and BASELINE not in out:
        out.append(BASELINE)
    return out


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
    selection_folds: int = _DEFAULTS.backtest_folds,
    extra_models: dict | None = None,
    autos: dict[str, tuple[str, ...]] | None = None,
    reused_after: int = 0,
) -> pd.DataFrame:
    """Point-level backtest results: one row per model, fold and day, with ``auto`` included.

    ``autos`` names auto-selections and the candidates each chooses from (default: ``auto``
    among all ``models``), so that candidate sets can be compared in one run.

    ``reused_after`` > 0 also scores each auto as a night that reuses the choice (model and
    calibration) made that many days earlier, as `forecast_series` does: named
    ``<auto>_reused<N>d``; where a major holiday entered the horizon since, it chooses afresh.

    Columns: ``model, fold, ds, y, yhat, lo, hi, scale, holiday_window`` (``yhat`` NaN where
    the model failed, with the error in ``error``).
    """
    if BASELINE not in models:
        models = (BASELINE, *models)
    masks = window_masks(features)
    hw = masks["any"] if masks else np.zeros(len(y), bool)
    scored = fold_origins(len(y), h, folds, step, min_train)
    # What the nightly run would have backtested at each scored origin, to choose and calibrate.
    ahead, earlier = plan_nights(scored, masks, h, min_train, reused_after)
    deciding = {o: selection_origins(o, h, selection_folds, step, min_train, masks, ahead[o]) for o in ahead}
    needed = sorted(set(scored).union(*(r + c + k for r, c, k in deciding.values())))
    series = SeriesInput(y, ds, spec, features)
    evaluated = evaluate_candidates(models, series, needed, h, level)
    models = tuple(dict.fromkeys([*models, *[c for c in COMBINATIONS if c in evaluated]]))
    evaluated = {name: fs for name, fs in evaluated.items() if name in models}
    for name, model in (extra_models or {}).items():
        evaluated[name] = evaluate_folds(model, y, ds, spec, features, needed, h, level)
    at = {name: {f.origin: f for f in fs} for name, fs in evaluated.items()}
    rows = []
    for k, origin in enumerate(scored):
        ratio = holiday_volatility(y[:origin], hw)
        for name in evaluated:
            # Baselines passed as extra_models are scored as they are, uncalibrated.
            calibration = calibrate_on(at[name], deciding[origin], level, ratio) if name in models else Calibration()
            rows.append(make_points(name, k, at[name][origin], calibration, series, hw, h))
        for auto, pool in (autos or {AUTO: models}).items():
            candidates = [name for name in models if name in auto_candidates(pool, spec)]
            choice, calibration = choose_replayed(at, candidates, deciding[origin], origin, level, ratio)
            rows.append(make_points(auto, k, at[choice][origin], calibration, series, hw, h))
            if reused_after > 0:
                e = earlier.get(origin)
                if e is not None:
                    ratio_then = holiday_volatility(y[:e], hw)
                    choice, calibration = choose_replayed(at, candidates, deciding[e], origin, level, ratio_then)
                rows.append(make_points(f"{auto}_reused{reused_after}d", k, at[choice][origin], calibration, series, hw, h))
    if not rows:
        return pd.DataFrame(columns=POINT_COLUMNS)
    return pd.concat(rows, ignore_index=True)
