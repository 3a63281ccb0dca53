"""Shared fixtures: small realistic data, configs in temporary folders, real databases.

Database backends: SQLite always; PostgreSQL and MySQL/MariaDB when
``FORECASTER_TEST_POSTGRES_URL`` / ``FORECASTER_TEST_MYSQL_URL`` are set (``.ci/run`` sets
them). Without them a test skips with the reason, except under CI (``CI`` set), where a
missing service fails the test: CI always runs them. Each test gets a database of its own,
created and dropped around it.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from forecaster.config import Config, parse_config
from forecaster.demo import DemoData, make_demo_frames
from forecaster.detect import Finding
from forecaster.vocab import is_dip

AS_OF = dt.date(2026, 11, 23)

SERVICE_ENV = {
    "postgresql": "FORECASTER_TEST_POSTGRES_URL",
    "mysql": "FORECASTER_TEST_MYSQL_URL",
}


def make_finding(**overrides) -> Finding:
    """A realistic finding: a 警告 satisfaction dip of five days from 2026-02-10 in C001, around
    Spring Festival; any field can be overridden by name. ``last_day`` defaults to ``days`` after
    ``first_day`` and ``days`` to the span from first to last; ``kind`` follows the metric."""
    first = overrides.get("first_day", dt.date(2026, 2, 10))
    if "last_day" in overrides and "days" not in overrides:
        overrides["days"] = (overrides["last_day"] - first).days + 1
    days = overrides.get("days", 5)
    metric = overrides.get("metric", "satisfaction")
    values = {
        "community_id": "C001",
        "metric": metric,
        "kind": "dip" if is_dip(metric) else "surge",
        "first_day": first,
        "last_day": first + dt.timedelta(days=days - 1),
        "peak_day": first,
        "expected": 80.0,
        "limit": 85.0,
        "reference": "阈值 85",
        "baseline": 90.0,
        "depth": 0.11,
        "probability": 0.8,
        "severity": "警告",
        "window": "春节前后",
        "estimated": False,
        "days": days,
    }
    return Finding(**{**values, **overrides})


def require_service(env: str, what: str) -> str:
    """The URL from ``env``; skip (or, under CI, fail) when it is not set."""
    url = os.environ.get(env)
    if url:
        return url
    message = f"{what} tests need {env} (e.g. set by .ci/run)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run them, so a missing service fails the run")
    pytest.skip(message)


def _scratch_database(base_url: str):
    """Create a uniquely named database on the server at ``base_url``; yield its URL; drop it."""
    name = f"wuye_test_{uuid.uuid4().hex[:10]}"
    base = sa.engine.make_url(base_url)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if base.get_backend_name() == "mysql":
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        else:
            conn.exec_driver_sql(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            if base.get_backend_name() == "mysql":
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = require_service(SERVICE_ENV[request.param], request.param)
    yield from _scratch_database(base)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium: ``$FORECASTER_TEST_CHROMIUM`` or ``chromium`` on the PATH."""
    import shutil

    path = os.environ.get("FORECASTER_TEST_CHROMIUM") or shutil.which("chromium")
    if path:
        return path
    message = "report tests need Chromium (apt-get install chromium, or set FORECASTER_TEST_CHROMIUM)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run them")
    pytest.skip(message)


def render_in_chromium(chromium: str, page: Path, *, screenshot: Path | None = None) -> str:
    """Open ``page`` in headless Chromium; return the DOM after its scripts ran."""
    import subprocess
    import tempfile

    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}", "--window-size=1200,2400",
    ]
    if screenshot is not None:
        subprocess.run([chromium, *flags, f"--screenshot={screenshot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    done = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


@pytest.fixture(scope="session")
def small_demo() -> DemoData:
    """Twelve communities, 14 months: every pattern of the full demo, small enough to be quick."""
    return make_demo_frames(AS_OF, communities=12, years=1.2, seed=7)


def write_config(directory: Path, data: dict) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def make_config(tmp_path):
    """Build a `Config` rooted in ``tmp_path`` from a (partial) mapping."""

    def build(data: dict | None = None, environ: dict | None = None) -> Config:
        return parse_config(data or {}, base_dir=tmp_path, environ=environ or {})

    return build


def wait_for(condition, what: str, limit_s: float = 180.0) -> None:
    """Poll until ``condition()`` holds: tests wait for states, not for time. The limit only
    stops a test that hangs; it is not a speed assertion."""
    import time

    end = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)
