"""Reading source tables from a ticket system's HTTP JSON API, page by page.

Each table is an endpoint (``source.tables.<table>.table`` is its path under ``base_url``)
that returns either a JSON list or an object holding the list under ``paging.items_key``.
Two paging styles: ``page`` (page number + page size parameters; a short page ends it) and
``next`` (the response carries the next page's URL or cursor under ``paging.next_key``).

Timeouts, connection errors, 429 and 5xx are retried with exponential backoff; other 4xx
are not (a wrong token does not get better by asking again). ``timeout_s`` bounds each request
as a whole, body included (requests' own timeout is per socket read). An API that answers a
page it answered before (it ignores the page parameter, or repeats its cursor) is stopped
there. The HTTP session and the sleep function are passed in so tests control them.
"""

from __future__ import annotations

import email.message
import html
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import pandas as pd
import requests
import urllib3

from forecaster.config import HttpSourceConfig, TableMap
from forecaster.ingest.mapping import select_columns
from forecaster.ingest.request import BatchedSource, Capabilities, ReadRequest
from forecaster.ingest.validate import RawTable
from forecaster.util.errors import SourceError
from forecaster.util.secret import mask_url

__all__ = ["HttpSource"]

BATCH_ROWS = 100_000
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
READ_BYTES = 65_536  # at most this much per socket read, so that the deadline is checked often
ERROR_BYTES = 65_536  # of an error answer's body, for its message
SHOWN_CHARS = 200  # of an error answer's text in a message


class _Late(Exception):
    """The answer was not complete by the request's deadline."""


def read_within(raw, deadline: float, clock: Callable[[], float] = time.monotonic, limit: int | None = None) -> bytes:
    """The body of a streamed response, read until its end (or ``limit`` bytes); `_Late` once
    ``clock()`` passes ``deadline``. Each read takes what has arrived (``read1``), so a body
    that trickles in is cut at the deadline, not when it ends."""
    read = getattr(raw, "read1", None) or raw.read  # read1: urllib3 2
    parts: list[bytes] = []
    size = 0
    while limit is None or size < limit:
        try:
            chunk = read(READ_BYTES)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.Timeout(exc) from None
        except urllib3.exceptions.HTTPError as exc:
            raise requests.ConnectionError(exc) from None
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if clock() > deadline:
            raise _Late
    return b"".join(parts)


