"""The nightly outlook: every community's series forecast, then findings, then the planners' tables.

Pure functions of frames and config (the process pool aside): the pipeline reads and writes,
this computes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.calendar import FeatureBook, Location
from forecaster.config import Config
from forecaster.detect import Finding, find_in_series, findings_frame, recent_baseline, thresholds_for
from forecaster.forecasting import SeriesOutcome, forecast_long
from forecaster.ingest.aggregate import COUNT_METRICS
from forecaster.models.select import Settings
from forecaster.util.engine import chunked, map_chunks, resolve_workers
from forecaster.util.progress import Progress

# Series per unit of work sent to a worker: small enough for steady progress and an even load,
# large enough that sending the calendar and the frame costs little.
CHUNK_SERIES = 40

__all__ = [
    "locations_of",
    "reselect_tonight",
    "forecast_communities",
    "detect_findings",
    "forecast_table",
    "findings_table",
    "FINDINGS_HEADERS_ZH",
]


def locations_of(communities: pd.DataFrame) -> dict[str, Location]:
    return {
        r.community_id: Location(r.community_id, _text(r.city), _text(r.region))
        for r in communities[["community_id", "city", "region"]].itertuples(index=False)
    }


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA else str(value)


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


def detect_findings(
    series: pd.DataFrame,
    forecasts: pd.DataFrame,
    config: Config,
    communities: pd.DataFrame,
    as_of: dt.date,
    book: FeatureBook,
) -> list[Finding]:
    """Findings in every forecast, against each community's thresholds and recent baseline."""
    if forecasts.empty:
        return []
    locations = locations_of(communities)
    level = config.forecast.level
    lookahead = config.detect.lookahead_days
    end = pd.Timestamp(as_of) + pd.Timedelta(days=lookahead) if lookahead else None
    # Each series' rows as slices of arrays sorted once (pandas per series cost more than the
    # detection itself at thousands of series).
    history = _Slices(series, "series_id", ["ds", "y"], sort_by=None)
    fcs = _Slices(forecasts, "series_id", ["ds", "yhat", "yhat_lower", "yhat_upper", "community_id", "metric"], sort_by="ds")
    columns: dict[int, dict[str, np.ndarray]] = {}

    def calendar_at(feats: pd.DataFrame, days: np.ndarray) -> dict[str, np.ndarray]:
        """The detection's calendar columns on ``days`` (positions in the book; outside it: none)."""
        cols = columns.get(id(feats))
        if cols is None:
            cols = columns[id(feats)] = {
                "off_day": feats["off_day"].to_numpy(dtype=float),
                "window": feats["window"].fillna("").to_numpy(dtype=object),
                "estimated": feats["estimated"].fillna(False).to_numpy(dtype=bool),
            }
        pos, inside = _positions(feats, days)
        return {
            "off_day": np.where(inside, cols["off_day"][pos], np.nan),
            "window": np.where(inside, cols["window"][pos], ""),
            "estimated": inside & cols["estimated"][pos],
        }

    found: list[Finding] = []
    for sid, fc in fcs.items():
        cid, metric = fc["community_id"][0], fc["metric"][0]
        hist = history.get(sid)
        if hist is None or len(hist["y"]) < config.forecast.min_history_days:
            continue  # too little history to warn reliably (the series still gets its forecast)
        loc = locations.get(cid, Location(cid))
        threshold = thresholds_for(config.thresholds, metric, cid, loc.city, loc.region)
        if threshold is None:
            continue
        if end is not None:
            soon = fc["ds"] < end.to_datetime64()
            fc = {k: v[soon] for k, v in fc.items()}
        feats = book.get(loc)
        h_feats = calendar_at(feats, hist["ds"][-28:])
        f_feats = calendar_at(feats, fc["ds"])
        counts = metric in COUNT_METRICS
        baseline = recent_baseline(
            hist["y"][-28:].astype(float),
            h_feats["off_day"] if counts else None,
            f_feats["off_day"],
            statistic=np.nanmean if counts else np.nanmedian,
        )
        found.extend(
            find_in_series(
                cid,
                metric,
                pd.DatetimeIndex(fc["ds"]),
                fc["yhat"].astype(float),
                fc["yhat_lower"].astype(float),
                fc["yhat_upper"].astype(float),
                baseline,
                threshold,
                level=level,
                windows=f_feats["window"].tolist(),
                estimated=f_feats["estimated"],
                rules=config.detect,
            )
        )
    return found


