"""Realistic synthetic demo data: a property company's communities, tickets and surveys.

Seeded and reproducible. What it contains, so that every later stage has something real to find:

* communities in northern cities (central heating from 15 November to 15 March) and southern
  ones (rainy season; typhoon season in Guangdong), of different sizes and service quality;
* weekly rhythm (busy Mondays, quiet weekends) that follows the official calendar, so a
  make-up workday (调休) looks like a weekday and a holiday like a Sunday;
* summer peaks (air conditioning, water), a surge at the start of the heating season in the
  north, leaks in the southern rainy season;
* the Spring Festival staffing gap (from about ten days before to a week after) and a smaller
  one at National Day: fewer tickets where migrants leave, slower resolution, lower satisfaction;
* per-community sensitivity: some communities dip hard in those windows, others hardly at all;
* a few communities with short history (recently taken over) and a few with missing weeks;
* communities with their ``households`` and ``property_type`` (mostly 住宅; a few 公寓, 商业,
  写字楼);
* tickets with their first response (``responded_at``): repairs, cleaning, security and inquiries
  dispatched within tens of minutes to a couple of hours, complaints answered in several hours
  (median about 8, sometimes over 24); slower at night and on days off, about three times slower
  in the Spring Festival staffing gap, and a few communities chronically slow to answer;
* closings: complaints take longer than inquiries; in the Spring Festival staffing gap a share of
  the tickets (repairs most) waits for the staff's return and is closed in the days after, so the
  open backlog builds up across the gap and is worked off after it; a few communities (about one
  in twelve, ``late_closer`` in the profiles) close most tickets after the 72-hour target; recent
  tickets are still open (no ``closed_at``, the very last not yet answered) and about 0.5% are
  never closed;
* surveys with their ``source``: residents rating in the app (``APP``) on many days, and each
  quarter a survey firm's door-to-door week (``第三方``) with many answers a day and scores a few
  points lower; most rows carry ``recommend`` (0-10, for NPS), which goes with the score;
* a handful of dirty rows, as real exports have: a duplicated ticket, a ticket of a community
  not in the master table, a ``closed_at`` before ``created_at``, a survey score off the scale;
  and two bad values validation clears: a ``responded_at`` before ``created_at``, a
  ``recommend`` of 11.

The hidden truth per community (quality, sensitivity, kind, short history, missing weeks, late
closer, slow responder) is in `DemoData.profiles`. The KPI fields draw from a random stream of
their own, so the ticket counts, times and categories, the survey rows and the dirty rows are
the same as before those fields were added; only the closings they require differ (and the
rating of a ticket whose closing thereby moved past the data's end: still open, not rated yet).

`make_demo_frames` is pure (returns frames); `write_demo_sql` / `write_demo_csv` store them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from forecaster.calendar import make_day_table
from forecaster.util.db import first_line, make_engine
from forecaster.util.errors import SourceError
from forecaster.util.secret import mask_url

__all__ = [
    "CITIES",
    "DemoData",
    "make_demo_profiles",
    "make_demo_frames",
    "write_demo_sql",
    "write_demo_csv",
    "demo_status",
    "DEMO_MARKER_TABLE",
    "DEMO_VERSION",
]

DEMO_MARKER_TABLE = "wuye_demo_info"
# Bump when the demo's tables change shape: `demo --if-absent` then writes them afresh.
DEMO_VERSION = "2"  # 2: responses, deadlines' fields, households, property types, survey sources, recommend


@dataclass(frozen=True)
class City:
    name: str
    region: str
    heating: bool  # northern central heating, 15 Nov – 15 Mar
    rainy: tuple[str, str] | None  # "MM-DD" range of the rainy season
    typhoon: bool  # typhoon season Jul – Sep
    tier1: bool  # migrants leave at Spring Festival


CITIES: tuple[City, ...] = (
    City("北京", "华北", True, None, False, True),
    City("天津", "华北", True, None, False, False),
    City("沈阳", "东北", True, None, False, False),
    City("济南", "华东", True, None, False, False),
    City("西安", "西北", True, None, False, False),
    City("郑州", "华中", True, None, False, False),
    City("上海", "华东", False, ("06-10", "07-10"), False, True),
    City("杭州", "华东", False, ("06-10", "07-10"), False, False),
    City("武汉", "华中", False, ("06-15", "07-15"), False, False),
    City("广州", "华南", False, ("05-01", "06-30"), True, True),
    City("深圳", "华南", False, ("05-01", "06-30"), True, True),
    City("成都", "西南", False, ("07-01", "08-31"), False, False),
)

_NAME_A = "翠湖 金色 阳光 锦绣 御景 碧水 紫荆 华府 龙湖 海棠 万科 保利 绿城 融创 中海 招商 滨江 时代 星河 春晓".split()
_NAME_B = "花园 家园 小区 公馆 名苑 雅苑 新城 天地 佳园 华庭".split()
_SURNAMES = "王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 林 罗 高".split()
_GIVEN = "伟 芳 娜 敏 静 磊 洋 勇 艳 杰 涛 明 超 霞 平 刚 桂英 建华 志强 海燕".split()

CATEGORIES = ("报修", "投诉", "保洁", "安保", "咨询")
# Share of non-complaint tickets by category, and how long each takes relative to a repair.
_OTHER_SHARE = np.array([0.62, 0.0, 0.13, 0.09, 0.16])
_HOURS_FACTOR = np.array([1.0, 2.5, 0.6, 0.5, 0.3])
# First response (dispatch) by category: median hours and spread. A complaint is answered by a
# manager after looking into it, the rest are dispatched at once.
_RESPOND_MEDIAN_H = np.array([0.6, 7.0, 0.8, 0.4, 0.35])
_RESPOND_SIGMA = np.array([0.9, 0.75, 0.9, 0.9, 0.8])
# How likely a ticket of the Spring Festival staffing gap waits for the staff's return (times
# the community's sensitivity): repairs most, inquiries hardly.
_DEFER_WEIGHT = np.array([1.0, 0.6, 0.6, 0.3, 0.2])
_PROPERTY_TYPES = ("住宅", "公寓", "商业", "写字楼")
_PROPERTY_SHARE = np.array([0.8, 0.08, 0.06, 0.06])
SURVEY_APP = "APP"
SURVEY_THIRD_PARTY = "第三方"


@dataclass(frozen=True)
class DemoData:
    communities: pd.DataFrame
    tickets: pd.DataFrame
    surveys: pd.DataFrame
    profiles: pd.DataFrame  # the hidden truth per community (not written to the source)
    start: dt.date
    end: dt.date  # last day with data (the day before as_of)


def make_demo_profiles(n: int, seed: int) -> pd.DataFrame:
    """One row per community: identity and the hidden parameters that drive its data."""
    rng = np.random.default_rng([seed, 1])
    cities = [CITIES[i % len(CITIES)] for i in range(n)]
    names: list[str] = []
    seen: set[str] = set()
    for i in range(n):
        while True:
            name = f"{rng.choice(_NAME_A)}{rng.choice(_NAME_B)}"
            if name not in seen or len(seen) >= len(_NAME_A) * len(_NAME_B):
                break
        seen.add(name)
        names.append(name if name not in names else f"{name}{i}")
    households = np.clip(rng.lognormal(np.log(1200), 0.5, n), 250, 5000).round()
    quality = rng.normal(0, 1, n)
    # How strongly holidays and seasons hit this community (staffing, building age…).
    sensitivity = rng.uniform(0.5, 1.3, n)
    kinds = np.array(["normal"] * n, dtype=object)
    order = rng.permutation(n)
    n_fragile = max(1, n // 10)
    n_steady = max(1, n // 10)
    kinds[order[:n_fragile]] = "fragile"
    kinds[order[n_fragile : n_fragile + n_steady]] = "steady"
    sensitivity[kinds == "fragile"] = rng.uniform(1.8, 2.4, n_fragile)
    sensitivity[kinds == "steady"] = rng.uniform(0.05, 0.2, n_steady)
    quality[kinds == "steady"] = np.abs(quality[kinds == "steady"]) + 0.8
    # Short history (recently taken over) and missing weeks, on "normal" communities.
    normal = [i for i in order if kinds[i] == "normal"]
    history = np.full(n, np.nan)
    gap = np.zeros(n, dtype=bool)
    if n >= 10:
        for j, days in zip(normal[:4], (35, 90, 150, 240)):
            history[j] = days
        gap[normal[4:6]] = True
    # What the KPI fields need, from a stream of their own (the draws above stay as they were).
    extra = np.random.default_rng([seed, 8])
    property_type = extra.choice(np.array(_PROPERTY_TYPES, dtype=object), size=n, p=_PROPERTY_SHARE)
    # Chronic laggards: about one in twelve closes most tickets after the 72-hour target, about
    # one in ten answers slowly; never a "steady" community, and not both at once.
    candidates = extra.permutation([i for i in range(n) if kinds[i] != "steady"])
    n_late = max(1, round(n / 12))
    n_slow = max(1, round(n / 10))
    late_closer = np.zeros(n, dtype=bool)
    slow_responder = np.zeros(n, dtype=bool)
    late_closer[candidates[:n_late]] = True
    slow_responder[candidates[n_late : n_late + n_slow]] = True
    return pd.DataFrame(
        {
            "community_id": [f"C{i + 1:03d}" for i in range(n)],
            "name": [f"{c.name}·{nm}" for c, nm in zip(cities, names)],
            "city": [c.name for c in cities],
            "region": [c.region for c in cities],
            "manager": [f"{rng.choice(_SURNAMES)}{rng.choice(_GIVEN)}" for _ in range(n)],
            "manager_mobile": [f"1380000{i + 1:04d}" for i in range(n)],
            "households": households.astype(int),
            "quality": quality,
            "sensitivity": sensitivity,
            "kind": kinds,
            "history_days": history,
            "has_gap": gap,
            "property_type": property_type,
            "late_closer": late_closer,
            "slow_responder": slow_responder,
        }
    )


def _season_mask(days: pd.DatetimeIndex, start_md: str, end_md: str) -> np.ndarray:
    md = days.strftime("%m-%d").to_numpy()
    if start_md <= end_md:
        return (md >= start_md) & (md <= end_md)
    return (md >= start_md) | (md <= end_md)


def _dilate(mask: np.ndarray, before: int, after: int) -> np.ndarray:
    """True on days within ``before`` days ahead of / ``after`` days behind a True day."""
    out = mask.copy()
    for k in range(1, before + 1):
        out[:-k] |= mask[k:]
    for k in range(1, after + 1):
        out[k:] |= mask[:-k]
    return out


@dataclass(frozen=True)
class _Days:
    """The demo's days and the calendar's effects that every community shares."""

    index: pd.DatetimeIndex
    workday: np.ndarray
    weekly: np.ndarray  # day-of-week rhythm from the official calendar
    years: np.ndarray  # time since the first day, in years (the growth trend)
    spring_festival: np.ndarray
    sf_gap: np.ndarray  # Spring Festival staffing gap
    nd_gap: np.ndarray  # National Day staffing gap
    summer: np.ndarray
    heating: np.ndarray
    heat_onset: np.ndarray


@dataclass(frozen=True)
class _Seasons:
    """A community's local seasons (all False where its city has none)."""

    rainy: np.ndarray
    typhoon: np.ndarray
    heat: np.ndarray
    onset: np.ndarray


