"""Progress: a redrawn line on a terminal, a log line every so often otherwise."""

import io
import logging

from forecaster.util.progress import Progress, format_eta


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_on_a_terminal_one_line_is_redrawn_with_rate_and_time_left():
    clock, out = Clock(), io.StringIO()
    p = Progress(1000, "forecast", stream=out, clock=clock, tty=True)
    clock.t = 10
    p.advance(200)
    assert out.getvalue().endswith("\rforecast: 200/1,000 (20%), 20.0/s, about 40 s left\033[K")
    clock.t = 10.2
    p.advance(10)  # within half a second: not redrawn
    assert out.getvalue().count("\r") == 1
    p.finish()
    assert out.getvalue().endswith("\r\033[K")


def test_off_a_terminal_it_logs_every_so_often(caplog):
    caplog.set_level(logging.INFO, logger="forecaster.progress")
    clock, out = Clock(), io.StringIO()
    p = Progress(8000, "forecast", stream=out, clock=clock, tty=False, every_s=30)
    for step in range(1, 9):
        clock.t = step * 10
        p.advance(500)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "forecast: 1,500/8,000 (19%), 50.0/s, about 2 min 10 s left",
        "forecast: 3,000/8,000 (38%), 50.0/s, about 1 min 40 s left",
    ] and out.getvalue() == ""
    p.finish()
    assert caplog.records[-1].getMessage() == "forecast: 4,000 done in 80.0 s (50.0/s)"


def test_format_eta():
    assert [format_eta(s) for s in (5, 89, 90, 3725, 7300, float("inf"))] == ["5 s", "89 s", "1 min 30 s", "62 min 05 s", "2 h 01 min", "?"]
