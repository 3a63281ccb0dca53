"""Who hears about what, and when: routing, deduplication, silences and quiet hours. Pure.

Every decision is a function of tonight's findings, what each route was already told
(`Alerted`), the active silences and ``now``; nothing here reads the clock, the store or config
files, so each rule is tested by passing values in.

* Routing: a community's findings go to every route that matches it (by community id, region,
  city or manager); a community no route matches goes to ``default_channels``; with no channel
  configured at all, to the console.
* Deduplication: a finding already alerted on a route is sent again only when it got worse
  (severity up), moved (starts ``moved_days`` or more earlier, or ends that much later: a
  shorter dip is not news), or ``repeat_every_days`` passed. A finding with a new id whose days
  overlap a told one of the same community, metric and kind is the same episode (forecasts
  shift and split a dip from night to night). A message that failed for good does not count
  as told. A told finding that disappears from the forecast gets one all-clear
  (``send_resolved``), but only when its series *was* forecast tonight (a failed series is not
  good news) and nothing overlapping it is still forecast.
* Silences: by community, metric and/or route, from a start to an end time, with a reason.
* Quiet hours: a message for a route in its quiet hours waits until they end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from forecaster.config import AlertPolicyConfig, AlertsConfig, RouteConfig
from forecaster.detect import Finding
from forecaster.vocab import severity_rank

__all__ = [
    "Community",
    "Alerted",
    "Silence",
    "Decision",
    "CONSOLE",
    "routes_for",
    "decide",
    "active_silence",
    "release_time",
]

CONSOLE = "console"  # the implicit channel and route when no channel is configured


@dataclass(frozen=True)
class Community:
    community_id: str
    name: str = ""
    city: str | None = None
    region: str | None = None
    manager: str | None = None
    manager_mobile: str | None = None


@dataclass(frozen=True)
class Alerted:
    """What ``route`` was last told about a finding (a row of the ``alert_state`` table)."""

    route: str
    finding_id: str
    community_id: str
    metric: str
    kind: str
    severity: str
    first_day: dt.date
    last_day: dt.date
    state: str  # open | resolved
    alerted_at: dt.datetime
    told: bool = True  # False when its message failed for good (so it counts as not told)


@dataclass(frozen=True)
class Silence:
    silence_id: int
    ends_at: dt.datetime
    reason: str
    starts_at: dt.datetime | None = None
    community_id: str | None = None
    metric: str | None = None
    route: str | None = None

    def matches(self, route: str, community_id: str, metric: str, now: dt.datetime) -> bool:
        if self.starts_at is not None and now < self.starts_at:
            return False
        if now >= self.ends_at:
            return False
        return (
            (self.community_id is None or self.community_id == community_id)
            and (self.metric is None or self.metric == metric)
            and (self.route is None or self.route == route)
        )


@dataclass(frozen=True)
class Decision:
    route: str
    send: bool
    # new | worse | moved | repeat | unsent | resolved  (send)
    # duplicate | better | silenced | below_severity | expired  (no send)
    reason: str
    finding: Finding | None = None
    previous: Alerted | None = None
    silence: Silence | None = None

    @property
    def finding_id(self) -> str:
        return self.finding.finding_id if self.finding is not None else self.previous.finding_id  # type: ignore[union-attr]

    @property
    def community_id(self) -> str:
        return self.finding.community_id if self.finding is not None else self.previous.community_id  # type: ignore[union-attr]

    @property
    def changes_state(self) -> bool:
        """Whether the route's memory of this finding changes (sent, or closed)."""
        return self.send or self.reason == "expired"


def _matches(route: RouteConfig, community: Community) -> bool:
    if not (route.communities or route.regions or route.cities or route.managers):
        return True
    return (
        community.community_id in route.communities
        or (community.region is not None and community.region in route.regions)
        or (community.city is not None and community.city in route.cities)
        or (community.manager is not None and community.manager in route.managers)
    )


def routes_for(community: Community, alerts: AlertsConfig) -> list[RouteConfig]:
    """Every route that takes this community's findings (none: the findings are unrouted)."""
    matched = [r for r in alerts.routes if _matches(r, community)]
    if matched:
        return matched
    if alerts.default_channels:
        return [RouteConfig(name="default", channels=list(alerts.default_channels))]
    if not alerts.channels:
        return [RouteConfig(name=CONSOLE, channels=[CONSOLE])]
    return []