@dataclass(frozen=True)
class _Effects:
    """Per community (rows) and day (columns): what drives its tickets and surveys."""

    active: np.ndarray  # the community has data that day
    volume: np.ndarray  # ticket-rate multiplier
    complaint_share: np.ndarray
    staff: np.ndarray  # resolution-time multiplier
    satisfaction: np.ndarray  # mean survey score


def _make_days(start: dt.date, end: dt.date) -> _Days:
    cal = make_day_table(start, end)
    days = cal.index
    dow = days.day_of_week.to_numpy()
    workday = cal["is_workday"].to_numpy()
    holiday = cal["holiday"].to_numpy()
    sf = holiday == "spring_festival"
    nd = holiday == "national_day"
    # Weekly rhythm from the official calendar (a make-up workday behaves like a weekday).
    weekly = np.where(workday, np.where(dow == 0, 1.12, 1.0), 0.8)
    weekly = np.where(cal["is_holiday"].to_numpy(), 0.75, weekly)
    return _Days(
        index=days,
        workday=workday,
        weekly=weekly,
        years=(days - days[0]).days.to_numpy() / 365.0,
        spring_festival=sf,
        sf_gap=_dilate(sf, 10, 7),  # staff leave ten days ahead and return a week after
        nd_gap=_dilate(nd, 1, 2),
        summer=_season_mask(days, "06-15", "08-31"),
        heating=_season_mask(days, "11-15", "03-15"),
        heat_onset=_season_mask(days, "11-15", "12-06"),
    )


