"""Job functions the scheduler calls (APScheduler wiring comes with ``forecaster serve``)."""

from jobs.nightly import nightly_job

__all__ = ["nightly_job"]
