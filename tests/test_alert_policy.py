"""Policy: routing, deduplication, all-clears, silences and quiet hours (pure, clock passed in)."""

from __future__ import annotations

import datetime as dt

import pytest

from forecaster.alerts.policy import Alerted, Community, Silence, decide, release_time, routes_for
from forecaster.config import AlertPolicyConfig, RouteConfig, parse_config
from forecaster.detect import Finding
from tests.conftest import make_finding

NOW = dt.datetime(2026, 1, 20, 18, 0, tzinfo=dt.timezone.utc)  # 02:00 in Shanghai
TODAY = dt.date(2026, 1, 21)
POLICY = AlertPolicyConfig()
ROUTE = RouteConfig(name="华北", channels=["dt"])


def finding(fid="f1", severity="警告", first=dt.date(2026, 2, 10), days=5, community="C001", metric="satisfaction"):
    return make_finding(community_id=community, metric=metric, kind="dip", first_day=first, days=days, severity=severity, finding_id=fid)


def told(f: Finding, *, at=NOW - dt.timedelta(days=1), severity=None, state="open", ok=True, first=None, last=None):
    return Alerted(
        "华北", f.finding_id, f.community_id, f.metric, f.kind, severity or f.severity,
        first or f.first_day, last or f.last_day, state, at, ok,
    )


def run(findings, alerted=(), silences=(), now=NOW, policy=POLICY, series=None, route=ROUTE):
    series = {("C001", "satisfaction")} if series is None else series
    out = decide(
        route, list(findings), {a.finding_id: a for a in alerted}, silences=list(silences), policy=policy,
        now=now, today=TODAY, forecast_series=series, communities={"C001"},
    )
    return [(d.finding_id, d.send, d.reason) for d in out]


def test_a_new_finding_is_sent_and_the_same_one_tomorrow_is_not():
    f = finding()
    assert run([f]) == [("f1", True, "new")]
    assert run([f], [told(f)]) == [("f1", False, "duplicate")]


def test_worse_moved_and_repeat_are_sent_again_better_is_not():
    f = finding(severity="严重")
    assert run([f], [told(f, severity="警告")]) == [("f1", True, "worse")]
    assert run([finding(severity="提醒")], [told(finding(), severity="警告")]) == [("f1", False, "better")]
    moved = finding(first=dt.date(2026, 2, 14))
    assert run([moved], [told(finding())]) == [("f1", True, "moved")]
    nudged = finding(first=dt.date(2026, 2, 11))  # one day: not a move
    assert run([nudged], [told(finding())]) == [("f1", False, "duplicate")]
    week_old = told(f, at=NOW - dt.timedelta(days=7))
    assert run([f], [week_old]) == [("f1", True, "repeat")]
    assert run([f], [week_old], policy=AlertPolicyConfig(repeat_every_days=0)) == [("f1", False, "duplicate")]


def test_a_message_that_failed_for_good_does_not_count_as_told():
    f = finding()
    assert run([f], [told(f, ok=False)]) == [("f1", True, "unsent")]


def test_all_clear_only_when_the_series_was_forecast_tonight():
    gone = told(finding())
    assert run([], [gone]) == [("f1", True, "resolved")]
    # The series failed tonight: no news is not good news.
    assert run([], [gone], series=set()) == []
    # The dip's days are over: closed without a message.
    past = told(finding(first=dt.date(2026, 1, 10)))
    assert run([], [past]) == [("f1", False, "expired")]
    assert run([], [gone], policy=AlertPolicyConfig(send_resolved=False)) == [("f1", False, "expired")]
    assert run([], [told(finding(), state="resolved")]) == []


def test_silences_match_by_community_metric_and_route_until_they_end():
    f = finding()
    until = NOW + dt.timedelta(days=3)
    assert run([f], silences=[Silence(1, until, "装修", community_id="C001")]) == [("f1", False, "silenced")]
    assert run([f], silences=[Silence(2, until, "x", metric="ticket_count")]) == [("f1", True, "new")]
    assert run([f], silences=[Silence(3, until, "x", route="华南")]) == [("f1", True, "new")]
    assert run([f], silences=[Silence(4, until, "x", route="华北", metric="satisfaction")]) == [("f1", False, "silenced")]
    assert run([f], silences=[Silence(5, NOW, "ended")]) == [("f1", True, "new")]
    later = Silence(6, until, "x", starts_at=NOW + dt.timedelta(hours=1))
    assert run([f], silences=[later]) == [("f1", True, "new")]


