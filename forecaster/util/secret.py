"""Secrets that never show: a `Secret` prints as ``<secret>``, and every secret value seen is
registered so that `redact` (and the logging filter built on it) masks it wherever it appears.
Every value the config took from an environment variable is registered too, whatever its
shape (`register_env_value`): a password with ``/`` or ``?`` in it breaks URL parsing, and a
short token in a URL path does not look like one.

URLs get a dedicated `mask_url`: the password and credential-like query parameters
(``access_token``, ``key``, ``token``, ``sign``, ``secret``…) are replaced by ``***``.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "Secret",
    "register",
    "register_url_credentials",
    "register_env_value",
    "redact",
    "mask_url",
    "RedactingFilter",
    "install_log_redaction",
]

MASK = "***"
SENSITIVE_QUERY_KEYS = frozenset(
    {"access_token", "token", "key", "sign", "secret", "password", "passwd", "pwd", "apikey", "api_key"}
)

_lock = threading.Lock()
_known: set[str] = set()


def register(value: str | None) -> None:
    """Remember a secret value so that `redact` masks it (values shorter than 4 are ignored)."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def register_env_value(value: str) -> None:
    """A value substituted from the environment: a secret as it is and as it reads percent-encoded
    (in a URL SQLAlchemy or requests rendered), with ``+`` for spaces or not."""
    register(value)
    register(quote(value, safe=""))
    register(quote_plus(value, safe=""))
    register(quote(value, safe="/"))


def register_url_credentials(url: str) -> None:
    """Register the password and the credential-like query values of ``url`` (not the whole URL)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        register(url)
        return
    if parts.password:
        register(parts.password)
        register(unquote(parts.password))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in SENSITIVE_QUERY_KEYS:
            register(value)
    if parts.scheme in ("http", "https"):
        for segment in parts.path.split("/"):
            if _looks_like_token(segment):
                register(segment)


def _looks_like_token(segment: str) -> bool:
    """A path segment that is a credential: Feishu's hook id, a Slack-style hook path, an API key.
    Long, and made of letters *and* digits (so "send", "webhook" and "v2" are not)."""
    return (
        len(segment) >= 16
        and any(c.isdigit() for c in segment)
        and any(c.isalpha() for c in segment)
        and re.fullmatch(r"[A-Za-z0-9_\-.~]+", segment) is not None
    )


def redact(text: str) -> str:
    """Mask every registered secret value and any URL credentials in ``text``."""
    if not text:
        return text
    return _URL_RE.sub(lambda m: mask_url(m.group(0)), _mask_known(text))


def _mask_known(text: str) -> str:
    """Every registered secret value in ``text`` replaced, the longest first."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``postgresql://u:pw@h/db`` → ``postgresql://u:***@h/db``; ``…?access_token=T`` → ``…?access_token=***``;
    and every registered secret value in it (an environment variable's, whatever its shape)."""
    url = _mask_known(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc, changed = parts.netloc, False
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc, changed = f"{user}:{MASK}@{host}", True
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SENSITIVE_QUERY_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in SENSITIVE_QUERY_KEYS else v) for k, v in pairs], safe="*"
            )
            changed = True
    path = parts.path
    if parts.scheme in ("http", "https") and any(_looks_like_token(seg) for seg in path.split("/")):
        path = "/".join(MASK if _looks_like_token(seg) else seg for seg in path.split("/"))
        changed = True
    if not changed:
        return url
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


class Secret:
    """A string that does not print itself. Use `.get()` where the real value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str, *, is_url: bool = False):
        self._value = value
        if is_url:
            register_url_credentials(value)
        else:
            register(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with `redact`, so no handler ever sees a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted, and drop the raw exception.
            formatter = logging.Formatter()
            cleaned = cleaned + "\n" + redact(formatter.formatException(record.exc_info))
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the redacting filter to every handler of ``logger`` (root by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
