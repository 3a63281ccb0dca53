import datetime as dt

import numpy as np
import pandas as pd
import pytest

from forecaster.config import MetricsConfig
from forecaster.ingest.aggregate import day_sums, series_from_day_sums
from forecaster.ingest.tables import empty_surveys

AS_OF = dt.date(2026, 3, 6)


def t(tid, cid, created, closed=None, category="报修", rating=np.nan):
    return {
        "ticket_id": tid,
        "community_id": cid,
        "created_at": pd.Timestamp(created),
        "closed_at": pd.Timestamp(closed) if closed else pd.NaT,
        "category": category,
        "rating": rating,
    }


def make_daily_series(tickets, surveys, as_of, metrics, **kwargs):
    """Tickets and surveys → day sums → daily series, the two steps of a nightly run."""
    return series_from_day_sums(day_sums(tickets, surveys, metrics), as_of, metrics, **kwargs)


def frames():
    tickets = pd.DataFrame(
        [
            t("T1", "C1", "2026-03-01 09:00", "2026-03-01 13:00", rating=80.0),
            t("T2", "C1", "2026-03-01 10:00", "2026-03-03 10:00", category=" 投诉 "),
            t("T3", "C1", "2026-03-04 08:00", category="Complaint"),
            t("T4", "C2", "2026-03-05 23:00", "2026-03-05 23:30", rating=40.0),
        ]
    )
    surveys = pd.DataFrame(
        {
            "community_id": ["C1", "C1"],
            "date": pd.to_datetime(["2026-03-01", "2026-03-02"]),
            "score": [90.0, 70.0],
            "responses": [3.0, 1.0],
        }
    )
    return tickets, surveys


def series(long, sid):
    s = long[long["series_id"] == sid].set_index("ds")["y"]
    s.index = s.index.strftime("%m-%d")
    return s


def test_counts_have_zero_on_quiet_days_and_complaints_follow_config():
    tickets, surveys = frames()
    out = make_daily_series(tickets, surveys, AS_OF, MetricsConfig(), min_history_days=3)
    tc = series(out.frame, "C1:ticket_count")
    assert tc.to_dict() == {"03-01": 2, "03-02": 0, "03-03": 0, "03-04": 1, "03-05": 0}
    cc = series(out.frame, "C1:complaint_count")
    assert cc.to_dict() == {"03-01": 1, "03-02": 0, "03-03": 0, "03-04": 1, "03-05": 0}


def test_satisfaction_is_weighted_and_missing_days_stay_missing():
    tickets, surveys = frames()
    out = make_daily_series(tickets, surveys, AS_OF, MetricsConfig(), min_history_days=3)
    sat = series(out.frame, "C1:satisfaction")
    # 1 March: survey 90 × 3 responses + rating 80 (T1 closed that day) → (270 + 80) / 4
    assert sat["03-01"] == 87.5
    assert sat["03-02"] == 70.0
    assert sat[["03-03", "03-04", "03-05"]].isna().all()  # no responses: missing, never 0


def test_resolution_hours_by_closing_day():
    tickets, surveys = frames()
    out = make_daily_series(tickets, surveys, AS_OF, MetricsConfig(), min_history_days=3)
    res = series(out.frame, "C1:resolution_hours")
    assert res["03-01"] == 4.0 and res["03-03"] == 48.0
    assert res[["03-02", "03-04", "03-05"]].isna().all()


def test_series_start_at_first_activity_and_end_before_as_of():
    tickets, surveys = frames()
    out = make_daily_series(tickets, surveys, AS_OF, MetricsConfig(), min_history_days=3)
    c2 = out.frame[out.frame["community_id"] == "C2"]
    assert c2["ds"].min() == pd.Timestamp("2026-03-05") and c2["ds"].max() == pd.Timestamp("2026-03-05")
    assert out.frame["ds"].max() == pd.Timestamp("2026-03-05")


def test_stats_mark_short_and_no_data_series():
    tickets, surveys = frames()
    out = make_daily_series(
        tickets, surveys, AS_OF, MetricsConfig(), min_history_days=3, communities=pd.Series(["C1", "C2", "C3"])
    )
    st = out.stats.set_index("series_id")
    assert st.loc["C1:ticket_count", "status"] == "ok"
    assert st.loc["C2:ticket_count", "status"] == "short"
    assert "min_history_days (3)" in st.loc["C2:ticket_count", "reason"]
    assert st.loc["C3:ticket_count", "status"] == "no_data"  # a community without any data
    assert st.loc["C2:resolution_hours", "n_obs"] == 1
    # no_data series are in the stats but not in the frame.
    assert "C3:ticket_count" not in set(out.frame["series_id"])
    # C1: tickets, complaints, hours, satisfaction, repairs, backlog, overdue and on-time closing
    # (one deadline in the window); C2 the same but the on-time share (its deadline is after).
    # No responses recorded and no other line: those series are absent.
    assert out.n_series == 15
    assert "C1:response_hours" not in set(out.frame["series_id"])
    assert "C1:ticket_count.cleaning" not in set(out.frame["series_id"])


