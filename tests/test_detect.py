import datetime as dt
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from forecaster.config import DetectConfig, SeverityCut, Threshold, ThresholdOverride, ThresholdsConfig
from forecaster.detect import (
    carry_identity,
    day_probabilities,
    find_in_series,
    recent_baseline,
    severity_for,
    thresholds_for,
)
from tests.conftest import make_finding

DAYS = pd.date_range("2027-02-01", periods=14, freq="D")


def sat(mean, spread=4.0):
    mean = np.asarray(mean, dtype=float)
    return mean, mean - spread, np.minimum(mean + spread, 100)


def test_probability_comes_from_the_distribution_not_the_point():
    mean, lo, hi = sat([84.0, 80.0, 90.0])
    p, limit, refs = day_probabilities("satisfaction", mean, lo, hi, np.full(3, 95.0), Threshold(below=85), 80)
    # An 80% half-width of 4 means σ = 4 / 1.2816: 84 is likely under 85 but not certain,
    # 80 very likely, 90 unlikely.
    sigma = 4 / 1.2815516
    expected = [NormalDist().cdf((85 - m) / sigma) for m in (84, 80, 90)]
    assert p == pytest.approx(expected, abs=1e-6)
    assert 0.55 < p[0] < 0.7 and p[1] > 0.9 and p[2] < 0.1
    assert refs[0] == "阈值 85" and limit[0] == 85


def test_relative_limits_need_a_minimum_excess_on_small_counts():
    mean, lo, hi = np.array([2.0]), np.array([1.0]), np.array([3.5])
    loose = day_probabilities("complaint_count", mean, lo, hi, np.array([1.0]), Threshold(rise_share=0.5), 80)[0]
    strict = day_probabilities("complaint_count", mean, lo, hi, np.array([1.0]), Threshold(rise_share=0.5, min_excess=2), 80)[0]
    assert loose[0] > 0.6 and strict[0] < 0.35  # 2 vs a baseline of 1 is not a surge worth a call


def test_consecutive_days_form_one_finding_with_peak_severity_and_window():
    mean = np.full(14, 92.0)
    mean[3:9] = [86, 80, 74, 72, 78, 84]
    mean, lo, hi = sat(mean)
    windows = [""] * 3 + ["春节前后"] * 6 + [""] * 5
    [f] = find_in_series(
        "C1", "satisfaction", DAYS, mean, lo, hi, np.full(14, 92.0), Threshold(below=85, drop_share=0.05),
        level=80, windows=windows, estimated=np.ones(14, bool),
    )
    assert (f.first_day, f.last_day) == (dt.date(2027, 2, 4), dt.date(2027, 2, 9))
    assert f.peak_day == dt.date(2027, 2, 7) and f.expected == 72.0 and f.kind == "dip"
    assert f.severity == "严重" and f.window == "春节前后" and f.estimated
    assert f.depth == pytest.approx((92 - 72) / 92)


def test_short_gaps_are_bridged_and_single_days_dropped():
    mean = np.full(14, 92.0)
    mean[[2, 3, 5, 11]] = 70.0  # 2–3 and 5: one dip (gap of one day); 11 alone: dropped
    mean, lo, hi = sat(mean)
    found = find_in_series("C1", "satisfaction", DAYS, mean, lo, hi, np.full(14, 92.0), Threshold(below=85), level=80)
    assert [(f.first_day.day, f.last_day.day) for f in found] == [(3, 6)]
    single = find_in_series("C1", "satisfaction", DAYS, mean, lo, hi, np.full(14, 92.0), Threshold(below=85), level=80, rules=DetectConfig(min_days=1))
    assert len(single) == 2


def test_surges_and_no_threshold():
    mean = np.full(14, 10.0)
    mean[6:10] = 18.0
    found = find_in_series("C1", "ticket_count", DAYS, mean, mean - 2, mean + 2, np.full(14, 10.0), Threshold(rise_share=0.3), level=80)
    assert len(found) == 1 and found[0].kind == "surge" and found[0].reference == "近4周基线 +30%"
    assert find_in_series("C1", "ticket_count", DAYS, mean, mean - 2, mean + 2, np.full(14, 10.0), None, level=80) == []


