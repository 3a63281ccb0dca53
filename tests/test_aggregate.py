import datetime as dt

import numpy as np
import pandas as pd

from forecaster.config import MetricsConfig
from forecaster.ingest.aggregate import day_sums, series_from_day_sums

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
    assert out.n_series == 8


def test_ratings_only_and_metric_selection():
    tickets, surveys = frames()
    cfg = MetricsConfig(enabled=["satisfaction"], satisfaction_from=["ratings"])
    out = make_daily_series(tickets, surveys, AS_OF, cfg, min_history_days=1)
    assert set(out.frame["metric"]) == {"satisfaction"}
    assert series(out.frame, "C1:satisfaction")["03-01"] == 80.0
