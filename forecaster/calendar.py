"""The calendar: public holidays, make-up workdays (调休) and whether a year's schedule is official.

For China, published years come from the official schedule (the ``chinesecalendar`` package,
which knows the days off *and* the weekend days that become working days). Years whose
schedule is not yet published are computed from the lunar calendar (the ``holidays``
package) and every day of such a year is marked ``estimated``: no make-up workdays are
known for them, and the exact length of each break may differ once the State Council
publishes it. A date range may freely cross into such a year; nothing raises.

Other countries use the ``holidays`` package alone (no make-up workdays).

Pure functions of dates; no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from forecaster.util.text import optional_text
from forecaster.vocab import HOLIDAY_NAMES_ZH, MAJOR_HOLIDAYS, WINDOW_LABELS

if TYPE_CHECKING:
    from forecaster.config import CalendarConfig

__all__ = [
    "Location",
    "make_day_table",
    "make_features",
    "is_published_year",
    "FEATURE_TEXT_COLUMNS",
    "FeatureBook",
    "locations_of",
    "day_positions",
]

_CC_KEYS = {
    "new_years_day": "new_year",
    "spring_festival": "spring_festival",
    "tomb_sweeping_day": "qingming",
    "labour_day": "labour_day",
    "dragon_boat_festival": "dragon_boat",
    "mid_autumn_festival": "mid_autumn",
    "national_day": "national_day",
}


def _key_from_holidays_name(name: str) -> str:
    """Map a ``holidays`` package name ('Chinese New Year (Spring Festival) (observed)') to a key."""
    n = name.lower()
    for needle, key in (
        ("spring festival", "spring_festival"),
        ("new year's eve", "spring_festival"),
        ("new year", "new_year"),
        ("tomb", "qingming"),
        ("labo", "labour_day"),
        ("dragon", "dragon_boat"),
        ("mid-autumn", "mid_autumn"),
        ("national day", "national_day"),
    ):
        if needle in n:
            return key
    return "other"


@lru_cache(maxsize=None)
def is_published_year(year: int) -> bool:
    """True when the official Chinese holiday schedule (with 调休) of ``year`` is known."""
    import chinese_calendar

    try:
        chinese_calendar.is_workday(dt.date(year, 7, 1))
    except NotImplementedError:
        return False
    return True


@lru_cache(maxsize=64)
def _year_table(year: int, country: str) -> pd.DataFrame:
    days = pd.date_range(dt.date(year, 1, 1), dt.date(year, 12, 31), freq="D")
    n = len(days)
    holiday = np.full(n, "", dtype=object)
    makeup = np.zeros(n, dtype=bool)
    weekend = days.day_of_week.to_numpy() >= 5
    estimated = False
    if country.upper() == "CN" and is_published_year(year):
        import chinese_calendar

        by_label = {h.value: _CC_KEYS.get(h.name, "other") for h in chinese_calendar.Holiday}
        for i, day in enumerate(days.date):
            if day in chinese_calendar.holidays:
                label = chinese_calendar.holidays[day]
                holiday[i] = by_label.get(getattr(label, "value", label), "other")
            elif day in chinese_calendar.workdays:
                makeup[i] = True
    else:
        import holidays as holidays_lib

        estimated = country.upper() == "CN"
        try:
            calendar = holidays_lib.country_holidays(country.upper(), years=[year])
        except NotImplementedError:
            raise ValueError(f"unknown country code {country!r} for the holiday calendar (e.g. CN, US)") from None
        for i, day in enumerate(days.date):
            name = calendar.get(day)
            if name:
                holiday[i] = _key_from_holidays_name(name)
    is_holiday = holiday != ""
    table = pd.DataFrame(
        {
            "holiday": holiday,
            "is_holiday": is_holiday,
            "is_makeup_workday": makeup,
            "is_workday": (~weekend & ~is_holiday) | makeup,
            "estimated": estimated,
        },
        index=pd.DatetimeIndex(days, name="ds"),
    )
    return table


def make_day_table(start: dt.date | str, end: dt.date | str, country: str = "CN") -> pd.DataFrame:
    """One row per day from ``start`` to ``end`` inclusive, indexed by ``ds``.

    Columns: ``holiday`` (canonical key such as ``spring_festival``, or ``""``), ``is_holiday``
    (a public day off), ``is_makeup_workday`` (a weekend day worked instead, 调休),
    ``is_workday`` (an official working day), ``estimated`` (the year's schedule is computed,
    not published).
    """
    start_ts, end_ts = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if end_ts < start_ts:
        raise ValueError(f"calendar range ends ({end_ts.date()}) before it starts ({start_ts.date()})")
    frames = [_year_table(y, country) for y in range(start_ts.year, end_ts.year + 1)]
    return pd.concat(frames).loc[start_ts:end_ts].copy()


# ----------------------------------------------------------------------------- features and windows



@dataclass(frozen=True)
class Location:
    """Where a series lives: seasons and events may apply only to some regions, cities or communities."""

    community_id: str | None = None
    city: str | None = None
    region: str | None = None


def _applies(scope, location: Location) -> bool:
    communities = getattr(scope, "communities", [])
    if not (scope.regions or scope.cities or communities):
        return True
    return (
        (location.region is not None and location.region in scope.regions)
        or (location.city is not None and location.city in scope.cities)
        or (location.community_id is not None and location.community_id in communities)
    )


def _blocks(keys: np.ndarray) -> list[tuple[str, int, int]]:
    """Runs of the same non-empty holiday key: (key, first index, last index)."""
    out = []
    i, n = 0, len(keys)
    while i < n:
        if keys[i]:
            j = i
            while j + 1 < n and keys[j + 1] == keys[i]:
                j += 1
            out.append((keys[i], i, j))
            i = j + 1
        else:
            i += 1
    return out


def _md_mask(days: pd.DatetimeIndex, start_md: str, end_md: str) -> np.ndarray:
    md = days.strftime("%m-%d").to_numpy()
    return (md >= start_md) & (md <= end_md) if start_md <= end_md else (md >= start_md) | (md <= end_md)


def make_features(
    start: dt.date | str,
    end: dt.date | str,
    *,
    country: str = "CN",
    calendar: "CalendarConfig | None" = None,
    location: Location = Location(),
) -> pd.DataFrame:
    """Calendar features for the models and named windows for detection, one row per day.

    Numeric columns (0/1): ``off_day`` (not an official working day), ``holiday_off`` (a
    holiday off on a Monday–Friday), ``makeup_workday`` (调休), ``hol_<h>`` / ``pre_<h>`` /
    ``post_<h>`` for Spring Festival, National Day and Labour Day (days off, and the configured
    days before and after), ``hol_minor`` (other holidays), ``season_<name>`` and
    ``event_<name>`` where they apply to ``location``.
    Text columns: ``holiday`` (key), ``holiday_window`` (e.g. "春节前后"), ``season`` (e.g.
    "供暖季", and events), ``window`` (both, joined by "、"), and ``estimated`` (the holiday
    schedule of that year is computed, not published).
    """
    from forecaster.config import CalendarConfig

    calendar = calendar or CalendarConfig()
    start_ts, end_ts = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    margin = pd.Timedelta(days=62)  # windows of holidays just outside the range still count
    days_tbl = make_day_table(start_ts - margin, end_ts + margin, country)
    days = days_tbl.index
    n = len(days)
    keys = days_tbl["holiday"].to_numpy()
    weekday = days.day_of_week.to_numpy() < 5
    feats: dict[str, np.ndarray] = {
        "off_day": (~days_tbl["is_workday"].to_numpy()).astype(float),
        "holiday_off": (days_tbl["is_holiday"].to_numpy() & weekday).astype(float),
        "makeup_workday": days_tbl["is_makeup_workday"].to_numpy().astype(float),
    }
    labels = [[] for _ in range(n)]  # holiday windows
    seasons = [[] for _ in range(n)]  # seasons and events
    for key in MAJOR_HOLIDAYS:
        feats[f"hol_{key}"] = (keys == key).astype(float)
        window = calendar.windows.get(key)
        if window and window.before:
            feats[f"pre_{key}"] = np.zeros(n)
        if window and window.after:
            feats[f"post_{key}"] = np.zeros(n)
    feats["hol_minor"] = ((keys != "") & ~np.isin(keys, MAJOR_HOLIDAYS)).astype(float)
    for key, first, last in _blocks(keys):
        window = calendar.windows.get(key) or calendar.windows.get("other")
        lo = max(first - (window.before if window else 0), 0)
        hi = min(last + (window.after if window else 0), n - 1)
        label = WINDOW_LABELS.get(key) or HOLIDAY_NAMES_ZH.get(key, key)
        if key == "spring_festival" or (window and (window.before or window.after) and key not in WINDOW_LABELS):
            label = label if key in WINDOW_LABELS else f"{label}前后"
        for i in range(lo, hi + 1):
            if label not in labels[i]:
                labels[i].append(label)
        if key in MAJOR_HOLIDAYS and window:
            if window.before:
                feats[f"pre_{key}"][lo:first] = 1.0
            if window.after:
                feats[f"post_{key}"][last + 1 : hi + 1] = 1.0
    for name, season in calendar.seasons.items():
        if not _applies(season, location):
            continue
        mask = _md_mask(days, season.start, season.end)
        feats[f"season_{name}"] = mask.astype(float)
        for i in np.flatnonzero(mask):
            seasons[i].append(season.label)
    for name, event in calendar.events.items():
        if not _applies(event, location):
            continue
        mask = (days >= pd.Timestamp(event.start)) & (days <= pd.Timestamp(event.end))
        feats[f"event_{name}"] = np.asarray(mask, dtype=float)
        for i in np.flatnonzero(mask):
            seasons[i].append(event.label)
    frame = pd.DataFrame(feats, index=days)
    frame["holiday"] = keys
    frame["holiday_window"] = ["、".join(x) for x in labels]
    frame["season"] = ["、".join(x) for x in seasons]
    frame["window"] = ["、".join(a + b) for a, b in zip(labels, seasons)]
    frame["estimated"] = days_tbl["estimated"].to_numpy()
    return frame.loc[start_ts:end_ts].copy()


FEATURE_TEXT_COLUMNS = ("holiday", "holiday_window", "season", "window", "estimated")


class FeatureBook:
    """`make_features` over one date range, built once per location (city, region; community
    only when events name communities) and shared by every series there."""

    def __init__(self, start, end, *, country: str = "CN", calendar: "CalendarConfig | None" = None):
        from forecaster.config import CalendarConfig

        self.start, self.end, self.country = start, end, country
        self.calendar = calendar or CalendarConfig()
        self._cache: dict[tuple, pd.DataFrame] = {}
        self._numeric: dict[tuple, pd.DataFrame] = {}

    def _key(self, location: Location) -> tuple:
        return (location.city, location.region, location.community_id if self.calendar.events else None)

    def get(self, location: Location = Location()) -> pd.DataFrame:
        key = self._key(location)
        if key not in self._cache:
            self._cache[key] = make_features(self.start, self.end, country=self.country, calendar=self.calendar, location=location)
        return self._cache[key]

    def numeric(self, location: Location = Location()) -> pd.DataFrame:
        """Only the numeric columns (what models use): one float block, so slicing it per
        backtest origin is cheap."""
        key = self._key(location)
        if key not in self._numeric:
            full = self.get(location)
            self._numeric[key] = full[[c for c in full.columns if full[c].dtype.kind == "f"]].copy()
        return self._numeric[key]


def locations_of(communities: pd.DataFrame) -> dict[str, Location]:
    return {
        r.community_id: Location(r.community_id, optional_text(r.city), optional_text(r.region))
        for r in communities[["community_id", "city", "region"]].itertuples(index=False)
    }


def day_positions(feats: pd.DataFrame, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``days`` in a calendar frame (a row a day from its first; 0 where outside it),
    and which of the days it holds."""
    first = feats.index[0].to_datetime64().astype("datetime64[D]")
    pos = (days.astype("datetime64[D]") - first).astype(np.int64)
    inside = (pos >= 0) & (pos < len(feats))
    return np.where(inside, pos, 0), inside

