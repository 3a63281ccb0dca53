"""The read-ahead thread: same items in the same order, errors where the consumer meets them,
and a consumer that stops early stops the producer (its generator is closed)."""

import threading

import pytest

from forecaster.util.prefetch import prefetch


def test_items_come_in_order_and_are_produced_in_another_thread():
    threads = set()

    def produce():
        for i in range(50):
            threads.add(threading.current_thread().name)
            yield i

    assert list(prefetch(produce())) == list(range(50))
    assert threads == {"prefetch"}


def test_an_error_in_the_producer_reaches_the_consumer_after_the_items_before_it():
    def produce():
        yield 1
        yield 2
        raise ValueError("table tickets: query failed")

    got = []
    with pytest.raises(ValueError, match="query failed"):
        for item in prefetch(produce()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_closes_the_producer():
    closed = threading.Event()

    def produce():
        try:
            for i in range(10_000):
                yield i
        finally:
            closed.set()

    items = prefetch(produce(), depth=2)
    assert next(items) == 0
    items.close()
    assert closed.is_set()  # close() waits for the producer to stop
