"""Messages: Chinese, short, most severe first, split between findings within platform limits."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from forecaster.alerts.notifiers import Mentions, make_notifier
from forecaster.alerts.policy import Alerted, Community
from forecaster.alerts.render import Notice, format_span, render_group, render_ops, render_test
from forecaster.config import ChannelConfig, TemplatesConfig
from tests.conftest import make_finding

AS_OF = dt.date(2026, 1, 21)


def notice(i: int, severity="警告", metric="satisfaction", reason="new", estimated=False, name=None) -> Notice:
    first = dt.date(2026, 2, 1) + dt.timedelta(days=i % 9)
    kind = "dip" if metric == "satisfaction" else "surge"
    f = make_finding(
        community_id=f"C{i:03d}", metric=metric, kind=kind, first_day=first, days=7, peak_day=first + dt.timedelta(days=2),
        expected=78.4 if kind == "dip" else 14.2, baseline=91.2, depth=0.14, probability=0.6 + (i % 4) / 10,
        severity=severity, estimated=estimated, finding_id=f"fid{i:03d}",
    )
    return Notice(reason, Community(f"C{i:03d}", name or f"阳光花园{i}期", "北京", "华北", "张三", "13800000001"), f)


def ch(type_, **extra):
    url = {"wecom": "https://q/send?key=K", "feishu": "https://f/hook/H"}.get(type_, "https://d/send?access_token=T")
    return make_notifier("c", ChannelConfig(type=type_, url=url, **extra))


def texts(parts):
    from forecaster.cli import _message_text

    return [_message_text(p.payload) for p in parts if p.kind == "alert"]


def test_one_finding_reads_well_on_a_phone():
    parts = render_group(ch("dingtalk"), [notice(1, "严重")], manager="张三", as_of=AS_OF, templates=TemplatesConfig(),
                         report_url="https://intra/2026-01-21/report.html", mentions=Mentions(("13800000001",)))
    assert len(parts) == 1
    text = texts(parts)[0]
    assert text.startswith("**物业预警** · 张三 · 1月21日夜间预测")
    for words in ("🔴严重｜阳光花园1期 满意度下降", "2月2日（周一）至2月8日（周日），共7天", "（春节前后）",
                  "预计：78.4分，低于阈值 85（近4周水平 91.2分）", "把握：约70%", "**建议**", "满意度下降：提前回访",
                  "[查看报告与图表](https://intra/2026-01-21/report.html)", "@13800000001"):
        assert words in text, words
    assert "<" not in text and "\n|" not in text  # no HTML, no tables
    assert parts[0].title == "物业预警｜张三｜1个小区 1条"


def test_most_severe_first_and_all_clears_last():
    resolved = Notice("resolved", Community("C099", "翠湖苑"), previous=Alerted(
        "r", "old", "C099", "ticket_count", "surge", "警告", dt.date(2026, 2, 3), dt.date(2026, 2, 5), "open",
        dt.datetime(2026, 1, 19, tzinfo=dt.timezone.utc)))
    group = [notice(1, "提醒"), resolved, notice(2, "严重"), notice(3, "警告", reason="worse")]
    parts = render_group(ch("dingtalk"), group, manager="张三", as_of=AS_OF, templates=TemplatesConfig())
    assert parts[0].finding_ids == ("fid002", "fid003", "fid001", "old")
    text = texts(parts)[0]
    assert text.index("严重｜") < text.index("警告｜") < text.index("提醒｜") < text.index("✅ 解除｜翠湖苑 工单量上升")
    assert "警告｜阳光花园3期 满意度下降**（升级）" in text


@pytest.mark.parametrize("type_", ["dingtalk", "wecom", "feishu", "webhook"])
def test_sixty_findings_split_between_findings_within_the_limit(type_):
    channel = ch(type_)
    group = [notice(i, ("提醒", "警告", "严重")[i % 3], ("satisfaction", "ticket_count", "complaint_count")[i % 3]) for i in range(60)]
    parts = render_group(channel, group, manager="张三", as_of=AS_OF, templates=TemplatesConfig(), mentions=Mentions(("13800000001",)))
    alerts = [p for p in parts if p.kind == "alert"]
    ids = [fid for p in alerts for fid in p.finding_ids]
    assert sorted(ids) == sorted(n.finding_id for n in group) and len(ids) == 60  # each exactly once
    ranks = [("提醒", "警告", "严重").index(next(n for n in group if n.finding_id == fid).finding.severity) for fid in ids]
    assert ranks == sorted(ranks, reverse=True)
    for p in parts:
        assert channel.fits(p.payload)
    if type_ != "webhook":
        assert len(alerts) == 8 and all(len(p.finding_ids) <= 8 for p in alerts)
        for k, text in enumerate(texts(parts), start=1):
            assert f"（{k}/8）" in text.split("\n")[0]
            # every finding named in the part is there whole: its four lines
            assert text.count("- 时间：") == text.count("- 预计：") == text.count("- 把握：") == len(alerts[k - 1].finding_ids)
    else:
        assert len(alerts) == 1 and len(alerts[0].payload["findings"]) == 60
    mention = [p for p in parts if p.kind == "mention"]
    assert len(mention) == (1 if type_ == "wecom" else 0)


def test_a_small_limit_splits_by_size_and_never_cuts_a_finding():
    channel = ch("wecom")
    big = TemplatesConfig(max_per_message=100)
    group = [notice(i, name="很长的小区名称" * 8) for i in range(40)]
    parts = [p for p in render_group(channel, group, manager="张三", as_of=AS_OF, templates=big) if p.kind == "alert"]
    assert len(parts) > 2
    for p, text in zip(parts, texts(parts)):
        assert len(text.encode()) <= 4096
        assert text.count("- 把握：") == len(p.finding_ids)


def test_a_finding_too_big_for_any_message_is_shortened_not_dropped():
    huge = TemplatesConfig(finding="**{severity}｜{community}**\n" + "很长的说明" * 400)
    parts = render_group(ch("wecom"), [notice(1), notice(2)], manager=None, as_of=AS_OF, templates=huge)
    assert [p.finding_ids for p in parts] == [("fid001",), ("fid002",)]  # soonest first
    for p, text in zip(parts, texts(parts)):
        assert len(p.payload["markdown"]["content"].encode()) <= 4096
        assert "…" in text and "很长的说明" in text


def test_estimated_holiday_schedules_are_said():
    text = texts(render_group(ch("dingtalk"), [notice(1, estimated=True)], manager="张三", as_of=AS_OF, templates=TemplatesConfig()))[0]
    assert "（春节前后，假期安排为推算）" in text


def test_templates_and_advice_are_overridable():
    templates = TemplatesConfig(
        finding="{severity}:{community_id}:{expected}", advice={"satisfaction.dip": "节前回访重点住户"}, footer="详情 {report_url}"
    )
    text = texts(render_group(ch("dingtalk"), [notice(4)], manager="李四", as_of=AS_OF, templates=templates, report_url="https://r"))[0]
    assert "警告:C004:78.4分" in text and "满意度下降：节前回访重点住户" in text and "详情 https://r" in text


def test_wecom_colours_the_severity():
    text = texts(render_group(ch("wecom"), [notice(1, "严重")], manager="张三", as_of=AS_OF, templates=TemplatesConfig()))[0]
    assert '<font color="warning">严重</font>' in text


def test_format_span():
    assert format_span(dt.date(2026, 2, 6), dt.date(2026, 2, 6)) == "2月6日（周五）"
    assert re.fullmatch(r"2月6日（周五）至2月8日（周日），共3天，最严重在2月7日", format_span(dt.date(2026, 2, 6), dt.date(2026, 2, 8), dt.date(2026, 2, 7)))


def test_separate_dips_of_one_communitys_metric_are_said_once_with_each_period():
    def dip(i, first, expected, severity="提醒", prob=0.7):
        f = make_finding(community_id="C007", first_day=first, days=3, peak_day=first + dt.timedelta(days=1), expected=expected,
                         baseline=81.8, depth=0.03, probability=prob, severity=severity, window="春节前后" if i == 1 else "",
                         finding_id=f"d{i}")
        return Notice("new", Community("C007", "上海·锦绣公馆", manager="李芳"), f)

    group = [dip(1, dt.date(2026, 1, 28), 79.9), dip(2, dt.date(2026, 3, 11), 79.2, prob=0.8), dip(3, dt.date(2026, 3, 18), 79.8),
             dip(4, dt.date(2026, 2, 4), 73.1, severity="警告", prob=0.9)]
    [part] = render_group(ch("dingtalk"), group, manager="李芳", as_of=AS_OF, templates=TemplatesConfig())
    text = texts([part])[0]
    assert part.finding_ids == ("d4", "d1", "d2", "d3")  # 警告 first; every finding carried
    assert text.count("- 时间：") == 2
    assert "🟡提醒｜上海·锦绣公馆 满意度下降（3段）" in text
    assert "- 时间：1月28日（周三）至1月30日（周五），共3天；3月11日（周三）至3月13日（周五），共3天；3月18日（周三）至3月20日（周五），共3天（春节前后）" in text
    assert "- 预计：最低 79.2分，低于阈值 85" in text and "- 把握：约80%" in text
    assert "警告｜上海·锦绣公馆 满意度下降**" in text  # a different severity is its own block
    # The webhook still gets every finding as its own record.
    hook = render_group(ch("webhook"), group, manager="李芳", as_of=AS_OF, templates=TemplatesConfig())
    assert [f["finding_id"] for f in hook[0].payload["findings"]] == ["d4", "d1", "d2", "d3"]


def test_the_test_message_names_the_route_and_channel_and_goes_through_the_notifier():
    now = dt.datetime(2026, 1, 20, 10, 0, tzinfo=dt.timezone.utc)
    part = render_test(ch("dingtalk", keyword="wuye"), route="华北", now=now)
    assert (part.kind, part.title, part.finding_ids) == ("test", "物业预警 测试", ())
    text = part.payload["markdown"]["text"]
    assert text.startswith("**物业预警 · 测试消息**\n\n线路「华北」经通道「c」发送于 ")
    assert f"{now.astimezone():%Y-%m-%d %H:%M}，收到即表示配置正确。" in text  # the sender's local time
    assert part.payload["markdown"]["title"] == "wuye 物业预警 测试" and text.endswith("\n\nwuye")  # the robot's keyword is added
    assert render_test(ch("wecom"), route="华北", now=now).payload["msgtype"] == "markdown"


def test_an_operations_message_says_what_happened_and_where():
    part = render_ops(ch("feishu"), "数据任务 broken 失败（退出码 3）", instance="cmd")
    assert (part.kind, part.title, part.finding_ids) == ("ops", "物业预警服务 运维提醒", ())
    card = part.payload["card"]
    assert card["header"]["title"]["content"] == "物业预警服务 运维提醒"
    assert card["elements"][0]["text"]["content"] == "**物业预警服务 运维提醒**\n\n数据任务 broken 失败（退出码 3）\n\n实例：cmd"



HOSTILE_NAME = "[点我](http://evil.example/phish)"
HOSTILE_MANAGER = "张三\n## 伪造标题 \x1b]0;pwned\x07\x1b[31m红*粗*"


@pytest.mark.parametrize("type_,style", [("dingtalk", None), ("dingtalk", "card"), ("wecom", None), ("feishu", None), ("feishu", "post"), ("webhook", None), ("console", None)])
def test_names_from_the_source_stay_text_on_every_platform(type_, style):
    """A community named like a markdown link must not become a link in the managers' group, a
    manager's name must not start a fake heading, and no escape sequence reaches a terminal."""
    channel = ch(type_, **({"style": style} if style else {}))
    parts = render_group(channel, [notice(1, name=HOSTILE_NAME)], manager=HOSTILE_MANAGER, as_of=AS_OF,
                         templates=TemplatesConfig(), mentions=Mentions(("13800000001",)))
    from forecaster.cli import _message_text

    for part in parts:
        text = _message_text(part.payload) + part.title
        assert "\x1b" not in text and "\x07" not in text  # no terminal escape
        assert "\n## " not in text and "\n##" not in text  # no heading of the manager's making
        if type_ != "console":  # markdown platforms: no link, no emphasis from a name
            assert "](" not in text and "[点我]" not in text and "http://evil" not in text and "*粗*" not in text
        assert "伪造标题" in text and "pwned" not in text and "31m" not in text  # readable; sequences gone whole
    alert = _message_text(parts[0].payload)
    assert "点我" in alert and ("［点我］" in alert or type_ == "console")


