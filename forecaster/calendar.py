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
from functools import lru_cache

import numpy as np
import pandas as pd

__all__ = ["HOLIDAY_NAMES_ZH", "make_day_table", "is_published_year"]

# Canonical holiday keys and how they read in an alert.
HOLIDAY_NAMES_ZH = {
    "new_year": "元旦",
    "spring_festival": "春节",
    "qingming": "清明",
    "labour_day": "劳动节",
    "dragon_boat": "端午",
    "mid_autumn": "中秋",
    "national_day": "国庆",
    "other": "其他假日",
}

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
