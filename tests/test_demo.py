"""The demo company must carry the patterns the rest of the service is meant to find."""

import pandas as pd
import pytest

from forecaster.calendar import make_day_table
from forecaster.config import MetricsConfig
from forecaster.demo import make_demo_frames
from forecaster.ingest.aggregate import day_sums, series_from_day_sums
from forecaster.ingest.validate import RawTable, validate_surveys, validate_tickets
from tests.conftest import AS_OF


@pytest.fixture(scope="module")
def demo():
    return make_demo_frames(AS_OF, communities=24, years=3, seed=11)


def _raw(name, frame):
    return RawTable(name, name, frame, pd.Series([str(i) for i in range(len(frame))], dtype=object))


@pytest.fixture(scope="module")
def daily(demo):
    """The demo through the same validation and aggregation as a nightly run."""
    known = set(demo.communities["community_id"])
    t, _ = validate_tickets(_raw("tickets", demo.tickets), known, source_tz="Asia/Shanghai", timezone="Asia/Shanghai", rating_scale=5)
    s, _ = validate_surveys(_raw("surveys", demo.surveys), known, timezone="Asia/Shanghai", score_scale=100)
    wide = series_from_day_sums(day_sums(t, s, MetricsConfig()), AS_OF, MetricsConfig(), min_history_days=56).frame
    wide = wide.merge(demo.profiles[["community_id", "city", "kind", "sensitivity"]], on="community_id")
    return wide


def test_same_seed_same_data_other_seed_other_data():
    a = make_demo_frames(AS_OF, communities=5, years=0.5, seed=3)
    b = make_demo_frames(AS_OF, communities=5, years=0.5, seed=3)
    c = make_demo_frames(AS_OF, communities=5, years=0.5, seed=4)
    pd.testing.assert_frame_equal(a.tickets, b.tickets)
    pd.testing.assert_frame_equal(a.surveys, b.surveys)
    assert not a.tickets["community_id"].equals(c.tickets["community_id"]) or len(a.tickets) != len(c.tickets)


def test_data_ends_the_day_before_as_of_and_spans_the_years(demo):
    assert demo.tickets["created_at"].max() < pd.Timestamp(AS_OF)
    assert demo.tickets["created_at"].min() < pd.Timestamp(AS_OF) - pd.Timedelta(days=3 * 365 - 5)
    assert demo.tickets["closed_at"].dropna().max() < pd.Timestamp(AS_OF)


def test_north_and_south_cities_and_dirty_rows(demo):
    assert {"北京", "沈阳", "广州", "深圳"} <= set(demo.communities["city"])
    assert demo.tickets["ticket_id"].duplicated().sum() == 1
    assert (~demo.tickets["community_id"].isin(demo.communities["community_id"])).sum() == 1
    assert (demo.tickets["closed_at"] < demo.tickets["created_at"]).sum() == 1
    assert (demo.surveys["score"] > 100).sum() == 1


def _mean(frame, metric, mask=None):
    f = frame[frame["metric"] == metric]
    return f.loc[mask(f) if mask else slice(None), "y"].mean()


def test_weekly_rhythm_follows_the_official_calendar(daily):
    tc = daily[(daily["metric"] == "ticket_count") & (daily["kind"] != "fragile")]
    cal = make_day_table(tc["ds"].min(), tc["ds"].max())
    per_day = tc.groupby("ds")["y"].sum()
    work = cal["is_workday"].reindex(per_day.index)
    weekday = per_day.index.day_of_week < 5
    ordinary_weekend = ~weekday & ~work & ~cal["is_holiday"].reindex(per_day.index)
    makeup = cal["is_makeup_workday"].reindex(per_day.index)
    assert per_day[weekday & work].mean() > 1.15 * per_day[ordinary_weekend].mean()
    # A make-up Saturday/Sunday behaves like a weekday, not like a weekend.
    assert per_day[makeup].mean() > 1.1 * per_day[ordinary_weekend].mean()


def test_summer_and_heating_season_surges(daily):
    north = daily[daily["city"].isin(["北京", "天津", "沈阳", "济南", "西安", "郑州"])]
    m = lambda f: f["ds"].dt.month  # noqa: E731
    md = lambda f: f["ds"].dt.strftime("%m-%d")  # noqa: E731
    onset = _mean(north, "ticket_count", lambda f: (md(f) >= "11-15") & (md(f) <= "12-06"))
    autumn = _mean(north, "ticket_count", lambda f: (md(f) >= "10-10") & (md(f) <= "11-10"))
    assert onset > 1.3 * autumn
    summer = _mean(daily, "ticket_count", lambda f: (md(f) >= "07-01") & (md(f) <= "08-20"))
    spring = _mean(daily, "ticket_count", lambda f: m(f).isin([4, 5]))
    assert summer > 1.15 * spring


def test_spring_festival_pulls_satisfaction_down_and_slows_resolution(daily):
    sf2026 = lambda f: (f["ds"] >= "2026-02-08") & (f["ds"] <= "2026-02-28")  # noqa: E731
    before = lambda f: (f["ds"] >= "2026-01-05") & (f["ds"] <= "2026-01-25")  # noqa: E731
    fragile = daily[daily["kind"] == "fragile"]
    steady = daily[daily["kind"] == "steady"]
    assert _mean(fragile, "satisfaction", sf2026) < _mean(fragile, "satisfaction", before) - 6
    assert abs(_mean(steady, "satisfaction", sf2026) - _mean(steady, "satisfaction", before)) < 2.5
    assert _mean(daily, "resolution_hours", sf2026) > 1.5 * _mean(daily, "resolution_hours", before)


def test_short_histories_and_gaps(demo, daily):
    short = demo.profiles[demo.profiles["history_days"].notna()]
    assert len(short) == 4
    firsts = daily[daily["metric"] == "ticket_count"].groupby("community_id")["ds"].min()
    for row in short.itertuples():
        assert firsts[row.community_id] >= pd.Timestamp(AS_OF) - pd.Timedelta(days=row.history_days + 1)
    gap = demo.profiles.loc[demo.profiles["has_gap"], "community_id"]
    tc = daily[(daily["metric"] == "ticket_count") & daily["community_id"].isin(gap)]
    longest_zero_run = tc.groupby("community_id")["y"].apply(lambda y: (y == 0).astype(int).groupby((y != 0).cumsum()).sum().max())
    assert (longest_zero_run >= 14).all()