def test_shares_read_as_percentages_and_service_lines_by_their_labels():
    late = make_finding(
        community_id="C001", metric="closed_on_time", kind="dip", expected=0.82, limit=0.9, reference="阈值 90%",
        baseline=0.97, depth=0.15, severity="严重", finding_id="f1",
    )
    gate = make_finding(
        community_id="C001", metric="ticket_count.gate", kind="surge", expected=12.4, limit=6.0, reference="近4周基线 +50%",
        baseline=4.0, depth=2.1, severity="警告", finding_id="f2",
    )
    backlog = make_finding(
        community_id="C001", metric="open_backlog", kind="surge", expected=41.0, limit=20.0, reference="近4周基线 +50%",
        baseline=12.0, depth=2.4, severity="警告", finding_id="f3",
    )
    c = Community("C001", "阳光花园", "北京", "华北", "张三", None)
    parts = render_group(ch("dingtalk"), [Notice("new", c, f) for f in (late, gate, backlog)], manager="张三", as_of=AS_OF,
                         templates=TemplatesConfig(), labels={"gate": "门禁"})
    text = texts(parts)[0]
    for words in ("阳光花园 按时办结率下降", "预计：82%，低于阈值 90%（近4周水平 97%）", "门禁工单量上升", "预计：12.4单/天",
                  "积压工单上升", "预计：41.0单", "门禁工单量上升：提前增派门禁人手", "按时办结率下降：逐单催办", "积压工单上升：假期前清理积压工单"):
        assert words in text, words
    assert "0.82" not in text and "0.9" not in text


