"""The nightly cycle as a scheduler job.

The config file is read afresh at every run, so an edit takes effect the next night without a
restart; a config that has become invalid fails that night's run (logged, exit code 2 in the
result) instead of killing the service. One log line at the start and one at the end, with
the run id and the duration.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Callable

from forecaster.config import load_config
from forecaster.pipeline import RunResult, run_once
from forecaster.util.clock import Clock, SystemClock, today_in
from forecaster.util.errors import ConfigError

__all__ = ["nightly_job"]

# Logger names stay in the forecaster tree: one logging setup, one name space for log collectors.
log = logging.getLogger("forecaster.jobs.nightly")


def nightly_job(
    config_path: str | Path | None = None,
    *,
    clock: Clock | None = None,
    trigger: str = "schedule",
    run_id: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunResult | None:
    """Run one cycle as of today (in the configured timezone). Returns the result, or ``None``
    when the config could not be loaded (the error is logged)."""
    clock = clock or SystemClock()
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        log.error("nightly run not started: %s", exc)
        return None
    as_of = today_in(clock, config.timezone)
    run_id = run_id or uuid.uuid4().hex
    log.info("nightly run %s starting as of %s (%s)", run_id[:8], as_of, trigger)
    result = run_once(config, as_of, clock=clock, trigger=trigger, run_id=run_id, should_stop=should_stop)
    level = logging.INFO if result.exit_code == 0 else logging.ERROR
    log.log(
        level,
        "nightly run %s as of %s finished: %s in %.1f s%s",
        result.run_id[:8],
        as_of,
        result.status,
        result.duration_s,
        f" ({result.error})" if result.error else "",
    )
    return result