def _make_seasons(d: _Days, c: City) -> _Seasons:
    none = np.zeros(len(d.index), bool)
    return _Seasons(
        rainy=_season_mask(d.index, *c.rainy) if c.rainy else none,
        typhoon=_season_mask(d.index, "07-15", "09-30") if c.typhoon else none,
        heat=d.heating if c.heating else none,
        onset=d.heat_onset if c.heating else none,
    )


def _make_volume(d: _Days, c: City, p, se: _Seasons) -> np.ndarray:
    """Ticket-rate multiplier: weekly rhythm, growth, Spring Festival, seasons, move-in."""
    s = p.sensitivity
    m = d.weekly * (1 + 0.04 * d.years)
    m = m * np.where(d.spring_festival, 0.6 if c.tier1 else 0.85, 1.0)
    m = m * np.where(d.summer, 1.25 + (0.1 if not c.heating else 0.0), 1.0)
    m = m * np.where(se.heat, 1.12, 1.0) * np.where(se.onset, 1.0 + 0.45 * s, 1.0)
    m = m * np.where(se.rainy, 1.0 + 0.25 * s, 1.0) * np.where(se.typhoon, 1.15, 1.0)
    if not np.isnan(p.history_days):
        since = np.arange(len(d.index)) - (len(d.index) - int(p.history_days))
        # Move-in season: a newly handed-over community files many tickets at first.
        m = m * np.where((since >= 0) & (since < 120), 1.0 + 0.8 * np.exp(-np.maximum(since, 0) / 40.0), 1.0)
    return m


