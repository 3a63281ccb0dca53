"""A command asked to stop (SIGTERM, Ctrl-C) finishes the step in hand instead of dying in it.

Python's default for SIGTERM ends the process at once, wherever it is. For `forecaster run` and
`forecaster outbox --send` that may be between a robot's answer and the write that records it,
the one moment after which a message is sent a second time (the outbox is at least once). Inside
`StopOnSignal` the first SIGTERM or SIGINT only sets a flag: the run stops at its next stage and
the outbox after the message in flight is recorded. A second signal stops at once, as before.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["StopOnSignal"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignal:
    """``with StopOnSignal() as stop:`` … ``should_stop=stop.requested`` … ``stop.signal_name``."""

    def __init__(self, signals: tuple[signal.Signals, ...] = SIGNALS):
        self.signals = signals
        self.received: signal.Signals | None = None
        self._event = threading.Event()
        self._previous: dict[signal.Signals, object] = {}

    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def signal_name(self) -> str:
        return self.received.name if self.received is not None else ""

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by that signal (128 + its number)."""
        return 128 + int(self.received) if self.received is not None else 0

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._event.is_set():  # the second time: stop now
            self._restore()
            signal.raise_signal(signum)
            return
        self.received = signal.Signals(signum)
        self._event.set()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
