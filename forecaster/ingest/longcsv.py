"""The ad-hoc input of `forecaster forecast` and `forecaster backtest`: a long CSV with
``series_id, ds, y`` (DESIGN.md), validated with the file's line numbers in every error.
The values are daily: a series whose dates are regularly further apart (weekly, monthly) is
refused, naming it, rather than forecast as days with gaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.util.errors import ForecasterError

__all__ = ["InputError", "read_long_csv", "validate_long", "complete_days", "spacing"]


MAX_SHOWN = 5


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
    out = out.sort_values(["series_id", "ds"], kind="stable").reset_index(drop=True)
    _refuse_coarser_than_daily(out, origin)
    return out


def spacing(ds: pd.Series) -> str | None:
    """How a series' sorted dates are spaced when regularly further apart than a day —
    ``weekly``, ``monthly``, ``every 3 days`` — else None (daily, with or without gaps, or too
    few dates to tell). A missing week or month still counts as regular."""
    if len(ds) < 3:
        return None
    gaps = np.diff(ds.to_numpy().astype("datetime64[D]").astype(np.int64))
    if gaps.min() < 2:
        return None
    if gaps.min() >= 28 and (ds.dt.day.nunique() == 1 or ds.dt.is_month_end.all()):
        return "monthly"
    step = int(gaps.min())
    if (gaps % step == 0).all():
        return "weekly" if step == 7 else f"every {step} days"
    return None


def _refuse_coarser_than_daily(frame: pd.DataFrame, origin: str) -> None:
    """An `InputError` naming the series whose dates are regularly days apart: taken as daily
    values with the days between missing, weekly totals would be forecast as days (seven
    times too high, on a calendar of days they do not describe)."""
    coarse = []
    for sid, g in frame.groupby("series_id", sort=False):
        kind = spacing(g["ds"])
        if kind is not None:
            coarse.append(f"{sid!r}: {kind} ({len(g)} dates, {g['ds'].iloc[0].date()} … {g['ds'].iloc[-1].date()})")
    if coarse:
        more = f"; and {len(coarse) - MAX_SHOWN} more" if len(coarse) > MAX_SHOWN else ""
        raise InputError(
            f"{origin}: {len(coarse)} series {'is' if len(coarse) == 1 else 'are'} not daily: {'; '.join(coarse[:MAX_SHOWN])}{more}. "
            "forecast and backtest take one value per day (ds a day, y that day's value): "
            "give daily values, or leave these series out"
        )


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

