"""The console: alerts printed to stdout (or a given stream) when no channel is configured."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

from forecaster.alerts.notifiers.base import BaseNotifier, Delivery, Mentions, plain_text

__all__ = ["Console"]


@dataclass
class Console(BaseNotifier):
    type: ClassVar[str] = "console"
    rate_per_minute: ClassVar[int] = 100_000

    def text(self, value: object) -> str:
        return plain_text(value)  # a terminal renders no markdown, but obeys escape sequences

    def payload(
        self, title: str, text: str, *, mentions: Mentions, link: str | None, severity: str, data: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {"title": title, "text": text}

    def send(self, payload: dict[str, Any], *, message_id: str, session: requests.Session, now: dt.datetime) -> Delivery:
        out = self.stream or sys.stdout
        title = payload.get("title", "")
        out.write(f"\n── {title} ──\n{payload.get('text', '')}\n")
        out.flush()
        return Delivery("delivered", "console")