def _positions(feats: pd.DataFrame, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``days`` in a calendar frame (a row a day from its first; 0 where outside it),
    and which of the days it holds."""
    first = feats.index[0].to_datetime64().astype("datetime64[D]")
    pos = (days.astype("datetime64[D]") - first).astype(np.int64)
    inside = (pos >= 0) & (pos < len(feats))
    return np.where(inside, pos, 0), inside


class _Slices:
    """A long frame's rows per key, as numpy slices of its columns: in the order the keys first
    appear, rows in frame order or sorted by ``sort_by`` within each key."""

    def __init__(self, frame: pd.DataFrame, key: str, columns: list[str], sort_by: str | None):
        codes, self.keys = pd.factorize(frame[key], sort=False)
        order = np.lexsort((frame[sort_by].to_numpy(), codes)) if sort_by else np.argsort(codes, kind="stable")
        self.arrays = {c: frame[c].to_numpy()[order] for c in columns}
        bounds = np.searchsorted(codes[order], np.arange(len(self.keys) + 1))
        self.where = {k: (int(bounds[i]), int(bounds[i + 1])) for i, k in enumerate(self.keys)}

    def get(self, key) -> dict[str, np.ndarray] | None:
        at = self.where.get(key)
        return None if at is None else {c: a[at[0] : at[1]] for c, a in self.arrays.items()}

    def items(self):
        for k in self.keys:
            yield k, self.get(k)


def forecast_table(
    forecasts: pd.DataFrame, findings: list[Finding], communities: pd.DataFrame, book: FeatureBook
) -> pd.DataFrame:
    """The forecast CSV (DESIGN.md contract): ``community_id, community_name, metric, ds, yhat,
    yhat_lower, yhat_upper, model, holiday, season, flag, severity``."""
    columns = ["community_id", "community_name", "metric", "ds", "yhat", "yhat_lower", "yhat_upper", "model", "holiday", "season", "flag", "severity"]
    if forecasts.empty:
        return pd.DataFrame(columns=columns)
    names = communities.set_index("community_id")["name"]
    locations = locations_of(communities)
    out = forecasts.copy()
    cid = out["community_id"]
    out["community_name"] = cid.map(names).fillna(cid).astype(str)
    # The calendar columns, one lookup per calendar (communities of a city share one), not per community.
    days = pd.to_datetime(out["ds"]).to_numpy().astype("datetime64[D]")
    holiday, season = np.full(len(out), "", dtype=object), np.full(len(out), "", dtype=object)
    codes, uniques = pd.factorize(cid)
    calendars: dict[int, tuple[pd.DataFrame, list[int]]] = {}
    for code, community in enumerate(uniques):
        feats = book.get(locations.get(community, Location(community)))
        calendars.setdefault(id(feats), (feats, []))[1].append(code)
    for feats, members in calendars.values():
        rows = np.flatnonzero(np.isin(codes, members))
        pos, inside = _positions(feats, days[rows])
        rows, pos = rows[inside], pos[inside]
        holiday[rows] = feats["holiday_window"].fillna("").to_numpy(dtype=object)[pos]
        season[rows] = feats["season"].fillna("").to_numpy(dtype=object)[pos]
    out["holiday"], out["season"] = holiday, season
    out["flag"], out["severity"] = "", ""
    if findings:
        rows = out.groupby(["community_id", "metric"], sort=False).indices
        ds = pd.to_datetime(out["ds"]).to_numpy()
        flag, severity = out["flag"].to_numpy(dtype=object), out["severity"].to_numpy(dtype=object)
        for f in findings:
            idx = rows.get((f.community_id, f.metric))
            if idx is None:
                continue
            idx = idx[(ds[idx] >= np.datetime64(f.first_day)) & (ds[idx] <= np.datetime64(f.last_day))]
            flag[idx], severity[idx] = f.kind, f.severity
        out["flag"], out["severity"] = flag, severity
    out["ds"] = pd.to_datetime(out["ds"]).dt.strftime("%Y-%m-%d")
    for col in ("yhat", "yhat_lower", "yhat_upper"):
        out[col] = out[col].round(2)
    return out.sort_values(["community_id", "metric", "ds"], kind="stable")[columns].reset_index(drop=True)


FINDINGS_HEADERS_ZH = {
    "finding_id": "编号",
    "severity": "级别",
    "community_id": "小区编号",
    "community_name": "小区",
    "city": "城市",
    "region": "区域",
    "manager": "负责人",
    "metric": "指标",
    "kind": "类型",
    "first_day": "开始",
    "last_day": "结束",
    "peak_day": "最严重日",
    "days": "天数",
    "expected": "预测值",
    "limit": "界限",
    "reference": "依据",
    "baseline": "近期基线",
    "depth": "偏离",
    "probability": "概率",
    "window": "节假日/季节",
    "estimated": "假期安排为推算",
    "status": "状态",
}


def findings_table(findings: list[Finding], communities: pd.DataFrame, *, chinese_headers: bool = False) -> pd.DataFrame:
    """One row per finding, most severe first, with the community's name, city and manager."""
    frame = findings_frame(findings)
    info = communities.set_index("community_id")
    out = pd.DataFrame(
        {
            "finding_id": frame["finding_id"],
            "severity": frame["severity"],
            "community_id": frame["community_id"],
            "community_name": frame["community_id"].map(info["name"]),
            "city": frame["community_id"].map(info["city"]),
            "region": frame["community_id"].map(info["region"]),
            "manager": frame["community_id"].map(info["manager"]),
            "metric": frame["metric"],
            "kind": frame["kind"],
            "first_day": frame["first_day"],
            "last_day": frame["last_day"],
            "peak_day": frame["peak_day"],
            "days": frame["days"],
            "expected": frame["expected"].round(2),
            "limit": frame["limit"].round(2),
            "reference": frame["reference"],
            "baseline": frame["baseline"].round(2),
            "depth": frame["depth"].round(3),
            "probability": frame["probability"].round(3),
            "window": frame["window"],
            "estimated": frame["estimated"],
            "status": frame["status"],
        }
    )
    return out.rename(columns=FINDINGS_HEADERS_ZH) if chinese_headers else out
