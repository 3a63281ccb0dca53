"""Findings → short Chinese messages a manager reads on a phone; and the test and operations
messages. Pure.

One message group per route, channel and manager per run: their communities' findings, most
severe first and, within a severity, soonest first; then any all-clears. Several separate dips
of one community's metric at one severity are said once, with each period. No tables or HTML (they do not render in the robots' phone
apps); bold, lists and a link only. When a group does not fit the platform's size limit it is
split into parts ``（1/3）``, ``（2/3）``… between findings, never inside one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from forecaster.alerts.notifiers import Mentions, Notifier
from forecaster.alerts.policy import Alerted, Community
from forecaster.config import TemplatesConfig
from forecaster.detect import Finding
from forecaster.vocab import KIND_ZH, is_dip, is_share, metric_name_zh, metric_of, severity_of, severity_rank

__all__ = [
    "Notice",
    "Part",
    "render_group",
    "render_test",
    "render_ops",
    "format_day",
    "format_span",
    "format_periods",
]

REASONS_ZH = {"new": "", "unsent": "", "worse": "（升级）", "moved": "（时间有变）", "repeat": "（仍未缓解）"}
WEEKDAYS_ZH = "一二三四五六日"
FALLBACK_ADVICE = "提前排查并安排人手"


def _value(metric: str, value: float) -> str:
    """A value as an alert says it: a share as a percentage (92%), else the number and unit."""
    known = metric_of(metric)
    if known is not None and known.percent:
        return f"{value:.0%}"
    return f"{_number(value)}{known.unit_zh if known else ''}"


def _advice_for(templates: TemplatesConfig, metric: str, kind: str, labels: dict[str, str] | None = None) -> str:
    """The configured advice for ``metric.kind``, else the metric's own (vocab), else a general line."""
    configured = templates.advice.get(f"{metric}.{kind}")
    if configured:
        return configured
    known = metric_of(metric, labels)
    return known.advice_zh if known and known.worse == kind else FALLBACK_ADVICE


@dataclass(frozen=True)
class Notice:
    """One thing to tell: a finding (new, worse, moved, repeated) or an all-clear."""

    reason: str
    community: Community
    finding: Finding | None = None
    previous: Alerted | None = None

    @property
    def finding_id(self) -> str:
        return self.finding.finding_id if self.finding is not None else self.previous.finding_id  # type: ignore[union-attr]

    @property
    def severity(self) -> str:
        return self.finding.severity if self.finding is not None else self.previous.severity  # type: ignore[union-attr]

    def sort_key(self) -> tuple:
        resolved = self.finding is None
        f = self.finding
        return (
            resolved,
            -severity_rank(self.severity),
            (f or self.previous).first_day,  # type: ignore[union-attr]
            -(f.probability if f is not None else 0.0),
            self.community.community_id,
        )


@dataclass(frozen=True)
class Part:
    """One message to store in the outbox."""

    title: str
    payload: dict[str, Any]
    finding_ids: tuple[str, ...]
    kind: str = "alert"  # alert | mention | test | ops


def format_day(day: dt.date) -> str:
    return f"{day.month}月{day.day}日（周{WEEKDAYS_ZH[day.weekday()]}）"


def format_span(first: dt.date, last: dt.date, peak: dt.date | None = None) -> str:
    if first == last:
        return format_day(first)
    days = (last - first).days + 1
    text = f"{format_day(first)}至{format_day(last)}，共{days}天"
    if peak is not None and first < peak <= last:
        text += f"，最严重在{peak.month}月{peak.day}日"
    return text


# More separate periods than this are said as one pattern: a phone shows a few lines, not a list.
MAX_PERIODS_LISTED = 3


