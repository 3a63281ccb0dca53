"""Typed configuration loaded from ``config.yaml``.

* ``${VAR}`` and ``${VAR:-default}`` anywhere in a string value are replaced from the
  environment before validation; variables that are unset (and have no default) are one
  error naming each of them with its key path.
* Every error names the key path (``source.tables.tickets.columns.creatd_at``) and the bad
  value; values of secret fields are never shown.
* Relative paths (CSV directories, output directory, SQLite files) are resolved against the
  directory of the config file, so the service behaves the same from any working directory.

Defaults live here and only here; ``config.yaml`` in the repository documents every key.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from forecaster.util.errors import ConfigError
from forecaster.util.secret import Secret, mask_url, register_env_value
from forecaster.vocab import (
    AUTO,
    CHANNEL_STYLES,
    CHANNEL_TYPES,
    HOLIDAY_KEYS,
    LINE_METRIC,
    METRIC_KEYS,
    MODEL_NAMES,
    SERVICE_LINES,
    SEVERITY_NAMES,
    line_metric,
    line_of,
)

__all__ = [
    "Config",
    "TableMap",
    "SourceConfig",
    "TABLE_COLUMNS",
    "load_config",
    "parse_config",
    "describe_config",
    "DEFAULT_CONFIG_PATH",
]

DEFAULT_CONFIG_PATH = "config.yaml"

_LINE_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
ALL_LINES = f"{LINE_METRIC}.*"  # in metrics.enabled and thresholds.defaults: every service line


def metric_key(value: Any) -> str:
    """One of the metrics (vocab.METRICS), or a service line's ``ticket_count.<line>`` (the line
    must be in metrics.service_lines: checked by `Config`), or ``ticket_count.*`` (every line)."""
    if not isinstance(value, str):
        raise ValueError("must be a metric name")
    if value in METRIC_KEYS or value == ALL_LINES:
        return value
    line = line_of(value)
    if line is not None and _LINE_KEY_RE.match(line):
        return value
    raise ValueError(
        f"unknown metric {value!r}; the metrics are {', '.join(METRIC_KEYS)}, and {LINE_METRIC}.<line> "
        "for a line of metrics.service_lines"
    )


Metric = Annotated[str, PlainValidator(metric_key)]
ModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]
SeverityName = Literal[SEVERITY_NAMES]  # type: ignore[valid-type]


@dataclass(frozen=True)
class TableColumns:
    required: tuple[str, ...]
    optional: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.required + self.optional


# The source-table contract (DESIGN.md): canonical column names, mapped to the company's own
# names through ``source.tables.<table>.columns``.
TABLE_COLUMNS: dict[str, TableColumns] = {
    "communities": TableColumns(
        required=("community_id",),
        optional=("name", "city", "region", "manager", "manager_mobile", "households", "property_type"),
    ),
    # responded_at: the first response or dispatch; due_at: the ticket's own closing deadline
    # (when the ticket system sets one; else metrics.sla gives it by service line).
    "tickets": TableColumns(
        required=("ticket_id", "community_id", "created_at"),
        optional=("responded_at", "closed_at", "due_at", "category", "rating"),
    ),
    # source: which survey it was (第三方, 季度, APP, 回访…); recommend: 0–10, for NPS.
    "surveys": TableColumns(required=("community_id", "date", "score"), optional=("responses", "source", "recommend")),
}


def _to_secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return Secret(value)


def _to_secret_url(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return Secret(value, is_url=True)


SecretStr = Annotated[Secret, PlainValidator(_to_secret), PlainSerializer(lambda s: "<secret>")]
# A URL that may carry a password or token: its credentials are masked wherever it shows.
SecretUrl = Annotated[Secret, PlainValidator(_to_secret_url), PlainSerializer(lambda s: mask_url(s.get()))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (use an IANA name such as 'Asia/Shanghai' or 'UTC')")
    return value


class TableMap(_Model):
    """Where one source table lives and how its columns are named.

    ``table`` is the SQL table name, the CSV file name, or the HTTP endpoint path.
    ``columns`` maps canonical names to the source's own: ``{created_at: create_time}``.
    """

    table: str
    columns: dict[str, str] = Field(default_factory=dict)

    def source_column(self, canonical: str) -> str:
        return self.columns.get(canonical, canonical)


class Tables(_Model):
    communities: TableMap = TableMap(table="communities")
    tickets: TableMap = TableMap(table="tickets")
    # No surveys table: satisfaction then comes from post-ticket ratings alone.
    surveys: TableMap | None = TableMap(table="surveys")

    @model_validator(mode="after")
    def _known_columns(self) -> "Tables":
        for name in ("communities", "tickets", "surveys"):
            table = getattr(self, name)
            if table is None:
                continue
            for canonical in table.columns:
                if canonical not in TABLE_COLUMNS[name].all:
                    known = ", ".join(TABLE_COLUMNS[name].all)
                    raise ValueError(
                        f"@{name}.columns.{canonical}: unknown column {canonical!r}; the keys are "
                        f"our names ({known}) and the values are yours"
                    )
        return self

    def items(self) -> list[tuple[str, TableMap]]:
        return [(n, t) for n in ("communities", "tickets", "surveys") if (t := getattr(self, n)) is not None]


class SqlSourceConfig(_Model):
    url: SecretUrl
    # Processes (and connections) reading the tickets at once, each a part of the table by
    # creation time. Default: as many as engine.workers (all cores); 1 with engine.backend serial.
    read_workers: int | None = Field(None, ge=1, le=64)


class CsvSourceConfig(_Model):
    directory: Path = Path("data/csv")
    encoding: str = "utf-8-sig"
    delimiter: str = ","


class HttpPaging(_Model):
    style: Literal["page", "next"] = "page"
    page_param: str = "page"
    size_param: str = "page_size"
    first_page: int = 1
    items_key: str = "items"
    # "next" style: the response's next_key holds a link (absolute or relative) or a cursor,
    # which is sent back as cursor_param.
    next_key: str = "next"
    cursor_param: str = "cursor"


class HttpSourceConfig(_Model):
    base_url: str
    token: SecretStr | None = None
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    page_size: int = Field(500, ge=1, le=100_000)
    paging: HttpPaging = HttpPaging()
    since_param: str | None = "since"
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0, le=20)
    backoff_s: float = Field(1.0, ge=0)
    max_pages: int = Field(100_000, ge=1)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {mask_url(value)!r})")
        return value.rstrip("/")


class IncrementalConfig(_Model):
    # Keep day sums in the store and read only recent tickets each night (SQL sources; CSV files
    # and HTTP APIs are read in full, in batches, whatever this says).
    enabled: bool = True
    # Days re-read every night: tickets created or closed in them, surveys dated in them (late
    # entries and corrections of these days are picked up).
    reread_days: int = Field(14, ge=1, le=120)
    # Every older day is read again over this many nights, a slice a night (edits of older
    # tickets, deleted or back-dated ones).
    history_reread_nights: int = Field(7, ge=1, le=366)


class DropGuardConfig(_Model):
    # A night whose read holds less than this share of what earlier nights saw for the same days
    # (or the last full read) is refused, and the saved day totals kept: a source that suddenly
    # delivers little is broken, not quiet. 0 lets a real drop (a purged table) through for a night.
    min_share: float = Field(0.5, ge=0, le=1)
    # Judged only where earlier nights saw at least this many rows (a tiny source varies by more).
    min_rows: int = Field(50, ge=1)


class SourceConfig(_Model):
    type: Literal["sql", "csv", "http"] = "sql"
    # Timezone of timestamps the source stores without one ("UTC" if it stores UTC).
    # Defaults to the top-level timezone.
    timezone: str | None = None
    # Only this many days of history before the as-of date are read.
    history_days: int = Field(3 * 366, ge=28)
    incremental: IncrementalConfig = IncrementalConfig()
    drop_guard: DropGuardConfig = DropGuardConfig()
    tables: Tables = Tables()
    sql: SqlSourceConfig | None = None
    csv: CsvSourceConfig | None = None
    http: HttpSourceConfig | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)

    @model_validator(mode="after")
    def _section_for_type(self) -> "SourceConfig":
        if getattr(self, self.type) is None:
            raise ValueError(f"@{self.type}: source.type is {self.type!r} but there is no source.{self.type} section")
        return self


class ServiceLineConfig(_Model):
    """A service line: its Chinese label (the vocabulary's for a line it knows) and the ticket
    categories that belong to it (compared after trimming, case-insensitively)."""

    label_zh: str | None = None
    categories: list[str]


class SlaConfig(_Model):
    """A service line's deadlines, in hours from a ticket's creation."""

    respond_hours: float = Field(gt=0)
    close_hours: float = Field(gt=0)


class SatisfactionConfig(_Model):
    # The survey sources (surveys.source: APP, 回访, 第三方…; case and spaces ignored) whose scores
    # make the daily satisfaction; null: every survey. A week-long door-to-door survey mixed into
    # the daily ratings can make or hide a dip: leave it out here. A survey row without a source
    # always counts.
    sources: list[str] | None = None


COMPLAINT_LINE = "complaint"  # the complaint line: complaint_count, its categories complaint_categories
DEFAULT_SLA = "default"  # metrics.sla for tickets of a line without its own, or of no line


class MetricsConfig(_Model):
    # Which series are made: the metrics of vocab.METRICS, ticket_count.<line> for one service
    # line, ticket_count.* for every line.
    enabled: list[Metric] = [*METRIC_KEYS, ALL_LINES]
    # Ticket categories that count as complaints (compared after trimming, case-insensitively).
    complaint_categories: list[str] = ["投诉", "complaint"]
    # The service lines besides complaints, each a series ticket_count.<line>.
    service_lines: dict[str, ServiceLineConfig] = {
        key: ServiceLineConfig(categories=list(line.categories)) for key, line in SERVICE_LINES.items()
    }
    # Deadlines per service line (complaint, a line above, or default): a complaint answered in
    # 24 hours and closed in 72, other feedback answered in 4 hours.
    sla: dict[str, SlaConfig] = {
        COMPLAINT_LINE: SlaConfig(respond_hours=24, close_hours=72),
        DEFAULT_SLA: SlaConfig(respond_hours=4, close_hours=72),
    }
    # Post-ticket ratings run from 0 (or 1) to this value; they are rescaled to 0-100.
    rating_scale: float = Field(5.0, gt=0)
    # Survey scores run from 0 to this value; they are rescaled to 0-100.
    survey_scale: float = Field(100.0, gt=0)
    # A survey row's response count is a whole number up to this (more than a community can
    # give: a typo or a unit error that would outweigh every other rating).
    max_survey_responses: int = Field(100_000, ge=1)
    satisfaction_from: list[Literal["surveys", "ratings"]] = ["surveys", "ratings"]
    satisfaction: SatisfactionConfig = SatisfactionConfig()

    @model_validator(mode="after")
    def _lines(self) -> "MetricsConfig":
        for key, line in self.service_lines.items():
            if not _LINE_KEY_RE.match(key) or key in (COMPLAINT_LINE, DEFAULT_SLA):
                raise ValueError(
                    f"@service_lines.{key}: a line's key is lower-case letters, digits and _ (not "
                    f"{COMPLAINT_LINE!r}: complaints are complaint_categories; not {DEFAULT_SLA!r})"
                )
            if line.label_zh is None and key not in SERVICE_LINES:
                raise ValueError(f"@service_lines.{key}.label_zh: a line the vocabulary does not know needs its Chinese label")
        owner: dict[str, str] = {c.strip().lower(): COMPLAINT_LINE for c in self.complaint_categories}
        for key, line in self.service_lines.items():
            for category in line.categories:
                c = category.strip().lower()
                if c in owner and owner[c] != key:
                    raise ValueError(f"@service_lines.{key}.categories: {category!r} already belongs to {owner[c]}")
                owner[c] = key
        for key in self.sla:
            if key not in (COMPLAINT_LINE, DEFAULT_SLA) and key not in self.service_lines:
                raise ValueError(f"@sla.{key}: no such service line (the keys are {COMPLAINT_LINE}, {DEFAULT_SLA} and the lines of service_lines)")
        if DEFAULT_SLA not in self.sla:
            raise ValueError(f"@sla.{DEFAULT_SLA}: required (the deadlines of tickets of a line without its own)")
        for key in self.enabled:
            line = line_of(key)
            if line is not None and key != ALL_LINES and line not in self.service_lines:
                raise ValueError(f"@enabled: {key!r}: no such service line in metrics.service_lines")
        return self

    @property
    def line_labels(self) -> dict[str, str]:
        """Each service line's Chinese label."""
        return {k: line.label_zh or SERVICE_LINES[k].label_zh for k, line in self.service_lines.items()}

    @property
    def category_lines(self) -> dict[str, str]:
        """Each category (trimmed, lower case) → its line (complaint or a service line)."""
        out = {c.strip().lower(): COMPLAINT_LINE for c in self.complaint_categories}
        for key, line in self.service_lines.items():
            out.update({c.strip().lower(): key for c in line.categories})
        return out

    def sla_for(self, line: str | None) -> SlaConfig:
        return self.sla.get(line or DEFAULT_SLA) or self.sla[DEFAULT_SLA]

    @property
    def series_metrics(self) -> list[str]:
        """The enabled metrics with ticket_count.* spelt out as each line's key."""
        out: list[str] = []
        for key in self.enabled:
            keys = [line_metric(k) for k in self.service_lines] if key == ALL_LINES else [key]
            out += [k for k in keys if k not in out]
        return out


class Threshold(_Model):
    below: float | None = None
    above: float | None = None
    drop_share: float | None = Field(None, gt=0, lt=1)
    rise_share: float | None = Field(None, gt=0)
    # A relative limit must also be this far from the baseline, in the metric's unit (a 50% rise
    # over one complaint a day is noise; over ten it is news).
    min_excess: float | None = Field(None, ge=0)


class ThresholdOverride(_Model):
    """Limits for the communities that match every scope named (a region's office buildings:
    region and property_type). The more specific override wins: community over city over region
    over property type, and two scopes over one of them."""

    community: str | None = None
    region: str | None = None
    city: str | None = None
    property_type: str | None = None  # the communities' property_type (住宅, 公寓, 商业, 写字楼…)
    metrics: dict[Metric, Threshold]

    @model_validator(mode="after")
    def _has_scope(self) -> "ThresholdOverride":
        if not (self.community or self.region or self.city or self.property_type):
            raise ValueError("an override needs one of community, region, city or property_type")
        return self

    @property
    def specificity(self) -> int:
        return 8 * bool(self.community) + 4 * bool(self.city) + 2 * bool(self.region) + bool(self.property_type)

    def matches(self, community_id: str, city: str | None, region: str | None, property_type: str | None) -> bool:
        wanted = ((self.community, community_id), (self.city, city), (self.region, region), (self.property_type, property_type))
        return all(scope is None or scope == value for scope, value in wanted)


class ThresholdsConfig(_Model):
    defaults: dict[Metric, Threshold] = {
        "satisfaction": Threshold(below=85.0, drop_share=0.05, min_excess=3.0),
        "ticket_count": Threshold(rise_share=0.3, min_excess=3.0),
        "complaint_count": Threshold(rise_share=0.5, min_excess=2.0),
        "resolution_hours": Threshold(above=48.0),
        "response_hours": Threshold(rise_share=0.5, min_excess=2.0),
        # Shares 0–1: warn below 90% answered / closed on time, or 10% below the usual share.
        "responded_on_time": Threshold(below=0.9, drop_share=0.1, min_excess=0.05),
        "closed_on_time": Threshold(below=0.9, drop_share=0.1, min_excess=0.05),
        "open_backlog": Threshold(rise_share=0.5, min_excess=5.0),
        "overdue_open": Threshold(rise_share=0.5, min_excess=3.0),
        "nps": Threshold(below=0.0),  # more detractors than promoters
        # Every service line's ticket_count.<line>, unless it has its own entry.
        ALL_LINES: Threshold(rise_share=0.5, min_excess=3.0),
    }
    overrides: list[ThresholdOverride] = []


_MD_RE = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


class SeasonConfig(_Model):
    """A season that comes back every year, e.g. heating from 11-15 to 03-15 (crosses the new year)."""

    label: str  # how a finding names it: 供暖季
    start: str  # MM-DD
    end: str  # MM-DD, inclusive
    # Where it applies; both empty = everywhere.
    regions: list[str] = []
    cities: list[str] = []

    @field_validator("start", "end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        if not _MD_RE.match(value):
            raise ValueError(f"use MM-DD, e.g. 11-15 (got {value!r})")
        return value


class EventConfig(_Model):
    """A one-off period (a move-in, a renovation, a known outage), optionally for some communities."""

    label: str
    start: dt.date
    end: dt.date
    communities: list[str] = []
    regions: list[str] = []
    cities: list[str] = []

    @model_validator(mode="after")
    def _ordered(self) -> "EventConfig":
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class HolidayWindow(_Model):
    """Days before the first and after the last day off that still feel the holiday."""

    before: int = Field(0, ge=0, le=60)
    after: int = Field(0, ge=0, le=60)


NORTHERN_HEATING_CITIES = [
    "济南", "青岛", "烟台", "潍坊", "淄博", "临沂", "济宁", "郑州", "洛阳", "开封", "新乡", "太原", "石家庄",
]


class CalendarConfig(_Model):
    windows: dict[str, HolidayWindow] = {
        "spring_festival": HolidayWindow(before=10, after=7),
        "national_day": HolidayWindow(before=2, after=2),
        "labour_day": HolidayWindow(before=1, after=1),
        "new_year": HolidayWindow(),
        "qingming": HolidayWindow(),
        "dragon_boat": HolidayWindow(),
        "mid_autumn": HolidayWindow(),
    }
    seasons: dict[str, SeasonConfig] = {
        "summer": SeasonConfig(label="夏季高峰", start="06-15", end="08-31"),
        "heating": SeasonConfig(
            label="供暖季", start="11-15", end="03-15", regions=["华北", "东北", "西北"], cities=NORTHERN_HEATING_CITIES
        ),
        "rainy": SeasonConfig(label="雨季", start="05-15", end="07-15", regions=["华东", "华中", "华南", "西南"]),
        "typhoon": SeasonConfig(label="台风季", start="07-15", end="09-30", regions=["华南"]),
    }
    events: dict[str, EventConfig] = {}

    @field_validator("windows")
    @classmethod
    def _known_holidays(cls, value: dict[str, HolidayWindow]) -> dict[str, HolidayWindow]:
        for key in value:
            if key not in HOLIDAY_KEYS:
                raise ValueError(f"@{key}: unknown holiday; use one of {', '.join(HOLIDAY_KEYS)}")
        return value


class ForecastConfig(_Model):
    horizon: int = Field(90, ge=1, le=730)
    level: float = Field(80.0, gt=0, lt=100)
    min_history_days: int = Field(56, ge=14)
    country: str = "CN"
    # auto: choose per series by backtest; or force one model.
    model: Literal[(AUTO, *MODEL_NAMES)] = AUTO  # type: ignore[valid-type]
    # Models tried by "auto". The seasonal-naive baseline is always the fallback and the scale of
    # every score; as a candidate of its own it wins two-fold backtests by luck more often than
    # it should (measured), so by default it takes part through "linear_naive", the mean of the
    # linear model and the baseline. "ensemble" is the mean of ARIMA and Prophet. The default set
    # is the fast one; arima, prophet and ensemble cost tens of times more per fit and backtest
    # origin (docs/benchmarks.md has the figures).
    candidates: list[ModelName] = [
        "linear",
        "linear_naive",
    ]
    # Rolling-origin backtest used for the choice: folds, days per fold, and spacing of origins.
    # (3: with 2, one disrupted period made up half the evidence and kept intervals too wide.)
    backtest_folds: int = Field(3, ge=1, le=12)
    backtest_horizon: int = Field(28, ge=7, le=365)
    backtest_step: int = Field(28, ge=1, le=365)
    # The nightly run reuses each series' backtest choice (model and interval calibration) for up
    # to this many nights and only refits that model; a seventh of the series choose afresh each
    # night, and any series whose choice is older, or that has a major holiday newly ahead. 1:
    # choose every night.
    reselect_every_days: int = Field(7, ge=1, le=60)


class SeverityCut(_Model):
    """A finding reaches a severity when it is at least this much worse than the community's
    baseline (0.15 = 15%) and at least this likely at its peak."""

    depth: float = Field(ge=0)
    probability: float = Field(gt=0, le=1)


class DetectConfig(_Model):
    # A day is flagged when the forecast gives at least this probability of crossing a limit.
    min_probability: float = Field(0.6, gt=0, lt=1)
    # Findings shorter than this many days are dropped (1 keeps single-day dips).
    min_days: int = Field(2, ge=1)
    # Flagged days this close together form one finding (1: Mon and Wed are one finding).
    bridge_days: int = Field(2, ge=0, le=7)
    # Only look this many days ahead for findings (default: the whole horizon).
    lookahead_days: int | None = Field(None, ge=1)
    # The most severe level whose cut a finding reaches is its severity; below every cut it is the
    # least severe (提醒).
    severity: dict[SeverityName, SeverityCut] = {
        "严重": SeverityCut(depth=0.15, probability=0.8),
        "警告": SeverityCut(depth=0.08, probability=0.6),
    }


class EngineConfig(_Model):
    # process: a pool on this machine; serial: this process; dask: a Dask cluster.
    backend: Literal["serial", "process", "dask"] = "process"
    workers: int | None = Field(None, ge=1)  # default: all cores (dask without an address: local workers)
    # dask: the scheduler, e.g. tcp://10.0.0.5:8786 (none: a local cluster for each run).
    address: str | None = None


class ChannelConfig(_Model):
    type: Literal[CHANNEL_TYPES]  # type: ignore[valid-type]
    url: SecretUrl | None = None
    # DingTalk 加签 secret (SEC…), Feishu signing secret, or the webhook's HMAC key.
    secret: SecretStr | None = None
    # dingtalk: markdown | card (actionCard with a 查看报告 button); feishu: card | post.
    style: Literal[tuple(dict.fromkeys(s for styles in CHANNEL_STYLES.values() for s in styles))] | None = None  # type: ignore[valid-type]
    # A DingTalk/Feishu "custom keyword" security setting: the keyword every message must contain.
    keyword: str | None = None
    # Messages per rate window (default: the platform's limit, its notifier's rate_per_minute).
    rate_limit: int | None = Field(None, ge=1)
    rate_window_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _url_unless_console(self) -> "ChannelConfig":
        if self.type != "console" and (self.url is None or not self.url.get()):
            raise ValueError(f"a {self.type} channel needs a url (put the token in an environment variable)")
        if self.url is not None and self.type != "console":
            raw = self.url.get()
            if not raw.startswith(("http://", "https://")):
                raise ValueError(f"@url: must start with http:// or https:// (got {mask_url(raw)})")
        allowed = CHANNEL_STYLES.get(self.type, ())
        if self.style is not None and self.style not in allowed:
            raise ValueError(f"@style: {self.type} channels take {' or '.join(allowed) or 'no style'}, not {self.style!r}")
        return self


_QUIET_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class RouteConfig(_Model):
    """Which communities' findings go to which channels: a community matches a route by id,
    region, city or manager name; a route with none of these matches every community."""

    name: str
    communities: list[str] = []
    regions: list[str] = []
    cities: list[str] = []
    managers: list[str] = []
    channels: list[str]
    # @ the community's manager (its manager_mobile) in DingTalk and WeCom messages.
    mention_managers: bool = True
    # Also @ these people on every message of the route (mobiles; WeCom/Feishu user ids).
    mention_mobiles: list[str] = []
    mention_userids: list[str] = []
    # "22:00-07:30" (in the configured timezone): messages wait until the quiet hours end.
    quiet_hours: str | None = None
    # Findings below this severity are not sent on this route.
    min_severity: SeverityName = SEVERITY_NAMES[0]

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        m = _QUIET_RE.match(value)
        if not m or int(m.group(1)) > 23 or int(m.group(3)) > 23 or int(m.group(2)) > 59 or int(m.group(4)) > 59:
            raise ValueError(f"quiet hours look like '22:00-07:30' (got {value!r})")
        return value.strip()

    @property
    def quiet_span(self) -> tuple[dt.time, dt.time] | None:
        if not self.quiet_hours:
            return None
        m = _QUIET_RE.match(self.quiet_hours)
        assert m
        start = dt.time(int(m.group(1)), int(m.group(2)))
        end = dt.time(int(m.group(3)), int(m.group(4)))
        return None if start == end else (start, end)


class AlertPolicyConfig(_Model):
    # An alerted finding is sent again after this many days even if nothing changed (0: never).
    repeat_every_days: int = Field(7, ge=0)
    # ... or when its first or last day moved by at least this many days.
    moved_days: int = Field(3, ge=1)
    # Send one all-clear (解除) when an alerted finding no longer appears in the forecast.
    send_resolved: bool = True


class DeliveryConfig(_Model):
    # First retry after this many seconds, doubling up to backoff_max_s.
    backoff_s: float = Field(30.0, gt=0)
    backoff_max_s: float = Field(1800.0, gt=0)
    # A message still undelivered after this long is marked failed (kept in the outbox).
    give_up_after_h: float = Field(24.0, gt=0)
    # A message claimed by a sender that died is sent again after this long (at-least-once).
    claim_timeout_s: float = Field(120.0, gt=0)
    # How long `forecaster run` waits for rate limits before leaving the rest to the service.
    wait_s: float = Field(180.0, ge=0)


class TemplatesConfig(_Model):
    """Message templates (Python format strings). Fields for ``finding``: icon, severity,
    community, community_id, metric, change, when, window, expected, limit, reference,
    baseline, depth, probability, advice, reason. ``title``/``header``: count, communities,
    manager, date. ``footer``: report_url."""

    title: str = "物业预警｜{manager}｜{communities}个小区 {count}条"
    header: str = "**物业预警** · {manager} · {date}夜间预测"
    finding: str = (
        "**{icon}{severity}｜{community} {metric}{change}**{reason}\n"
        "- 时间：{when}{window}\n"
        "- 预计：{expected}，{reference}\n"
        "- 把握：{probability}"
    )
    resolved: str = "**✅ 解除｜{community} {metric}{change}**\n- 原预计 {when} 的风险，最新预测已不再出现"
    footer: str = "[查看报告与图表]({report_url})"
    # Said once per message for each kind of finding in it (fields: metric, change, advice).
    advice_line: str = "- {metric}{change}：{advice}"
    # Advice per "metric.kind"; the defaults cover the four metrics.
    advice: dict[str, str] = {}
    # A message holds at most this many findings (more are split into parts 1/n, 2/n...).
    max_per_message: int = Field(8, ge=1, le=100)

    @model_validator(mode="after")
    def _formats(self) -> "TemplatesConfig":
        samples = {
            "title": TEMPLATE_FIELDS["header"],
            "header": TEMPLATE_FIELDS["header"],
            "finding": TEMPLATE_FIELDS["finding"],
            "resolved": TEMPLATE_FIELDS["finding"],
            "footer": ("report_url",),
            "advice_line": ("metric", "change", "advice"),
        }
        for key, names in samples.items():
            text = getattr(self, key)
            try:
                text.format_map({n: "x" for n in names})
            except KeyError as exc:
                raise ValueError(f"@{key}: unknown field {{{exc.args[0]}}}; the fields are {', '.join(names)}")
            except (ValueError, IndexError) as exc:
                raise ValueError(f"@{key}: not a valid template ({exc})")
        return self


TEMPLATE_FIELDS = {
    "header": ("count", "communities", "manager", "date"),
    "finding": (
        "icon", "severity", "community", "community_id", "metric", "change", "when", "window", "expected",
        "limit", "reference", "baseline", "depth", "probability", "advice", "reason",
    ),
}


class AlertsConfig(_Model):
    # With no channel configured, alerts are printed to the console.
    channels: dict[str, ChannelConfig] = {}
    routes: list[RouteConfig] = []
    # Channels for communities that no route matches.
    default_channels: list[str] = []
    # Where report.html is served; messages then link to <base>/<as-of>/report.html.
    report_base_url: str | None = None
    policy: AlertPolicyConfig = AlertPolicyConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    templates: TemplatesConfig = TemplatesConfig()
    # Where operations alerts (a failed or missed run, failing deliveries) go: a route name.
    ops_route: str | None = None

    @model_validator(mode="after")
    def _routes_name_channels(self) -> "AlertsConfig":
        names = set()
        for i, route in enumerate(self.routes):
            if route.name in names:
                raise ValueError(f"@routes[{i}].name: route {route.name!r} is defined twice")
            names.add(route.name)
            for j, name in enumerate(route.channels):
                if name not in self.channels:
                    raise ValueError(
                        f"@routes[{i}].channels[{j}]: unknown channel {name!r}; "
                        f"defined channels: {', '.join(self.channels) or 'none'}"
                    )
        for j, name in enumerate(self.default_channels):
            if name not in self.channels:
                raise ValueError(f"@default_channels[{j}]: unknown channel {name!r}")
        if self.ops_route is not None and self.ops_route not in names:
            raise ValueError(f"@ops_route: no route named {self.ops_route!r}")
        return self


def _check_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"not a crontab expression ({exc}); e.g. '0 2 * * *' for 02:00 daily")
    return value


class CommandJob(_Model):
    """An extra scheduled job: a program run on a cron (e.g. a script that exports tickets to
    CSV before the nightly run). Its output is logged; a failure is logged and alerted to ops."""

    name: str
    cron: str
    argv: list[str] = Field(min_length=1)
    timeout_s: float = Field(1800, gt=0)

    _cron = field_validator("cron")(classmethod(lambda cls, v: _check_cron(v)))


class ScheduleConfig(_Model):
    nightly: str = "0 2 * * *"
    outbox_every_s: int = Field(60, ge=5)
    # A night missed by less than this (service down) runs once at start-up, recorded as late.
    misfire_grace_s: int = Field(6 * 3600, ge=0)
    # This service's name (its jobs table and its name in the store); default: the host name.
    instance: str | None = None
    # A running job renews its claim this often (÷3); a claim older than this is a dead holder's.
    lease_s: int = Field(300, ge=10)
    # Checks for missed nights and dead holders, and alerts ops.
    watchdog_every_s: int = Field(600, ge=10)
    # /metrics (Prometheus) and /healthz on this port (needs the [metrics] extra); none: off.
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    commands: list[CommandJob] = []

    @field_validator("nightly")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", value):
            raise ValueError("letters, digits, '.', '_' and '-' only, at most 40")
        return value


class LogConfig(_Model):
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class StoreConfig(_Model):
    url: SecretUrl = Secret("sqlite:///data/forecaster.db", is_url=True)
    # Every night stores its forecasts (90 rows per series: 720,000 for 8,000 series); those of
    # runs older than this many days are deleted after a run. Runs, findings and alerts are kept.
    keep_forecasts_days: int = Field(35, ge=1)


class OutputConfig(_Model):
    dir: Path = Path("out")
    # findings.csv with Chinese column headers (小区, 级别, 开始…) instead of English ones.
    chinese_headers: bool = False
    # Days of history in series.csv. Excel opens at most 1,048,576 rows: 120 days of 8,000 series
    # is 960,000 (a longer history of thousands of series would be cut off in Excel).
    history_days: int = Field(120, ge=1)


class DemoConfig(_Model):
    communities: int = Field(50, ge=1, le=5000)
    years: float = Field(3.0, gt=0, le=10)
    seed: int = 42


class Config(_Model):
    timezone: str = "Asia/Shanghai"
    source: SourceConfig = SourceConfig(sql=SqlSourceConfig(url=Secret("sqlite:///data/demo.db", is_url=True)))
    metrics: MetricsConfig = MetricsConfig()
    forecast: ForecastConfig = ForecastConfig()
    calendar: CalendarConfig = CalendarConfig()
    thresholds: ThresholdsConfig = ThresholdsConfig()
    detect: DetectConfig = DetectConfig()
    engine: EngineConfig = EngineConfig()
    alerts: AlertsConfig = AlertsConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    log: LogConfig = LogConfig()
    store: StoreConfig = StoreConfig()
    output: OutputConfig = OutputConfig()
    demo: DemoConfig = DemoConfig()
    # Where the file was read from (for messages); not a key users set.
    path: Path | None = Field(None, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)

    @model_validator(mode="after")
    def _lines_known(self) -> "Config":
        """A threshold of ticket_count.<line> names a line of metrics.service_lines."""
        lines = self.metrics.service_lines
        places = [("thresholds.defaults", self.thresholds.defaults)]
        places += [(f"thresholds.overrides[{i}].metrics", o.metrics) for i, o in enumerate(self.thresholds.overrides)]
        for where, metrics in places:
            for key in metrics:
                line = line_of(key)
                if line is not None and line != "*" and line not in lines:
                    raise ValueError(f"@{where}.{key}: no such service line in metrics.service_lines ({', '.join(lines)})")
        return self

    @property
    def source_timezone(self) -> str:
        return self.source.timezone or self.timezone


# ----------------------------------------------------------------------------- loading

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, path: str, environ: dict[str, str], unset: list[tuple[str, str]]) -> Any:
    """``node`` with its ``${VAR}``s replaced; each unset variable without a default is added
    to ``unset`` as (key path, name) and left in place, so that one error can name them all."""
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), environ, unset) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", environ, unset) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                register_env_value(environ[name])  # a secret wherever it ends up, whatever its shape
                return environ[name]
            if default is not None:
                return default
            unset.append((path, name))
            return m.group(0)

        return _ENV_RE.sub(repl, node)
    return node


