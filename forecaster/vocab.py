"""The service's vocabulary: every name the stages share, said once.

Metrics (what each is, how it aggregates, which way is worse, how it reads in Chinese), the
severities (rank, icon, colours per platform), the kinds of finding, the models and the holiday
keys. Adding a metric is one `Metric` entry here plus its computation in ``ingest/aggregate.py``
(and, if it should warn by default, its limit in the config schema's ``thresholds.defaults``);
config, detection, alerts, the report and the CSVs read their names from here.

Identifiers (metric keys, model names, holiday keys) are a contract: CSVs, the store and config
files carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Metric",
    "METRICS",
    "METRIC_KEYS",
    "LINE_METRIC",
    "ServiceLine",
    "SERVICE_LINES",
    "line_metric",
    "line_of",
    "metric_of",
    "is_dip",
    "is_count",
    "is_share",
    "format_value",
    "metric_name_zh",
    "KIND_ZH",
    "Severity",
    "SEVERITIES",
    "SEVERITY_NAMES",
    "severity_of",
    "severity_rank",
    "SINGLE_MODELS",
    "COMBINATIONS",
    "MODEL_NAMES",
    "AUTO",
    "BASELINE",
    "CHANNEL_TYPES",
    "CHANNEL_STYLES",
    "HOLIDAY_NAMES_ZH",
    "HOLIDAY_KEYS",
    "MAJOR_HOLIDAYS",
    "WINDOW_LABELS",
]


# ------------------------------------------------------------------------------------ metrics
@dataclass(frozen=True)
class Metric:
    key: str  # the identifier in CSVs, the store and config
    # count: a day's sum (adds up over days and communities); stock: a level at the end of the
    # day that adds up over communities, not days (open tickets); mean: a level or a share.
    aggregate: Literal["count", "stock", "mean"]
    worse: Literal["dip", "surge"]  # the direction a warning watches
    name_zh: str  # as alerts say it: 满意度
    label_zh: str  # as the report heads a chart: 处理时长（小时）
    unit_zh: str  # after a value in an alert: 分, 单/天
    advice_zh: str  # the default advice line of a warning of this metric (alerts.templates.advice overrides)
    # How models see it: counts and hours are non-negative and modelled in log1p; a score or a
    # share stays within its bounds.
    transform: Literal["none", "log1p"] = "log1p"
    upper: float | None = None
    lower: float = 0.0
    # How a value reads in an alert: a share (0–1) as a percentage, else the number and the unit.
    percent: bool = False


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "ticket_count", "count", "surge", "工单量", "工单量", "单/天",
            "提前增排维修人手和值班，备足常用配件，请外包单位待命",
        ),
        Metric(
            "complaint_count", "count", "surge", "投诉量", "投诉量", "件/天",
            "提前公告停水停电、施工等安排，安排专人接听并回访投诉",
        ),
        Metric(
            "satisfaction", "mean", "dip", "满意度", "满意度", "分",
            "提前回访近期报修、投诉的住户，检查保洁、安保、电梯等重点服务，确认节假日值班",
            transform="none", upper=100.0,
        ),
        Metric(
            "resolution_hours", "mean", "surge", "处理时长", "处理时长（小时）", "小时",
            "清理积压工单，确认假期维修值班和外包响应时限",
        ),
        Metric(
            "response_hours", "mean", "surge", "响应时长", "响应时长（小时）", "小时",
            "排好接单和派单值班，节假日保证有人及时响应报事",
        ),
        Metric(
            "responded_on_time", "mean", "dip", "及时响应率", "及时响应率", "",
            "排好接单和派单值班，超时未响应的工单及时提醒和升级",
            transform="none", upper=1.0, percent=True,
        ),
        Metric(
            "closed_on_time", "mean", "dip", "按时办结率", "按时办结率", "",
            "逐单催办已超时和将超时的工单，必要时请外包或邻近项目支援",
            transform="none", upper=1.0, percent=True,
        ),
        Metric(
            "open_backlog", "stock", "surge", "积压工单", "未结工单（当日末）", "单",
            "假期前清理积压工单，在值班表中增派人手",
        ),
        Metric(
            "overdue_open", "stock", "surge", "超时未结工单", "超时未结工单（当日末）", "单",
            "逐单催办超时工单，向住户说明进度",
        ),
        Metric(
            "nps", "mean", "dip", "净推荐值", "净推荐值（NPS）", "",
            "回访给出低分的住户，了解不满原因并跟进整改",
            transform="none", upper=100.0, lower=-100.0,
        ),
    )
}
METRIC_KEYS: tuple[str, ...] = tuple(METRICS)
# The series of one service line: ``ticket_count.<line>`` (a line of metrics.service_lines).
LINE_METRIC = "ticket_count"
LINE_SEP = "."


@dataclass(frozen=True)
class ServiceLine:
    """A service line as the vocabulary knows it: its Chinese label, the ticket categories that
    belong to it by default (compared trimmed and case-insensitively) and its warning's advice.
    Config (metrics.service_lines) may add lines and change the categories."""

    key: str
    label_zh: str
    categories: tuple[str, ...]
    advice_zh: str = ""


# The complaint line is complaint_count (metrics.complaint_categories): not repeated here.
SERVICE_LINES: dict[str, ServiceLine] = {
    s.key: s
    for s in (
        ServiceLine(
            "repair", "维修",
            ("维修", "报修", "水电", "水电维修", "电梯", "门窗", "管道", "repair", "maintenance", "plumbing", "electrical", "elevator"),
            "提前增排维修人手和值班，备足常用配件，请外包单位待命",
        ),
        ServiceLine("cleaning", "保洁", ("保洁", "清洁", "垃圾", "卫生", "cleaning", "sanitation"), "增派保洁班次，节前节后集中清运垃圾"),
        ServiceLine("security", "安保", ("安保", "秩序", "安全", "门岗", "security"), "加强巡逻和门岗值守，节假日排足安保人员"),
        ServiceLine("landscaping", "绿化", ("绿化", "园林", "landscaping", "gardening"), "提前安排绿化养护和修剪"),
        ServiceLine("parking", "停车", ("停车", "车位", "车辆", "parking"), "安排停车引导，提前公告访客车辆安排"),
        ServiceLine("inquiry", "咨询", ("咨询", "问询", "inquiry", "enquiry"), "安排专人接听和答复住户咨询，提前公告常见问题"),
    )
}


def line_metric(line: str) -> str:
    """The metric key of a service line's ticket count: ``ticket_count.repair``."""
    return f"{LINE_METRIC}{LINE_SEP}{line}"


