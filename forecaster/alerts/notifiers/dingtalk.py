"""DingTalk custom robots: markdown or an actionCard, 加签 in the query string, 20 a minute.

DESIGN.md: the signature is the URL-encoded base64 HMAC-SHA256 of ``f"{ms}\\n{secret}"`` keyed by
the secret, sent as ``timestamp`` and ``sign`` in the query string (the sign encoded once).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote_plus

from forecaster.alerts.notifiers.base import CodeRule, HttpNotifier, Mentions

__all__ = ["DingTalk", "dingtalk_sign"]

_THROTTLED = "too fast: the robot is throttled for 10 minutes"


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk 加签: URL-encoded base64 HMAC-SHA256 of ``"{timestamp}\\n{secret}"`` keyed by the secret."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


@dataclass
class DingTalk(HttpNotifier):
    type: ClassVar[str] = "dingtalk"
    rate_per_minute: ClassVar[int] = 20
    max_bytes: ClassVar[int | None] = 20_000
    codes: ClassVar[dict[int, CodeRule]] = {
        130101: ("retry", 600.0, _THROTTLED),
        410100: ("retry", 600.0, _THROTTLED),
        310000: ("failed", 0.0, "security check failed: signature, keyword or IP whitelist"),
        300001: ("failed", 0.0, "the access_token is not valid"),
        300005: ("failed", 0.0, "the access_token does not exist"),
        460101: ("failed", 0.0, "the message is too long"),
    }

    def payload(
        self, title: str, text: str, *, mentions: Mentions, link: str | None, severity: str, data: dict[str, Any] | None
    ) -> dict[str, Any]:
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

    def sign(self, url: str, payload: dict[str, Any], *, secret: str | None, message_id: str, now: dt.datetime) -> tuple[str, dict[str, Any]]:
        if secret:
            ms = int(now.timestamp() * 1000)
            url += ("&" if "?" in url else "?") + f"timestamp={ms}&sign={dingtalk_sign(secret, ms)}"
        return url, payload
