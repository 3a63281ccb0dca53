"""`StopOnSignal`: the first SIGTERM/SIGINT asks the command to stop after the step in hand; a
second one stops at once, as Python's own handlers do."""

import signal

import pytest

from forecaster.util.stopping import StopOnSignal


def test_the_first_signal_only_asks_and_the_second_stops_at_once():
    with StopOnSignal() as stop:
        assert not stop.requested()
        signal.raise_signal(signal.SIGINT)
        assert stop.requested() and stop.signal_name == "SIGINT" and stop.exit_code == 130
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # Python's own handler again: Ctrl-C twice is immediate
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_handlers_are_restored_when_the_command_is_done():
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignal() as stop:
        assert signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before and not stop.requested() and stop.exit_code == 0
