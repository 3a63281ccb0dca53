"""Reading the tickets in several processes at once, each a part of the table by creation time.

Reading, validating and summing tickets is most of a night's ingest, and one process does it on
one core. A SQL source can be read in parts (`SqlSource.read_batches(part=…)`): the tickets
table is cut at a few creation dates (`partition_cuts`, about equal work each), a pool of
processes reads, validates and sums the parts into day sums, and the calling process reads the
surveys and loads the saved sums meanwhile.

Day sums add up across parts, so the result is what one process reading it all would get, with
one case handled here: a ticket id in two parts. Each part also returns the hashes of its ticket
ids; a part holding an id of an earlier part is read again in this process knowing the earlier
parts' ids, so that its copy counts as the duplicate (first kept, parts in creation order), as
in a read in one go.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.config import Config
from forecaster.ingest.aggregate import combine_parts, daily_parts
from forecaster.ingest.incremental import ReadPlan
from forecaster.ingest.request import Shard, moment
from forecaster.ingest.tables import TableReader, empty_surveys, make_source
from forecaster.ingest.validate import SeenKeys, TableReport
from forecaster.util.db import sqlite_in_memory

__all__ = ["partition_cuts", "read_workers", "PartRead", "read_part", "PartitionedTickets"]

PARTS_PER_WORKER = 2  # more parts than processes: one that finishes early takes the next part
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


def partition_cuts(start: dt.date, as_of: dt.date, plan: ReadPlan | None, parts: int) -> tuple[dt.date, ...]:
    """Dates cutting the history window [start, as_of) into at most ``parts`` pieces of about
    equal work: every day counts the same on a full read; on an incremental night a day
    recomputed counts `READ_DAY_COST` and any other `OTHER_DAY_COST`. Increasing, strictly
    inside the window."""
    days = pd.date_range(start, as_of - dt.timedelta(days=1), freq="D")
    if parts <= 1 or len(days) < 2:
        return ()
    incremental = plan is not None and plan.incremental
    weight = np.where(plan.recomputed(pd.Series(days)), READ_DAY_COST, OTHER_DAY_COST) if incremental else np.ones(len(days), dtype=int)
    before = np.cumsum(weight) - weight  # work of the days before each day
    total = weight.sum()
    cuts = []
    for i in range(1, parts):
        at = int(np.searchsorted(before, total * i / parts))
        if 0 < at < len(days):
            cuts.append(days[at].date())
    return tuple(sorted(set(cuts)))


@dataclass(frozen=True)
class _PartJob:
    config: Config
    as_of: dt.date
    plan: ReadPlan | None
    known: frozenset[str]
    part: Shard


@dataclass
class PartRead:
    parts: pd.DataFrame  # day sums of the part's tickets
    report: TableReport | None  # None: nothing came back at all (not even an empty batch)
    hashes: np.ndarray  # sorted hashes of the ticket ids met (SeenKeys)


def read_part(job: _PartJob, seen: SeenKeys | None = None) -> PartRead:
    """Read, validate and sum one part of the tickets (in a worker process, or here). ``seen``:
    the ids of earlier parts, duplicates in this one."""
    seen = SeenKeys() if seen is None else seen
    reader = make_source(job.config)
    reports: list[TableReport] = []
    try:
        read = TableReader(reader, job.config, set(job.known), job.as_of, job.plan)
        pieces = [daily_parts(f, empty_surveys(), job.config.metrics) for f in read.tickets(reports, job.part, seen)]
    finally:
        reader.close()
    return PartRead(combine_parts(pieces), reports[0] if reports else None, seen.hashes())


class PartitionedTickets:
    """The tickets read by a pool of processes: started on construction; `collect` waits for
    the parts and gives their day sums and the tickets' report; `close` stops the pool."""

    def __init__(self, config: Config, as_of: dt.date, plan: ReadPlan | None, known: set[str], start: dt.date, workers: int):
        cuts = [moment(d) for d in partition_cuts(start, as_of, plan, workers * PARTS_PER_WORKER)]
        bounds = [None, *cuts, None]
        self.jobs = [_PartJob(config, as_of, plan, frozenset(known), (lo, hi)) for lo, hi in zip(bounds, bounds[1:])]
        self.rereads = 0  # parts read again here, for an id in an earlier part
        self.pool = ProcessPoolExecutor(max_workers=min(workers, len(self.jobs)))
        self.futures: list[Future] = [self.pool.submit(read_part, job) for job in self.jobs]

    def collect(self) -> tuple[list[pd.DataFrame], TableReport | None]:
        earlier = SeenKeys()
        pieces: list[pd.DataFrame] = []
        report: TableReport | None = None
        for job, future in zip(self.jobs, self.futures):
            got: PartRead = future.result()
            if earlier.runs and earlier.hits(got.hashes).any():
                got = read_part(job, seen=earlier)  # remembers this part's ids in `earlier` too
                self.rereads += 1
            else:
                earlier.remember(got.hashes)
            pieces.append(got.parts)
            if got.report is not None:
                if report is None:
                    report = TableReport(table=got.report.table, origin=got.report.origin)
                report.add(got.report)
        return pieces, report

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
