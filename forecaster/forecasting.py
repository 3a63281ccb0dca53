"""Forecasts and backtests of many series given as a long frame ``series_id, ds, y``.

The edge between frames and the per-series numpy work in `forecaster.models`: the night's
fan-out of every community's series over the engine (`forecast_communities`, in chunks, with
reused model choices), and `forecast_long` / `backtest_long`, which build the calendar features
once per location and run each series on its own, so that one failing series never stops the
others. The ad-hoc long CSV is read and validated in `forecaster.ingest.longcsv`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.calendar import FeatureBook, Location, locations_of
from forecaster.config import CalendarConfig, Config, ForecastConfig
from forecaster.models.base import SeriesSpec
from forecaster.models.select import Choice, Settings, backtest_series, forecast_series
from forecaster.util.engine import chunked, map_chunks, resolve_workers
from forecaster.util.progress import Progress
from forecaster.vocab import metric_of

__all__ = [
    "spec_for_metric",
    "SeriesOutcome",
    "forecast_long",
    "backtest_long",
    "CHUNK_SERIES",
    "reselect_tonight",
    "forecast_communities",
]

_DEFAULTS = ForecastConfig()  # the config schema holds every default


def spec_for_metric(metric: str | None, y: np.ndarray) -> SeriesSpec:
    """How a metric's series is modelled (vocab.METRICS: satisfaction within 0–100; counts and
    hours non-negative, in log1p); a series of no known metric, from its values."""
    known = metric_of(metric) if metric else None
    if known is None:
        return SeriesSpec.for_values(y)
    return SeriesSpec(known.transform, known.lower, known.upper, baseline_competes=known.aggregate == "stock")


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
    the same cores for matrices of a few dozen columns (a linear fit about three times slower with
    two busy processes: docs/benchmarks.md, session 3). Applied once per process."""
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
    models: Iterable[str],
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


# Series per unit of work sent to a worker: small enough for steady progress and an even load,
# large enough that sending the calendar and the frame costs little.
CHUNK_SERIES = 40


@dataclass(frozen=True)
class _Job:
    frame: pd.DataFrame
    settings: Settings
    country: str
    calendar: object
    locations: dict[str, Location]
    choices: dict
    reuse_days: int
    span: tuple


def _forecast_chunk(job: _Job) -> tuple[pd.DataFrame, list[SeriesOutcome]]:
    return forecast_long(
        job.frame,
        job.settings,
        country=job.country,
        calendar=job.calendar,
        locations=job.locations,
        choices=job.choices,
        reuse_days=job.reuse_days,
        span=job.span,
    )


def reselect_tonight(series_id: str, as_of: dt.date, every_days: int) -> bool:
    """Whether this series chooses its model afresh tonight: one in ``every_days`` of the series
    each night, by a stable hash of its id, so the backtest work is spread over the week."""
    if every_days <= 1:
        return True
    digest = int(hashlib.sha1(series_id.encode("utf-8")).hexdigest()[:8], 16)
    return (digest + as_of.toordinal()) % every_days == 0


def forecast_communities(
    series: pd.DataFrame,
    config: Config,
    communities: pd.DataFrame,
    *,
    should_stop=lambda: False,
    choices: dict | None = None,
    as_of: dt.date | None = None,
) -> tuple[pd.DataFrame, list[SeriesOutcome]]:
    """Forecast every series (``series_id, community_id, metric, ds, y``) on the configured engine.

    Returns forecasts with ``community_id`` and ``metric`` columns, and one outcome per series.
    """
    if series.empty:
        return pd.DataFrame(), []
    locations = locations_of(communities)
    per_series = {
        sid: locations.get(cid, Location(cid))
        for sid, cid in series.groupby("series_id", sort=False)["community_id"].first().items()
    }
    settings = Settings.from_config(config.forecast)
    ids = list(series["series_id"].unique())
    every = config.forecast.reselect_every_days
    reusable = {
        sid: c
        for sid, c in (choices or {}).items()
        if as_of is None or not reselect_tonight(sid, as_of, every)
    }
    workers = 1 if config.engine.backend == "serial" else resolve_workers(config.engine.workers)
    parts = chunked(ids, max(workers * 4, len(ids) // CHUNK_SERIES))
    # One pass over the frame for all chunks (not one scan of the whole frame per chunk).
    chunk_of = {sid: k for k, part in enumerate(parts) for sid in part}
    frames = dict(iter(series.groupby(series["series_id"].map(chunk_of), sort=False)))
    span = (series["ds"].min(), series["ds"].max())
    jobs = [
        _Job(
            frames[k],
            settings,
            config.forecast.country,
            config.calendar,
            per_series,
            {sid: reusable[sid] for sid in part if sid in reusable},
            every,
            span,
        )
        for k, part in enumerate(parts)
    ]
    progress = Progress(len(ids), "forecast")
    sizes = [len(part) for part in parts]
    results = map_chunks(
        _forecast_chunk,
        jobs,
        backend=config.engine.backend,
        workers=config.engine.workers,
        should_stop=should_stop,
        on_done=lambda i: progress.advance(sizes[i]),
        address=config.engine.address,
    )
    progress.finish()
    frames = [f for f, _ in results if not f.empty]
    outcomes = [o for _, outs in results for o in outs]
    if not frames:
        return pd.DataFrame(), outcomes
    forecasts = pd.concat(frames, ignore_index=True)
    meta = series.groupby("series_id", sort=False)[["community_id", "metric"]].first()
    forecasts = forecasts.join(meta, on="series_id")
    return forecasts, outcomes