def line_of(key: str) -> str | None:
    """The service line of a ``ticket_count.<line>`` key, else None."""
    base, sep, line = key.partition(LINE_SEP)
    return line if sep and base == LINE_METRIC and line else None


def metric_of(key: str, line_labels: dict[str, str] | None = None) -> Metric | None:
    """The metric a key names: one of `METRICS`, or a service line's ticket count (named by
    ``line_labels`` from config, else the vocabulary's label, else the key itself); None for
    an unknown key."""
    known = METRICS.get(key)
    if known is not None:
        return known
    line = line_of(key)
    if line is None:
        return None
    base = METRICS[LINE_METRIC]
    vocab_line = SERVICE_LINES.get(line)
    label = (line_labels or {}).get(line) or (vocab_line.label_zh if vocab_line else line)
    advice = vocab_line.advice_zh if vocab_line and vocab_line.advice_zh else f"提前增派{label}人手和值班，做好高峰应对"
    return Metric(key, base.aggregate, base.worse, f"{label}工单量", f"{label}工单量", base.unit_zh, advice)


def is_dip(key: str) -> bool:
    """Whether lower is worse for this metric (a warning watches for a dip)."""
    metric = metric_of(key)
    return metric is not None and metric.worse == "dip"


def is_share(key: str) -> bool:
    """Whether the metric is a share (0–1) that reads as a percentage."""
    metric = metric_of(key)
    return metric is not None and metric.percent