def _make_active(n_days: int, p, rng: np.random.Generator) -> np.ndarray:
    """Days with data: none before a short history starts, none in a missing stretch."""
    active = np.ones(n_days, dtype=bool)
    if not np.isnan(p.history_days):
        active[: max(n_days - int(p.history_days), 0)] = False
    if p.has_gap:
        g0 = int(rng.integers(n_days // 4, n_days // 2))
        active[g0 : g0 + int(rng.integers(14, 29))] = False
    return active


def _make_complaint_share(d: _Days, p, se: _Seasons) -> np.ndarray:
    s = p.sensitivity
    return np.clip(
        0.09 - 0.015 * p.quality + 0.05 * s * d.sf_gap + 0.08 * s * se.onset + 0.03 * d.summer + 0.03 * s * se.rainy, 0.02, 0.45
    )


def _make_staff(d: _Days, p, se: _Seasons) -> np.ndarray:
    """Resolution-time multiplier: service quality, staffing gaps, heating onset, days off."""
    s = p.sensitivity
    return (
        np.exp(-0.2 * p.quality)
        * np.where(d.sf_gap, 1.0 + 1.3 * s, 1.0)
        * np.where(d.nd_gap, 1.0 + 0.5 * s, 1.0)
        * np.where(se.onset, 1.0 + 0.4 * s, 1.0)
        * np.where(d.workday, 1.0, 1.15)
    )


def _make_satisfaction(d: _Days, p, se: _Seasons) -> np.ndarray:
    s = p.sensitivity
    return (
        np.clip(90.0 + 2.5 * p.quality, 78, 97)
        - 5.5 * s * d.sf_gap
        - 2.0 * s * d.nd_gap
        - 5.0 * s * se.onset
        - 1.0 * s * se.heat
        - 1.5 * s * d.summer
        - 1.5 * s * se.rainy
        - 1.5 * s * se.typhoon
    )


def _make_effects(d: _Days, prof: pd.DataFrame, rng: np.random.Generator) -> _Effects:
    """Each community's effects, in community order (the missing stretches draw from ``rng``)."""
    city = {c.name: c for c in CITIES}
    shape = (len(prof), len(d.index))
    e = _Effects(np.ones(shape, dtype=bool), np.empty(shape), np.empty(shape), np.empty(shape), np.empty(shape))
    for i, p in enumerate(prof.itertuples()):
        c = city[p.city]
        se = _make_seasons(d, c)
        e.volume[i] = _make_volume(d, c, p, se)
        e.active[i] = _make_active(len(d.index), p, rng)
        e.complaint_share[i] = _make_complaint_share(d, p, se)
        e.staff[i] = _make_staff(d, p, se)
        e.satisfaction[i] = _make_satisfaction(d, p, se)
    return e


def _draw_counts(prof: pd.DataFrame, e: _Effects, rng: np.random.Generator) -> np.ndarray:
    """Tickets per community and day."""
    rate = (prof["households"].to_numpy() / 200.0)[:, None] * e.volume
    # Negative binomial: Poisson with a gamma-distributed day effect (over-dispersion).
    lam = rate * rng.gamma(25.0, 1 / 25.0, size=rate.shape)
    return np.where(e.active, rng.poisson(lam), 0)


_HOUR_PMF = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2.5, 4, 5, 5, 4.5, 3.5, 3.5, 4, 4, 4, 4, 4.5, 5, 4.5, 3.5, 2.5, 1.5])


