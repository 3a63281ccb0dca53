"""Notifiers: signatures against the platforms' known answers, payload shapes, answer classes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import socket

import pytest
import requests

from forecaster.alerts.notifiers import (
    NOTIFIERS,
    Mentions,
    body_bytes,
    dingtalk_sign,
    feishu_sign,
    make_notifier,
    notifier_class,
    webhook_signature,
)
from forecaster.config import ChannelConfig, parse_config
from forecaster.util.errors import ConfigError


def test_dingtalk_sign_matches_the_known_answer_and_is_encoded_once():
    # DESIGN.md: MS=1577262236757, secret SEC1234567890abcdef.
    sign = dingtalk_sign("SEC1234567890abcdef", 1577262236757)
    assert sign == "f7qQ1A8KagEZ45y1gasTtKsEq5ERTeDXP9T%2BWkIqzDk%3D"
    assert "%25" not in sign  # not encoded twice


def test_feishu_sign_keys_the_hmac_with_timestamp_and_secret_over_an_empty_message():
    expected = base64.b64encode(hmac.new(b"1599360473\nsecret", b"", hashlib.sha256).digest()).decode()
    assert feishu_sign("secret", 1599360473) == expected
    # Not the DingTalk construction (key = secret, message = "ts\nsecret").
    assert feishu_sign("secret", 1599360473) != base64.b64encode(
        hmac.new(b"secret", b"1599360473\nsecret", hashlib.sha256).digest()
    ).decode()


def test_webhook_signature_covers_timestamp_and_body():
    a = webhook_signature("k", 100, b'{"a":1}')
    assert a.startswith("sha256=") and len(a) == 7 + 64
    assert a != webhook_signature("k", 101, b'{"a":1}') != webhook_signature("k", 100, b'{"a":2}')


def channel(type_, **extra):
    url = extra.pop("url", "https://robot.example.com/send?access_token=TOKEN123")
    return make_notifier("c", ChannelConfig(type=type_, url=url, **extra))


NOW = dt.datetime(2026, 1, 20, 10, 0, tzinfo=dt.timezone.utc)


def test_dingtalk_markdown_mentions_by_mobile_in_both_places_and_keeps_chinese():
    ch = channel("dingtalk", secret="SECxyz")
    payload = ch.build("物业预警", "**严重** 阳光花园", mentions=Mentions(("13800000001",)))
    assert payload["msgtype"] == "markdown"
    assert payload["at"]["atMobiles"] == ["13800000001"]
    assert "@13800000001" in payload["markdown"]["text"]
    url, headers, body = ch.prepare(payload, message_id="m1", now=NOW)
    assert "阳光花园".encode() in body  # ensure_ascii=False: characters, not \u escapes
    ms = int(NOW.timestamp() * 1000)
    assert url.endswith(f"&timestamp={ms}&sign={dingtalk_sign('SECxyz', ms)}")
    assert "TOKEN123" not in json.dumps(payload)  # the stored payload never holds the token


def test_dingtalk_card_style_is_an_action_card_with_the_report_link():
    ch = channel("dingtalk", style="card")
    payload = ch.build("t", "x", link="https://intra/r.html")
    assert payload["msgtype"] == "actionCard"
    assert payload["actionCard"]["singleURL"] == "https://intra/r.html"


def test_wecom_colours_severity_and_needs_a_text_follow_up_to_mention_by_mobile():
    ch = channel("wecom", url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K")
    assert ch.emphasis("严重", "严重") == '<font color="warning">严重</font>'
    payload = ch.build("t", "x", mentions=Mentions(("13800000001",), ("zhangsan",)))
    assert payload == {"msgtype": "markdown", "markdown": {"content": "x\n<@zhangsan>"}}
    follow = ch.build_mention(Mentions(("13800000001",)), "请查看")
    assert follow == {"msgtype": "text", "text": {"content": "请查看", "mentioned_mobile_list": ["13800000001"]}}
    assert channel("dingtalk").build_mention(Mentions(("1",)), "x") is None


def test_wecom_size_is_the_markdown_content_in_bytes():
    ch = channel("wecom", url="https://q/send?key=K")
    assert ch.fits({"msgtype": "markdown", "markdown": {"content": "预" * 1365}})  # 4095 bytes
    assert not ch.fits({"msgtype": "markdown", "markdown": {"content": "预" * 1366}})  # 4098 bytes


def test_feishu_signs_in_the_body_and_colours_the_card_by_severity():
    ch = channel("feishu", url="https://open.feishu.cn/open-apis/bot/v2/hook/H", secret="s")
    payload = ch.build("t", "x", severity="严重")
    assert payload["msg_type"] == "interactive" and payload["card"]["header"]["template"] == "red"
    _, _, body = ch.prepare(payload, message_id="m", now=NOW)
    sent = json.loads(body)
    assert sent["timestamp"] == str(int(NOW.timestamp())) and sent["sign"] == feishu_sign("s", int(NOW.timestamp()))
    post = channel("feishu", url="https://f/hook/H", style="post").build("t", "**a**\nb", link="https://r")
    assert post["content"]["post"]["zh_cn"]["content"][0] == [{"tag": "text", "text": "a"}]


def test_webhook_sends_the_findings_with_an_idempotency_key_and_signature():
    ch = channel("webhook", url="https://ops.example.com/hook", secret="k")
    payload = ch.build("t", "x", data={"findings": [{"finding_id": "f1"}]})
    url, headers, body = ch.prepare(payload, message_id="m1", now=NOW)
    assert headers["Idempotency-Key"] == "m1" and headers["X-Wuye-Message-Id"] == "m1"
    assert headers["X-Wuye-Signature"] == webhook_signature("k", int(NOW.timestamp()), body)
    assert json.loads(body)["findings"] == [{"finding_id": "f1"}]


def test_keyword_is_added_when_the_robot_requires_one():
    payload = channel("dingtalk", keyword="预警").build("通知", "内容")
    assert "预警" in payload["markdown"]["text"] and "预警" in payload["markdown"]["title"]


@pytest.mark.parametrize(
    "type_, status, text, outcome, code, pause",
    [
        ("dingtalk", 200, '{"errcode":0,"errmsg":"ok"}', "delivered", "0", 0),
        ("dingtalk", 200, '{"errcode":130101,"errmsg":"send too fast"}', "retry", "130101", 600),
        ("dingtalk", 200, '{"errcode":410100,"errmsg":"send too fast"}', "retry", "410100", 600),
        ("dingtalk", 200, '{"errcode":310000,"errmsg":"sign not match"}', "failed", "310000", 0),
        ("dingtalk", 200, '{"errcode":300001,"errmsg":"token is not exist"}', "failed", "300001", 0),
        ("wecom", 200, '{"errcode":45009,"errmsg":"api freq out of limit"}', "retry", "45009", 60),
        ("wecom", 200, '{"errcode":93000,"errmsg":"invalid webhook url"}', "failed", "93000", 0),
        ("wecom", 200, '{"errcode":40058,"errmsg":"too long"}', "failed", "40058", 0),
        ("feishu", 200, '{"code":19021,"msg":"sign match fail"}', "failed", "19021", 0),
        ("feishu", 200, '{"code":11232,"msg":"frequency limited"}', "retry", "11232", 60),
        ("feishu", 200, '{"StatusCode":0,"StatusMessage":"success"}', "delivered", "0", 0),
        ("webhook", 204, "", "delivered", "HTTP 204", 0),
        ("webhook", 502, "bad gateway", "retry", "HTTP 502", 0),
        ("webhook", 429, "slow down", "retry", "HTTP 429", 0),
        ("webhook", 404, "", "failed", "HTTP 404", 0),
        ("dingtalk", 200, "<html>proxy error</html>", "retry", "HTTP 200", 0),
        ("dingtalk", 200, '{"errcode":300005,"errmsg":"token not exist"}', "failed", "300005", 0),
        ("dingtalk", 200, '{"errcode":460101,"errmsg":"message too long"}', "failed", "460101", 0),
        ("dingtalk", 200, '{"errcode":999999,"errmsg":"something new"}', "failed", "999999", 0),
        ("dingtalk", 200, '{"errcode":"oops","errmsg":"odd"}', "failed", "oops", 0),
        ("dingtalk", 200, "[1, 2]", "retry", "HTTP 200", 0),
        ("dingtalk", 503, "busy", "retry", "HTTP 503", 0),
        ("dingtalk", 403, "", "failed", "HTTP 403", 0),
        ("wecom", 200, '{"errcode":0,"errmsg":"ok"}', "delivered", "0", 0),
        ("wecom", 200, '{"errcode":130101,"errmsg":"a DingTalk code"}', "failed", "130101", 0),
        ("wecom", 500, "", "retry", "HTTP 500", 0),
        ("feishu", 200, '{"code":0,"msg":"success"}', "delivered", "0", 0),
        ("feishu", 200, '{"code":9499,"msg":"too many request"}', "retry", "9499", 60),
        ("feishu", 200, '{"code":19024,"msg":"Key Words Not Found"}', "failed", "19024", 0),
        ("feishu", 200, '{"code":19001,"msg":"param invalid: incoming webhook access token invalid"}', "failed", "19001", 0),
        ("webhook", 200, "not json at all", "delivered", "HTTP 200", 0),
        ("webhook", 413, "", "failed", "HTTP 413", 0),
    ],
)
def test_answers_are_classified_with_the_platforms_code_and_message(type_, status, text, outcome, code, pause):
    d = channel(type_).classify(status, text)
    assert (d.outcome, d.code, d.pause_s) == (outcome, code, pause)
    assert d.retryable == (outcome == "retry")
    if outcome == "failed" and text.startswith("{"):
        assert json.loads(text).get("errmsg", json.loads(text).get("msg")) in d.detail


def test_retry_after_header_pauses_the_channel():
    assert channel("webhook").classify(429, "", "120").pause_s == 120


def test_an_http_status_without_a_body_says_what_it_means():
    assert channel("webhook").classify(404, "").detail == "no such webhook (check the url)"
    assert channel("wecom").classify(413, "").detail == "body too large"
    assert channel("dingtalk").classify(200, '{"errcode":130101,"errmsg":"send too fast"}').detail == (
        "send too fast (too fast: the robot is throttled for 10 minutes)"
    )


def test_network_failures_are_retryable_and_say_what_happened():
    with socket.socket() as idle:
        idle.bind(("127.0.0.1", 0))
        port = idle.getsockname()[1]  # bound, not listening: the connection is refused
        ch = channel("webhook", url=f"http://127.0.0.1:{port}/hook")
        with requests.Session() as session:
            refused = ch.send({"a": 1}, message_id="m1", session=session, now=NOW)
    assert (refused.outcome, refused.code, refused.detail, refused.retryable) == ("retry", "connection", "connection refused", True)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the connection, never answers
        ch = channel("dingtalk", url=f"http://127.0.0.1:{silent.getsockname()[1]}/robot/send?access_token=T", timeout_s=0.2)
        with requests.Session() as session:
            late = ch.send({"a": 1}, message_id="m2", session=session, now=NOW)
    assert (late.outcome, late.code, late.detail, late.retryable) == ("retry", "timeout", "no answer within 0.2 s", True)


def test_every_channel_type_has_a_notifier_holding_its_default_rate_and_size():
    types = set(ChannelConfig.model_fields["type"].annotation.__args__)
    assert set(NOTIFIERS) == types
    rates = {t: notifier_class(t).rate_per_minute for t in types}
    assert rates == {"dingtalk": 20, "wecom": 20, "feishu": 100, "webhook": 60, "console": 100_000}
    sizes = {t: notifier_class(t).max_bytes for t in types}
    assert sizes == {"dingtalk": 20_000, "wecom": 4_096, "feishu": 19_500, "webhook": 256_000, "console": None}
    assert make_notifier("q", ChannelConfig(type="wecom", url="https://q/send?key=K")).messages_per_window == 20
    assert make_notifier("f", ChannelConfig(type="feishu", url="https://f/hook/H", rate_limit=7)).messages_per_window == 7


def test_console_prints_the_title_and_text_and_is_always_delivered():
    import io

    out = io.StringIO()
    ch = make_notifier("console", ChannelConfig(type="console"), stream=out)
    payload = ch.build("物业预警", "**严重** 阳光花园", mentions=Mentions(("13800000001",)))
    assert payload == {"title": "物业预警", "text": "**严重** 阳光花园"}
    with requests.Session() as session:
        d = ch.send(payload, message_id="m", session=session, now=NOW)
    assert (d.outcome, d.retryable) == ("delivered", False)
    assert out.getvalue() == "\n── 物业预警 ──\n**严重** 阳光花园\n"


def test_body_bytes_is_compact_utf8():
    assert body_bytes({"a": "预警"}) == '{"a":"预警"}'.encode()


@pytest.mark.parametrize(
    "channel_cfg, words",
    [
        ({"type": "dingtalk"}, "needs a url"),
        ({"type": "wecom", "url": "ftp://x"}, "http"),
        ({"type": "wecom", "url": "https://x", "style": "card"}, "no style"),
        ({"type": "dingtalk", "url": "https://x", "style": "post"}, "markdown or card"),
    ],
)
def test_channel_config_errors_name_the_channel(channel_cfg, words):
    with pytest.raises(ConfigError) as err:
        parse_config({"alerts": {"channels": {"north": channel_cfg}}})
    assert "alerts.channels.north" in str(err.value) and words in str(err.value)


def test_template_with_an_unknown_field_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        parse_config({"alerts": {"templates": {"finding": "{community} {oops}"}}})
    assert "alerts.templates.finding" in str(err.value) and "{oops}" in str(err.value)