def format_value(key: str, value: float) -> str:
    """A metric's value in a table or a summary line: a share as a percentage (82%), else one
    decimal (alerts add units: alerts/render.py)."""
    return f"{value:.0%}" if is_share(key) else f"{value:.1f}"


def is_count(key: str) -> bool:
    """Whether a day's values are sums of events (tickets created), not levels."""
    metric = metric_of(key)
    return metric is not None and metric.aggregate == "count"


def metric_name_zh(key: str, line_labels: dict[str, str] | None = None) -> str:
    """How alerts name a metric (an unknown key reads as itself)."""
    metric = metric_of(key, line_labels)
    return metric.name_zh if metric else key


# What a finding is: a predicted dip (lower is worse) or surge (higher is worse). One word each, in
# alerts and in the report alike (the report used to say 激增 where alerts said 上升).
KIND_ZH = {"dip": "下降", "surge": "上升"}


# --------------------------------------------------------------------------------- severities
@dataclass(frozen=True)
class Severity:
    name: str  # the name managers read and config uses (alerts.routes[].min_severity)
    rank: int  # 0 least severe
    icon: str  # in alert titles
    colour: str  # in the report (CSS)
    wecom_colour: str  # WeCom markdown <font color=…>
    feishu_template: str  # Feishu card header template


SEVERITIES: tuple[Severity, ...] = (
    Severity("提醒", 0, "🟡", "#7f8c8d", "comment", "yellow"),  # notice
    Severity("警告", 1, "🟠", "#e67e22", "warning", "orange"),  # warning
    Severity("严重", 2, "🔴", "#c0392b", "warning", "red"),  # critical
)
SEVERITY_NAMES: tuple[str, ...] = tuple(s.name for s in SEVERITIES)  # least severe first
_BY_NAME = {s.name: s for s in SEVERITIES}


def severity_of(name: str) -> Severity | None:
    return _BY_NAME.get(name)


def severity_rank(name: str) -> int:
    """Rank of a severity name; an unknown name ranks as the least severe."""
    found = _BY_NAME.get(name)
    return found.rank if found else 0


# ------------------------------------------------------------------------------------- models
SINGLE_MODELS: tuple[str, ...] = ("naive", "linear", "arima", "prophet")
# Combinations: the mean of their members' forecasts.
COMBINATIONS: dict[str, tuple[str, ...]] = {"ensemble": ("arima", "prophet"), "linear_naive": ("linear", "naive")}
MODEL_NAMES: tuple[str, ...] = ("naive", "linear", "linear_naive", "arima", "prophet", "ensemble")
assert set(MODEL_NAMES) == {*SINGLE_MODELS, *COMBINATIONS}  # the order is how config lists them
AUTO = "auto"  # choose per series by backtest among forecast.candidates
BASELINE = "naive"  # the seasonal-naive baseline: every score's scale and every failing series' fallback


# ----------------------------------------------------------------------------------- channels
# The platforms alerts go to (alerts.channels[].type); each has one notifier in alerts/notifiers.
CHANNEL_TYPES: tuple[str, ...] = ("dingtalk", "wecom", "feishu", "webhook", "console")
# The message styles a platform offers (alerts.channels[].style), its default first; others have one.
CHANNEL_STYLES: dict[str, tuple[str, ...]] = {"dingtalk": ("markdown", "card"), "feishu": ("card", "post")}


# ----------------------------------------------------------------------------------- holidays
# Canonical holiday keys and how they read in an alert.
HOLIDAY_NAMES_ZH = {
    "new_year": "元旦",
    "spring_festival": "春节",
    "qingming": "清明",
    "labour_day": "劳动节",
    "dragon_boat": "端午",
    "mid_autumn": "中秋",
    "national_day": "国庆",
    "other": "其他假日",
}
HOLIDAY_KEYS: tuple[str, ...] = tuple(HOLIDAY_NAMES_ZH)
# Holidays long enough to change a community's weeks: each has its own model features and window.
MAJOR_HOLIDAYS = ("spring_festival", "national_day", "labour_day")
WINDOW_LABELS = {"spring_festival": "春节前后", "national_day": "国庆", "labour_day": "五一"}
