"""Reading source tables from CSV exports (one file per table, in ``source.csv.directory``).

Everything is read as text so that nothing is guessed wrongly (ids with leading zeros stay
as they are); validation parses dates and numbers and reports the file and line of every
bad value. Line numbers count the header as line 1, as a spreadsheet shows them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from forecaster.config import CsvSourceConfig, TableMap
from forecaster.ingest.mapping import select_columns, table_key
from forecaster.ingest.request import BatchedSource, Capabilities, ReadRequest
from forecaster.ingest.validate import RawTable
from forecaster.util.errors import SourceError

__all__ = ["CsvSource", "BATCH_ROWS"]

BATCH_ROWS = 100_000


class CsvSource(BatchedSource):
    # A file has no index to pick rows by: every request reads the whole file (the caller cuts).
    capabilities = Capabilities()

    def __init__(self, config: CsvSourceConfig):
        self.config = config

    def path_for(self, tmap: TableMap) -> Path:
        path = Path(tmap.table)
        if not path.suffix:
            path = path.with_suffix(".csv")
        return path if path.is_absolute() else self.config.directory / path

    def _read_batches(self, request: ReadRequest) -> Iterator[RawTable]:
        """The whole file's rows in batches of `BATCH_ROWS` (at least one batch, maybe empty)."""
        name, tmap = request.table, request.tmap
        path = self.path_for(tmap)
        if not path.is_file():
            raise SourceError(
                f"{path}: file not found for the {name} table. Put the export there or set "
                f"{table_key(name)}.table (file name) / source.csv.directory"
            )
        line = 2  # the first data line, under the header
        try:
            chunks = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                encoding=self.config.encoding,
                sep=self.config.delimiter,
                skipinitialspace=True,
                quoting=csv.QUOTE_MINIMAL,
                chunksize=BATCH_ROWS,
            )
            with chunks:
                for frame in chunks:
                    frame.columns = [str(c).strip() for c in frame.columns]
                    frame = select_columns(frame, name, tmap, path.name).reset_index(drop=True)
                    labels = pd.Series([f"line {line + i}" for i in range(len(frame))], dtype=object)
                    line += len(frame)
                    yield RawTable(name, str(path.name), frame, labels)
        except UnicodeDecodeError as exc:
            raise SourceError(
                f"{path}: not readable as {self.config.encoding} ({exc.reason} at byte {exc.start}); "
                "set source.csv.encoding (e.g. gbk for exports from older Excel)"
            ) from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
            raise SourceError(f"{path}: cannot parse as CSV: {exc}") from None
