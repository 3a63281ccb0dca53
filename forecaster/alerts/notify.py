"""A run's findings → decisions → messages in the outbox; the test and operations messages; and
the channels built from config.

This is the only alerts module that touches both config and the store; the decisions come from
`policy` (pure), the words from `render` (pure), the sending from `outbox.drain`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, TextIO

import pandas as pd

from forecaster.alerts.memory import AlertMemory
from forecaster.alerts.notifiers import Mentions, Notifier, make_notifier
from forecaster.alerts.outbox import drain, enqueue
from forecaster.alerts.policy import CONSOLE, Community, Decision, decide, routes_for
from forecaster.alerts.queue import NewMessage
from forecaster.alerts.render import Notice, Part, render_group, render_ops, render_test
from forecaster.alerts.silences import Silences
from forecaster.config import AlertsConfig, ChannelConfig, Config, RouteConfig
from forecaster.detect import Finding
from forecaster.store import Store
from forecaster.util.text import optional_text

__all__ = [
    "QueueReport",
    "channels_from",
    "all_routes",
    "communities_from",
    "plan_messages",
    "notify_test_messages",
    "ops_messages",
    "queue_alerts",
    "report_url_for",
    "send_pending",
]


@dataclass
class QueueReport:
    messages: int = 0
    groups: int = 0
    sent_reasons: Counter = field(default_factory=Counter)  # new / worse / moved / repeat / unsent / resolved
    held_reasons: Counter = field(default_factory=Counter)  # duplicate / better / silenced / below_severity
    unrouted: list[str] = field(default_factory=list)  # communities whose findings match no route
    routes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "messages": self.messages,
            "groups": self.groups,
            "sent": dict(self.sent_reasons),
            "held": dict(self.held_reasons),
            "unrouted": self.unrouted,
        }


def channels_from(alerts: AlertsConfig, *, stream: TextIO | None = None) -> dict[str, Notifier]:
    """Every configured channel by name, plus the console channel when none is configured."""
    out = {name: make_notifier(name, cfg, stream=stream) for name, cfg in alerts.channels.items()}
    if not alerts.channels:
        out[CONSOLE] = make_notifier(CONSOLE, ChannelConfig(type="console"), stream=stream)
    return out


def all_routes(alerts: AlertsConfig) -> list[RouteConfig]:
    routes = list(alerts.routes)
    if alerts.default_channels:
        routes.append(RouteConfig(name="default", channels=list(alerts.default_channels)))
    if not alerts.channels:
        routes.append(RouteConfig(name=CONSOLE, channels=[CONSOLE]))
    return routes


def communities_from(frame: pd.DataFrame) -> dict[str, Community]:
    cols = ["community_id", "name", "city", "region", "manager", "manager_mobile"]
    frame = frame.reindex(columns=cols)
    return {
        str(r.community_id): Community(
            community_id=str(r.community_id),
            name=optional_text(r.name) or str(r.community_id),
            city=optional_text(r.city),
            region=optional_text(r.region),
            manager=optional_text(r.manager),
            manager_mobile=optional_text(r.manager_mobile),
        )
        for r in frame.itertuples(index=False)
    }


def report_url_for(alerts: AlertsConfig, as_of: dt.date) -> str | None:
    base = alerts.report_base_url
    return f"{base.rstrip('/')}/{as_of.isoformat()}/report.html" if base else None


def _group_key(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def _findings_by_route(
    findings: list[Finding], communities: dict[str, Community], alerts: AlertsConfig, report: QueueReport
) -> tuple[dict[str, list[Finding]], dict[str, set[str]]]:
    """Tonight's findings per route, and the communities each route covers (for all-clears);
    a finding no route takes is counted in ``report.unrouted``."""
    by_route: dict[str, list[Finding]] = {}
    covered: dict[str, set[str]] = {}
    routed = {cid: routes_for(community, alerts) for cid, community in communities.items()}
    for cid, matched in routed.items():
        for route in matched:
            covered.setdefault(route.name, set()).add(cid)
    for f in findings:
        matched = routed.get(f.community_id)
        if matched is None:  # a finding of a community the communities table does not list
            matched = routed[f.community_id] = routes_for(Community(f.community_id), alerts)
        if not matched and f.community_id not in report.unrouted:
            report.unrouted.append(f.community_id)
        for route in matched:
            by_route.setdefault(route.name, []).append(f)
    return by_route, covered


def _notices_by_manager(
    decisions: list[Decision], communities: dict[str, Community], report: QueueReport
) -> dict[str | None, list[Notice]]:
    """What to tell, per manager; each decision is counted in ``report`` as sent or held."""
    by_manager: dict[str | None, list[Notice]] = {}
    for d in decisions:
        if not d.send:
            report.held_reasons[d.reason] += 1
            continue
        report.sent_reasons[d.reason] += 1
        community = communities.get(d.community_id) or Community(d.community_id)
        by_manager.setdefault(community.manager, []).append(Notice(d.reason, community, d.finding, d.previous))
    return by_manager


def _mentions(route: RouteConfig, notices: list[Notice]) -> Mentions:
    mobiles = list(route.mention_mobiles)
    if route.mention_managers:
        mobiles += sorted({n.community.manager_mobile for n in notices if n.community.manager_mobile})
    return Mentions(tuple(dict.fromkeys(mobiles)), tuple(route.mention_userids))


def _group_messages(
    route: RouteConfig,
    manager: str | None,
    notices: list[Notice],
    *,
    group_key: str,
    channels: dict[str, Notifier],
    alerts: AlertsConfig,
    as_of: dt.date,
    run_id: str | None,
    line_labels: dict[str, str] | None = None,
) -> list[NewMessage]:
    """One group's messages on each of the route's channels, parts in order."""
    mentions = _mentions(route, notices)
    messages: list[NewMessage] = []
    for channel_name in route.channels:
        parts = render_group(
            channels[channel_name],
            notices,
            manager=manager,
            as_of=as_of,
            templates=alerts.templates,
            report_url=report_url_for(alerts, as_of),
            mentions=mentions,
            run_id=run_id,
            labels=line_labels,
        )
        messages += [
            NewMessage(
                kind=part.kind,
                route=route.name,
                channel=channel_name,
                manager=manager,
                group_key=group_key,
                part=k,
                parts=len(parts),
                title=part.title,
                payload=part.payload,
                finding_ids=part.finding_ids,
                run_id=run_id,
            )
            for k, part in enumerate(parts, start=1)
        ]
    return messages


def _carriers(messages: list[NewMessage]) -> dict[str, str]:
    """Per finding id, the message that carries it to the route (its first channel's)."""
    carried: dict[str, str] = {}
    for msg in messages:
        for fid in msg.finding_ids:
            carried.setdefault(fid, msg.message_id)
    return carried


def plan_messages(
    config: Config,
    *,
    run_id: str | None,
    as_of: dt.date,
    findings: list[Finding],
    communities: dict[str, Community],
    alerted: dict,
    silences: list,
    now: dt.datetime,
    forecast_series: set[tuple[str, str]],
    channels: dict[str, Notifier],
) -> tuple[list[NewMessage], list[tuple[Decision, str | None]], QueueReport]:
    """Pure: the messages to queue and the decisions behind them."""
    alerts = config.alerts
    report = QueueReport()
    by_route, covered = _findings_by_route(findings, communities, alerts, report)
    messages: list[NewMessage] = []
    decided: list[tuple[Decision, str | None]] = []
    for name, route in {r.name: r for r in all_routes(alerts)}.items():
        decisions = decide(
            route,
            by_route.get(name, []),
            alerted.get(name, {}),
            silences=silences,
            policy=alerts.policy,
            now=now,
            today=as_of,
            forecast_series=forecast_series,
            communities=covered.get(name, set()),
        )
        if not decisions:
            continue
        report.routes.append(name)
        by_manager = _notices_by_manager(decisions, communities, report)
        route_messages: list[NewMessage] = []
        for manager, notices in sorted(by_manager.items(), key=lambda kv: kv[0] or ""):
            key = _group_key(run_id or now.isoformat(), name, manager or "")
            report.groups += 1
            route_messages += _group_messages(
                route, manager, notices, group_key=key, channels=channels, alerts=alerts, as_of=as_of, run_id=run_id,
                line_labels=config.metrics.line_labels,
            )
        carried = _carriers(route_messages)
        messages += route_messages
        decided += [(d, carried.get(d.finding_id)) for d in decisions]
    report.messages = len(messages)
    return messages, decided, report


def _single(route: RouteConfig, channel: str, part: Part, group_key: str) -> NewMessage:
    """A message of one part, to no manager in particular."""
    return NewMessage(
        kind=part.kind,
        route=route.name,
        channel=channel,
        manager=None,
        group_key=group_key,
        part=1,
        parts=1,
        title=part.title,
        payload=part.payload,
    )


def notify_test_messages(config: Config, route: RouteConfig, now: dt.datetime) -> list[NewMessage]:
    """Pure: one test message for each of the route's channels (`forecaster notify-test`)."""
    channels = channels_from(config.alerts)
    return [
        _single(route, name, render_test(channels[name], route=route.name, now=now), f"test-{now.timestamp():.0f}-{name}")
        for name in route.channels
    ]


def ops_messages(config: Config, route: RouteConfig, text: str, *, instance: str) -> list[NewMessage]:
    """An operations message for each of the route's channels (``alerts.ops_route``), each its own group."""
    channels = channels_from(config.alerts)
    return [
        _single(route, name, render_ops(channels[name], text, instance=instance), f"ops-{uuid.uuid4().hex[:20]}")
        for name in route.channels
        if name in channels
    ]


def queue_alerts(
    config: Config,
    store: Store,
    *,
    run_id: str,
    as_of: dt.date,
    findings: list[Finding],
    communities: pd.DataFrame,
    forecast_series: set[tuple[str, str]],
    now: dt.datetime,
) -> QueueReport:
    """Decide, render and store tonight's messages (they are sent by `outbox.drain`)."""
    messages, decided, report = plan_messages(
        config,
        run_id=run_id,
        as_of=as_of,
        findings=findings,
        communities=communities_from(communities),
        alerted=AlertMemory(store).alerted(),
        silences=Silences(store).list(now),
        now=now,
        forecast_series=forecast_series,
        channels=channels_from(config.alerts),
    )
    enqueue(store, messages, now=now, decisions=decided)
    return report


def send_pending(
    config: Config,
    store: Store,
    *,
    session,
    clock,
    max_wait_s: float = 0.0,
    stream: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
):
    """Drain the outbox with the configured channels (see `outbox.drain`)."""
    return drain(
        store,
        channels_from(config.alerts, stream=stream),
        session=session,
        clock=clock,
        delivery=config.alerts.delivery,
        quiet={r.name: r.quiet_span for r in all_routes(config.alerts)},
        timezone=config.timezone,
        max_wait_s=max_wait_s,
        sleep=sleep,
        should_stop=should_stop,
    )
