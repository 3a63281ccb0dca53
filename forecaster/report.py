"""The run report: one self-contained HTML page for planners (no network needed to open it).

At the top, every finding in one table, most severe first; below, per community that needs
attention, its findings and a chart per flagged metric: the last eight weeks of history, the
forecast with its interval, the limit crossed, and the holiday windows (red) and seasons (blue)
shaded, so a planner sees at a glance which communities need attention this holiday.

Charts are inline SVG drawn here; a few lines of script only mark them as rendered (a test
opens the page in headless Chromium and reads that mark).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecaster.calendar import Location, locations_of
from forecaster.detect import Finding
from forecaster.util.arrays import true_runs
from forecaster.vocab import KIND_ZH, SEVERITIES, SEVERITY_NAMES, format_value, is_share, metric_of, severity_of, severity_rank

__all__ = ["make_report_html", "make_chart_svg"]


def _metric_label(metric: str, labels: dict[str, str] | None = None) -> str:
    known = metric_of(metric, labels)
    return known.label_zh if known else metric


def _change(f: Finding, labels: dict[str, str] | None = None) -> str:
    return f"{_metric_label(f.metric, labels)}{KIND_ZH.get(f.kind, f.kind)}"


_v = format_value  # a share as a percentage, else one decimal


_CSS_SEVERITIES = "".join(f".sev-{s.name}{{color:{s.colour}}}" for s in reversed(SEVERITIES))

W, H = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 22, 26


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text))


def _polyline(xs: Sequence[float], ys: Sequence[float], **attrs: str) -> str:
    parts = []
    segment: list[str] = []
    for x, y in zip(xs, ys):
        if np.isfinite(y):
            segment.append(f"{x:.1f},{y:.1f}")
        elif segment:
            parts.append(segment)
            segment = []
    if segment:
        parts.append(segment)
    extra = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return "".join(f'<polyline points="{" ".join(p)}" {extra}/>' for p in parts if len(p) > 1)


def make_chart_svg(
    days: pd.DatetimeIndex,
    history: np.ndarray,
    n_history: int,
    mean: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    holiday_labels: Sequence[str],
    season_labels: Sequence[str],
    spans: Sequence[tuple[dt.date, dt.date, str]] = (),
    limit: float | None = None,
    title: str = "",
    tick=None,
) -> str:
    """One chart over ``days``: the first ``n_history`` are history, the rest forecast.
    ``tick`` writes an axis value (default: a whole number; a share's: a percentage)."""
    tick = tick or (lambda v: f"{v:.0f}")
    n = len(days)
    values = np.concatenate([history[np.isfinite(history)], lower, upper, [limit] if limit is not None else []])
    lo_v, hi_v = (float(np.min(values)), float(np.max(values))) if len(values) else (0.0, 1.0)
    if hi_v - lo_v < 1e-9:
        lo_v, hi_v = lo_v - 1, hi_v + 1
    pad = (hi_v - lo_v) * 0.08
    lo_v, hi_v = lo_v - pad, hi_v + pad
    x = lambda i: LEFT + (W - LEFT - RIGHT) * (i / max(n - 1, 1))  # noqa: E731
    y = lambda v: TOP + (H - TOP - BOTTOM) * (1 - (v - lo_v) / (hi_v - lo_v))  # noqa: E731
    out = [f'<svg class="chart" role="img" viewBox="0 0 {W} {H}" width="100%" preserveAspectRatio="xMidYMid meet"><title>{_e(title)}</title>']
    # Bands: seasons (blue) under holiday windows (red), labelled once each.
    for labels, fill, text_fill in ((season_labels, "#e3effd", "#2c5d99"), (holiday_labels, "#fbdada", "#a93226")):
        arr = np.array([bool(v) for v in labels])
        for a, b in true_runs(arr):
            x0, x1 = x(a) - 0.5 * (x(1) - x(0)), x(b) + 0.5 * (x(1) - x(0))
            out.append(f'<rect class="band" x="{x0:.1f}" y="{TOP}" width="{x1 - x0:.1f}" height="{H - TOP - BOTTOM}" fill="{fill}"/>')
            out.append(f'<text x="{x0 + 3:.1f}" y="{TOP - 6}" font-size="11" fill="{text_fill}">{_e(labels[a])}</text>')
    for first, last, severity in spans:
        a = int(np.searchsorted(days.values, np.datetime64(first)))
        b = int(np.searchsorted(days.values, np.datetime64(last)))
        if a < n:
            b = min(b, n - 1)
            out.append(
                f'<rect class="finding" x="{x(a):.1f}" y="{TOP}" width="{max(x(b) - x(a), 2):.1f}" height="{H - TOP - BOTTOM}" '
                f'fill="none" stroke="{(severity_of(severity) or SEVERITIES[-1]).colour}" stroke-width="2" stroke-dasharray="4 3"/>'
            )
    # Axes and grid.
    for k in range(4):
        v = lo_v + (hi_v - lo_v) * (k + 0.5) / 4
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{tick(v)}</text>')
    for i, d in enumerate(days):
        if d.day == 1:
            out.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{H - BOTTOM}" y2="{H - BOTTOM + 4}" stroke="#888"/>')
            out.append(f'<text x="{x(i):.1f}" y="{H - 8}" font-size="11" text-anchor="middle" fill="#555">{d.month}月</text>')
    # Interval, forecast, history, limit, today.
    fx = [x(i) for i in range(n_history, n)]
    if fx:
        poly = " ".join(f"{a:.1f},{y(b):.1f}" for a, b in zip(fx, upper)) + " " + " ".join(
            f"{a:.1f},{y(b):.1f}" for a, b in zip(reversed(fx), reversed(lower))
        )
        out.append(f'<polygon class="interval" points="{poly}" fill="#cfe0f5" opacity="0.9"/>')
        out.append(_polyline(fx, [y(v) for v in mean], fill="none", stroke="#1f5fbf", stroke_width="2", **{"class": "forecast"}))
    hx = [x(i) for i in range(n_history)]
    out.append(_polyline(hx, [y(v) if np.isfinite(v) else np.nan for v in history], fill="none", stroke="#444", stroke_width="1.2", **{"class": "history"}))
    if limit is not None and np.isfinite(limit):
        out.append(f'<line class="limit" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" stroke="#c0392b" stroke-dasharray="6 4"/>')
    if n_history:
        xt = (x(n_history - 1) + x(min(n_history, n - 1))) / 2
        out.append(f'<line x1="{xt:.1f}" x2="{xt:.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#999"/>')
    out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" stroke="#888"/>')
    out.append("</svg>")
    return "".join(out)


_CSS = """
body{font-family:-apple-system,"PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","WenQuanYi Micro Hei",sans-serif;margin:0;color:#222;background:#f7f7f7}
header{background:#1f3b5c;color:#fff;padding:16px 24px}header h1{margin:0 0 4px;font-size:22px}
main{padding:16px 24px;max-width:1100px;margin:auto}section{margin-bottom:28px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e5e5e5;padding:6px 8px;text-align:left;vertical-align:top}th{background:#f0f3f7}
.sev{font-weight:bold}""" + _CSS_SEVERITIES + """
article{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:12px 16px;margin-bottom:16px}
article h3{margin:0 0 6px}article small{color:#666;font-weight:normal}
figure{margin:8px 0}figcaption{font-size:13px;color:#444}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:#444}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
"""

_SCRIPT = """
document.addEventListener('DOMContentLoaded', function () {
  var charts = document.querySelectorAll('svg.chart'), drawn = 0;
  charts.forEach(function (svg) {
    var box = svg.getBoundingClientRect(), marks = svg.querySelectorAll('polyline, polygon').length;
    if (box.width > 0 && box.height > 0 && marks > 0) { svg.setAttribute('data-rendered', 'yes'); drawn++; }
  });
  document.body.setAttribute('data-charts-rendered', String(drawn));
});
"""


def make_report_html(
    as_of: dt.date,
    findings: list[Finding],
    communities: pd.DataFrame,
    series: pd.DataFrame,
    forecasts: pd.DataFrame,
    features_for,
    *,
    run_id: str = "",
    history_days: int = 56,
    max_communities: int = 200,
    line_labels: dict[str, str] | None = None,
) -> str:
    """The report page. ``features_for(Location)`` gives the calendar features (``holiday_window``,
    ``season`` by day) of a community; ``line_labels``: the service lines' Chinese labels."""
    info = communities.set_index("community_id")
    order = sorted(findings, key=lambda f: (-severity_rank(f.severity), -f.probability, f.first_day))
    parts = [_page_head(as_of, findings, len(communities), run_id), '<section id="findings"><h2>预警一览</h2>']
    parts.append(_findings_table(order, info, line_labels) if order else "<p>本次预测期内没有需要预警的小区。</p>")
    parts.append("</section>")
    if order:
        parts.append('<section id="communities"><h2>需要关注的小区</h2>' + _LEGEND)
        shown = list(dict.fromkeys(f.community_id for f in order))
        locations = locations_of(communities)
        # Rows by (community, metric), taken only for the few communities shown.
        rows = _Rows(series, forecasts)
        for cid in shown[:max_communities]:
            mine = [f for f in order if f.community_id == cid]
            feats = features_for(locations.get(cid, Location(cid)))
            parts.append(_community_article(cid, mine, info, rows, feats, history_days, line_labels))
        if len(shown) > max_communities:
            parts.append(f"<p>另有 {len(shown) - max_communities} 个小区的预警见上表。</p>")
        parts.append("</section>")
    parts.append(f"</main><script>{_SCRIPT}</script></body></html>")
    return "".join(parts)


_LEGEND = (
    '<p class="legend"><span><i class="sw" style="background:#444"></i>近8周实际</span>'
    '<span><i class="sw" style="background:#1f5fbf"></i>预测</span>'
    '<span><i class="sw" style="background:#cfe0f5"></i>预测区间</span>'
    '<span><i class="sw" style="background:#fbdada"></i>节假日前后</span>'
    '<span><i class="sw" style="background:#e3effd"></i>季节</span>'
    '<span><i class="sw" style="border:2px dashed #c0392b"></i>预警时段</span></p>'
)


def _page_head(as_of: dt.date, findings: list[Finding], n_communities: int, run_id: str) -> str:
    by_sev = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITY_NAMES}
    counts = "、".join(f"{s} {by_sev[s]}" for s in reversed(SEVERITY_NAMES) if by_sev[s]) or "无"
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>物业预警报告 {as_of}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>物业预警报告</h1><div>预测起始日 {as_of} · 小区 {n_communities} 个 · "
        f"预警 {len(findings)} 条（{_e(counts)}）{' · 运行 ' + _e(run_id[:8]) if run_id else ''}</div></header><main>"
    )


