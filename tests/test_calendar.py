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
