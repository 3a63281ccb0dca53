"""The demo company must carry the patterns the rest of the service is meant to find."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from forecaster.calendar import make_day_table
from forecaster.config import MetricsConfig
from forecaster.demo import SURVEY_APP, SURVEY_THIRD_PARTY, make_demo_frames, write_demo_csv, write_demo_sql
from forecaster.ingest.aggregate import day_sums, series_from_day_sums
from forecaster.ingest.validate import RawTable, validate_surveys, validate_tickets
from tests.conftest import AS_OF


@pytest.fixture(scope="module")
def demo():
    return make_demo_frames(AS_OF, communities=24, years=3, seed=11)


def _raw(name, frame):
    return RawTable(name, name, frame, pd.Series([str(i) for i in range(len(frame))], dtype=object))


@pytest.fixture(scope="module")
def validated(demo):
    """The demo's tickets and surveys validated as a nightly run does, and the two reports."""
    known = set(demo.communities["community_id"])
    t, t_report = validate_tickets(
        _raw("tickets", demo.tickets), known, source_tz="Asia/Shanghai", timezone="Asia/Shanghai", rating_scale=5,
        lines=MetricsConfig().category_lines,
    )
    s, s_report = validate_surveys(_raw("surveys", demo.surveys), known, timezone="Asia/Shanghai", score_scale=100)
    return t, s, t_report, s_report


@pytest.fixture(scope="module")
def daily(demo, validated):
    """The demo through the same validation and aggregation as a nightly run."""
    t, s, _, _ = validated
    wide = series_from_day_sums(day_sums(t, s, MetricsConfig()), AS_OF, MetricsConfig(), min_history_days=56).frame
    profiles = demo.profiles[["community_id", "city", "kind", "sensitivity", "late_closer", "slow_responder"]]
    return wide.merge(profiles, on="community_id")


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


# ----------------------------------------------------------------------------- the KPI fields