def _findings_table(order: list[Finding], info: pd.DataFrame, labels: dict[str, str] | None) -> str:
    rows = [
        "<table><thead><tr><th>级别</th><th>小区</th><th>城市</th><th>负责人</th><th>指标</th><th>时间</th>"
        "<th>预计</th><th>界限</th><th>概率</th><th>节假日/季节</th></tr></thead><tbody>"
    ]
    for f in order:
        name = info["name"].get(f.community_id, f.community_id) if "name" in info else f.community_id
        est = "（假期为推算）" if f.estimated else ""
        rows.append(
            f'<tr><td class="sev sev-{_e(f.severity)}">{_e(f.severity)}</td>'
            f'<td><a href="#c-{_e(f.community_id)}">{_e(name)}</a></td>'
            f"<td>{_e(info['city'].get(f.community_id, '') if 'city' in info else '')}</td>"
            f"<td>{_e(info['manager'].get(f.community_id, '') if 'manager' in info else '')}</td>"
            f"<td>{_e(_change(f, labels))}</td>"
            f"<td>{f.first_day:%m-%d} 至 {f.last_day:%m-%d}（{f.days} 天）</td>"
            f"<td>{_v(f.metric, f.expected)}</td><td>{_e(f.reference)}（{_v(f.metric, f.limit)}）</td>"
            f"<td>{f.probability:.0%}</td><td>{_e(f.window)}{est}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


class _Rows:
    """The history and forecast rows of one community's metric, found through one grouping each."""

    def __init__(self, series: pd.DataFrame, forecasts: pd.DataFrame):
        # Only the columns a chart draws, as arrays: taking a few rows of the whole frames (text
        # columns of millions of rows) cost the report most of its time at thousands of series.
        self.series = {c: series[c].to_numpy() for c in ("ds", "y")}
        self.forecasts = {c: forecasts[c].to_numpy() for c in ("ds", "yhat", "yhat_lower", "yhat_upper")}
        self.hist = series.groupby(["community_id", "metric"], sort=False).indices
        self.fc = forecasts.groupby(["community_id", "metric"], sort=False).indices

    def get(self, cid: str, metric: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        key = (cid, metric)
        if key not in self.hist or key not in self.fc:
            return None
        h, f = self.hist[key], self.fc[key]
        return (
            pd.DataFrame({c: v[h] for c, v in self.series.items()}),
            pd.DataFrame({c: v[f] for c, v in self.forecasts.items()}),
        )


def _community_article(
    cid: str, mine: list[Finding], info: pd.DataFrame, rows: _Rows, feats: pd.DataFrame, history_days: int, labels: dict[str, str] | None
) -> str:
    """One community's findings in words, then a chart per metric with a finding."""
    row = info.loc[cid] if cid in info.index else None
    name = row["name"] if row is not None else cid
    meta = " · ".join(_e(row[c]) for c in ("city", "region") if row is not None and c in row and pd.notna(row[c]))
    manager = f" · 负责人 {_e(row['manager'])}" if row is not None and "manager" in row and pd.notna(row["manager"]) else ""
    parts = [f'<article id="c-{_e(cid)}"><h3>{_e(name)} <small>{meta}{manager}</small></h3><ul>']
    for f in mine:
        parts.append(
            f'<li><span class="sev sev-{_e(f.severity)}">{_e(f.severity)}</span> '
            f"{_e(_change(f, labels))}："
            f"{f.first_day:%m-%d} 至 {f.last_day:%m-%d}，最严重 {f.peak_day:%m-%d} 预计 {_v(f.metric, f.expected)}"
            f"（{_e(f.reference)} {_v(f.metric, f.limit)}，近期 {_v(f.metric, f.baseline)}），概率 {f.probability:.0%}"
            f"{'，' + _e(f.window) if f.window else ''}</li>"
        )
    parts.append("</ul>")
    for metric in dict.fromkeys(f.metric for f in mine):
        found = rows.get(cid, metric)
        if found is None:
            continue
        hist, fc = found[0].tail(history_days), found[1].sort_values("ds")
        days = pd.DatetimeIndex(pd.concat([hist["ds"], pd.to_datetime(fc["ds"])]))
        f_days = feats.reindex(days)
        spans = [(f.first_day, f.last_day, f.severity) for f in mine if f.metric == metric]
        limit = next((f.limit for f in mine if f.metric == metric), None)
        svg = make_chart_svg(
            days,
            hist["y"].to_numpy(dtype=float),
            len(hist),
            fc["yhat"].to_numpy(dtype=float),
            fc["yhat_lower"].to_numpy(dtype=float),
            fc["yhat_upper"].to_numpy(dtype=float),
            f_days["holiday_window"].fillna("").tolist(),
            f_days["season"].fillna("").tolist(),
            spans,
            limit,
            f"{name} {_metric_label(metric, labels)}",
            tick=(lambda v: f"{v:.0%}") if is_share(metric) else None,
        )
        parts.append(f"<figure><figcaption>{_e(_metric_label(metric, labels))}</figcaption>{svg}</figure>")
    parts.append("</article>")
    return "".join(parts)