def format_periods(findings: list) -> str:
    """Several periods of one metric's dips or surges (in order), each listed when they are
    few; else said once: a weekly pattern (每周三至周五) when every period falls on the same
    weekdays, or the span and how many periods."""
    if len(findings) <= MAX_PERIODS_LISTED:
        return "；".join(format_span(f.first_day, f.last_day) for f in findings)
    first, last = findings[0].first_day, findings[-1].last_day
    span = f"{first.month}月{first.day}日至{last.month}月{last.day}日"
    days = {(f.first_day.weekday(), f.last_day.weekday()) for f in findings}
    short = all((f.last_day - f.first_day).days < 7 for f in findings)
    if len(days) == 1 and short:
        a, b = next(iter(days))
        week = f"每周{WEEKDAYS_ZH[a]}" + (f"至周{WEEKDAYS_ZH[b]}" if b != a else "")
        return f"{span}{week}，共{len(findings)}次"
    total = sum((f.last_day - f.first_day).days + 1 for f in findings)
    return f"{span}间{len(findings)}段，共{total}天"


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def _finding_fields(n: Notice, templates: TemplatesConfig, clean=str, labels: dict[str, str] | None = None) -> dict[str, str]:
    """The template fields of one notice; ``clean`` makes text from the source safe for the
    platform (a community named ``[点我](http://…)`` must not become a link); ``labels``: the
    service lines' Chinese labels (metrics.service_lines)."""
    c = n.community
    name = clean(c.name or c.community_id)
    if n.finding is None:
        prev = n.previous
        assert prev is not None
        return {
            "icon": "✅",
            "severity": prev.severity,
            "community": name,
            "community_id": clean(c.community_id),
            "metric": clean(metric_name_zh(prev.metric, labels)),
            "change": KIND_ZH.get(prev.kind, prev.kind),
            "when": format_span(prev.first_day, prev.last_day),
            "window": "",
            "expected": "",
            "limit": "",
            "reference": "",
            "baseline": "",
            "depth": "",
            "probability": "",
            "advice": "",
            "reason": "",
        }
    f = n.finding
    side = "低于" if is_dip(f.metric) else "高于"
    window = f.window
    if f.estimated:
        window = f"{window}，假期安排为推算" if window else "假期安排为推算"
    advice = _advice_for(templates, f.metric, f.kind, labels)
    reference = f"{side}{f.reference}"
    if f.baseline == f.baseline:  # not NaN
        reference += f"（近4周水平 {_value(f.metric, f.baseline)}）"
    return {
        "icon": level.icon if (level := severity_of(f.severity)) else "",
        "severity": f.severity,
        "community": name,
        "community_id": clean(c.community_id),
        "metric": clean(metric_name_zh(f.metric, labels)),
        "change": KIND_ZH.get(f.kind, f.kind),
        "when": format_span(f.first_day, f.last_day, f.peak_day),
        "window": f"（{clean(window)}）" if window else "",
        "expected": _value(f.metric, f.expected),
        "limit": _value(f.metric, f.limit) if is_share(f.metric) else _number(f.limit),
        "reference": reference,
        "baseline": _number(f.baseline) if f.baseline == f.baseline else "",
        "depth": f"{f.depth:.0%}",
        "probability": f"约{f.probability:.0%}",
        "advice": advice,
        "reason": REASONS_ZH.get(n.reason, ""),
    }


def _block(unit: list[Notice], channel: Notifier, templates: TemplatesConfig, labels: dict[str, str] | None = None) -> str:
    """One block of text: a finding, an all-clear, or several separate dips (or surges) of one
    community's metric at one severity, said once with each period ("3段")."""
    n = unit[0]
    fields = _finding_fields(n, templates, channel.text, labels)
    if n.finding is None:
        return templates.resolved.format_map(fields)
    if len(unit) > 1:
        findings = [u.finding for u in unit]
        dip = is_dip(n.finding.metric)
        worst = min(findings, key=lambda f: f.expected) if dip else max(findings, key=lambda f: f.expected)
        fields = _finding_fields(Notice(n.reason, n.community, worst, n.previous), templates, channel.text, labels)
        fields["change"] += f"（{len(unit)}段）"
        fields["when"] = format_periods(sorted(findings, key=lambda f: f.first_day))
        windows = dict.fromkeys(w for f in findings for w in f.window.split("、") if w)
        if any(f.estimated for f in findings):
            windows["假期安排为推算"] = None
        fields["window"] = f"（{channel.text('、'.join(windows))}）" if windows else ""
        fields["expected"] = f"最{'低' if dip else '高'} {fields['expected']}"
        fields["probability"] = f"约{max(f.probability for f in findings):.0%}"
    fields["severity"] = channel.emphasis(fields["severity"], n.severity)
    return templates.finding.format_map(fields)