def _make_tickets(
    prof: pd.DataFrame, d: _Days, counts: np.ndarray, e: _Effects, as_of: dt.date, rng: np.random.Generator, extra: np.random.Generator
) -> pd.DataFrame:
    """One row per ticket: when, which category, how long to close (open if not yet), its rating;
    and from ``extra`` (so the draws from ``rng`` stay as they were) when it was first answered,
    and the closings that wait for the end of the Spring Festival staffing gap or, in a late
    closer, past the closing target."""
    days = d.index
    ci, di = np.nonzero(counts)
    reps = counts[ci, di]
    t_comm = np.repeat(ci, reps)
    t_day = np.repeat(di, reps)
    n = len(t_comm)
    hour = rng.choice(24, size=n, p=_HOUR_PMF / _HOUR_PMF.sum())
    seconds = hour * 3600 + rng.integers(0, 3600, size=n)
    created = days.to_numpy()[t_day] + seconds.astype("timedelta64[s]")

    share = e.complaint_share[t_comm, t_day]
    probs = np.outer(1 - share, _OTHER_SHARE)
    probs[:, 1] = share
    cat = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, len(CATEGORIES) - 1)

    median_h = 7.0 * e.staff[t_comm, t_day] * _HOURS_FACTOR[cat]
    hours = rng.lognormal(np.log(median_h), 0.8)
    data_end = np.datetime64(as_of)
    abandoned = rng.random(n) < 0.005
    open_ = (created + (hours * 3600).astype("timedelta64[s]") >= data_end) | abandoned
    rated = ~open_ & (rng.random(n) < 0.4)
    q = prof["quality"].to_numpy()[t_comm]
    rating = np.clip(
        np.round(4.5 + 0.25 * q - 0.45 * np.log2(np.maximum(hours / 7.0, 0.25)) - 0.7 * (cat == 1) + rng.normal(0, 0.6, n)),
        1,
        5,
    )

    close_h = _later_closings(prof, d, t_comm, t_day, cat, seconds, hours, extra)
    closed = created + (close_h * 3600).astype("timedelta64[s]")
    now_open = (closed >= data_end) | abandoned
    # A closing moved past the data's end leaves the ticket open, and so without a rating yet.
    rated &= ~now_open
    respond_h = _respond_hours(prof, d, t_comm, t_day, cat, hour, extra)
    respond_h = np.where(now_open, respond_h, np.minimum(respond_h, close_h))  # a closing answers too
    responded = created + (respond_h * 3600).astype("timedelta64[s]")
    unanswered = responded >= data_end

    order = np.argsort(created, kind="stable")
    nat = np.datetime64("NaT")
    return pd.DataFrame(
        {
            "ticket_id": [f"WO{k + 1:09d}" for k in range(n)],
            "community_id": prof["community_id"].to_numpy()[t_comm][order],
            "created_at": pd.to_datetime(created[order]).floor("s"),
            "responded_at": pd.to_datetime(np.where(unanswered, nat, responded)[order]).floor("s"),
            "closed_at": pd.to_datetime(np.where(now_open, nat, closed)[order]).floor("s"),
            "category": np.array(CATEGORIES, dtype=object)[cat][order],
            "rating": np.where(rated, rating, np.nan)[order],
        }
    )


def _gap_return(gap: np.ndarray) -> np.ndarray:
    """Per day, the index of the first day after the staffing gap it lies in (itself outside a
    gap; ``len(gap)`` where the gap runs to the end)."""
    idx = np.arange(len(gap))
    nxt = np.where(gap, len(gap), idx)
    return np.minimum.accumulate(nxt[::-1])[::-1]


def _later_closings(
    prof: pd.DataFrame,
    d: _Days,
    t_comm: np.ndarray,
    t_day: np.ndarray,
    cat: np.ndarray,
    seconds: np.ndarray,
    hours: np.ndarray,
    extra: np.random.Generator,
) -> np.ndarray:
    """Hours from creation to closing: ``hours`` as drawn, except

    * in the Spring Festival staffing gap, a share of the tickets (repairs most, by the
      community's sensitivity) waits for the staff's return and is closed in the days after it,
      so the open backlog builds up across the gap and is worked off after;
    * in a late closer, most tickets wait another three to four days before they are closed.
    """
    n = len(t_comm)
    s = prof["sensitivity"].to_numpy()[t_comm]
    back = _gap_return(d.sf_gap)[t_day]
    p_defer = np.clip(0.4 * s * _DEFER_WEIGHT[cat], 0.0, 0.9)
    u_defer = extra.random(n)
    catch_up_days = extra.lognormal(np.log(2.5), 0.6, n)
    work_hour = extra.uniform(9.0, 18.0, n)
    deferred = d.sf_gap[t_day] & (back < len(d.index)) & (u_defer < p_defer)
    # Hours from the ticket's creation to the first morning after the gap, then the catch-up.
    to_return = (back - t_day) * 24.0 - seconds / 3600.0
    waits = to_return + np.floor(catch_up_days) * 24.0 + work_hour
    out = np.where(deferred, np.maximum(hours, waits), hours)

    late = prof["late_closer"].to_numpy()[t_comm]
    u_late = extra.random(n)
    delay = extra.lognormal(np.log(80.0), 0.45, n)
    return out + np.where(late & (u_late < 0.8), delay, 0.0)


