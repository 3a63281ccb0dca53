"""Progress of a long stage: done / total, rate and time left.

On a terminal it redraws one line (at most twice a second); otherwise (a service, a log file)
it logs a line every ``every_s`` seconds, so a long run is visibly alive either way.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, TextIO

__all__ = ["Progress", "format_eta"]

log = logging.getLogger("forecaster.progress")


def format_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    def __init__(
        self,
        total: int,
        what: str = "series",
        *,
        stream: TextIO | None = None,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ):
        self.total, self.what, self.done = total, what, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s, self.clock = every_s, clock
        self.start = self.last = clock()

    def line(self) -> str:
        took = self.clock() - self.start
        rate = self.done / took if took > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        share = self.done / self.total if self.total else 1.0
        return f"{self.what}: {self.done:,}/{self.total:,} ({share:.0%}), {rate:.1f}/s, about {format_eta(left)} left"

    def advance(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if self.tty:
            if now - self.last >= 0.5 or self.done >= self.total:
                self.stream.write("\r" + self.line() + "\033[K")
                self.stream.flush()
                self.last = now
        elif now - self.last >= self.every_s and self.done < self.total:
            log.info(self.line())
            self.last = now

    def finish(self) -> None:
        took = self.clock() - self.start
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
        log.info("%s: %s done in %.1f s (%.1f/s)", self.what, f"{self.done:,}", took, self.done / took if took > 0 else 0.0)
