"""The platforms: how a message looks to each robot, how it is signed, and what its answer means.

Building a payload (`Channel.build`, pure) is separate from sending it (`deliver`, I/O with an
injected ``requests.Session`` and clock). The stored payload never holds a token or signature:
those are added by `Channel.prepare` at the moment of sending, from the channel's secrets.

Every answer is classified as ``delivered``, ``retry`` (timeouts, connection errors, 5xx, 429,
the platforms' "too fast" codes) or ``failed`` (bad token, signature or keyword rejected, body
too large…), with the platform's own code and message, so an operator sees *why*.

Protocol facts (DESIGN.md): DingTalk signs ``f"{ms}\\n{secret}"`` with HMAC-SHA256 and sends
timestamp and sign in the query string (the sign URL-encoded once); Feishu signs with the key
``f"{s}\\n{secret}"`` over an empty message and sends both in the body; WeCom has no signature.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO
from urllib.parse import quote_plus

import requests

from forecaster.config import ChannelConfig
from forecaster.util.secret import redact

__all__ = [
    "Delivery",
    "Channel",
    "Mentions",
    "make_channel",
    "dingtalk_sign",
    "feishu_sign",
    "webhook_signature",
    "deliver",
    "body_bytes",
]

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    code: str = ""  # the platform's errcode, the HTTP status, or the network failure
    detail: str = ""  # the platform's message, in its words
    pause_s: float = 0.0  # the robot asked us to leave it alone this long (throttle)

    def describe(self) -> str:
        parts = [p for p in (self.code, self.detail) if p]
        return " ".join(parts) or self.outcome


@dataclass(frozen=True)
class Mentions:
    mobiles: tuple[str, ...] = ()
    userids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.mobiles or self.userids)


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The request body exactly as sent: UTF-8 JSON, Chinese kept as characters (not \\uXXXX)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk 加签: URL-encoded base64 HMAC-SHA256 of ``"{timestamp}\\n{secret}"`` keyed by the secret."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu: base64 HMAC-SHA256 keyed by ``"{timestamp}\\n{secret}"`` over an empty message."""
    key = f"{timestamp_s}\n{secret}".encode("utf-8")
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def webhook_signature(secret: str, timestamp_s: int, body: bytes) -> str:
    """Generic webhook: ``sha256=`` hex HMAC-SHA256 of ``"{timestamp}." + body`` (replay-safe)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_s}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


SEVERITY_COLOURS_WECOM = {"严重": "warning", "警告": "warning", "提醒": "comment"}
SEVERITY_TEMPLATES_FEISHU = {"严重": "red", "警告": "orange", "提醒": "yellow"}


@dataclass
class Channel:
    """One configured robot or webhook. ``name`` is the key in ``alerts.channels``."""

    name: str
    config: ChannelConfig
    stream: TextIO | None = field(default=None, repr=False)  # console output (default stdout)

    @property
    def type(self) -> str:
        return self.config.type

    # ------------------------------------------------------------------ building (pure)
    @property
    def max_bytes(self) -> int | None:
        """The largest payload the platform takes, measured by `fits`."""
        return {"dingtalk": 20_000, "wecom": 4_096, "feishu": 19_500, "webhook": 256_000}.get(self.type)

    def fits(self, payload: dict[str, Any]) -> bool:
        limit = self.max_bytes
        if limit is None:
            return True
        if self.type == "wecom":
            kind = payload["msgtype"]
            content = payload[kind]["content"].encode("utf-8")
            return len(content) <= (limit if kind == "markdown" else 2_048)
        return len(body_bytes(payload)) <= limit

    def emphasis(self, text: str, severity: str) -> str:
        """A severity word as the platform can colour it (WeCom's <font>; bold elsewhere)."""
        if self.type == "wecom":
            return f'<font color="{SEVERITY_COLOURS_WECOM.get(severity, "comment")}">{text}</font>'
        return text

    def build(
        self,
        title: str,
        text: str,
        *,
        mentions: Mentions = Mentions(),
        link: str | None = None,
        severity: str = "提醒",
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The platform payload for one message (markdown ``text``; no tables or HTML)."""
        title, text = self._with_keyword(title, text)
        if self.type == "dingtalk":
            if self.config.style == "card" and link:
                return {
                    "msgtype": "actionCard",
                    "actionCard": {"title": title, "text": text, "singleTitle": "查看报告", "singleURL": link},
                }
            if mentions.mobiles or mentions.userids:
                text += "\n\n" + " ".join(f"@{m}" for m in (*mentions.mobiles, *mentions.userids))
            return {
                "msgtype": "markdown",
                "markdown": {"title": title, "text": text},
                "at": {"atMobiles": list(mentions.mobiles), "atUserIds": list(mentions.userids), "isAtAll": False},
            }
        if self.type == "wecom":
            if mentions.userids:
                text += "\n" + " ".join(f"<@{u}>" for u in mentions.userids)
            return {"msgtype": "markdown", "markdown": {"content": text}}
        if self.type == "feishu":
            if mentions.userids:
                text += "\n" + " ".join(f"<at id={u}></at>" for u in mentions.userids)
            if self.config.style == "post":
                lines = [[{"tag": "text", "text": line.replace("**", "")}] for line in text.split("\n")]
                if link:
                    lines.append([{"tag": "a", "text": "查看报告", "href": link}])
                return {"msg_type": "post", "content": {"post": {"zh_cn": {"title": title, "content": lines}}}}
            return {
                "msg_type": "interactive",
                "card": {
                    "config": {"wide_screen_mode": True},
                    "header": {
                        "title": {"tag": "plain_text", "content": title},
                        "template": SEVERITY_TEMPLATES_FEISHU.get(severity, "blue"),
                    },
                    "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": text}}],
                },
            }
        if self.type == "webhook":
            return {
                "type": "wuye.alert",
                "title": title,
                "text": text,
                "mentions": {"mobiles": list(mentions.mobiles), "userids": list(mentions.userids)},
                "report_url": link,
                **(data or {}),
            }
        return {"title": title, "text": text}  # console

    def build_mention(self, mentions: Mentions, note: str) -> dict[str, Any] | None:
        """A follow-up message for mentions the main message cannot carry (WeCom markdown
        cannot @ by mobile: a short text message with ``mentioned_mobile_list`` does)."""
        if self.type == "wecom" and mentions.mobiles:
            return {"msgtype": "text", "text": {"content": note, "mentioned_mobile_list": list(mentions.mobiles)}}
        return None

    def _with_keyword(self, title: str, text: str) -> tuple[str, str]:
        keyword = self.config.keyword
        if keyword and keyword not in text:
            text = f"{text}\n\n{keyword}"
        if keyword and keyword not in title:
            title = f"{keyword} {title}"
        return title, text

    # ------------------------------------------------------------------ sending
    def prepare(self, payload: dict[str, Any], *, message_id: str, now: dt.datetime) -> tuple[str, dict[str, str], bytes]:
        """URL, headers and body for one send, signed at ``now``."""
        assert self.config.url is not None
        url = self.config.url.get()
        secret = self.config.secret.get() if self.config.secret else None
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Wuye-Message-Id": message_id}
        if self.type == "dingtalk" and secret:
            ms = int(now.timestamp() * 1000)
            url += ("&" if "?" in url else "?") + f"timestamp={ms}&sign={dingtalk_sign(secret, ms)}"
        if self.type == "feishu" and secret:
            ts = int(now.timestamp())
            payload = {"timestamp": str(ts), "sign": feishu_sign(secret, ts), **payload}
        if self.type == "webhook":
            payload = {"message_id": message_id, **payload}
        body = body_bytes(payload)
        if self.type == "webhook":
            headers["Idempotency-Key"] = message_id
            if secret:
                ts = int(now.timestamp())
                headers["X-Wuye-Timestamp"] = str(ts)
                headers["X-Wuye-Signature"] = webhook_signature(secret, ts, body)
        return url, headers, body

    def classify(self, status: int, text: str, retry_after: str | None = None) -> Delivery:
        """The platform's answer → delivered / retry / failed, keeping its code and message."""
        if status == 429 or status >= 500:
            pause = _seconds(retry_after)
            return Delivery("retry", f"HTTP {status}", _short(text), pause)
        if status >= 400:
            return Delivery("failed", f"HTTP {status}", _short(text) or _HTTP_HINTS.get(status, ""))
        if self.type == "webhook":
            return Delivery("delivered", f"HTTP {status}")
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            return Delivery("retry", f"HTTP {status}", "the answer is not JSON: " + _short(text))
        if not isinstance(answer, dict):
            return Delivery("retry", f"HTTP {status}", "unexpected answer: " + _short(text))
        code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
        message = str(answer.get("errmsg", answer.get("msg", answer.get("StatusMessage", ""))))
        try:
            code = int(code)
        except (TypeError, ValueError):
            return Delivery("failed", str(code), message)
        if code == 0:
            return Delivery("delivered", "0", message)
        rule = _PLATFORM_CODES.get(self.type, {}).get(code)
        if rule is not None:
            outcome, pause, hint = rule
            return Delivery(outcome, str(code), f"{message} ({hint})" if hint else message, pause)
        return Delivery("failed", str(code), message)


# (outcome, pause the channel for s, what it means) per platform code; unknown codes are failures.
_PLATFORM_CODES: dict[str, dict[int, tuple[Outcome, float, str]]] = {
    "dingtalk": {
        130101: ("retry", 600.0, "too fast: the robot is throttled for 10 minutes"),
        410100: ("retry", 600.0, "too fast: the robot is throttled for 10 minutes"),
        310000: ("failed", 0.0, "security check failed: signature, keyword or IP whitelist"),
        300001: ("failed", 0.0, "the access_token is not valid"),
        300005: ("failed", 0.0, "the access_token does not exist"),
        460101: ("failed", 0.0, "the message is too long"),
    },
    "wecom": {
        45009: ("retry", 60.0, "frequency limit"),
        93000: ("failed", 0.0, "the webhook key is not valid"),
        40058: ("failed", 0.0, "the message is too long"),
    },
    "feishu": {
        9499: ("retry", 60.0, "too many requests"),
        11232: ("retry", 60.0, "frequency limited"),
        19021: ("failed", 0.0, "signature check failed, or the clock is off by more than an hour"),
        19024: ("failed", 0.0, "the keyword check failed"),
    },
}

_HTTP_HINTS = {401: "unauthorised", 403: "forbidden", 404: "no such webhook (check the url)", 413: "body too large"}


def _short(text: str, limit: int = 300) -> str:
    text = redact((text or "").strip().replace("\n", " "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def make_channel(name: str, config: ChannelConfig, *, stream: TextIO | None = None) -> Channel:
    return Channel(name=name, config=config, stream=stream)


def deliver(
    channel: Channel,
    payload: dict[str, Any],
    *,
    message_id: str,
    session: requests.Session,
    now: dt.datetime,
) -> Delivery:
    """Send one payload now; never raises for a network or platform problem."""
    if channel.type == "console":
        out = channel.stream or sys.stdout
        title = payload.get("title", "")
        out.write(f"\n── {title} ──\n{payload.get('text', '')}\n")
        out.flush()
        return Delivery("delivered", "console")
    url, headers, body = channel.prepare(payload, message_id=message_id, now=now)
    try:
        response = session.post(url, data=body, headers=headers, timeout=channel.config.timeout_s)
    except requests.Timeout:
        return Delivery("retry", "timeout", f"no answer within {channel.config.timeout_s:g} s")
    except requests.ConnectionError as exc:
        return Delivery("retry", "connection", _connection_problem(exc))
    except requests.RequestException as exc:
        return Delivery("failed", type(exc).__name__, _short(str(exc)))
    return channel.classify(response.status_code, response.text, response.headers.get("Retry-After"))


def _connection_problem(exc: Exception) -> str:
    text = str(exc)
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("Temporary failure in name resolution", "host name not found (DNS)"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "the server closed the connection"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ):
        if needle in text:
            return words
    return _short(text, 200)
