import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from forecaster.ingest.validate import Problem, TableReport
from forecaster.store import Store, StoreError, forecasts, ingest_problems, series_status
from tests.readback import stored

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def test_run_lifecycle_series_status_and_problems(db_url):
    store = Store(db_url)
    store.start_run("r1", dt.date(2026, 11, 23), "cli", T0, source="sql sqlite:///x")
    assert store.get_run("r1").status == "running"
    stats = pd.DataFrame(
        {
            "series_id": ["C001:ticket_count", "C002:satisfaction"],
            "community_id": ["C001", "C002"],
            "metric": ["ticket_count", "satisfaction"],
            "first_ds": pd.to_datetime(["2024-01-01", pd.NaT]),
            "last_ds": pd.to_datetime(["2026-11-22", pd.NaT]),
            "n_days": [1057, 0],
            "n_obs": [1057, 0],
            "status": ["ok", "no_data"],
            "reason": ["", "no observations in the history window"],
        }
    )
    store.add_series_status("r1", stats)
    report = TableReport("tickets", "tickets.csv", 10, 8, [Problem("duplicate ticket_id (first kept)", "skipped", 2, ["line 3: '北京-1'"])])
    store.add_ingest_problems("r1", [report])
    store.finish_run(
        "r1",
        status="ok",
        finished_at=T0 + dt.timedelta(seconds=42),
        duration_s=42.0,
        summary={"series_by_status": {"ok": 1, "no_data": 1}, "note": "小区"},
        communities=2,
        series=1,
        rows_read=10,
        rows_skipped=2,
    )
    run = store.get_run("r1")
    assert run.status == "ok" and run.as_of == dt.date(2026, 11, 23)
    assert run.started_at == dt.datetime(2026, 11, 22, 18, 0)  # stored as UTC
    assert run.summary["note"] == "小区" and run.rows_skipped == 2
    status = stored(store, series_status, "r1").set_index("series_id")
    assert status.loc["C001:ticket_count", "n_obs"] == 1057
    assert status.loc["C002:satisfaction", "status"] == "no_data"
    problems = stored(store, ingest_problems, "r1")
    assert problems.loc[0, "count"] == 2 and "北京-1" in problems.loc[0, "examples"]
    store.close()


def test_tables_are_created_once_and_runs_listed_newest_first(db_url):
    for i in range(3):
        store = Store(db_url)  # re-opening must not fail or recreate
        store.start_run(f"r{i}", dt.date(2026, 11, 20 + i), "cli", T0 + dt.timedelta(days=i), source="s")
        store.close()
    store = Store(db_url)
    assert [r.run_id for r in store.last_runs(2)] == ["r2", "r1"]
    with pytest.raises(StoreError, match="cannot record the run start"):
        store.start_run("r1", dt.date(2026, 11, 20), "cli", T0, source="s")  # duplicate id
    store.close()


def test_old_forecasts_are_pruned_and_recent_ones_kept(db_url):
    store = Store(db_url)
    for i, day in enumerate([dt.date(2026, 10, 1), dt.date(2026, 11, 1), dt.date(2026, 11, 23)]):
        run_id = f"p{i}"
        store.start_run(run_id, day, "cli", T0, source="s")
        frame = pd.DataFrame(
            {
                "series_id": "C001:ticket_count",
                "community_id": "C001",
                "metric": "ticket_count",
                "ds": pd.date_range(day, periods=3),
                "yhat": 1.0,
                "yhat_lower": 0.5,
                "yhat_upper": 2.0,
                "model": "linear_naive",
            }
        )
        store.add_forecasts(run_id, frame)
    assert store.prune_forecasts(dt.date(2026, 11, 23) - dt.timedelta(days=35)) == 3
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(forecasts.c.run_id, sa.func.count()).group_by(forecasts.c.run_id)).all()
    assert sorted(left) == [("p1", 3), ("p2", 3)]
    assert {r.run_id for r in store.last_runs(10)} >= {"p0", "p1", "p2"}  # the runs themselves stay
    store.close()


def test_a_store_made_before_loses_the_day_sums_ds_index(db_url):
    # Session 4's stores indexed day_parts.ds: it only slowed the nightly save down.
    Store(db_url).close()
    engine = sa.create_engine(db_url)
    old = sa.Table("day_parts", sa.MetaData(), autoload_with=engine)
    sa.Index("ix_day_parts_ds", old.c.ds).create(engine)
    assert "ix_day_parts_ds" in {ix["name"] for ix in sa.inspect(engine).get_indexes("day_parts")}
    store = Store(db_url)
    store.close()
    names = {ix["name"] for ix in sa.inspect(engine).get_indexes("day_parts")}
    engine.dispose()
    assert "ix_day_parts_ds" not in names
    Store(db_url).close()  # and opening it again is fine


def test_a_store_whose_day_sums_have_an_older_shape_makes_them_afresh(db_url):
    """Day sums of version 1 (no response or deadline columns): the cache tables are made again
    with today's columns, the saved state is gone (the next night reads in full), the rest kept."""
    engine = sa.create_engine(db_url)
    meta = sa.MetaData()
    old = sa.Table(
        "day_parts", meta,
        sa.Column("community_id", sa.String(128), primary_key=True), sa.Column("ds", sa.Date, primary_key=True),
        *(sa.Column(c, sa.Integer) for c in ("created", "complaints", "closed", "surveyed")),
        *(sa.Column(c, sa.Float) for c in ("hours", "sat_w", "sat_wy")),
    )
    state = sa.Table("day_parts_state", meta, sa.Column("name", sa.String(32), primary_key=True), sa.Column("fingerprint", sa.String(64)))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(old.insert(), [{"community_id": "C1", "ds": dt.date(2026, 1, 1), "created": 3, "complaints": 0, "closed": 1, "surveyed": 0, "hours": 2.0, "sat_w": 0.0, "sat_wy": 0.0}])
        conn.execute(state.insert(), [{"name": "source", "fingerprint": "v1"}])
    store = Store(db_url)
    store.start_run("r1", dt.date(2026, 1, 2), "manual", dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc), "test")
    assert store.day_sums_state() is None
    assert store.load_day_sums(dt.date(2025, 1, 1)).empty
    columns = {c["name"] for c in sa.inspect(engine).get_columns("day_parts")}
    assert {"responded", "resp_due", "close_met", "overdue_in", "rec_w", "promoters"} <= columns
    assert sa.inspect(engine).has_table("day_line_parts")
    store.close()
    Store(db_url).close()  # opened again: nothing more is dropped
    assert Store(db_url).get_run("r1") is not None
    engine.dispose()


def test_a_fresh_store_gets_every_table_even_when_nothing_imported_the_alerts(db_url):
    # A new interpreter that imports only the store (as `forecaster status` on a new database
    # might): the alert tables, declared beside their code, are created too, with their indexes.
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; from forecaster.store import Store; Store(sys.argv[1]).close(); "
        "print(any(m.startswith('forecaster.alerts') for m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code, db_url], capture_output=True, text=True, cwd=root, check=True)
    assert done.stdout.strip() == "True"  # the store imported the alert tables itself
    store = Store(db_url, create=False)
    inspector = sa.inspect(store.engine)
    tables = set(inspector.get_table_names())
    assert {"alert_messages", "alert_attempts", "alert_state", "silences", "channel_state", "runs", "job_slots"} <= tables
    indexes = {ix["name"] for ix in inspector.get_indexes("alert_attempts")}
    assert "ix_alert_attempts_channel_at" in indexes
    store.close()