def _respond_hours(
    prof: pd.DataFrame,
    d: _Days,
    t_comm: np.ndarray,
    t_day: np.ndarray,
    cat: np.ndarray,
    hour: np.ndarray,
    extra: np.random.Generator,
) -> np.ndarray:
    """Hours from creation to the first response: by category, slower at night, on days off,
    in the staffing gaps (about three times slower at Spring Festival) and in a slow responder."""
    n = len(t_comm)
    s = prof["sensitivity"].to_numpy()[t_comm]
    q = prof["quality"].to_numpy()[t_comm]
    slow = prof["slow_responder"].to_numpy()[t_comm]
    m = (
        np.exp(-0.15 * q)
        * np.where(d.sf_gap[t_day], 1.0 + 2.0 * s, 1.0)
        * np.where(d.nd_gap[t_day], 1.0 + 0.6 * s, 1.0)
        * np.where(d.workday[t_day], 1.0, 1.25)
        * np.where((hour >= 22) | (hour < 7), 2.0, 1.0)
        * np.where(slow, 3.0, 1.0)
    )
    return extra.lognormal(np.log(_RESPOND_MEDIAN_H[cat] * m), _RESPOND_SIGMA[cat], n)


def _make_surveys(
    prof: pd.DataFrame, days: pd.DatetimeIndex, e: _Effects, rng: np.random.Generator, extra: np.random.Generator
) -> pd.DataFrame:
    """Some days a few residents answer in the app; the score is their mean (0-100), and most
    rows say how likely they are to recommend the company (0-10, from ``extra``)."""
    n_comm, n_days = e.active.shape
    p_survey = rng.uniform(0.35, 0.8, n_comm)[:, None]
    has = e.active & (rng.random((n_comm, n_days)) < p_survey)
    si, sd = np.nonzero(has)
    responses = 1 + rng.poisson(2.5, size=len(si))
    score = np.clip(rng.normal(e.satisfaction[si, sd], 7.0 / np.sqrt(responses)), 0, 100).round(1)
    recommend = _recommend(score, extra)
    recommend[extra.random(len(si)) < 0.15] = np.nan  # the question is optional in the app
    return pd.DataFrame(
        {
            "community_id": prof["community_id"].to_numpy()[si],
            "date": days[sd].date,
            "score": score,
            "responses": responses,
            "source": SURVEY_APP,
            "recommend": recommend,
        }
    )


def _recommend(score: np.ndarray, extra: np.random.Generator) -> np.ndarray:
    """A 0-10 answer to "would you recommend us" that goes with a 0-100 satisfaction score:
    about 8 at a score of 90, so the company's NPS is some +20 to +30 and drops with satisfaction."""
    return np.clip(np.round((score - 57.0) / 4.0 + extra.normal(0, 1.5, len(score))), 0, 10).astype("float64")


def _third_party_surveys(prof: pd.DataFrame, days: pd.DatetimeIndex, e: _Effects, extra: np.random.Generator) -> pd.DataFrame:
    """Each quarter a survey firm goes door to door in every community for about a week: many
    answers a day, and a few points below what residents give in the app."""
    quarters = pd.period_range(days[0], days[-1], freq="Q")
    n_comm = len(prof)
    households = prof["households"].to_numpy()
    offset = extra.uniform(3.0, 6.0, n_comm)  # the firm's interviews are stricter than the app
    rows: list[tuple[int, int, int]] = []  # community, day, responses
    for quarter in quarters:
        q0 = (quarter.start_time - days[0]).days
        first = q0 + extra.integers(15, 60, size=n_comm)
        length = extra.integers(5, 9, size=n_comm)
        sample = households * extra.uniform(0.06, 0.1, size=n_comm)
        for c in range(n_comm):
            span = np.arange(first[c], first[c] + length[c])
            span = span[(span >= 0) & (span < len(days))]
            span = span[e.active[c, span]]
            for k in span:
                rows.append((c, int(k), max(3, int(round(sample[c] / length[c] * extra.uniform(0.6, 1.4))))))
    if not rows:
        return pd.DataFrame(columns=["community_id", "date", "score", "responses", "source", "recommend"])
    ci, di, responses = (np.array(col) for col in zip(*rows))
    mean = e.satisfaction[ci, di] - offset[ci]
    score = np.clip(extra.normal(mean, 8.0 / np.sqrt(responses)), 0, 100).round(1)
    return pd.DataFrame(
        {
            "community_id": prof["community_id"].to_numpy()[ci],
            "date": days[di].date,
            "score": score,
            "responses": responses,
            "source": SURVEY_THIRD_PARTY,
            "recommend": _recommend(score, extra),
        }
    )


