"""A partitioned read: the tickets read in several processes at once, each a shard of the table
by creation time.

Reading, validating and summing tickets is most of a night's ingest, and one process does it on
one core. A source with ``capabilities.shards`` (SQL) can be read a shard at a time (a
`ReadRequest` with ``shard=(lo, hi)``): the tickets table is cut at a few creation dates
(`shard_cuts`, about equal work each), a pool of processes reads, validates and sums the shards
into day sums, and the calling process reads the surveys and loads the saved sums meanwhile.

Day sums add up across shards, so the result is what one process reading it all would get, with
one case handled here: a ticket id in two shards. Each shard also returns the hashes of its
ticket ids; a shard holding an id of an earlier shard is read again in this process knowing the
earlier shards' ids, so that its copy counts as the duplicate (first kept, shards in creation
order), as in a read in one go.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.config import Config
from forecaster.ingest.aggregate import combine_day_sums, day_sums
from forecaster.ingest.incremental import ReadPlan
from forecaster.ingest.request import Shard, moment
from forecaster.ingest.tables import TableReader, empty_surveys, make_source
from forecaster.ingest.validate import SeenKeys, TableReport
from forecaster.util.db import sqlite_in_memory
from forecaster.util.engine import process_pool

__all__ = ["shard_cuts", "read_workers", "ShardRead", "read_shard", "PartitionedTickets"]

SHARDS_PER_WORKER = 2  # more shards than processes: one that finishes early takes the next shard
# On an incremental night, a day not read afresh costs a tenth of one read afresh: its rows are
# only looked at by the database, not fetched and validated (measured on SQLite: 0.2 µs against
# 5 µs a row fetched, validated and summed; rounded up for other databases).
READ_DAY_COST, OTHER_DAY_COST = 10, 1


def read_workers(config: Config) -> int:
    """Processes reading the tickets: ``source.sql.read_workers``, by default as many as the
    engine runs (all cores), one when the engine is serial or the database is in memory."""
    from forecaster.util.engine import resolve_workers

    if config.source.type != "sql":
        return 1
    if sqlite_in_memory(config.source.sql.url.get()):
        return 1  # another process would open an empty database of its own
    if config.source.sql.read_workers is not None:
        return config.source.sql.read_workers
    return 1 if config.engine.backend == "serial" else resolve_workers(config.engine.workers)


def shard_cuts(start: dt.date, as_of: dt.date, plan: ReadPlan | None, shards: int) -> tuple[dt.date, ...]:
    """Dates cutting the history window [start, as_of) into at most ``shards`` pieces of about
    equal work: every day counts the same on a full read; on an incremental night a day
    recomputed counts `READ_DAY_COST` and any other `OTHER_DAY_COST`. Increasing, strictly
    inside the window."""
    days = pd.date_range(start, as_of - dt.timedelta(days=1), freq="D")
    if shards <= 1 or len(days) < 2:
        return ()
    incremental = plan is not None and plan.incremental
    weight = np.where(plan.recomputed(pd.Series(days)), READ_DAY_COST, OTHER_DAY_COST) if incremental else np.ones(len(days), dtype=int)
    before = np.cumsum(weight) - weight  # work of the days before each day
    total = weight.sum()
    cuts = []
    for i in range(1, shards):
        at = int(np.searchsorted(before, total * i / shards))
        if 0 < at < len(days):
            cuts.append(days[at].date())
    return tuple(sorted(set(cuts)))


@dataclass(frozen=True)
class _ShardJob:
    config: Config
    as_of: dt.date
    plan: ReadPlan | None
    known: frozenset[str]
    shard: Shard
    latest: pd.Timestamp | None = None


@dataclass
class ShardRead:
    day_sums: pd.DataFrame  # of the shard's tickets
    report: TableReport | None  # None: nothing came back at all (not even an empty batch)
    hashes: np.ndarray  # sorted hashes of the ticket ids met (SeenKeys)


def read_shard(job: _ShardJob, seen: SeenKeys | None = None) -> ShardRead:
    """Read, validate and sum one shard of the tickets (in a worker process, or here). ``seen``:
    the ids of earlier shards, duplicates in this one."""
    seen = SeenKeys() if seen is None else seen
    reader = make_source(job.config)
    reports: list[TableReport] = []
    try:
        read = TableReader(reader, job.config, set(job.known), job.as_of, job.plan, job.latest)
        pieces = [day_sums(f, empty_surveys(), job.config.metrics) for f in read.tickets(reports, job.shard, seen)]
    finally:
        reader.close()
    return ShardRead(combine_day_sums(pieces), reports[0] if reports else None, seen.hashes())


class PartitionedTickets:
    """The tickets read by a pool of processes: started on construction; `collect` waits for
    the shards and gives their day sums and the tickets' report; `close` stops the pool."""

    def __init__(
        self,
        config: Config,
        as_of: dt.date,
        plan: ReadPlan | None,
        known: set[str],
        start: dt.date,
        workers: int,
        latest: pd.Timestamp | None = None,
    ):
        cuts = [moment(d) for d in shard_cuts(start, as_of, plan, workers * SHARDS_PER_WORKER)]
        bounds = [None, *cuts, None]
        self.jobs = [_ShardJob(config, as_of, plan, frozenset(known), (lo, hi), latest) for lo, hi in zip(bounds, bounds[1:])]
        self.rereads = 0  # shards read again here, for an id in an earlier shard
        self.pool = process_pool(min(workers, len(self.jobs)))
        self.futures: list[Future] = [self.pool.submit(read_shard, job) for job in self.jobs]

    def collect(self) -> tuple[list[pd.DataFrame], TableReport | None]:
        earlier = SeenKeys()
        pieces: list[pd.DataFrame] = []
        report: TableReport | None = None
        for job, future in zip(self.jobs, self.futures):
            got: ShardRead = future.result()
            if earlier.runs and earlier.hits(got.hashes).any():
                got = read_shard(job, seen=earlier)  # remembers this shard's ids in `earlier` too
                self.rereads += 1
            else:
                earlier.remember(got.hashes)
            pieces.append(got.day_sums)
            if got.report is not None:
                if report is None:
                    report = TableReport(table=got.report.table, origin=got.report.origin)
                report.add(got.report)
        return pieces, report

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
