import datetime as dt

import pytest

from forecaster.calendar import is_published_year, make_day_table


def test_published_year_uses_official_schedule_with_makeup_workdays():
    days = make_day_table("2026-02-10", "2026-03-01")
    # Spring Festival 2026: 15–23 February off; Saturdays 14 and 28 February are worked (调休).
    off = days.index[days["holiday"] == "spring_festival"].date
    assert off[0] == dt.date(2026, 2, 15) and off[-1] == dt.date(2026, 2, 23)
    assert days.loc["2026-02-14", "is_makeup_workday"] and days.loc["2026-02-14", "is_workday"]
    assert days.loc["2026-02-28", "is_makeup_workday"]
    assert not days.loc["2026-02-21", "is_workday"]  # a Saturday inside the break
    assert not days["estimated"].any()


def test_unpublished_year_is_computed_and_marked_estimated():
    assert not is_published_year(2027)
    # A 90-day horizon from 2026-11-23 crosses into 2027 and must see Spring Festival (6 Feb 2027).
    days = make_day_table(dt.date(2026, 11, 23), dt.date(2026, 11, 23) + dt.timedelta(days=89))
    assert days.loc["2027-02-06", "holiday"] == "spring_festival"
    assert days.loc["2027-02-06", "estimated"] and not days.loc["2026-12-31", "estimated"]
    assert days.loc["2027-01-01", "holiday"] == "new_year"
    assert not days.loc["2027-01-01":, "is_makeup_workday"].any()  # unknown until published


@pytest.mark.parametrize("year", [2030, 2045])
def test_far_future_years_never_crash(year):
    days = make_day_table(f"{year}-01-01", f"{year}-12-31")
    assert len(days) in (365, 366)
    assert {"spring_festival", "national_day", "mid_autumn", "dragon_boat", "qingming"} <= set(days["holiday"])


def test_other_countries_and_bad_ranges():
    us = make_day_table("2026-07-01", "2026-07-10", country="US")
    assert us.loc["2026-07-03", "is_holiday"]  # Independence Day observed on the Friday
    with pytest.raises(ValueError, match="ends .* before it starts"):
        make_day_table("2026-02-01", "2026-01-01")
    with pytest.raises(ValueError, match="unknown country code"):
        make_day_table("2026-01-01", "2026-01-02", country="XX")


# ---------------------------------------------------------------- features and named windows
from forecaster.calendar import Location, make_features  # noqa: E402
from forecaster.config import CalendarConfig, EventConfig, HolidayWindow  # noqa: E402

BEIJING = Location(city="北京", region="华北")
GUANGZHOU = Location(city="广州", region="华南")


def test_spring_festival_window_features_and_label_in_an_estimated_year():
    f = make_features("2027-01-20", "2027-02-20", location=BEIJING)
    assert f.loc["2027-01-26", "pre_spring_festival"] == 1 and f.loc["2027-01-25", "pre_spring_festival"] == 0
    assert f.loc["2027-02-06", "hol_spring_festival"] == 1 and f.loc["2027-02-06", "off_day"] == 1
    assert f.loc["2027-02-17", "post_spring_festival"] == 1 and f.loc["2027-02-18", "post_spring_festival"] == 0
    assert "春节前后" in f.loc["2027-02-06", "window"] and f.loc["2027-02-06", "estimated"]
    assert "春节前后" not in f.loc["2027-02-18", "window"]


def test_makeup_workday_is_a_working_day():
    f = make_features("2026-10-08", "2026-10-12", location=GUANGZHOU)
    assert f.loc["2026-10-10", "makeup_workday"] == 1 and f.loc["2026-10-10", "off_day"] == 0
    assert f.loc["2026-10-11", "off_day"] == 1


def test_heating_season_applies_to_northern_cities_only_and_crosses_new_year():
    north = make_features("2026-11-10", "2027-03-20", location=BEIJING)
    south = make_features("2026-11-10", "2027-03-20", location=GUANGZHOU)
    jinan = make_features("2026-11-10", "2026-11-20", location=Location(city="济南", region="华东"))
    assert north.loc["2026-11-15", "season_heating"] == 1 and north.loc["2026-11-14", "season_heating"] == 0
    assert north.loc["2027-01-10", "season_heating"] == 1 and north.loc["2027-03-16", "season_heating"] == 0
    assert "供暖季" in north.loc["2026-12-01", "window"]
    assert "season_heating" not in south.columns and "供暖季" not in "".join(south["window"])
    assert jinan.loc["2026-11-16", "season_heating"] == 1  # a northern city in 华东, listed by name


def test_events_and_custom_windows_from_config():
    cal = CalendarConfig(
        windows={"national_day": HolidayWindow(before=3, after=0)},
        seasons={},
        events={"movein": EventConfig(label="交房季", start="2027-03-01", end="2027-03-31", communities=["C9"])},
    )
    f = make_features("2026-09-20", "2027-03-05", calendar=cal, location=Location(community_id="C9"))
    assert f.loc["2026-09-28", "pre_national_day"] == 1 and "post_national_day" not in f.columns
    assert f.loc["2027-03-02", "event_movein"] == 1 and "交房季" in f.loc["2027-03-02", "window"]
    other = make_features("2027-03-01", "2027-03-05", calendar=cal, location=Location(community_id="C1"))
    assert "event_movein" not in other.columns
