"""CSV output that planners open in Excel: the forecast table (DESIGN.md's contract), the findings
table and the recent series, and how every CSV is written:

* UTF-8 with BOM, so Excel shows Chinese without an import dialog;
* written atomically (a temporary file in the same folder, then renamed), so a planner never
  opens a half-written file and a crash never leaves one;
* text cells that begin with ``= + - @`` (or a tab / carriage return) are prefixed with ``'``
  so that Excel shows them instead of evaluating them (CSV injection). Numbers are untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.calendar import FeatureBook, Location, day_positions, locations_of
from forecaster.detect import Finding, findings_frame
from forecaster.util.distinct import map_distinct
from forecaster.util.errors import OutputError

__all__ = ["check_output_dir", "write_csv", "write_text", "neutralise_cell", "write_series_csv", "forecast_table", "findings_table", "FINDINGS_HEADERS_ZH"]

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def neutralise_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    return value


def _atomic_write(path: Path, encoding: str, write) -> Path:
    """Write through ``write(handle)`` into a temporary file beside ``path``, then rename it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write it ({exc.strerror or exc}); check output.dir") from None
    try:
        # mkstemp makes the file private (0600); give it the permissions a plain write would.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):  # a full disk, a folder gone meanwhile
            raise OutputError(f"{path}: cannot write it ({exc.strerror or exc}); check output.dir") from None
        raise
    return path


def check_output_dir(folder: Path) -> str:
    """Prove that the nightly outputs can be written under ``folder`` (for check-config --connect)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".check.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise OutputError(f"output.dir {folder}: cannot write there ({exc.strerror or exc})") from None
    return f"outputs {folder}: writable"


def write_csv(frame: pd.DataFrame, path: Path, *, neutralise: bool = True, float_format: str | None = None) -> Path:
    """Write ``frame`` to ``path`` atomically as UTF-8 with BOM."""
    out = frame
    if neutralise:
        text_cols = [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c])]
        if text_cols:
            out = frame.copy()
            for col in text_cols:
                out[col] = map_distinct(out[col], neutralise_cell)
    return _atomic_write(
        path,
        "utf-8-sig",
        lambda h: out.to_csv(h, index=False, float_format=float_format, date_format="%Y-%m-%d %H:%M:%S"),
    )


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically as UTF-8 (HTML reports)."""
    return _atomic_write(path, "utf-8", lambda h: h.write(text))


def write_series_csv(series: pd.DataFrame, communities: pd.DataFrame, path: Path) -> Path:
    """The aggregated daily history: ``community_id, community_name, metric, ds, y``."""
    names = communities.set_index("community_id")["name"]
    out = pd.DataFrame(
        {
            "community_id": series["community_id"],
            "community_name": series["community_id"].map(names),
            "metric": series["metric"],
            "ds": map_distinct(series["ds"], lambda d: d.strftime("%Y-%m-%d")),
            "y": series["y"].round(3),
        }
    )
    return write_csv(out, path)


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
        pos, inside = day_positions(feats, days[rows])
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