_META_CHARSET = re.compile(rb"""<meta[^>]*charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_HIDDEN = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def body_charset(content_type: str, body: bytes) -> str | None:
    """The charset an answer declares: in its Content-Type, else in an HTML ``<meta charset>``."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    return header.get_content_charset() or next((m.decode("ascii") for m in _META_CHARSET.findall(body[:4096])), None)


def readable_text(body: bytes, encoding: str | None, limit: int = SHOWN_CHARS) -> str:
    """An answer's body as text a person can read in a message: decoded with ``encoding``
    (UTF-8 when unknown or unknown to Python), an HTML page's tags, scripts and styles left
    out, whitespace collapsed, cut at ``limit`` characters."""
    try:
        text = body.decode(encoding or "utf-8", errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    if _TAG.search(text):
        text = html.unescape(_TAG.sub(" ", _HIDDEN.sub(" ", text)))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def answer_text(response: requests.Response, limit: int = SHOWN_CHARS) -> str:
    """`readable_text` of a response, in its declared charset or else the one its bytes look
    like: requests takes text/* without a charset as ISO-8859-1, which garbles Chinese."""
    body = response.content or b""
    encoding = body_charset(response.headers.get("Content-Type", ""), body) or response.apparent_encoding
    return readable_text(body, encoding, limit)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def stays_on(base_url: str, url: str) -> bool:
    """Whether ``url`` is on ``base_url``'s server (scheme, host and port, not a string prefix:
    ``:1808`` is not ``:18082``) and under its path: only then may it get the token."""
    base, other = urlsplit(base_url), urlsplit(url)
    try:
        ports = [p.port or _DEFAULT_PORTS.get(p.scheme) for p in (base, other)]
    except ValueError:  # a port that is no number
        return False
    if base.scheme.lower() != other.scheme.lower() or (base.hostname or "") != (other.hostname or "") or ports[0] != ports[1]:
        return False
    root = base.path.rstrip("/") + "/"
    return (other.path.rstrip("/") + "/").startswith(root)

class HttpSource(BatchedSource):
    def __init__(
        self,
        config: HttpSourceConfig,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config = config
        self.session = session or requests.Session()
        self._own_session = session is None
        self.sleep = sleep
        self.clock = time.monotonic  # the requests' deadlines

    @property
    def capabilities(self) -> Capabilities:
        # The window goes out as a parameter when the API takes one; the API is not asked for
        # changes only, nor for shards: those are read in full (the caller cuts).
        return Capabilities(window=bool(self.config.since_param))

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.config.token is not None:
            scheme = f"{self.config.auth_scheme} " if self.config.auth_scheme else ""
            headers[self.config.auth_header] = scheme + self.config.token.get()
        return headers

    def _get(self, url: str, params: dict[str, Any] | None) -> Any:
        cfg = self.config
        shown = mask_url(url)
        last = ""
        for attempt in range(cfg.retries + 1):
            if attempt:
                self.sleep(cfg.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._fetch(url, params)
            except _Late:
                last = f"answer not complete within {cfg.timeout_s:g} s (source.http.timeout_s bounds each request as a whole)"
                continue
            except requests.Timeout:
                last = f"timed out after {cfg.timeout_s:g} s"
                continue
            except requests.ConnectionError as exc:
                last = f"connection failed ({type(exc).__name__})"
                continue
            if response.status_code in RETRY_STATUS:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                hint = " (check source.http.token)" if response.status_code in (401, 403) else ""
                raise SourceError(f"GET {shown}: HTTP {response.status_code}{hint}: {answer_text(response)}")
            try:
                return response.json()
            except ValueError:
                raise SourceError(f"GET {shown}: response is not JSON: {answer_text(response, 120)!r}") from None
        raise SourceError(f"GET {shown}: gave up after {cfg.retries + 1} attempts: {last}")

    def _fetch(self, url: str, params: dict[str, Any] | None) -> requests.Response:
        """The response with its body read (none for a status that is retried), all within
        ``timeout_s`` of the start: requests' timeout bounds each socket read only, and an API
        whose body trickles in a byte a second would hold the night for as long as it likes."""
        deadline = self.clock() + self.config.timeout_s
        response = self.session.get(url, params=params, headers=self._headers(), timeout=self.config.timeout_s, stream=True)
        try:
            if response.status_code not in RETRY_STATUS:
                limit = ERROR_BYTES if response.status_code >= 400 else None
                # Kept where requests keeps a body it read itself: .json(), .text work as usual.
                response._content = read_within(response.raw, deadline, self.clock, limit)
                # Read to its end, the connection serves the next page (close() only releases it).
                response._content_consumed = limit is None
        finally:
            response.close()
        return response

    def _items(self, body: Any, url: str) -> list[dict[str, Any]]:
        items = body if isinstance(body, list) else body.get(self.config.paging.items_key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise SourceError(
                f"GET {mask_url(url)}: expected a JSON list or an object with a list under "
                f"{self.config.paging.items_key!r} (source.http.paging.items_key)"
            )
        return items

    def _read_batches(self, request: ReadRequest) -> Iterator[RawTable]:
        """The endpoint's items in batches of about `BATCH_ROWS` (whole pages; at least one
        batch, maybe empty). The request's ``since`` goes out as ``source.http.since_param``."""
        name, tmap = request.table, request.tmap
        cfg, paging = self.config, self.config.paging
        url = urljoin(cfg.base_url + "/", tmap.table.lstrip("/"))
        params: dict[str, Any] = {}
        if request.since is not None and cfg.since_param and name != "communities":
            params[cfg.since_param] = request.since.date().isoformat()
        rows: list[dict[str, Any]] = []
        labels: list[str] = []
        batches = 0
        page = paging.first_page
        next_url, next_params = url, dict(params)
        previous: list[Any] = []
        followed: dict[str, int] = {}  # the next links and cursors followed → the page they fetched
        for n in range(cfg.max_pages):
            if paging.style == "page":
                body = self._get(url, {**params, paging.page_param: page, paging.size_param: cfg.page_size})
            else:
                body = self._get(next_url, next_params)
            items = self._items(body, url)
            if items and items == previous:
                raise SourceError(f"GET {mask_url(url)}: the API repeats page {n} as page {n + 1} (the same {len(items)} items); {self._paging_hint()}")
            previous = items
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise SourceError(f"GET {mask_url(url)} page {n + 1} item {i + 1}: expected a JSON object")
                rows.append(item)
                labels.append(f"page {n + 1} item {i + 1}")
            if len(rows) >= BATCH_ROWS:
                yield self._batch(name, tmap, url, rows, labels)
                rows, labels, batches = [], [], batches + 1
            if paging.style == "page":
                if len(items) < cfg.page_size:
                    break
                page += 1
            else:
                nxt = body.get(paging.next_key) if isinstance(body, dict) else None
                if not nxt:
                    break
                nxt = str(nxt)
                if nxt in followed:
                    what = f"next link {mask_url(nxt)!r}" if nxt.startswith(("http://", "https://")) else f"next cursor {nxt!r}"
                    raise SourceError(
                        f"GET {mask_url(url)}: the API repeats page {followed[nxt]} as page {n + 2} (its {what} came before); {self._paging_hint()}"
                    )
                followed[nxt] = n + 2
                if nxt.startswith(("http://", "https://", "/", "?")):
                    # A link: it carries its own query (and must stay on the configured server).
                    next_url, next_params = urljoin(url, nxt), None
                    if not stays_on(cfg.base_url, next_url):
                        raise SourceError(f"GET {mask_url(url)}: next page link leaves {mask_url(cfg.base_url)}")
                else:
                    next_url, next_params = url, {**params, paging.cursor_param: nxt}
        else:
            raise SourceError(f"GET {mask_url(url)}: more than {cfg.max_pages} pages (source.http.max_pages)")
        if rows or not batches:
            yield self._batch(name, tmap, url, rows, labels)

    def _paging_hint(self) -> str:
        """What to check when the API answers a page it answered before."""
        paging = self.config.paging
        if paging.style == "page":
            return (
                f"does it take source.http.paging.page_param {paging.page_param!r} and size_param {paging.size_param!r}, "
                "or page by a next link (paging.style: next)?"
            )
        return f"check source.http.paging.next_key {paging.next_key!r} and cursor_param {paging.cursor_param!r}"

    @staticmethod
    def _batch(name: str, tmap: TableMap, url: str, rows: list[dict[str, Any]], labels: list[str]) -> RawTable:
        origin = f"GET {mask_url(url)}"
        if not rows:
            # An empty answer has no keys to check; the caller reports the empty table.
            return RawTable(name, origin, pd.DataFrame(), pd.Series([], dtype=object))
        frame = select_columns(pd.DataFrame.from_records(rows), name, tmap, origin)
        for column in frame.columns:  # a JSON object or list where a value belongs: its text (then judged as text)
            values = frame[column]
            nested = values.map(lambda v: isinstance(v, (dict, list))).to_numpy(dtype=bool)
            if nested.any():
                frame[column] = values.where(~nested, values[nested].map(lambda v: json.dumps(v, ensure_ascii=False)))
        return RawTable(name, origin, frame, pd.Series(labels, index=frame.index, dtype=object))