def _expand_environment(data: dict[str, Any], environ: dict[str, str], where: str) -> dict[str, Any]:
    """``data`` with every ``${VAR}`` replaced; a `ConfigError` naming every unset one (with
    its key path) when some are, not only the first: the next run would just show the next."""
    unset: list[tuple[str, str]] = []
    data = _interpolate(data, "", environ, unset)
    if unset:
        lines = [f"{where}: {len(unset)} environment variable(s) not set (set them, or write ${{VAR:-default}})"]
        lines += [f"  {path}: {name}" for path, name in unset]
        raise ConfigError("\n".join(lines))
    return data


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union")) or part == "[key]":
            continue  # pydantic's own steps, and the marker of a bad dict key (the key is named next to it)
        else:
            out += ("." if out else "") + str(part)
    return out


_SECRET_KEYS = ("url", "secret", "token", "password")


def _show_value(loc: str, value: Any) -> str:
    if any(loc.endswith(k) for k in _SECRET_KEYS):
        return mask_url(value) if isinstance(value, str) and "://" in value else "<secret>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _validation_message(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: {exc.error_count()} problem(s) in the configuration"]
    for err in exc.errors(include_url=False):
        loc = _format_loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if msg.startswith("@") and ": " in msg:
            # A model-level check names the sub-key it is about: "@tickets.columns.x: ..."
            sub, msg = msg[1:].split(": ", 1)
            loc = f"{loc}{'' if sub.startswith('[') else '.'}{sub}" if loc else sub
        if err["type"] == "extra_forbidden":
            msg = "unknown key (a typo? see config.yaml for the keys)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        line = f"  {loc or '(top level)'}: {msg}"
        value = err.get("input")
        if err["type"] != "missing" and not isinstance(value, (dict, list)) and repr(value) not in msg:
            line += f" (got {_show_value(loc, value)})"
        lines.append(line)
    return "\n".join(lines)


