"""Where the per-series work runs: in this process, or in a pool of processes over chunks.

The work is one pure function of a chunk of series, so every backend gives the same results.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TypeVar

__all__ = ["map_chunks", "chunked", "resolve_workers", "Interrupted", "process_pool", "exit_with_parent"]

# How often a pool worker checks that the process that started it is still there.
PARENT_CHECK_S = 1.0


class Interrupted(Exception):
    """The caller asked the work to stop (a service shutting down)."""


T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(workers: int | None) -> int:
    """``None`` or 0 → all cores."""
    return max(1, workers or os.cpu_count() or 1)


def exit_with_parent(first_parent: int, every_s: float = PARENT_CHECK_S) -> None:
    """Pool initializer: a watcher thread ends this worker when its parent is gone.

    A parent killed with SIGKILL cannot stop its pool, and the workers (a few hundred MB each)
    would live on under PID 1, deaf to the SIGTERM handler they inherited from `serve`. An
    orphan is re-parented, so a changed ``os.getppid()`` means the parent died."""

    def watch() -> None:
        while os.getppid() == first_parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool whose workers exit when this process dies (see `exit_with_parent`). Every pool of
    this package is made here."""
    return ProcessPoolExecutor(max_workers=workers, initializer=exit_with_parent, initargs=(os.getpid(),))


def chunked(items: Sequence[T], n_chunks: int) -> list[Sequence[T]]:
    n_chunks = max(1, min(n_chunks, len(items)))
    size, extra = divmod(len(items), n_chunks)
    out, start = [], 0
    for i in range(n_chunks):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return [c for c in out if len(c)]


def map_chunks(
    fn: Callable[[T], R],
    chunks: Sequence[T],
    *,
    backend: str = "process",
    workers: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_done: Callable[[int], None] = lambda i: None,
    address: str | None = None,
) -> list[R]:
    """``[fn(c) for c in chunks]``, in order, on the chosen backend. ``on_done(i)`` is called as
    each chunk finishes (in any order). When ``should_stop()`` turns true, chunks not yet
    started are dropped and `Interrupted` is raised."""
    workers = resolve_workers(workers)
    if backend == "dask":
        return _map_dask(fn, chunks, address=address, workers=workers, should_stop=should_stop, on_done=on_done)
    if backend == "serial" or workers == 1 or len(chunks) <= 1:
        out = []
        for i, c in enumerate(chunks):
            if should_stop():
                raise Interrupted()
            out.append(fn(c))
            on_done(i)
        return out
    if backend != "process":
        raise ValueError(f"unknown engine backend {backend!r} (serial, process or dask)")
    pool = process_pool(min(workers, len(chunks)))
    try:
        futures = [pool.submit(fn, c) for c in chunks]
        index = {f: i for i, f in enumerate(futures)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # a chunk that raised stops the map, as a serial loop would
                on_done(index[future])
            if pending and should_stop():
                raise Interrupted()
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _map_dask(fn, chunks, *, address, workers, should_stop, on_done) -> list:
    """The same map on a Dask cluster: the scheduler at ``address``, or a local cluster of
    ``workers`` processes started for this map. Workers need this package installed."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError("engine.backend dask needs the dask extra: pip install 'wuye-forecaster[dask]'") from None
    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(address or cluster)
    try:
        futures = client.map(fn, list(chunks), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            future.result()  # a chunk that raised stops the map, as a serial loop would
            on_done(index[future.key])
            if should_stop():
                client.cancel(futures)
                raise Interrupted()
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