def test_many_periods_are_one_pattern_not_a_list():
    """The demo's 按时办结率下降（8段） listed eight Tuesday–Wednesday periods on one 300-character line."""
    from forecaster.alerts.render import format_periods

    weekly = [make_finding(first_day=dt.date(2026, 12, 8) + dt.timedelta(weeks=k), days=2) for k in range(8)]
    assert format_periods(weekly) == "12月8日至1月27日每周二至周三，共8次"
    mixed = [make_finding(first_day=dt.date(2026, 12, 1), days=3), make_finding(first_day=dt.date(2026, 12, 9), days=2),
             make_finding(first_day=dt.date(2026, 12, 20), days=4), make_finding(first_day=dt.date(2027, 1, 5), days=2)]
    assert format_periods(mixed) == "12月1日至1月6日间4段，共11天"
    assert format_periods(mixed[:2]) == "12月1日（周二）至12月3日（周四），共3天；12月9日（周三）至12月10日（周四），共2天"
    c = Community("C001", "阳光花园", manager="张三")
    notices = [Notice("new", c, make_finding(community_id="C001", first_day=f.first_day, days=2, severity="警告", finding_id=f"w{k}"))
               for k, f in enumerate(weekly)]
    [part] = render_group(ch("dingtalk"), notices, manager="张三", as_of=AS_OF, templates=TemplatesConfig())
    text = texts([part])[0]
    assert "满意度下降（8段）" in text and "- 时间：12月8日至1月27日每周二至周三，共8次" in text
    assert max(len(line) for line in text.splitlines()) < 80
