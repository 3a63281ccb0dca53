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
    "COUNT_METRICS",
    "DIP_METRICS",
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
    aggregate: Literal["count", "mean"]  # count: a day's sum (sums over days and communities); mean: a level
    worse: Literal["dip", "surge"]  # the direction a warning watches
    name_zh: str  # as alerts say it: 满意度
    label_zh: str  # as the report heads a chart: 处理时长（小时）
    unit_zh: str  # after a value in an alert: 分, 单/天
    advice_zh: str  # the default advice line of a warning of this metric (alerts.templates.advice overrides)
    # How models see it: counts and hours are non-negative and modelled in log1p; a score stays
    # within its bounds.
    transform: Literal["none", "log1p"] = "log1p"
    upper: float | None = None


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
    )
}
METRIC_KEYS: tuple[str, ...] = tuple(METRICS)
COUNT_METRICS: frozenset[str] = frozenset(k for k, m in METRICS.items() if m.aggregate == "count")
DIP_METRICS: frozenset[str] = frozenset(k for k, m in METRICS.items() if m.worse == "dip")  # lower is worse


def metric_name_zh(key: str) -> str:
    """How alerts name a metric (an unknown key reads as itself)."""
    metric = METRICS.get(key)
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