def _units(notices: list[Notice]) -> list[list[Notice]]:
    """Notices (already in reading order) grouped where they say the same thing about the same
    series: findings of one community, metric, kind, severity and reason. All-clears stay single."""
    units: list[list[Notice]] = []
    where: dict[tuple, int] = {}
    for n in notices:
        f = n.finding
        if f is None:
            units.append([n])
            continue
        key = (n.community.community_id, f.metric, f.kind, f.severity, n.reason)
        if key in where:
            units[where[key]].append(n)
        else:
            where[key] = len(units)
            units.append([n])
    return units


def _data(n: Notice) -> dict[str, Any]:
    c = n.community
    row: dict[str, Any] = {
        "finding_id": n.finding_id,
        "reason": n.reason,
        "community_id": c.community_id,
        "community_name": c.name,
        "city": c.city,
        "region": c.region,
        "manager": c.manager,
    }
    told = n.finding if n.finding is not None else n.previous
    assert told is not None
    row.update(
        metric=told.metric,
        kind=told.kind,
        severity=told.severity,
        first_day=told.first_day.isoformat(),
        last_day=told.last_day.isoformat(),
    )
    if n.finding is not None:
        f = n.finding
        row.update(
            peak_day=f.peak_day.isoformat(),
            expected=round(f.expected, 3),
            limit=round(f.limit, 3),
            reference=f.reference,
            baseline=None if f.baseline != f.baseline else round(f.baseline, 3),
            depth=round(f.depth, 4),
            probability=round(f.probability, 4),
            window=f.window,
            estimated=f.estimated,
        )
    return row


def _truncate(text: str, fits) -> str:
    """Shorten one oversized block until it fits (only with a very small limit or a long template)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(text[:mid] + "…"):
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "…"


def _label(k: int, total: int) -> str:
    return f"（{k}/{total}）" if total > 1 else ""


def _advice(templates: TemplatesConfig, notices: list[Notice], labels: dict[str, str] | None = None) -> list[str]:
    """The advice section for these notices: one line per metric and change, once each."""
    kinds = dict.fromkeys((n.finding.metric, n.finding.kind) for n in notices if n.finding is not None)
    if not kinds:
        return []
    lines = [
        templates.advice_line.format_map(
            {
                "metric": metric_name_zh(m, labels),
                "change": KIND_ZH.get(k, k),
                "advice": _advice_for(templates, m, k, labels),
            }
        )
        for m, k in kinds
    ]
    return ["**建议**\n" + "\n".join(lines)]


@dataclass
class _Group:
    """One message group's text, in blocks (one per unit of notices), and how a part of it is built."""

    channel: Notifier
    templates: TemplatesConfig
    units: list[list[Notice]]
    blocks: list[str]
    title: str
    header: str
    footer: str
    manager: str | None
    as_of: dt.date
    report_url: str | None
    mentions: Mentions
    run_id: str | None
    labels: dict[str, str] | None = None

    def members(self, items: list[int]) -> list[Notice]:
        return [n for i in items for n in self.units[i]]

    def payload(self, items: list[int], k: int, total: int) -> dict[str, Any]:
        """Part ``k`` of ``total``, holding the blocks ``items``, as the platform's payload."""
        label = _label(k, total)
        members = self.members(items)
        footer = [self.footer] if self.footer else []
        text = "\n\n".join([self.header + label] + [self.blocks[i] for i in items] + _advice(self.templates, members, self.labels) + footer)
        worst = max(members, key=lambda n: severity_rank(n.severity))
        data = {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "manager": self.manager,
            "part": k,
            "parts": total,
            "findings": [_data(n) for n in members],
        }
        return self.channel.build(
            self.title + label,
            text,
            mentions=self.mentions if k == 1 else Mentions(),
            link=self.report_url,
            severity=worst.severity,
            data=data,
        )

    def fits(self, items: list[int]) -> bool:
        return self.channel.fits(self.payload(items, 99, 99))  # the widest label a part can have

    def fits_as(self, i: int, text: str) -> bool:
        """Whether block ``i`` alone fits when it reads ``text`` (it is left reading ``text``)."""
        self.blocks[i] = text
        return self.fits([i])


