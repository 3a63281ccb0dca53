"""Time, passed in: production uses `SystemClock`; tests use `FixedClock` and move it."""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol
from zoneinfo import ZoneInfo

__all__ = ["Clock", "SystemClock", "FixedClock", "today_in"]


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current moment, timezone-aware."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations)."""


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock:
    """A clock that stands still until moved; `monotonic` follows it."""

    def __init__(self, moment: dt.datetime):
        if moment.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self.moment = moment

    def now(self) -> dt.datetime:
        return self.moment

    def monotonic(self) -> float:
        return self.moment.timestamp()

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)


def today_in(clock: Clock, timezone: str) -> dt.date:
    """Today's date in ``timezone`` (the company's calendar day)."""
    return clock.now().astimezone(ZoneInfo(timezone)).date()
