"""One read request for every source: what the night asks of a table (`ReadRequest`), what a
source can apply of it itself (`Capabilities`), and the reader interface (`BatchedSource`).

    request = ReadRequest("tickets", tmap, since=moment(start), changes=…, shard=…)
    for raw in reader.read_batches(request): ...   # RawTable batches

A source applies what its `Capabilities` say and reads the rest in full: more rows come back,
never fewer, and the caller (`forecaster.ingest.tables.TableReader`) cuts the window and the
days itself. A shard is the exception: a source without ``shards`` refuses a request for one
(each shard would get every row), and the tickets are read by one process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from forecaster.config import TableMap
from forecaster.ingest.validate import RawTable

__all__ = ["ReadRequest", "Capabilities", "BatchedSource", "Shard", "moment"]

# A shard of the tickets table: [lo, hi) of its created_at column as stored (None: open).
Shard = tuple[dt.datetime | None, dt.datetime | None]


def moment(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


@dataclass(frozen=True)
class ReadRequest:
    """A table to read, and which of its rows are wanted."""

    table: str  # communities | tickets | surveys
    tmap: TableMap  # its name at the source and its columns (the mapped ones are read)
    # The history window's first moment (tickets by created_at, surveys by date); None: all.
    since: dt.datetime | None = None
    # An incremental night's days read afresh, [first, end) (end None: open): tickets created or
    # closed on them, surveys dated on them. Empty: every day of the window.
    changes: tuple[tuple[dt.datetime, dt.datetime | None], ...] = ()
    # With ``changes``: a ticket created this long before a changed day may still have an event
    # on it (its response or closing deadline), so it is read too; so is one answered (or, with
    # its own deadline, due) on a changed day.
    lead: dt.timedelta = dt.timedelta(0)
    # One worker's shard of the tickets table (a partitioned read, `forecaster.ingest.partitions`).
    shard: Shard | None = None


@dataclass(frozen=True)
class Capabilities:
    """Which parts of a `ReadRequest` a source applies itself (False: it reads in full)."""

    window: bool = False  # leaves out rows before ``since``
    changes: bool = False  # reads only the rows of the days in ``changes``
    shards: bool = False  # reads only ``shard``: several processes can each read one


class BatchedSource:
    """What every source reader is: `read_batches` yields a table's rows in batches (at least
    one, maybe empty); `read` gives them whole."""

    capabilities = Capabilities()

    def read_batches(self, request: ReadRequest) -> Iterator[RawTable]:
        if request.shard is not None and not self.capabilities.shards:
            raise ValueError(f"{type(self).__name__} cannot read a shard of {request.table}: it reads tables in full")
        return self._read_batches(request)

    def _read_batches(self, request: ReadRequest) -> Iterator[RawTable]:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, request: ReadRequest) -> RawTable:
        return RawTable.concat(list(self.read_batches(request)))

    def close(self) -> None:
        pass
