"""A generic webhook: the findings as data, an idempotency key, an optional HMAC; 60 a minute.

The signature is ``sha256=`` hex HMAC-SHA256 of ``"{timestamp}." + body`` (replay-safe). Any 2xx
answer is delivered; there is no platform code to read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, ClassVar

from forecaster.alerts.notifiers.base import Delivery, HttpNotifier, Mentions

__all__ = ["Webhook", "webhook_signature"]


def webhook_signature(secret: str, timestamp_s: int, body: bytes) -> str:
    """Generic webhook: ``sha256=`` hex HMAC-SHA256 of ``"{timestamp}." + body`` (replay-safe)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_s}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class Webhook(HttpNotifier):
    type: ClassVar[str] = "webhook"
    rate_per_minute: ClassVar[int] = 60
    max_bytes: ClassVar[int | None] = 256_000
    for_people: ClassVar[bool] = False  # a system takes everything its size limit allows

    def payload(
        self, title: str, text: str, *, mentions: Mentions, link: str | None, severity: str, data: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "type": "wuye.alert",
            "title": title,
            "text": text,
            "mentions": {"mobiles": list(mentions.mobiles), "userids": list(mentions.userids)},
            "report_url": link,
            **(data or {}),
        }

    def sign(self, url: str, payload: dict[str, Any], *, secret: str | None, message_id: str, now: dt.datetime) -> tuple[str, dict[str, Any]]:
        return url, {"message_id": message_id, **payload}

    def signed_headers(self, body: bytes, *, secret: str | None, message_id: str, now: dt.datetime) -> dict[str, str]:
        headers = {"Idempotency-Key": message_id}
        if secret:
            ts = int(now.timestamp())
            headers["X-Wuye-Timestamp"] = str(ts)
            headers["X-Wuye-Signature"] = webhook_signature(secret, ts, body)
        return headers

    def classify_answer(self, status: int, text: str) -> Delivery:
        return Delivery("delivered", f"HTTP {status}")