def test_ratings_only_and_metric_selection():
    tickets, surveys = frames()
    cfg = MetricsConfig(enabled=["satisfaction"], satisfaction_from=["ratings"])
    out = make_daily_series(tickets, surveys, AS_OF, cfg, min_history_days=1)
    assert set(out.frame["metric"]) == {"satisfaction"}
    assert series(out.frame, "C1:satisfaction")["03-01"] == 80.0


def test_deadlines_backlog_overdue_and_response_times_per_day():
    """Default SLA: 4 h to answer and 72 h to close; complaints 24 h and 72 h."""
    rows = [
        # answered in 1 h, closed in 4 h: on time both ways
        dict(t("T1", "C1", "2026-03-01 09:00", "2026-03-01 13:00"), responded_at=pd.Timestamp("2026-03-01 10:00")),
        # a complaint answered after 26 h (late), closed after 48 h (on time)
        dict(t("T2", "C1", "2026-03-01 10:00", "2026-03-03 10:00", category="投诉"), responded_at=pd.Timestamp("2026-03-02 12:00")),
        # a complaint never answered and still open: late for its answer on 03-05
        dict(t("T3", "C1", "2026-03-04 08:00", category="投诉"), responded_at=pd.NaT),
        # a repair closed after 84 h without a response time: late both ways, overdue on 03-04
        dict(t("T5", "C1", "2026-03-01 08:00", "2026-03-05 20:00"), responded_at=pd.NaT),
    ]
    tickets = pd.DataFrame(rows)
    tickets["due_at"] = pd.NaT
    out = make_daily_series(tickets, empty_surveys(), AS_OF, MetricsConfig(), min_history_days=1)
    f = out.frame
    assert series(f, "C1:response_hours").dropna().to_dict() == {"03-01": 1.0, "03-02": 26.0}
    assert series(f, "C1:responded_on_time").dropna().to_dict() == {"03-01": 0.5, "03-02": 0.0, "03-05": 0.0}
    assert series(f, "C1:closed_on_time").dropna().to_dict() == {"03-04": 2 / 3}
    assert series(f, "C1:open_backlog").to_dict() == {"03-01": 2, "03-02": 2, "03-03": 1, "03-04": 2, "03-05": 1}
    assert series(f, "C1:overdue_open").to_dict() == {"03-01": 0, "03-02": 0, "03-03": 0, "03-04": 1, "03-05": 0}
    assert series(f, "C1:ticket_count.repair").to_dict() == {"03-01": 2, "03-02": 0, "03-03": 0, "03-04": 0, "03-05": 0}


def test_a_ticket_s_own_due_time_and_the_configured_sla_set_its_closing_deadline():
    tickets = pd.DataFrame(
        [
            dict(t("T1", "C1", "2026-03-01 09:00", "2026-03-02 12:00"), due_at=pd.Timestamp("2026-03-02 09:00")),  # late by its own
            t("T2", "C1", "2026-03-01 09:00", "2026-03-02 12:00"),  # 27 h: late for an 24 h SLA
        ]
    )
    metrics = MetricsConfig(sla={"default": {"respond_hours": 1, "close_hours": 24}})
    f = make_daily_series(tickets, empty_surveys(), AS_OF, metrics, min_history_days=1).frame
    assert series(f, "C1:closed_on_time").dropna().to_dict() == {"03-02": 0.0}
    assert series(f, "C1:overdue_open").to_dict()["03-02"] == 0  # both closed on the day they fell due
    metrics = MetricsConfig(sla={"default": {"respond_hours": 1, "close_hours": 48}})
    f = make_daily_series(tickets, empty_surveys(), AS_OF, metrics, min_history_days=1).frame
    assert series(f, "C1:closed_on_time").dropna().to_dict() == {"03-02": 0.0, "03-03": 1.0}


def test_nps_from_recommend_weighted_by_responses():
    tickets, _ = frames()
    surveys = pd.DataFrame(
        {
            "community_id": ["C1", "C1", "C1", "C1"],
            "date": pd.to_datetime(["2026-03-01", "2026-03-01", "2026-03-01", "2026-03-02"]),
            "score": [90.0, 70.0, 80.0, 60.0],
            "responses": [3.0, 1.0, 1.0, 2.0],
            "source": ["APP", "APP", "回访", "APP"],
            "recommend": [10.0, 5.0, 8.0, np.nan],
        }
    )
    f = make_daily_series(tickets, surveys, AS_OF, MetricsConfig(), min_history_days=1).frame
    # 03-01: 5 answers, 3 promoters, 1 detractor, 1 passive; each day's NPS is the week's to it.
    assert series(f, "C1:nps").dropna().to_dict() == {"03-01": 40.0, "03-02": 40.0, "03-03": 40.0, "03-04": 40.0, "03-05": 40.0}
    surveys.loc[3, "recommend"] = 0.0  # 03-02: two detractors more: 3 of 7 promoters, 3 detractors
    f = make_daily_series(tickets, surveys, AS_OF, MetricsConfig(), min_history_days=1).frame
    assert series(f, "C1:nps").dropna().to_dict() == {"03-01": 40.0, "03-02": 0.0, "03-03": 0.0, "03-04": 0.0, "03-05": 0.0}
    later = pd.DataFrame({"community_id": ["C1"], "date": pd.to_datetime(["2026-03-09"]), "score": [80.0], "responses": [1.0], "source": ["APP"], "recommend": [10.0]})
    f = make_daily_series(tickets, pd.concat([surveys, later], ignore_index=True), dt.date(2026, 3, 20), MetricsConfig(), min_history_days=1).frame
    nps = series(f, "C1:nps")
    assert nps["03-07"] == 0.0 and nps["03-08"] == -100.0 and nps["03-09"] == 100.0  # the week moves on
    assert np.isnan(nps["03-16"])  # a week without an answer


