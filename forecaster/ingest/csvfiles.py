"""Reading source tables from CSV exports (one file per table, in ``source.csv.directory``).

Everything is read as text so that nothing is guessed wrongly (ids with leading zeros stay
as they are); validation parses dates and numbers and reports the file and line of every
bad value. Line numbers count the header as line 1, as a spreadsheet shows them.

The file is decoded here, line by line where a block does not decode (`DecodedFile`): a line
that is not readable in ``source.csv.encoding`` (one bad byte in a night's export) is a row
skipped and reported with its line and byte offset, like any other bad row, instead of
stopping the night. A file that is mostly unreadable is in another encoding: that is an error
saying which one it reads as. A byte-order mark (UTF-16, UTF-8) names the file's encoding.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from forecaster.config import CsvSourceConfig, TableMap
from forecaster.ingest.mapping import select_columns, table_key
from forecaster.ingest.request import BatchedSource, Capabilities, ReadRequest
from forecaster.ingest.validate import MAX_EXAMPLES, Problem, RawTable
from forecaster.util.errors import SourceError

__all__ = ["CsvSource", "DecodedFile", "BATCH_ROWS", "delimiter_hint"]

BATCH_ROWS = 100_000
BLOCK_BYTES = 1 << 20  # decoded at once when the whole block is readable (nearly always)
# A file with more unreadable lines than this, or with more than half of its lines so, is in
# another encoding (an error), not a good file with a bad line or two (rows skipped).
MAX_UNREADABLE_LINES = 100
# Encodings a line that the configured one cannot read is tried in, to say which it reads as.
OTHER_ENCODINGS = ("utf-8", "gbk", "gb18030", "big5")
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
OTHER_DELIMITERS = (";", "\t", "|", ",")


def _codec(encoding: str) -> str:
    """The codec's own name (``GBK``, ``cp936`` → ``gbk``); utf-8 with or without the mark are one."""
    name = codecs.lookup(encoding).name
    return "utf-8" if name == "utf-8-sig" else name


def _ascii_lines(encoding: str) -> bool:
    """Whether the encoding writes newlines, delimiters and quotes as ASCII bytes that never
    occur inside another character (utf-8, gbk, big5…; not utf-16), so lines split on b"\\n"."""
    codec = _codec(encoding)  # utf-8-sig's encoder writes the mark first
    return "\n,;\t|\"".encode(codec) == b"\n,;\t|\"" and not codec.startswith(("utf-16", "utf-32"))


def reads_as(data: bytes, configured: str) -> str | None:
    """The first of `OTHER_ENCODINGS` other than ``configured`` that reads ``data``, or None."""
    for encoding in OTHER_ENCODINGS:
        if _codec(encoding) == _codec(configured):
            continue
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    return None


def bom_encoding(start: bytes) -> str | None:
    """The encoding a file's first bytes (its byte-order mark) name, or None."""
    return next((encoding for bom, encoding in BOMS if start.startswith(bom)), None)


