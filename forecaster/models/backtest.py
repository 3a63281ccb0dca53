"""The rolling-origin backtest: folds, holiday windows and scores.

A fold fits a model at a forecast origin (train on everything before it, forecast the next
``h`` days) and keeps the forecast beside the actual values. `fold_origins` places the recent
folds, `selection_origins` adds folds at past holidays, `evaluate_folds` runs a model on them,
`score_candidates` averages their MASE and `summarise_backtest` turns the points of a backtest
into a table. Choosing a model from these folds is `forecaster.models.select`.

MASE is the mean absolute error divided by the mean absolute week-on-week change of the
training history (the weekly seasonal-naive scale).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.models.base import FIT_ERRORS, Forecast, SeriesSpec, predict_with
from forecaster.models.naive import seasonal_naive_scale
from forecaster.vocab import MAJOR_HOLIDAYS

__all__ = [
    "FoldForecast",
    "fold_origins",
    "holiday_window_mask",
    "window_masks",
    "selection_origins",
    "majors_ahead",
    "evaluate_folds",
    "mean_mase",
    "score_candidates",
    "summarise_backtest",
]


@dataclass
class FoldForecast:
    origin: int  # index of the first forecast day
    y: np.ndarray
    forecast: Forecast | None
    scale: float
    error: str | None = None
    holiday: np.ndarray | None = None  # which forecast days fall in a holiday window

    @property
    def mase(self) -> float:
        if self.forecast is None:
            return float("nan")
        ok = np.isfinite(self.y)
        if not ok.any() or not np.isfinite(self.scale) or self.scale <= 0:
            return float("nan")
        return float(np.mean(np.abs(self.y[ok] - self.forecast.mean[ok])) / self.scale)


def fold_origins(n: int, h: int, folds: int, step: int, min_train: int) -> list[int]:
    """Origins (oldest first) of up to ``folds`` folds of ``h`` days ending at the last day."""
    last = n - h
    origins = [last - k * step for k in range(folds)]
    return sorted(o for o in origins if o >= min_train)


def holiday_window_mask(features: pd.DataFrame) -> np.ndarray:
    """Days off for a public holiday or inside a holiday's before/after window."""
    pick = np.flatnonzero(features.columns.str.startswith(("hol_", "pre_", "post_")))
    if not len(pick):
        return np.zeros(len(features), dtype=bool)
    return features.iloc[:, pick].to_numpy().max(axis=1) > 0


def window_masks(features: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """Holiday windows as day masks: ``any`` holiday window, and each major holiday's own
    (its days off and the days before and after)."""
    if features is None:
        return {}
    masks = {"any": holiday_window_mask(features)}
    values = None
    position = {c: i for i, c in enumerate(features.columns)}
    for key in MAJOR_HOLIDAYS:
        cols = [position[c] for c in (f"hol_{key}", f"pre_{key}", f"post_{key}") if c in position]
        if cols:
            if values is None:
                values = features.to_numpy()  # one float block: no copy
            masks[key] = values[:, cols].max(axis=1) > 0
    return masks


def holiday_fold(mask: np.ndarray, t: int, h: int, min_train: int, lead: int = 3) -> int | None:
    """Origin of the latest fold of ``h`` days that starts ``lead`` days before a window of
    ``mask`` and ends before ``t``."""
    m = np.asarray(mask[:t], dtype=bool)
    starts = np.flatnonzero(m & ~np.concatenate([[False], m[:-1]]))
    fits = [int(s) - lead for s in starts if s - lead >= min_train and s - lead + h <= t]
    return fits[-1] if fits else None


def selection_origins(
    t: int,
    h: int,
    folds: int,
    step: int,
    min_train: int,
    masks: dict[str, np.ndarray] | None = None,
    ahead: set[str] = frozenset(),
) -> tuple[list[int], list[int], list[int]]:
    """The folds that decide at time ``t`` (history ``[:t]``): ``(recent, choose, calibrate)``.

    * ``recent``: the ``folds`` most recent origins; they choose the model and calibrate it.
    * ``choose``: for each major holiday ``ahead`` (e.g. Spring Festival within the horizon), a
      fold at the same holiday last time; it joins the choice, so the model that handled the
      last Spring Festival best is preferred before the next one. (Measured: adding the most
      recent holiday of any kind to the choice made it worse; without any, the seasonal-naive
      rule won right before Spring Festival on the demo data.)
    * ``calibrate``: a fold at the most recent holiday window of any kind, so that holiday days
      get an interval width learned on a holiday.

    Holiday folds that a recent fold already covers are left out.
    """
    recent = fold_origins(t, h, folds, step, min_train)
    if not masks:
        return recent, [], []

    def new(o: int | None, taken: list[int]) -> bool:
        return o is not None and o not in taken and all(abs(o - r) >= h // 2 for r in recent)

    choose: list[int] = []
    for key in sorted(ahead):
        o = holiday_fold(masks[key], t, h, min_train) if key in masks else None
        if new(o, choose):
            choose.append(o)
    latest = holiday_fold(masks["any"], t, h, min_train)
    calibrate = [latest] if new(latest, []) else []
    return recent, choose, calibrate


def majors_ahead(masks: dict[str, np.ndarray], lo: int, hi: int) -> set[str]:
    return {key for key, m in masks.items() if key != "any" and m[lo:hi].any()}


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
        holiday = None if fut is None else holiday_window_mask(fut)
        try:
            fc = predict_with(model, y[:o], ds[:o], h, level, spec, hist, fut)
            out.append(FoldForecast(o, y[o : o + h], fc, scale, holiday=holiday))
        except FIT_ERRORS as exc:
            out.append(FoldForecast(o, y[o : o + h], None, scale, error=str(exc), holiday=holiday))
    return out


def mean_mase(folds: list[FoldForecast]) -> float:
    if not folds or any(f.forecast is None for f in folds):
        return float("nan")
    values = [f.mase for f in folds]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def score_candidates(folds: dict[str, Iterable[FoldForecast]], origins: set[int]) -> dict[str, float]:
    """Each candidate's mean MASE over its folds at ``origins`` (NaN if one of them failed)."""
    return {name: mean_mase([f for f in fs if f.origin in origins]) for name, fs in folds.items()}


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
