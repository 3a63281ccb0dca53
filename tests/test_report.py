"""report.html from findings, series and forecasts (unit level; the page in Chromium is tested in
tests/integration/test_nightly_run.py)."""

import datetime as dt

import numpy as np
import pandas as pd

from forecaster.calendar import FeatureBook
from forecaster.report import make_report_html
from forecaster.vocab import KIND_ZH, METRICS, SEVERITIES
from tests.conftest import make_finding

AS_OF = dt.date(2026, 1, 21)


def page(findings, name="阳光花园"):
    communities = pd.DataFrame(
        {"community_id": ["C001"], "name": [name], "city": ["北京"], "region": ["华北"], "manager": ["张三"]}
    )
    hist = pd.date_range(AS_OF - dt.timedelta(days=60), AS_OF - dt.timedelta(days=1))
    fut = pd.date_range(AS_OF, periods=30)
    series = pd.concat(
        pd.DataFrame({"series_id": f"C001:{m}", "community_id": "C001", "metric": m, "ds": hist, "y": np.linspace(10, 12, len(hist))})
        for m in ("ticket_count", "satisfaction", "closed_on_time")
    )
    forecasts = pd.concat(
        pd.DataFrame({"series_id": f"C001:{m}", "community_id": "C001", "metric": m, "ds": fut, "yhat": 12.0,
                      "yhat_lower": 10.0, "yhat_upper": 14.0, "model": "linear"})
        for m in ("ticket_count", "satisfaction", "closed_on_time")
    )
    book = FeatureBook(hist[0], fut[-1])
    return make_report_html(AS_OF, findings, communities, series, forecasts, book.get, run_id="r1")


def test_the_report_names_a_surge_as_the_alerts_do():
    surge = make_finding(metric="ticket_count", first_day=dt.date(2026, 1, 28), severity="严重")
    html = page([surge])
    assert f"{METRICS['ticket_count'].label_zh}{KIND_ZH['surge']}" == "工单量上升"
    assert "工单量上升" in html and "激增" not in html
    # each severity's colour comes from the vocabulary, and is the one the report always had
    assert ".sev-严重{color:#c0392b}.sev-警告{color:#e67e22}.sev-提醒{color:#7f8c8d}" in html
    assert [s.colour for s in reversed(SEVERITIES)] == ["#c0392b", "#e67e22", "#7f8c8d"]


def test_a_hostile_community_name_stays_text_in_the_report():
    html = page([make_finding()], name='<script>alert(1)</script>')
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_shares_show_as_percentages_and_lines_by_their_labels():
    late = make_finding(metric="closed_on_time", kind="dip", expected=0.82, limit=0.9, baseline=0.97, reference="阈值 90%",
                        first_day=dt.date(2026, 1, 28), severity="严重")
    repairs = make_finding(metric="ticket_count.repair", kind="surge", first_day=dt.date(2026, 1, 29), severity="警告")
    html = page([late, repairs])
    assert "按时办结率下降" in html and "<td>82%</td>" in html and "（90%）" in html and "近期 97%" in html
    assert "维修工单量上升" in html
    chart = html[html.index("<figcaption>按时办结率</figcaption>"):]
    assert "%</text>" in chart.split("</svg>")[0]  # its axis reads in percent


def test_the_page_names_chinese_fonts_for_machines_without_a_default_one():
    html = page([])
    for font in ("PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei"):
        assert font in html
