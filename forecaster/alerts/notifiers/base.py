"""What every notifier is (the `Notifier` protocol) and what the HTTP ones share.

Building a payload (`build`, pure) is separate from sending it (`send`, I/O with an injected
``requests.Session`` and clock). The stored payload never holds a token or signature: those are
added by `prepare` at the moment of sending, from the channel's secrets.

Every answer is a `Delivery`: ``delivered``, ``retry`` (timeouts, connection errors, 5xx, 429,
the platforms' "too fast" codes) or ``failed`` (bad token, signature or keyword rejected, body
too large…), with the platform's own code and message, so an operator sees *why*. Each
platform's codes are a table on its notifier (`HttpNotifier.codes`); the HTTP statuses and
network failures are classified here, the same for all.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TextIO

import requests

from forecaster.util.secret import redact
from forecaster.vocab import SEVERITY_NAMES

if TYPE_CHECKING:
    from forecaster.config import ChannelConfig

__all__ = ["plain_text", "markdown_text", "Outcome", "Delivery", "Mentions", "Notifier", "BaseNotifier", "HttpNotifier", "body_bytes", "post"]

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    code: str = ""  # the platform's errcode, the HTTP status, or the network failure
    detail: str = ""  # the platform's message, in its words
    pause_s: float = 0.0  # the robot asked us to leave it alone this long (throttle)

    @property
    def retryable(self) -> bool:
        """Whether sending the same message again later may succeed."""
        return self.outcome == "retry"

    def describe(self) -> str:
        parts = [p for p in (self.code, self.detail) if p]
        return " ".join(parts) or self.outcome


@dataclass(frozen=True)
class Mentions:
    mobiles: tuple[str, ...] = ()
    userids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.mobiles or self.userids)


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The request body exactly as sent: UTF-8 JSON, Chinese kept as characters (not \\uXXXX)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# Control characters (C0, DEL, C1: ESC and CSI/OSC sequences change a terminal's colours or window
# title) go; line breaks and tabs become spaces, so a name cannot start a line of its own.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# Whole terminal sequences go with their parameters: OSC (ESC ] … BEL or ESC \\) and CSI (ESC [ …).
_SEQUENCES = re.compile(r"(\x1b\]|\x9d)[^\x07\x1b\x9c]*(\x07|\x1b\\|\x9c)?|(\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?")
_SPACES = re.compile(r"[\r\n\t\v\f]+")
# What makes markdown out of text in the robots' apps (links, emphasis, code, WeCom's <font>),
# replaced by the full-width forms Chinese text uses anyway: a name stays readable, never markup.
_MARKDOWN = str.maketrans({"[": "［", "]": "］", "(": "（", ")": "）", "*": "＊", "_": "＿", "`": "｀",
                           "<": "＜", ">": "＞", "|": "｜", "~": "～", "#": "＃"})


def plain_text(value: object) -> str:
    """Text from a source, fit for one line of a terminal: no control characters, no line breaks."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", _SPACES.sub(" ", str(value))))


def markdown_text(value: object) -> str:
    """Text from a source, fit for a robot's markdown: one line, no link, emphasis or tag, and no
    address a phone would turn into a link (``://`` becomes ``：//``)."""
    return plain_text(value).translate(_MARKDOWN).replace("://", "：//")


