"""WeCom (企业微信) group robots: markdown with coloured severity, no signature, 20 a minute.

WeCom measures the markdown content (4,096 bytes) or text content (2,048 bytes), not the body,
and its markdown cannot @ by mobile: a short text follow-up with ``mentioned_mobile_list`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from forecaster.alerts.notifiers.base import CodeRule, HttpNotifier, Mentions
from forecaster.vocab import severity_of

__all__ = ["WeCom"]

TEXT_MAX_BYTES = 2_048


@dataclass
class WeCom(HttpNotifier):
    type: ClassVar[str] = "wecom"
    rate_per_minute: ClassVar[int] = 20
    max_bytes: ClassVar[int | None] = 4_096
    codes: ClassVar[dict[int, CodeRule]] = {
        45009: ("retry", 60.0, "frequency limit"),
        93000: ("failed", 0.0, "the webhook key is not valid"),
        40058: ("failed", 0.0, "the message is too long"),
    }

    def fits(self, payload: dict[str, Any]) -> bool:
        kind = payload["msgtype"]
        content = payload[kind]["content"].encode("utf-8")
        return len(content) <= (self.max_bytes if kind == "markdown" else TEXT_MAX_BYTES)

    def emphasis(self, text: str, severity: str) -> str:
        level = severity_of(severity)
        return f'<font color="{level.wecom_colour if level else "comment"}">{text}</font>'

    def payload(
        self, title: str, text: str, *, mentions: Mentions, link: str | None, severity: str, data: dict[str, Any] | None
    ) -> dict[str, Any]:
        if mentions.userids:
            text += "\n" + " ".join(f"<@{u}>" for u in mentions.userids)
        return {"msgtype": "markdown", "markdown": {"content": text}}

    def build_mention(self, mentions: Mentions, note: str) -> dict[str, Any] | None:
        if mentions.mobiles:
            return {"msgtype": "text", "text": {"content": note, "mentioned_mobile_list": list(mentions.mobiles)}}
        return None
