"""Forecasts and backtests of many series given as a long frame ``series_id, ds, y``.

The edge between frames and the per-series numpy work in `forecaster.models`: validates the
input (errors name the file, line and column), completes every series to consecutive days
(absent days are missing, or zero for count data when asked), builds the calendar features
once per location, and runs each series on its own, so that one failing series never stops
the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.calendar import FeatureBook, Location
from forecaster.config import CalendarConfig, ForecastConfig
from forecaster.models.base import SeriesSpec
from forecaster.models.select import Choice, Settings, backtest_series, forecast_series
from forecaster.util.errors import ForecasterError
from forecaster.vocab import SINGLE_MODELS

__all__ = [
    "InputError",
    "read_long_csv",
    "validate_long",
    "complete_days",
    "spec_for_metric",
    "SeriesOutcome",
    "forecast_long",
    "backtest_long",
]

MAX_SHOWN = 5
_DEFAULTS = ForecastConfig()  # the config schema holds every default


class InputError(ForecasterError):
    """The input file is not a usable long series table."""

    exit_code = 2


def read_long_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: cannot read as a UTF-8 CSV: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return validate_long(frame, path.name)


def _lines(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)[:MAX_SHOWN] + 2  # header is line 1
    more = f" and {int(mask.sum()) - MAX_SHOWN} more" if mask.sum() > MAX_SHOWN else ""
    return ", ".join(str(r) for r in rows) + more


def validate_long(frame: pd.DataFrame, origin: str = "input") -> pd.DataFrame:
    """Check and type a ``series_id, ds, y`` frame; raise `InputError` naming rows and columns."""
    missing = [c for c in ("series_id", "ds", "y") if c not in frame.columns]
    if missing:
        there = ", ".join(frame.columns) or "none"
        raise InputError(f"{origin}: missing column(s) {', '.join(missing)} (columns there: {there}); need series_id, ds, y")
    sid = frame["series_id"].astype("string").str.strip()
    bad = sid.isna().to_numpy()
    if bad.any():
        raise InputError(f"{origin}: empty series_id on line(s) {_lines(bad)}")
    raw_ds = frame["ds"]
    ds = pd.to_datetime(raw_ds, errors="coerce", format="ISO8601")
    bad = ds.isna().to_numpy()
    if bad.any():
        first = raw_ds[bad].iloc[0]
        raise InputError(f"{origin}: column ds: not a date on line(s) {_lines(bad)} (e.g. {first!r}; use YYYY-MM-DD)")
    if (ds != ds.dt.normalize()).any():
        bad = (ds != ds.dt.normalize()).to_numpy()
        raise InputError(f"{origin}: column ds: daily dates expected, got a time of day on line(s) {_lines(bad)}")
    y = pd.to_numeric(frame["y"], errors="coerce")
    bad = (y.isna() & frame["y"].notna()).to_numpy() | ~np.isfinite(y.fillna(0).to_numpy())
    if bad.any():
        first = frame["y"][bad].iloc[0]
        raise InputError(f"{origin}: column y: not a number on line(s) {_lines(bad)} (e.g. {first!r}; leave a missing value empty)")
    out = pd.DataFrame({"series_id": sid.astype(str), "ds": ds.dt.tz_localize(None) if ds.dt.tz else ds, "y": y.astype(float)})
    for extra in ("community_id", "metric"):
        if extra in frame.columns:
            out[extra] = frame[extra]
    dup = out.duplicated(["series_id", "ds"], keep=False).to_numpy()
    if dup.any():
        first = out[dup].iloc[0]
        raise InputError(
            f"{origin}: duplicate (series_id, ds) on line(s) {_lines(dup)} "
            f"(e.g. {first['series_id']!r} on {first['ds'].date()}); one value per series and day"
        )
    if out.empty:
        raise InputError(f"{origin}: no rows")
    return out.sort_values(["series_id", "ds"], kind="stable").reset_index(drop=True)


def complete_days(frame: pd.DataFrame, gaps: str = "missing") -> pd.DataFrame:
    """Every series on consecutive days from its first to its last date. Absent days become
    missing (``gaps="missing"``, right for levels such as satisfaction) or 0 (``"zero"``, for counts
    where an absent row means nothing happened)."""
    if gaps not in ("missing", "zero"):
        raise ValueError("gaps must be 'missing' or 'zero'")
    parts = []
    for sid, g in frame.groupby("series_id", sort=False):
        full = pd.date_range(g["ds"].iloc[0], g["ds"].iloc[-1], freq="D")
        if len(full) == len(g):
            parts.append(g)
            continue
        filled = g.set_index("ds").reindex(full)
        filled.index.name = "ds"
        filled["series_id"] = sid
        for col in ("community_id", "metric"):
            if col in g.columns:
                filled[col] = g[col].iloc[0]
        if gaps == "zero":
            filled["y"] = filled["y"].fillna(0.0)
        parts.append(filled.reset_index())
    return pd.concat(parts, ignore_index=True)[frame.columns]


def spec_for_metric(metric: str | None, y: np.ndarray) -> SeriesSpec:
    """Satisfaction stays within 0–100; counts and hours are non-negative (modelled in log1p)."""
    if metric == "satisfaction":
        return SeriesSpec("none", 0.0, 100.0)
    if metric in ("ticket_count", "complaint_count", "resolution_hours"):
        return SeriesSpec("log1p", 0.0, None)
    return SeriesSpec.for_values(y)


@dataclass
class SeriesOutcome:
    series_id: str
    status: str  # ok | fallback | failed
    model: str = ""
    reason: str = ""
    score: float = float("nan")
    n_obs: int = 0
    choice: Choice | None = None  # the model choice made or reused tonight (to keep for later nights)
    reused: bool = False


_BOOKS: dict[tuple, FeatureBook] = {}
_BLAS_LIMITED = False


def _one_blas_thread() -> None:
    """Parallelism comes from processes (one per core); BLAS threads on top of them fight over
    the same cores for matrices of a few dozen columns (measured: a linear fit took 41 ms instead
    of 14 ms with two busy processes). Applied once per process."""
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
        _BLAS_LIMITED = True


def _book(start, end, country: str, calendar: CalendarConfig) -> FeatureBook:
    """Calendar features covering ``start`` … ``end``, built once per process: a worker
    forecasting chunk after chunk of one night's series reuses the book of the first chunk
    whenever it covers the dates (series start on different days)."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    settings = (country, calendar.model_dump_json())
    for (lo, hi, *rest), book in _BOOKS.items():
        if tuple(rest) == settings and lo <= start and end <= hi:
            return book
    if len(_BOOKS) >= 4:
        _BOOKS.pop(next(iter(_BOOKS)))
    book = _BOOKS[(start, end, *settings)] = FeatureBook(start, end, country=country, calendar=calendar)
    return book


