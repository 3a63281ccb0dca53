"""Engines for SQLAlchemy URLs, with errors that name the (masked) URL and a missing driver."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

from forecaster.util.errors import SourceError
from forecaster.util.secret import mask_url

__all__ = ["make_engine", "first_line", "sqlite_in_memory"]


def make_engine(url: str, *, create_dir: bool = False) -> sa.Engine:
    """An engine for ``url``. ``create_dir`` makes the folder of a SQLite file first."""
    try:
        parsed = sa.engine.make_url(url)
    except (SQLAlchemyError, ValueError) as exc:
        raise SourceError(f"{mask_url(url)}: not a usable database URL ({exc})") from None
    if create_dir and parsed.get_backend_name() == "sqlite" and not sqlite_in_memory(parsed):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise SourceError(f"{mask_url(url)}: unknown database kind ({exc})") from None
    except ModuleNotFoundError as exc:
        name = exc.name or str(exc)
        extra = "postgres" if "psycopg" in name else "mysql" if "mysql" in name.lower() else None
        hint = f"; install it with: pip install 'wuye-forecaster[{extra}]'" if extra else ""
        raise SourceError(f"{mask_url(url)}: database driver {name} is not installed{hint}") from None
    except (SQLAlchemyError, ValueError) as exc:
        raise SourceError(f"{mask_url(url)}: not a usable database URL ({exc})") from None
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def sqlite_in_memory(url: "str | sa.engine.URL") -> bool:
    """A SQLite database without a file, this process's alone: ``sqlite://``, ``:memory:`` or a
    ``mode=memory`` URI."""
    try:
        parsed = sa.engine.make_url(url)
    except (SQLAlchemyError, ValueError):
        return False
    if parsed.get_backend_name() != "sqlite":
        return False
    return parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line only (SQLAlchemy appends SQL and a link)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