def _resolve_sqlite(url: Secret, base: Path) -> Secret:
    raw = url.get()
    if not raw.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(raw)
    if parsed.database and parsed.database != ":memory:" and not os.path.isabs(parsed.database):
        return Secret(parsed.set(database=str((base / parsed.database).resolve())).render_as_string(False), is_url=True)
    return url


def _resolve_paths(config: Config, base: Path) -> Config:
    source = config.source
    updates: dict[str, Any] = {}
    if source.sql is not None:
        updates["sql"] = source.sql.model_copy(update={"url": _resolve_sqlite(source.sql.url, base)})
    if source.csv is not None and not source.csv.directory.is_absolute():
        updates["csv"] = source.csv.model_copy(update={"directory": (base / source.csv.directory).resolve()})
    out_dir = config.output.dir if config.output.dir.is_absolute() else (base / config.output.dir).resolve()
    return config.model_copy(
        update={
            "source": source.model_copy(update=updates),
            "store": config.store.model_copy(update={"url": _resolve_sqlite(config.store.url, base)}),
            "output": config.output.model_copy(update={"dir": out_dir}),
        }
    )


def parse_config(
    data: dict[str, Any] | None,
    *,
    base_dir: Path | str = ".",
    where: str = "config",
    environ: dict[str, str] | None = None,
) -> Config:
    """Validate an already-parsed mapping (e.g. from YAML) into a `Config`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of keys, not {type(data).__name__}")
    data = _expand_environment(data, dict(os.environ) if environ is None else environ, where)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, where)) from None
    return _resolve_paths(config, Path(base_dir).resolve())


def load_config(path: str | os.PathLike[str] | None = None, *, environ: dict[str, str] | None = None) -> Config:
    """Read and validate the config file (``$FORECASTER_CONFIG`` or ``./config.yaml`` by default)."""
    env = dict(os.environ) if environ is None else environ
    path = Path(path or env.get("FORECASTER_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (pass --config PATH or set FORECASTER_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{at}: not valid YAML: {problem}") from None
    config = parse_config(data, base_dir=path.parent, where=str(path), environ=env)
    return config.model_copy(update={"path": path})


def describe_config(config: Config) -> str:
    """The effective configuration as YAML, secrets masked (for ``check-config``)."""
    dumped = config.model_dump(mode="json", exclude={"path"})
    return yaml.safe_dump(dumped, allow_unicode=True, sort_keys=False)