def _sf_gap_2026():
    """The demo's Spring Festival staffing gap of 2026: ten days before the holiday to a week after."""
    cal = make_day_table(dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    sf = cal.index[cal["holiday"] == "spring_festival"]
    return sf.min() - pd.Timedelta(days=10), sf.max() + pd.Timedelta(days=7)


def test_kpi_columns_are_there_with_their_dirty_values(demo, validated):
    c = demo.communities
    assert (c["households"] > 0).all() and c["households"].dtype.kind == "i"
    assert (c["property_type"] == "住宅").mean() >= 0.6 and set(c["property_type"]) - {"住宅"} <= {"公寓", "商业", "写字楼"}
    assert set(c["property_type"]) != {"住宅"}
    t = demo.tickets
    assert (t["responded_at"] < t["created_at"]).sum() == 1  # the dirty one
    # Never after the closing (but in the dirty row whose closing is before its creation).
    assert (t["responded_at"] > t["closed_at"]).sum() == (t["ticket_id"] == "WO999000002").sum() == 1
    # Unanswered: a few of the last tickets; every closed ticket was answered.
    unanswered = t[t["responded_at"].isna()]
    assert 0 < len(unanswered) < 0.002 * len(t)
    assert unanswered["closed_at"].isna().all() and (unanswered["created_at"] > pd.Timestamp(AS_OF) - pd.Timedelta(days=3)).all()
    assert t["responded_at"].max() < pd.Timestamp(AS_OF) and t["closed_at"].max() < pd.Timestamp(AS_OF)
    # Still open: the recent tickets, and a few forgotten (0.5%).
    still_open = t["closed_at"].isna() & (t["created_at"] < pd.Timestamp(AS_OF) - pd.Timedelta(days=14))
    assert still_open.mean() < 0.01
    s = demo.surveys
    assert set(s["source"]) == {SURVEY_APP, SURVEY_THIRD_PARTY}
    assert (s["recommend"] > 10).sum() == 1 and s["recommend"].notna().mean() > 0.8
    assert s["recommend"].dropna().mod(1).eq(0).all() and s["recommend"].min() >= 0
    *_, t_report, s_report = validated
    cleared = {(p.reason, p.count) for r in (t_report, s_report) for p in r.problems if p.action == "cleared"}
    assert {("responded_at before created_at", 1), ("recommend outside 0–10", 1), ("closed_at before created_at", 1)} <= cleared


def test_responses_by_category_and_complaints_close_slower(validated):
    t = validated[0]
    respond = (t["responded_at"] - t["created_at"]).dt.total_seconds() / 3600
    close = (t["closed_at"] - t["created_at"]).dt.total_seconds() / 3600
    by = lambda v, cat: v[t["category"] == cat]  # noqa: E731
    assert by(respond, "报修").median() < 1.5 and by(respond, "咨询").median() < 1.0
    assert 6 <= by(respond, "投诉").median() <= 12
    assert 0.01 < (by(respond, "投诉") > 24).mean() < 0.25
    assert by(close, "投诉").median() > 3 * by(close, "咨询").median()


def test_spring_festival_slows_responses_and_builds_up_the_backlog(daily):
    lo, hi = _sf_gap_2026()
    resp = daily[daily["metric"] == "response_hours"]
    inside = resp["ds"].between(lo, hi)
    assert resp.loc[inside, "y"].mean() >= 1.5 * resp.loc[~inside, "y"].mean()
    backlog = daily[daily["metric"] == "open_backlog"].groupby("ds")["y"].sum()
    before, at_end, after = backlog[lo - pd.Timedelta(days=14)], backlog[hi], backlog[hi + pd.Timedelta(days=21)]
    assert at_end > 1.5 * before and after < 0.8 * at_end
    on_time = daily[daily["metric"] == "closed_on_time"]
    assert on_time.loc[on_time["ds"].between(lo, hi), "y"].mean() < on_time.loc[~on_time["ds"].between(lo, hi), "y"].mean() - 0.1


def test_late_closers_miss_the_closing_target(demo, daily):
    late = demo.profiles["late_closer"]
    assert 1 <= late.sum() <= max(1, round(len(late) / 12)) + 1
    on_time = daily[daily["metric"] == "closed_on_time"]
    per = on_time.groupby("community_id")["y"].mean()
    late_ids = set(demo.profiles.loc[late, "community_id"])
    assert (per[per.index.isin(late_ids)] < 0.7).all()
    assert (per[~per.index.isin(late_ids)] > 0.85).all()


def test_third_party_surveys_every_quarter_a_few_points_lower(demo):
    s = demo.surveys.assign(date=pd.to_datetime(demo.surveys["date"]))
    s = s[s["score"] <= 100]
    third = s[s["source"] == SURVEY_THIRD_PARTY]
    app = s[s["source"] == SURVEY_APP]
    quarters = pd.period_range(demo.start, demo.end, freq="Q")
    complete = [q for q in quarters if q.start_time.date() >= demo.start and q.end_time.date() <= demo.end]
    assert len(complete) >= 10
    seen = third.groupby(["community_id", third["date"].dt.to_period("Q")])["date"].agg(["min", "max", "size"])
    for p in demo.profiles.itertuples():
        first = pd.Timestamp(demo.end) - pd.Timedelta(days=p.history_days - 1) if p.history_days == p.history_days else pd.Timestamp(demo.start)
        wanted = [q for q in complete if q.start_time >= first]
        found = [q for q in wanted if (p.community_id, q) in seen.index]
        # A community with a missing stretch may lose one quarter's survey to it.
        assert len(found) >= len(wanted) - (1 if p.has_gap else 0), p.community_id
    assert (seen["max"] - seen["min"]).dt.days.max() <= 9  # about a week
    assert third["responses"].mean() > 3 * app["responses"].mean()
    # A few points lower than the app's ratings of the same communities and quarters.
    key = lambda f: [f["community_id"], f["date"].dt.to_period("Q")]  # noqa: E731
    diff = (third.groupby(key(third))["score"].mean() - app.groupby(key(app))["score"].mean()).dropna()
    assert 2 < -diff.mean() < 8


def test_nps_series_from_recommend(demo, daily):
    s = demo.surveys[demo.surveys["recommend"] <= 10]
    assert s["recommend"].corr(s["score"]) > 0.5
    nps = daily[daily["metric"] == "nps"]
    assert set(nps["community_id"]) == set(demo.communities["community_id"])
    assert nps["y"].dropna().between(-100, 100).all() and nps["y"].notna().sum() > 0.3 * len(nps)
    assert 0 < nps["y"].mean() < 50
    lo, hi = _sf_gap_2026()
    assert nps.loc[nps["ds"].between(lo, hi), "y"].mean() < nps["y"].mean() - 5


def test_written_tables_carry_the_kpi_columns(tmp_path):
    data = make_demo_frames(AS_OF, communities=4, years=0.3, seed=5)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    write_demo_sql(url, data, seed=5)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            community = conn.execute(sa.text("SELECT households, property_type FROM communities LIMIT 1")).one()
            ticket = conn.execute(
                sa.text("SELECT created_at, responded_at, closed_at FROM tickets WHERE closed_at IS NOT NULL LIMIT 1")
            ).one()
            survey = conn.execute(sa.text("SELECT source, recommend FROM surveys WHERE recommend IS NOT NULL LIMIT 1")).one()
            third = conn.execute(sa.text("SELECT count(*) FROM surveys WHERE source = '第三方'")).scalar()
    finally:
        engine.dispose()
    assert community.households > 0 and community.property_type in {"住宅", "公寓", "商业", "写字楼"}
    assert ticket.created_at <= ticket.responded_at <= ticket.closed_at
    assert survey.source in {SURVEY_APP, SURVEY_THIRD_PARTY} and 0 <= survey.recommend <= 10 and isinstance(survey.recommend, int)
    assert third > 0
    paths = {p.name: p for p in write_demo_csv(tmp_path / "csv", data)}
    header = lambda name: paths[name].read_text(encoding="utf-8-sig").splitlines()[0].split(",")  # noqa: E731
    assert {"households", "property_type"} <= set(header("communities.csv"))
    assert "responded_at" in header("tickets.csv") and {"source", "recommend"} <= set(header("surveys.csv"))
    recommend = pd.read_csv(paths["surveys.csv"], encoding="utf-8-sig")["recommend"].dropna()
    assert np.array_equal(recommend, recommend.round())