def test_configured_service_lines_and_their_categories():
    tickets, surveys = frames()
    metrics = MetricsConfig(service_lines={"repair": {"categories": ["报修"]}, "gate": {"label_zh": "门禁", "categories": ["门禁"]}})
    tickets.loc[0, "category"] = "门禁"
    f = make_daily_series(tickets, surveys, AS_OF, metrics, min_history_days=1).frame
    assert series(f, "C1:ticket_count.gate").to_dict()["03-01"] == 1
    assert "C1:ticket_count.repair" not in set(f["series_id"])  # C1's only repair became 门禁
    assert series(f, "C2:ticket_count.repair").to_dict() == {"03-05": 1}


def test_satisfaction_sources_keep_a_door_to_door_survey_out_of_the_daily_score():
    tickets, _ = frames()
    surveys = pd.DataFrame(
        {
            "community_id": ["C1", "C1", "C1"],
            "date": pd.to_datetime(["2026-03-02", "2026-03-02", "2026-03-03"]),
            "score": [90.0, 50.0, 80.0],
            "responses": [1.0, 40.0, 2.0],
            "source": ["APP", "第三方", pd.NA],
            "recommend": [np.nan] * 3,
        }
    ).astype({"source": "string"})
    mixed = make_daily_series(tickets, surveys, AS_OF, MetricsConfig(), min_history_days=1).frame
    assert series(mixed, "C1:satisfaction")["03-02"] == pytest.approx((90 + 50 * 40) / 41)
    daily = MetricsConfig(satisfaction={"sources": ["app", "回访"]})
    kept = make_daily_series(tickets, surveys, AS_OF, daily, min_history_days=1).frame
    sat = series(kept, "C1:satisfaction")
    assert sat["03-02"] == 90.0 and sat["03-03"] == 80.0  # a row without a source still counts


def test_a_closing_before_the_creation_is_a_clock_difference_or_a_closing_at_an_unknown_time():
    """Boston 311 has cases closed seconds before they were opened; a cleared closing used to
    leave the ticket open for ever (in the backlog, overdue, late)."""
    from forecaster.ingest.validate import RawTable, validate_tickets

    rows = pd.DataFrame(
        [
            {"ticket_id": "T1", "community_id": "C1", "created_at": "2026-03-01 10:00:05", "closed_at": "2026-03-01 10:00:00"},
            {"ticket_id": "T2", "community_id": "C1", "created_at": "2026-03-01 11:00", "closed_at": "2026-03-01 12:00"},
            {"ticket_id": "T3", "community_id": "C1", "created_at": "2026-03-01 11:00", "closed_at": "2026-02-01 12:00"},
            {"ticket_id": "T4", "community_id": "C1", "created_at": "2026-03-01 11:00", "closed_at": "不详"},
        ]
    )
    raw = RawTable("tickets", "tickets.csv", rows, pd.Series([f"line {i + 2}" for i in range(len(rows))], dtype=object))
    tickets, report = validate_tickets(raw, {"C1"}, source_tz="Asia/Shanghai", timezone="Asia/Shanghai", rating_scale=5)
    assert [p.action for p in report.problems if p.reason.startswith("closed_at up to 15 min")] == ["kept"]
    assert tickets["closed_untimed"].tolist() == [False, False, True, True]
    f = make_daily_series(tickets, empty_surveys(), dt.date(2026, 3, 10), MetricsConfig(), min_history_days=1).frame
    assert series(f, "C1:open_backlog").max() == 0  # none of the four is open
    assert series(f, "C1:overdue_open").max() == 0
    assert series(f, "C1:closed_on_time").dropna().to_dict() == {"03-04": 1.0}  # T1 and T2; T3, T4 not judged
    assert series(f, "C1:resolution_hours").dropna().to_dict() == {"03-01": 0.5}  # (0 + 1) / 2
    # A community whose every closing is unusable still has its backlog (nothing open).
    only = tickets[tickets["closed_untimed"]].assign(community_id="C2")
    f = make_daily_series(only, empty_surveys(), dt.date(2026, 3, 10), MetricsConfig(), min_history_days=1).frame
    assert series(f, "C2:open_backlog").max() == 0
