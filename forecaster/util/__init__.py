"""Helpers the stages share: the clock, logs, secrets, the database engine, the parallel map,
progress, errors, per-distinct-value work (distinct) and reading ahead (prefetch). None of them is a stage of the nightly flow; each is imported by name
(``from forecaster.util.clock import SystemClock``)."""