def test_thresholds_most_specific_override_wins():
    config = ThresholdsConfig(
        defaults={"satisfaction": Threshold(below=85, drop_share=0.05)},
        overrides=[
            ThresholdOverride(region="东北", metrics={"satisfaction": Threshold(below=80)}),
            ThresholdOverride(city="沈阳", metrics={"satisfaction": Threshold(below=82)}),
            ThresholdOverride(community="C7", metrics={"satisfaction": Threshold(below=75)}),
        ],
    )
    assert thresholds_for(config, "satisfaction", "C1", "北京", "华北").below == 85
    assert thresholds_for(config, "satisfaction", "C2", "大连", "东北").below == 80
    assert thresholds_for(config, "satisfaction", "C3", "沈阳", "东北").below == 82
    t = thresholds_for(config, "satisfaction", "C7", "沈阳", "东北")
    assert t.below == 75 and t.drop_share == 0.05  # unspecified keys keep the default
    assert thresholds_for(config, "resolution_hours", "C1", None, None) is None


def test_thresholds_by_property_type_and_by_line():
    """Targets differ by type (85% on time for apartments, 93% for office buildings); a city's
    office buildings can differ again; a service line takes ticket_count.* unless it has its own."""
    config = ThresholdsConfig(
        defaults={"closed_on_time": Threshold(below=0.9), "ticket_count.*": Threshold(rise_share=0.5), "ticket_count.repair": Threshold(rise_share=0.3)},
        overrides=[
            ThresholdOverride(property_type="公寓", metrics={"closed_on_time": Threshold(below=0.85)}),
            ThresholdOverride(property_type="写字楼", metrics={"closed_on_time": Threshold(below=0.93), "ticket_count.*": Threshold(rise_share=0.2)}),
            ThresholdOverride(city="上海", property_type="写字楼", metrics={"closed_on_time": Threshold(below=0.95)}),
            ThresholdOverride(region="华东", metrics={"closed_on_time": Threshold(below=0.88)}),
        ],
    )
    assert thresholds_for(config, "closed_on_time", "C1", "北京", "华北", "住宅").below == 0.9
    assert thresholds_for(config, "closed_on_time", "C1", "北京", "华北", "公寓").below == 0.85
    assert thresholds_for(config, "closed_on_time", "C1", "北京", "华北", "写字楼").below == 0.93
    assert thresholds_for(config, "closed_on_time", "C1", "杭州", "华东", "写字楼").below == 0.88  # region over type
    assert thresholds_for(config, "closed_on_time", "C1", "上海", "华东", "写字楼").below == 0.95  # both scopes
    assert thresholds_for(config, "closed_on_time", "C1", "上海", "华东", "住宅").below == 0.88
    assert thresholds_for(config, "ticket_count.cleaning", "C1", None, None).rise_share == 0.5
    assert thresholds_for(config, "ticket_count.repair", "C1", None, None).rise_share == 0.3
    assert thresholds_for(config, "ticket_count.cleaning", "C1", None, None, "写字楼").rise_share == 0.2


def test_baseline_by_day_type():
    y = np.array([10, 10, 10, 10, 10, 4, 4] * 4, dtype=float)
    off = np.array([0, 0, 0, 0, 0, 1, 1] * 4, dtype=float)
    base = recent_baseline(y, off, np.array([0, 1, 0]), statistic=np.nanmean)
    assert base.tolist() == [10.0, 4.0, 10.0]
    assert recent_baseline(y, None, np.zeros(2)).tolist() == [10.0, 10.0]


def finding(first, last, severity="警告", depth=0.1):
    return make_finding(community_id="C1", first_day=first, last_day=last, severity=severity, depth=depth, window="")


def test_identity_carries_over_when_the_same_dip_is_seen_again():
    d = dt.date
    yesterday = carry_identity([finding(d(2027, 2, 5), d(2027, 2, 12))], [])
    assert yesterday[0].status == "new" and yesterday[0].finding_id
    same = carry_identity([finding(d(2027, 2, 5), d(2027, 2, 12))], yesterday)[0]
    moved = carry_identity([finding(d(2027, 2, 7), d(2027, 2, 14), severity="严重")], yesterday)[0]
    other = carry_identity([finding(d(2027, 4, 1), d(2027, 4, 3))], yesterday)[0]
    assert same.finding_id == moved.finding_id == yesterday[0].finding_id
    assert (same.status, moved.status, other.status) == ("unchanged", "updated", "new")
    assert other.finding_id != yesterday[0].finding_id