def forecast_long(
    frame: pd.DataFrame,
    settings: Settings,
    *,
    country: str = _DEFAULTS.country,
    calendar: CalendarConfig | None = None,
    locations: dict[str, Location] | None = None,
    spec: Callable[[str, np.ndarray], SeriesSpec] | None = None,
    choices: dict[str, Choice] | None = None,
    reuse_days: int = 0,
    span: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> tuple[pd.DataFrame, list[SeriesOutcome]]:
    """Forecast every series ``settings.horizon`` days past its last date.

    Returns the forecasts (``series_id, ds, yhat, yhat_lower, yhat_upper, model``) and one
    outcome per series. A series that raises is recorded as failed and skipped. ``choices``
    holds earlier model choices to reuse (see `forecast_series`); ``span`` (first and last
    history day of all the night's series) lets every chunk share one calendar book.
    """
    _one_blas_thread()
    calendar = calendar or CalendarConfig()
    h = settings.horizon
    first, last = span or (frame["ds"].min(), frame["ds"].max())
    feats = _book(first, last + pd.Timedelta(days=h), country, calendar)
    metric_of = frame.groupby("series_id")["metric"].first().to_dict() if "metric" in frame.columns else {}
    rows, outcomes = [], []
    for sid, g in frame.groupby("series_id", sort=False):
        ds = pd.DatetimeIndex(g["ds"])
        y = g["y"].to_numpy(dtype=float)
        try:
            loc = (locations or {}).get(sid, Location())
            f_all = feats.numeric(loc).loc[ds[0] : ds[-1] + pd.Timedelta(days=h)]
            hist, fut = f_all.iloc[: len(ds)], f_all.iloc[len(ds) :]
            s = spec(sid, y) if spec else spec_for_metric(metric_of.get(sid), y)
            fc = forecast_series(y, ds, s, hist, fut, settings, choice=(choices or {}).get(sid), reuse_days=reuse_days)
        except Exception as exc:  # one series must never stop the others
            outcomes.append(SeriesOutcome(sid, "failed", reason=f"{type(exc).__name__}: {exc}", n_obs=int(np.isfinite(y).sum())))
            continue
        future_ds = pd.date_range(ds[-1] + pd.Timedelta(days=1), periods=h, freq="D")
        rows.append(
            pd.DataFrame(
                {
                    "series_id": sid,
                    "ds": future_ds,
                    "yhat": fc.mean,
                    "yhat_lower": fc.lower,
                    "yhat_upper": fc.upper,
                    "model": fc.model,
                }
            )
        )
        outcomes.append(
            SeriesOutcome(sid, fc.status, fc.model, fc.reason, fc.score, int(np.isfinite(y).sum()), fc.choice, fc.reused)
        )
    columns = ["series_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    return out, outcomes


def backtest_long(
    frame: pd.DataFrame,
    *,
    horizon: int,
    folds: int,
    level: float = _DEFAULTS.level,
    step: int | None = None,
    models: Iterable[str] = SINGLE_MODELS,
    country: str = _DEFAULTS.country,
    calendar: CalendarConfig | None = None,
    locations: dict[str, Location] | None = None,
    min_train: int = _DEFAULTS.min_history_days,
    selection_folds: int = _DEFAULTS.backtest_folds,
    extra_models: dict | None = None,
    autos: dict[str, tuple[str, ...]] | None = None,
    spec: Callable[[str, np.ndarray], SeriesSpec] | None = None,
    reused_after: int = 0,
) -> pd.DataFrame:
    """Point-level backtest results of every series (see `backtest_series`), with ``series_id``."""
    calendar = calendar or CalendarConfig()
    feats = FeatureBook(frame["ds"].min(), frame["ds"].max(), country=country, calendar=calendar)
    metric_of = frame.groupby("series_id")["metric"].first().to_dict() if "metric" in frame.columns else {}
    parts = []
    for sid, g in frame.groupby("series_id", sort=False):
        ds = pd.DatetimeIndex(g["ds"])
        y = g["y"].to_numpy(dtype=float)
        f = feats.get((locations or {}).get(sid, Location())).loc[ds[0] : ds[-1]]
        s = spec(sid, y) if spec else spec_for_metric(metric_of.get(sid), y)
        points = backtest_series(
            y,
            ds,
            s,
            f,
            models=tuple(models),
            h=horizon,
            folds=folds,
            step=step or horizon,
            level=level,
            min_train=min_train,
            selection_folds=selection_folds,
            extra_models=extra_models,
            autos=autos,
            reused_after=reused_after,
        )
        points.insert(0, "series_id", sid)
        parts.append(points)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