class DecodedFile(io.TextIOBase):
    """A file's text for the CSV parser, a block at a time. A block that does not decode is
    decoded line by line: a line that is not readable goes on with U+FFFD for its bad bytes
    (so that later lines keep their numbers) and is remembered in ``unreadable`` as (line,
    the bad byte's offset in the file, the line's bytes); the reader skips its row."""

    def __init__(self, binary: BinaryIO, encoding: str):
        self.binary, self.codec = binary, encoding
        self.lines = 0  # lines decoded so far (the header is line 1)
        self.offset = 0  # bytes decoded so far
        self.unreadable: list[tuple[int, int, bytes]] = []
        self.header: str | None = None  # the first line's text
        self._rest = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        """The next decoded block ("" at the end); ``size`` is only a hint."""
        while not self._done:
            block = self.binary.read(BLOCK_BYTES)
            data = self._rest + block
            if block:
                cut = data.rfind(b"\n") + 1
                if not cut:  # no line ends in it yet
                    self._rest = data
                    continue
                data, self._rest = data[:cut], data[cut:]
            else:
                self._done, self._rest = True, b""
            if data:
                text = self._decode(data)
                if self.header is None:
                    self.header = text.split("\n", 1)[0].rstrip("\r")
                return text
        return ""

    def _decode(self, data: bytes) -> str:
        try:
            text = data.decode(self.codec)
        except UnicodeDecodeError:
            parts = data.split(b"\n")
            lines = [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
            text = "".join(self._decode_line(line) for line in lines)
        else:
            self.lines += data.count(b"\n")
            self.offset += len(data)
        if data and not data.endswith(b"\n"):
            self.lines += 1  # the last line, without its newline
        return text

    def _decode_line(self, line: bytes) -> str:
        try:
            text = line.decode(self.codec)
        except UnicodeDecodeError as exc:
            self.unreadable.append((self.lines + 1, self.offset + exc.start, line))
            text = line.decode(self.codec, errors="replace")
        self.lines += line.endswith(b"\n")
        self.offset += len(line)
        return text


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
        encoding = self._encoding(path)
        try:
            with path.open("rb") as binary:
                if _ascii_lines(encoding):
                    text: DecodedFile | io.TextIOWrapper = DecodedFile(binary, encoding)
                else:  # utf-16: no line splits on bytes; any bad byte stops the file
                    text = io.TextIOWrapper(binary, encoding=encoding, newline="")
                yield from self._parse(text, path, name, tmap, encoding)
        except UnicodeDecodeError as exc:
            other = reads_as(path.read_bytes(), encoding)
            hint = f"; it reads as {other}: set source.csv.encoding: {other}" if other else "; set source.csv.encoding"
            raise SourceError(f"{path}: not readable as {encoding} ({exc.reason}){hint}") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
            raise SourceError(f"{path}: cannot parse as CSV: {exc}") from None

    def _encoding(self, path: Path) -> str:
        """``source.csv.encoding``, unless the file's byte-order mark says otherwise: a UTF-16 or
        UTF-8 file is refused naming its encoding (utf-8 and utf-8-sig are the same but for the mark)."""
        configured = self.config.encoding
        with path.open("rb") as f:
            marked = bom_encoding(f.read(4))
        if marked is None or _codec(marked) == _codec(configured) or marked.startswith("utf-16") and _codec(configured).startswith("utf-16"):
            return "utf-8-sig" if marked == "utf-8-sig" else configured
        raise SourceError(
            f"{path}: the file starts with a {marked.removesuffix('-sig').upper()} byte-order mark, "
            f"so it is not {configured}: set source.csv.encoding: {marked}"
        )

    def _parse(self, text, path: Path, name: str, tmap: TableMap, encoding: str) -> Iterator[RawTable]:
        chunks = pd.read_csv(
            text,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            sep=self.config.delimiter,
            skipinitialspace=True,
            quoting=csv.QUOTE_MINIMAL,
            chunksize=BATCH_ROWS,
        )
        line = 2  # the first data line, under the header
        with chunks:
            for frame in chunks:
                rows = len(frame)
                frame = frame.set_axis(self._header(list(frame.columns), text), axis=1).reset_index(drop=True)
                numbers = np.arange(line, line + rows)
                unread: list[Problem] = []
                if isinstance(text, DecodedFile):
                    readable, unread = self._unreadable(text, path, line, rows, encoding)
                    frame, numbers = frame[readable], numbers[readable]
                try:
                    picked = select_columns(frame, name, tmap, path.name)
                except SourceError as exc:
                    hint = delimiter_hint(list(frame.columns), self.config.delimiter)
                    if hint is None:
                        raise
                    raise SourceError(f"{exc}. {hint}") from None
                labels = pd.Series([f"line {n}" for n in numbers], dtype=object)
                line += rows
                yield RawTable(name, str(path.name), picked.reset_index(drop=True), labels, unread)

    def _header(self, parsed: list, text) -> list[str]:
        """The header's names as written: pandas renames a second ``community_id`` to
        ``community_id.1``, so that the first would be used without a word (`select_columns`
        refuses a mapped column that appears twice)."""
        names = [str(c).strip() for c in parsed]
        first = getattr(text, "header", None)
        if first is None:
            return names
        written = [c.strip() for c in next(csv.reader([first], delimiter=self.config.delimiter, skipinitialspace=True), [])]
        return written if len(written) == len(names) else names

    def _unreadable(self, text: DecodedFile, path: Path, line: int, rows: int, encoding: str) -> tuple[np.ndarray, list[Problem]]:
        """Which of the rows on lines [line, line + rows) were readable, and the others as
        problems; a `SourceError` when the header is not, or so many lines are not that the file
        must be in another encoding."""
        if text.unreadable and text.unreadable[0][0] == 1:
            _, offset, data = text.unreadable[0]
            raise SourceError(f"{path}: the header (line 1) is not readable as {encoding} (byte {offset:,}){_reads_as_hint(data, encoding)}")
        data_lines = max(text.lines - 1, 1)
        if len(text.unreadable) > MAX_UNREADABLE_LINES or 2 * len(text.unreadable) > data_lines:
            first, offset, data = text.unreadable[0]
            raise SourceError(
                f"{path}: not readable as {encoding}: {len(text.unreadable):,} of {data_lines:,} lines are not "
                f"(the first at line {first:,}, byte {offset:,}){_reads_as_hint(data, encoding)}"
            )
        readable = np.ones(rows, dtype=bool)
        problems: dict[str, Problem] = {}
        for n, offset, data in text.unreadable:
            if not line <= n < line + rows:
                continue
            readable[n - line] = False
            other = reads_as(data, encoding)
            reason = f"not readable as {encoding}" + (f" (reads as {other}; see source.csv.encoding)" if other else " (see source.csv.encoding)")
            problem = problems.setdefault(reason, Problem(reason, "skipped", 0, []))
            problem.count += 1
            if len(problem.examples) < MAX_EXAMPLES:
                problem.examples.append(f"line {n}: byte {offset:,}")
        return readable, list(problems.values())


def _reads_as_hint(data: bytes, encoding: str) -> str:
    other = reads_as(data, encoding)
    return f"; it reads as {other}: set source.csv.encoding: {other}" if other else "; set source.csv.encoding to the file's encoding"


def delimiter_hint(columns: list[str], delimiter: str) -> str | None:
    """When a header came out as one column holding another delimiter (a file separated by
    ``;`` or tabs read with ``,``), which delimiter and setting; else None."""
    if len(columns) != 1:
        return None
    counts = {sep: columns[0].count(sep) for sep in OTHER_DELIMITERS if sep != delimiter}
    sep = max(counts, key=counts.get, default=None)
    if sep is None or not counts[sep]:
        return None
    shown = '"\\t"' if sep == "\t" else f"'{sep}'"
    said = '"\\t"' if delimiter == "\t" else f"'{delimiter}'"
    return f"the header looks separated by {shown}, not {said}: set source.csv.delimiter: {shown}"