def test_a_new_finding_never_takes_an_id_already_in_use():
    """Yesterday's dip from 5 Feb splits tonight: the part from 7 Feb carries its id on, and the
    part from 5 Feb, unmatched, must not get the id 5 Feb gives (it is yesterday's): seen on a
    third night of the 2,000-community benchmark as a duplicate key in the store."""
    d = dt.date
    yesterday = carry_identity([finding(d(2027, 2, 5), d(2027, 2, 12))], [])
    tonight = carry_identity(
        [finding(d(2027, 2, 7), d(2027, 2, 12)), finding(d(2027, 2, 5), d(2027, 2, 6))], yesterday
    )
    assert tonight[0].finding_id == yesterday[0].finding_id and tonight[0].status == "updated"
    assert tonight[1].status == "new" and tonight[1].finding_id != yesterday[0].finding_id
    # The same split again the next night: the ids stay as they were.
    again = carry_identity([finding(d(2027, 2, 7), d(2027, 2, 12)), finding(d(2027, 2, 5), d(2027, 2, 6))], tonight)
    assert [f.finding_id for f in again] == [f.finding_id for f in tonight]


def _two_dips():
    """A satisfaction series steady at 92, forecast to dip below 85 on days 3–5 and 20–23."""
    from forecaster.calendar import FeatureBook

    as_of = dt.date(2026, 6, 1)
    hist_days = pd.date_range(as_of - dt.timedelta(days=60), periods=60)
    fc_days = pd.date_range(as_of, periods=30)
    yhat = np.full(30, 92.0)
    yhat[3:6] = yhat[20:24] = 70.0
    series = pd.DataFrame({"series_id": "C1:satisfaction", "community_id": "C1", "metric": "satisfaction", "ds": hist_days, "y": 92.0})
    forecasts = pd.DataFrame(
        {
            "series_id": "C1:satisfaction",
            "community_id": "C1",
            "metric": "satisfaction",
            "ds": fc_days,
            "yhat": yhat,
            "yhat_lower": yhat - 2,
            "yhat_upper": yhat + 2,
        }
    )
    # Another series in the forecasts listed first, with no history: no finding, no error.
    other = forecasts.assign(series_id="C9:satisfaction", community_id="C9")
    communities = pd.DataFrame({"community_id": ["C1", "C9"], "name": ["一号", "九号"], "city": ["北京", "北京"], "region": ["华北", "华北"]})
    book = FeatureBook(as_of - dt.timedelta(days=70), as_of + dt.timedelta(days=30), country="CN")
    return as_of, series, pd.concat([other, forecasts], ignore_index=True), communities, book


def test_findings_of_a_forecast_frame_and_the_lookahead(make_config):
    from forecaster.detect import detect_findings

    as_of, series, forecasts, communities, book = _two_dips()
    config = make_config({"forecast": {"min_history_days": 28}})
    found = detect_findings(series, forecasts.sample(frac=1, random_state=1), config, communities, as_of, book)
    assert [(f.community_id, f.kind, f.first_day, f.last_day) for f in found] == [
        ("C1", "dip", as_of + dt.timedelta(days=3), as_of + dt.timedelta(days=5)),
        ("C1", "dip", as_of + dt.timedelta(days=20), as_of + dt.timedelta(days=23)),
    ]
    near = make_config({"forecast": {"min_history_days": 28}, "detect": {"lookahead_days": 14}})
    found = detect_findings(series, forecasts, near, communities, as_of, book)
    assert [(f.first_day, f.last_day) for f in found] == [(as_of + dt.timedelta(days=3), as_of + dt.timedelta(days=5))]


def test_severity_follows_the_configured_cuts():
    rules = DetectConfig()
    assert severity_for(0.20, 0.90, rules) == "严重"
    assert severity_for(0.20, 0.70, rules) == "警告"  # deep but not sure enough for 严重
    assert severity_for(0.10, 0.95, rules) == "警告"
    assert severity_for(0.05, 0.99, rules) == "提醒"
    strict = DetectConfig(severity={"严重": SeverityCut(depth=0.30, probability=0.9)})
    assert severity_for(0.20, 0.90, strict) == "提醒"  # no 警告 cut configured: below 严重 is 提醒
    assert severity_for(0.35, 0.95, strict) == "严重"


def test_true_runs_gives_each_run_of_flagged_days_once():
    from forecaster.util.arrays import true_runs

    assert true_runs(np.array([False, True, True, False, True])) == [(1, 2), (4, 4)]
    assert true_runs([True, True]) == [(0, 1)] and true_runs(np.array([], dtype=bool)) == []