def active_silence(silences: list[Silence], route: str, community_id: str, metric: str, now: dt.datetime) -> Silence | None:
    for s in silences:
        if s.matches(route, community_id, metric, now):
            return s
    return None


def decide(
    route: RouteConfig,
    findings: list[Finding],
    alerted: dict[str, Alerted],
    *,
    silences: list[Silence],
    policy: AlertPolicyConfig,
    now: dt.datetime,
    today: dt.date,
    forecast_series: set[tuple[str, str]],
    communities: set[str] | None = None,
) -> list[Decision]:
    """Tonight's decisions for one route: its findings against what it was told (``alerted``,
    keyed by finding id). ``forecast_series`` holds the (community, metric) pairs forecast
    tonight; ``communities`` the communities this route covers (for all-clears)."""
    name = route.name
    out: list[Decision] = []
    seen: set[str] = set()
    floor = severity_rank(route.min_severity)
    slack = dt.timedelta(days=policy.moved_days)
    by_key: dict[tuple[str, str, str], list[Alerted]] = {}
    for a in alerted.values():
        if a.state == "open":
            by_key.setdefault((a.community_id, a.metric, a.kind), []).append(a)

    def overlapping(f: Finding) -> Alerted | None:
        # The same episode under another id (a dip that split in two, or came back after a night away).
        for a in by_key.get((f.community_id, f.metric, f.kind), []):
            if f.first_day <= a.last_day + slack and a.first_day <= f.last_day + slack:
                return a
        return None

    for f in findings:
        prev = alerted.get(f.finding_id)
        if prev is None or prev.state != "open":
            prev = overlapping(f) or prev
        seen.add(f.finding_id)
        if prev is not None:
            seen.add(prev.finding_id)
        if severity_rank(f.severity) < floor:
            out.append(Decision(name, False, "below_severity", f, prev))
            continue
        silence = active_silence(silences, name, f.community_id, f.metric, now)
        if silence is not None:
            out.append(Decision(name, False, "silenced", f, prev, silence))
            continue
        out.append(Decision(name, *_compare(f, prev, policy, now), f, prev))
    for prev in alerted.values():
        if prev.state != "open" or prev.finding_id in seen:
            continue
        if communities is not None and prev.community_id not in communities:
            continue
        if (prev.community_id, prev.metric) not in forecast_series:
            continue  # not forecast tonight: we do not know that it is over
        if prev.last_day < today:
            out.append(Decision(name, False, "expired", None, prev))
        elif not prev.told or not policy.send_resolved:
            out.append(Decision(name, False, "expired", None, prev))
        elif active_silence(silences, name, prev.community_id, prev.metric, now) is not None:
            out.append(Decision(name, False, "expired", None, prev))
        else:
            out.append(Decision(name, True, "resolved", None, prev))
    return out


def _compare(f: Finding, prev: Alerted | None, policy: AlertPolicyConfig, now: dt.datetime) -> tuple[bool, str]:
    if prev is None or prev.state != "open":
        return True, "new"
    if not prev.told:
        return True, "unsent"
    if severity_rank(f.severity) > severity_rank(prev.severity):
        return True, "worse"
    # News is a dip that starts earlier or lasts longer than said; a shorter one is not.
    moved = max((prev.first_day - f.first_day).days, (f.last_day - prev.last_day).days)
    if moved >= policy.moved_days:
        return True, "moved"
    if policy.repeat_every_days and now - prev.alerted_at >= dt.timedelta(days=policy.repeat_every_days):
        return True, "repeat"
    if severity_rank(f.severity) < severity_rank(prev.severity):
        return False, "better"
    return False, "duplicate"


def release_time(now: dt.datetime, quiet: tuple[dt.time, dt.time] | None, timezone: str) -> dt.datetime:
    """``now`` if it is outside the quiet hours, else the moment they end (timezone-aware)."""
    if quiet is None:
        return now
    start, end = quiet
    local = now.astimezone(ZoneInfo(timezone))
    t = local.time()
    wraps = start > end  # 22:00-07:30 spans midnight
    inside = (t >= start or t < end) if wraps else (start <= t < end)
    if not inside:
        return now
    day = local.date()
    if wraps and t >= start:
        day += dt.timedelta(days=1)
    release = dt.datetime.combine(day, end, tzinfo=ZoneInfo(timezone))
    return release.astimezone(now.tzinfo)