def make_demo_frames(
    as_of: dt.date,
    *,
    communities: int = 50,
    years: float = 3.0,
    seed: int = 42,
) -> DemoData:
    """Generate the demo company's data up to the day before ``as_of`` (pure)."""
    rng = np.random.default_rng([seed, 2])
    # The KPI fields (responses, later closings, survey sources, recommend) draw from a stream
    # of their own, so that what rng draws stays the same as before they were added.
    extra = np.random.default_rng([seed, 7])
    prof = make_demo_profiles(communities, seed)
    end = as_of - dt.timedelta(days=1)
    start = as_of - dt.timedelta(days=int(round(years * 365)))
    days = _make_days(start, end)
    # The draws from rng come in this order: missing stretches, counts, tickets, surveys, dirty rows.
    effects = _make_effects(days, prof, rng)
    counts = _draw_counts(prof, effects, rng)
    tickets = _make_tickets(prof, days, counts, effects, as_of, rng, extra)
    surveys = _make_surveys(prof, days.index, effects, rng, extra)
    tickets, surveys = _add_dirty_rows(tickets, surveys, rng)
    third_party = _third_party_surveys(prof, days.index, effects, extra)
    surveys = pd.concat([surveys, third_party], ignore_index=True)  # the firm's results, appended
    tickets, surveys = _add_dirty_kpi_fields(tickets, surveys, extra)
    communities_frame = prof[
        ["community_id", "name", "city", "region", "manager", "manager_mobile", "households", "property_type"]
    ].copy()
    return DemoData(communities_frame, tickets, surveys, prof, start, end)