def _pack(group: _Group, cap: int) -> list[list[int]]:
    """The blocks into parts, in order, between blocks: at most ``cap`` a part and as many as the
    platform's size limit allows; a block too big on its own is shortened until it fits."""
    packed: list[list[int]] = []
    current: list[int] = []
    for i in range(len(group.blocks)):
        if len(current) < cap and group.fits(current + [i]):
            current.append(i)
            continue
        if current:
            packed.append(current)
            current = []
        if not group.fits([i]):
            group.blocks[i] = _truncate(group.blocks[i], lambda t, i=i: group.fits_as(i, t))
        current = [i]
    if current:
        packed.append(current)
    return packed


def render_group(
    channel: Notifier,
    notices: list[Notice],
    *,
    manager: str | None,
    as_of: dt.date,
    templates: TemplatesConfig,
    report_url: str | None = None,
    mentions: Mentions = Mentions(),
    run_id: str | None = None,
    labels: dict[str, str] | None = None,
) -> list[Part]:
    """The messages for one group, in sending order: the parts, then any mention follow-up.
    ``labels``: the service lines' Chinese labels (metrics.service_lines)."""
    if not notices:
        return []
    notices = sorted(notices, key=Notice.sort_key)
    head_fields = {
        "count": str(len(notices)),
        "communities": str(len({n.community.community_id for n in notices})),
        "manager": channel.text(manager) if manager else "未指定经理",
        "date": f"{as_of.month}月{as_of.day}日",
    }
    units = _units(notices)
    group = _Group(
        channel=channel,
        templates=templates,
        units=units,
        blocks=[_block(unit, channel, templates, labels) for unit in units],
        title=templates.title.format_map(head_fields),
        header=templates.header.format_map(head_fields),
        footer=templates.footer.format_map({"report_url": report_url}) if report_url else "",
        manager=manager,
        as_of=as_of,
        report_url=report_url,
        mentions=mentions,
        run_id=run_id,
        labels=labels,
    )
    # People read on a phone; a system reading the webhook takes everything its size limit allows.
    packed = _pack(group, templates.max_per_message if channel.for_people else len(group.blocks))
    parts = [
        Part(
            title=group.title + _label(k, len(packed)),
            payload=group.payload(items, k, len(packed)),
            finding_ids=tuple(n.finding_id for n in group.members(items)),
        )
        for k, items in enumerate(packed, start=1)
    ]
    follow = channel.build_mention(mentions, f"请{channel.text(manager) if manager else '相关负责人'}查看以上{len(notices)}条物业预警")
    if follow is not None:
        parts.append(Part(title="@提醒", payload=follow, finding_ids=(), kind="mention"))
    return parts


TEST_TITLE = "物业预警 测试"
OPS_TITLE = "物业预警服务 运维提醒"


def render_test(channel: Notifier, *, route: str, now: dt.datetime) -> Part:
    """The message `forecaster notify-test` sends: which route and channel, and when (local time)."""
    text = f"**物业预警 · 测试消息**\n\n线路「{route}」经通道「{channel.name}」发送于 {now.astimezone():%Y-%m-%d %H:%M}，收到即表示配置正确。"
    return Part(title=TEST_TITLE, payload=channel.build(TEST_TITLE, text), finding_ids=(), kind="test")


def render_ops(channel: Notifier, text: str, *, instance: str) -> Part:
    """An operations message from the service (a failed or missed night, a failed data job)."""
    body = f"**{OPS_TITLE}**\n\n{text}\n\n实例：{instance}"
    return Part(title=OPS_TITLE, payload=channel.build(OPS_TITLE, body), finding_ids=(), kind="ops")