class Notifier(Protocol):
    """One configured robot or webhook, as render and the outbox see it."""

    type: ClassVar[str]  # the ``type`` in ``alerts.channels``
    rate_per_minute: ClassVar[int]  # the platform's limit, the default ``rate_limit``
    max_bytes: ClassVar[int | None]  # the largest payload it takes (None: no limit)
    for_people: ClassVar[bool]  # read on a phone (few findings per message) or by a system
    name: str
    config: ChannelConfig

    @property
    def messages_per_window(self) -> int: ...

    def fits(self, payload: dict[str, Any]) -> bool: ...

    def emphasis(self, text: str, severity: str) -> str: ...

    def text(self, value: object) -> str: ...  # untrusted text (a name from the source) made safe

    def build(
        self,
        title: str,
        text: str,
        *,
        mentions: Mentions = ...,
        link: str | None = None,
        severity: str = SEVERITY_NAMES[0],
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    def build_mention(self, mentions: Mentions, note: str) -> dict[str, Any] | None: ...

    def send(self, payload: dict[str, Any], *, message_id: str, session: requests.Session, now: dt.datetime) -> Delivery: ...


@dataclass
class BaseNotifier:
    """What the notifiers share: the keyword, the size check and no mention follow-up."""

    type: ClassVar[str] = ""
    rate_per_minute: ClassVar[int]  # each notifier states its platform's own
    max_bytes: ClassVar[int | None] = None
    for_people: ClassVar[bool] = True

    name: str
    config: ChannelConfig
    stream: TextIO | None = field(default=None, repr=False)  # console output (default stdout)

    @property
    def messages_per_window(self) -> int:
        """Messages per ``rate_window_s``: the channel's ``rate_limit``, else the platform's limit."""
        return self.config.rate_limit or self.rate_per_minute

    def fits(self, payload: dict[str, Any]) -> bool:
        return self.max_bytes is None or len(body_bytes(payload)) <= self.max_bytes

    def emphasis(self, text: str, severity: str) -> str:
        """A severity word as the platform can colour it (plain text unless it can)."""
        return text

    def text(self, value: object) -> str:
        """A name or label from the source as this platform shows it: text, never markup."""
        return markdown_text(value)

    def build(
        self,
        title: str,
        text: str,
        *,
        mentions: Mentions = Mentions(),
        link: str | None = None,
        severity: str = SEVERITY_NAMES[0],
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The platform payload for one message (markdown ``text``; no tables or HTML)."""
        title, text = self._with_keyword(title, text)
        return self.payload(title, text, mentions=mentions, link=link, severity=severity, data=data)

    def payload(
        self, title: str, text: str, *, mentions: Mentions, link: str | None, severity: str, data: dict[str, Any] | None
    ) -> dict[str, Any]:
        raise NotImplementedError

    def build_mention(self, mentions: Mentions, note: str) -> dict[str, Any] | None:
        """A follow-up for mentions the main message cannot carry (none by default)."""
        return None

    def _with_keyword(self, title: str, text: str) -> tuple[str, str]:
        keyword = self.config.keyword
        if keyword and keyword not in text:
            text = f"{text}\n\n{keyword}"
        if keyword and keyword not in title:
            title = f"{keyword} {title}"
        return title, text


# (outcome, pause the channel for s, what it means) per platform code; unknown codes are failures.
CodeRule = tuple[Outcome, float, str]


@dataclass
class HttpNotifier(BaseNotifier):
    """A notifier that POSTs JSON and reads the platform's ``errcode``-style answer."""

    codes: ClassVar[dict[int, CodeRule]] = {}

    def prepare(self, payload: dict[str, Any], *, message_id: str, now: dt.datetime) -> tuple[str, dict[str, str], bytes]:
        """URL, headers and body for one send, signed at ``now``."""
        assert self.config.url is not None
        url = self.config.url.get()
        secret = self.config.secret.get() if self.config.secret else None
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Wuye-Message-Id": message_id}
        url, payload = self.sign(url, payload, secret=secret, message_id=message_id, now=now)
        body = body_bytes(payload)
        headers.update(self.signed_headers(body, secret=secret, message_id=message_id, now=now))
        return url, headers, body

    def sign(self, url: str, payload: dict[str, Any], *, secret: str | None, message_id: str, now: dt.datetime) -> tuple[str, dict[str, Any]]:
        """The URL and payload as sent (a platform's signature goes in one of them)."""
        return url, payload

    def signed_headers(self, body: bytes, *, secret: str | None, message_id: str, now: dt.datetime) -> dict[str, str]:
        return {}

    def send(self, payload: dict[str, Any], *, message_id: str, session: requests.Session, now: dt.datetime) -> Delivery:
        """Send one payload now; never raises for a network or platform problem."""
        url, headers, body = self.prepare(payload, message_id=message_id, now=now)
        return post(session, url, headers, body, timeout_s=self.config.timeout_s, classify=self.classify)

    def classify(self, status: int, text: str, retry_after: str | None = None) -> Delivery:
        """The platform's answer → delivered / retry / failed, keeping its code and message."""
        return classify_status(status, text, retry_after) or self.classify_answer(status, text)

    def classify_answer(self, status: int, text: str) -> Delivery:
        """A 2xx/3xx answer: the platform's code in the JSON body says what happened."""
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            return Delivery("retry", f"HTTP {status}", "the answer is not JSON: " + short(text))
        if not isinstance(answer, dict):
            return Delivery("retry", f"HTTP {status}", "unexpected answer: " + short(text))
        code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
        message = str(answer.get("errmsg", answer.get("msg", answer.get("StatusMessage", ""))))
        try:
            code = int(code)
        except (TypeError, ValueError):
            return Delivery("failed", str(code), message)
        if code == 0:
            return Delivery("delivered", "0", message)
        rule = self.codes.get(code)
        if rule is not None:
            outcome, pause, hint = rule
            return Delivery(outcome, str(code), f"{message} ({hint})" if hint else message, pause)
        return Delivery("failed", str(code), message)


_HTTP_HINTS = {401: "unauthorised", 403: "forbidden", 404: "no such webhook (check the url)", 413: "body too large"}


def classify_status(status: int, text: str, retry_after: str | None = None) -> Delivery | None:
    """What the HTTP status alone says (None for 2xx/3xx: the body says it)."""
    if status == 429 or status >= 500:
        return Delivery("retry", f"HTTP {status}", short(text), _seconds(retry_after))
    if status >= 400:
        return Delivery("failed", f"HTTP {status}", short(text) or _HTTP_HINTS.get(status, ""))
    return None


def post(session: requests.Session, url: str, headers: dict[str, str], body: bytes, *, timeout_s: float, classify) -> Delivery:
    """POST ``body``; a network failure is a `Delivery` too (retry, or failed when it cannot work)."""
    try:
        response = session.post(url, data=body, headers=headers, timeout=timeout_s)
    except requests.Timeout:
        return Delivery("retry", "timeout", f"no answer within {timeout_s:g} s")
    except requests.ConnectionError as exc:
        return Delivery("retry", "connection", _connection_problem(exc))
    except requests.RequestException as exc:
        return Delivery("failed", type(exc).__name__, short(str(exc)))
    return classify(response.status_code, response.text, response.headers.get("Retry-After"))


def short(text: str, limit: int = 300) -> str:
    text = redact((text or "").strip().replace("\n", " "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _connection_problem(exc: Exception) -> str:
    text = str(exc)
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("Temporary failure in name resolution", "host name not found (DNS)"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "the server closed the connection"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ):
        if needle in text:
            return words
    return short(text, 200)