def _add_dirty_rows(tickets: pd.DataFrame, surveys: pd.DataFrame, rng: np.random.Generator):
    """The few bad rows every real export has; ingest must report each, not choke on them."""
    if len(tickets) < 10 or len(surveys) < 10:
        return tickets, surveys
    k = int(rng.integers(len(tickets) // 2, len(tickets) - 1))
    dup = tickets.iloc[[k]].copy()  # the same ticket exported twice
    unknown = tickets.iloc[[k + 1]].copy()
    unknown["ticket_id"] = "WO999000001"
    unknown["community_id"] = "C999"  # a community missing from the master table
    backwards = tickets.iloc[[k - 1]].copy()
    backwards["ticket_id"] = "WO999000002"
    backwards["closed_at"] = backwards["created_at"] - pd.Timedelta(hours=3)  # clock skew
    off_scale = surveys.iloc[[len(surveys) // 2]].copy()
    off_scale["score"] = 120.0
    tickets = pd.concat([tickets, dup, unknown, backwards], ignore_index=True)
    surveys = pd.concat([surveys, off_scale], ignore_index=True)
    return tickets, surveys


def _add_dirty_kpi_fields(tickets: pd.DataFrame, surveys: pd.DataFrame, extra: np.random.Generator):
    """Bad values in the KPI fields of rows that are otherwise fine (validation clears the field
    and keeps the row): a ``responded_at`` before ``created_at``, a ``recommend`` of 11."""
    if len(tickets) < 10 or len(surveys) < 10:
        return tickets, surveys
    tickets, surveys = tickets.copy(), surveys.copy()
    # From the first third: the rows _add_dirty_rows copied lie in the second half.
    answered = np.flatnonzero(tickets["responded_at"].notna().to_numpy()[: len(tickets) // 3])
    if len(answered):
        i = tickets.index[int(extra.choice(answered))]
        tickets.loc[i, "responded_at"] = tickets.loc[i, "created_at"] - pd.Timedelta(minutes=20)  # clock skew
    rated = np.flatnonzero(surveys["recommend"].notna().to_numpy() & surveys["score"].le(100).to_numpy())
    if len(rated):
        surveys.loc[surveys.index[int(extra.choice(rated))], "recommend"] = 11.0  # typed on a 1-11 scale
    return tickets, surveys


# ----------------------------------------------------------------------------- writing

def _demo_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    return {
        "communities": sa.Table(
            "communities",
            metadata,
            sa.Column("community_id", sa.String(32), primary_key=True),
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("city", sa.String(32)),
            sa.Column("region", sa.String(32)),
            sa.Column("manager", sa.String(64)),
            sa.Column("manager_mobile", sa.String(32)),
            sa.Column("households", sa.Integer),
            sa.Column("property_type", sa.String(16)),
        ),
        "tickets": sa.Table(
            "tickets",
            metadata,
            sa.Column("ticket_id", sa.String(32), index=True),
            sa.Column("community_id", sa.String(32), index=True),
            sa.Column("created_at", sa.DateTime, index=True),
            sa.Column("responded_at", sa.DateTime),
            sa.Column("closed_at", sa.DateTime),
            sa.Column("category", sa.String(32)),
            sa.Column("rating", sa.Integer),
        ),
        "surveys": sa.Table(
            "surveys",
            metadata,
            sa.Column("community_id", sa.String(32), index=True),
            sa.Column("date", sa.Date, index=True),
            sa.Column("score", sa.Float),
            sa.Column("responses", sa.Integer),
            sa.Column("source", sa.String(16)),
            sa.Column("recommend", sa.Integer),
        ),
        DEMO_MARKER_TABLE: sa.Table(
            DEMO_MARKER_TABLE,
            metadata,
            sa.Column("key", sa.String(32), primary_key=True),
            sa.Column("value", sa.String(64)),
        ),
    }


def demo_status(url: str) -> tuple[str, dict[str, str]]:
    """``("absent" | "demo" | "foreign", info)``: no tables yet, our demo data, or someone's real data."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        return "absent", {}
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        names = set(inspector.get_table_names())
        if DEMO_MARKER_TABLE in names:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(f"SELECT key, value FROM {DEMO_MARKER_TABLE}")).all()
            return "demo", {k: v for k, v in rows}
        if names & {"communities", "tickets", "surveys"}:
            return "foreign", {}
        return "absent", {}
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"{mask_url(url)}: cannot inspect the database: {first_line(exc)}") from None
    finally:
        engine.dispose()


def _records(frame: pd.DataFrame) -> list[dict]:
    out = frame.astype(object).where(frame.notna(), None)
    return out.to_dict("records")


def _times(column: pd.Series) -> pd.Series:
    """Timestamps as Python datetimes, None where missing (what the database drivers take)."""
    return column.astype(object).where(column.notna(), None)


def write_demo_sql(url: str, data: DemoData, *, seed: int, chunk: int = 20_000) -> None:
    """Replace the demo tables at ``url``. Refuses to touch a database that holds data other
    than our demo (no marker table)."""
    status, _ = demo_status(url)
    if status == "foreign":
        raise SourceError(
            f"{mask_url(url)}: already has communities/tickets/surveys tables that are not demo data; "
            "refusing to overwrite them (point the demo at another database with --url)"
        )
    engine = make_engine(url, create_dir=True)
    metadata = sa.MetaData()
    tables = _demo_tables(metadata)
    try:
        metadata.drop_all(engine, checkfirst=True)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(tables["communities"].insert(), _records(data.communities))
            tickets = data.tickets.assign(
                created_at=data.tickets["created_at"].dt.to_pydatetime(),
                responded_at=_times(data.tickets["responded_at"]),
                closed_at=_times(data.tickets["closed_at"]),
                rating=data.tickets["rating"].astype("Int64"),
            )
            for lo in range(0, len(tickets), chunk):
                conn.execute(tables["tickets"].insert(), _records(tickets.iloc[lo : lo + chunk]))
            surveys = data.surveys.assign(recommend=data.surveys["recommend"].astype("Int64"))
            for lo in range(0, len(surveys), chunk):
                conn.execute(tables["surveys"].insert(), _records(surveys.iloc[lo : lo + chunk]))
            info = {
                "generated_for": (data.end + dt.timedelta(days=1)).isoformat(),
                "data_end": data.end.isoformat(),
                "seed": str(seed),
                "communities": str(len(data.communities)),
                "version": DEMO_VERSION,
            }
            conn.execute(tables[DEMO_MARKER_TABLE].insert(), [{"key": k, "value": v} for k, v in info.items()])
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"{mask_url(url)}: cannot write demo data: {first_line(exc)}") from None
    finally:
        engine.dispose()


def write_demo_csv(directory: Path, data: DemoData) -> list[Path]:
    """Write communities.csv, tickets.csv and surveys.csv (UTF-8 with BOM, as Excel saves them)."""
    from forecaster.export import write_csv

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in (("communities", data.communities), ("tickets", data.tickets), ("surveys", data.surveys)):
        path = directory / f"{name}.csv"
        out = frame.copy()
        if name == "tickets":
            out["rating"] = out["rating"].astype("Int64")
        if name == "surveys":
            out["recommend"] = out["recommend"].astype("Int64")
        write_csv(out, path, neutralise=False)
        paths.append(path)
    return paths