def test_route_min_severity_holds_lesser_findings():
    route = RouteConfig(name="华北", channels=["dt"], min_severity="警告")
    assert run([finding(severity="提醒"), finding("f2")], route=route) == [
        ("f1", False, "below_severity"),
        ("f2", True, "new"),
    ]


def test_routing_by_community_region_city_and_manager_with_default_and_console():
    alerts = parse_config(
        {
            "alerts": {
                "channels": {"a": {"type": "webhook", "url": "https://x/a"}, "b": {"type": "webhook", "url": "https://x/b"}},
                "routes": [
                    {"name": "north", "regions": ["华北"], "channels": ["a"]},
                    {"name": "vip", "communities": ["C009"], "channels": ["b"]},
                    {"name": "zhang", "managers": ["张三"], "channels": ["b"]},
                ],
                "default_channels": ["a"],
            }
        }
    ).alerts
    names = lambda c: [r.name for r in routes_for(c, alerts)]  # noqa: E731
    assert names(Community("C001", region="华北")) == ["north"]
    assert names(Community("C009", region="华北")) == ["north", "vip"]
    assert names(Community("C002", manager="张三")) == ["zhang"]
    assert names(Community("C003", region="华南")) == ["default"]
    no_default = alerts.model_copy(update={"default_channels": []})
    assert routes_for(Community("C003", region="华南"), no_default) == []
    assert [r.channels for r in routes_for(Community("C003"), parse_config({}).alerts)] == [["console"]]


@pytest.mark.parametrize(
    "local, quiet, expect",
    [
        ("2026-01-21 02:00", "22:00-07:30", "2026-01-21 07:30"),  # after midnight
        ("2026-01-20 23:00", "22:00-07:30", "2026-01-21 07:30"),  # before midnight
        ("2026-01-21 08:00", "22:00-07:30", None),
        ("2026-01-21 12:30", "12:00-14:00", "2026-01-21 14:00"),
        ("2026-01-21 14:00", "12:00-14:00", None),
        ("2026-01-21 02:00", None, None),
    ],
)
def test_quiet_hours_hold_messages_until_they_end(local, quiet, expect):
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Shanghai")
    now = dt.datetime.fromisoformat(local).replace(tzinfo=zone).astimezone(dt.timezone.utc)
    span = RouteConfig(name="r", channels=[], quiet_hours=quiet).quiet_span
    got = release_time(now, span, "Asia/Shanghai")
    if expect is None:
        assert got == now
    else:
        assert got == dt.datetime.fromisoformat(expect).replace(tzinfo=zone)


def test_bad_quiet_hours_and_unknown_ops_route_are_config_errors():
    from forecaster.util.errors import ConfigError

    with pytest.raises(ConfigError, match=r"alerts\.routes\.0\.quiet_hours|alerts\.routes\[0\]\.quiet_hours"):
        parse_config({"alerts": {"routes": [{"name": "r", "channels": [], "quiet_hours": "10pm-7am"}]}})
    with pytest.raises(ConfigError, match="ops_route"):
        parse_config({"alerts": {"ops_route": "nope"}})


def test_a_shorter_dip_is_not_news_but_an_earlier_start_is():
    told_f = told(finding(first=dt.date(2026, 2, 10), days=10))  # 10–19 Feb
    assert run([finding(first=dt.date(2026, 2, 12), days=5)], [told_f]) == [("f1", False, "duplicate")]
    assert run([finding(first=dt.date(2026, 2, 6), days=14)], [told_f]) == [("f1", True, "moved")]


def test_a_dip_split_under_new_ids_is_the_same_episode_and_no_all_clear_is_sent():
    told_f = told(finding("old", first=dt.date(2026, 2, 5), days=10))  # 5–14 Feb, 警告
    parts = [finding("a", first=dt.date(2026, 2, 7), days=5), finding("b", first=dt.date(2026, 2, 13), days=2)]
    assert run(parts, [told_f]) == [("a", False, "duplicate"), ("b", False, "duplicate")]
    # A fragment that reaches well past what was said is news; a different metric is not the same episode.
    later = finding("c", first=dt.date(2026, 2, 13), days=6)
    other = finding("d", first=dt.date(2026, 2, 7), days=5, metric="ticket_count")
    assert run([later, other], [told_f], series={("C001", "satisfaction"), ("C001", "ticket_count")}) == [
        ("c", True, "moved"),
        ("d", True, "new"),
    ]
