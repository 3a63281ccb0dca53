"""Feishu (飞书) custom bots: an interactive card coloured by severity, or a post; 100 a minute.

DESIGN.md: the signature is the base64 HMAC-SHA256 keyed by ``f"{s}\\n{secret}"`` over an empty
message, sent with the timestamp in the body.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, ClassVar

from forecaster.alerts.notifiers.base import CodeRule, HttpNotifier, Mentions
from forecaster.vocab import severity_of

__all__ = ["Feishu", "feishu_sign"]


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu: base64 HMAC-SHA256 keyed by ``"{timestamp}\\n{secret}"`` over an empty message."""
    key = f"{timestamp_s}\n{secret}".encode("utf-8")
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


@dataclass
class Feishu(HttpNotifier):
    type: ClassVar[str] = "feishu"
    rate_per_minute: ClassVar[int] = 100
    max_bytes: ClassVar[int | None] = 19_500
    codes: ClassVar[dict[int, CodeRule]] = {
        9499: ("retry", 60.0, "too many requests"),
        11232: ("retry", 60.0, "frequency limited"),
        19021: ("failed", 0.0, "signature check failed, or the clock is off by more than an hour"),
        19024: ("failed", 0.0, "the keyword check failed"),
    }

    def payload(
        self, title: str, text: str, *, mentions: Mentions, link: str | None, severity: str, data: dict[str, Any] | None
    ) -> dict[str, Any]:
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
                    "template": level.feishu_template if (level := severity_of(severity)) else "blue",
                },
                "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": text}}],
            },
        }

    def sign(self, url: str, payload: dict[str, Any], *, secret: str | None, message_id: str, now: dt.datetime) -> tuple[str, dict[str, Any]]:
        if secret:
            ts = int(now.timestamp())
            payload = {"timestamp": str(ts), "sign": feishu_sign(secret, ts), **payload}
        return url, payload
