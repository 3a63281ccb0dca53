"""Tickets read by several processes, each a shard of the table by creation time, against real
databases (SQLite always; PostgreSQL and MariaDB when configured): the day sums and the report
are those of one process reading it all, duplicates across shards included."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from forecaster.demo import make_demo_frames, write_demo_sql
from forecaster.ingest import SavedDaySums, load_daily
from forecaster.ingest.aggregate import DAY_SUM_COLUMNS
from forecaster.ingest.incremental import ReadPlan
from forecaster.ingest.partitions import PartitionedTickets, read_workers, shard_cuts
from forecaster.ingest.tables import history_start
from forecaster.pipeline import run_once
from forecaster.store import Store
from forecaster.util.errors import SourceError

AS_OF = dt.date(2026, 11, 23)


def config_for(make_config, url: str, workers: int, **sql):
    return make_config(
        {
            "source": {"sql": {"url": url, "read_workers": workers, **sql}, "history_days": 400},
            "metrics": {"enabled": ["ticket_count", "complaint_count", "satisfaction", "resolution_hours"]},
        }
    )


def tidy(sums: pd.DataFrame) -> pd.DataFrame:
    out = sums.sort_values(["community_id", "ds"]).reset_index(drop=True)
    out["community_id"] = out["community_id"].astype(str)
    return out[["community_id", "ds", *DAY_SUM_COLUMNS]]


def reports(data) -> list[tuple]:
    return [
        (r.table, r.rows_read, r.rows_kept, sorted((p.reason, p.action, p.count, tuple(p.examples)) for p in r.problems))
        for r in data.reports
    ]


def add_tickets(url: str, rows: list[dict]) -> None:
    engine = sa.create_engine(url)
    table = sa.Table("tickets", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()


@pytest.fixture
def source(db_url):
    write_demo_sql(db_url, make_demo_frames(AS_OF, communities=5, years=1.0, seed=5), seed=5)
    return db_url


def test_shards_read_in_processes_equal_one_read(source, make_config):
    one = load_daily(config_for(make_config, source, 1), AS_OF)
    four = load_daily(config_for(make_config, source, 4), AS_OF)
    pd.testing.assert_frame_equal(tidy(four.day_sums), tidy(one.day_sums))
    assert reports(four) == reports(one)
    # The demo's own dirty rows are found in the shards too.
    problems = {p.reason: p.count for p in four.reports[1].problems}
    assert problems["duplicate ticket_id (first kept)"] == 1
    assert problems["unknown community_id (not in communities)"] == 1


def test_a_ticket_id_in_two_shards_counts_once(source, make_config):
    # An early ticket's id again, on a late ticket of another community: the two copies fall in
    # different shards; a read in one go keeps the first (the early one) and so must the shards.
    engine = sa.create_engine(source)
    with engine.connect() as conn:
        tid, cid = conn.execute(
            sa.text("SELECT ticket_id, community_id FROM tickets WHERE created_at < :d ORDER BY created_at LIMIT 1"),
            {"d": dt.datetime(2026, 1, 10)},
        ).one()
    engine.dispose()
    late = dt.datetime(2026, 11, 20, 10)
    add_tickets(source, [{"ticket_id": tid, "community_id": "C003" if cid != "C003" else "C004", "created_at": late, "category": "投诉"}])

    config = config_for(make_config, source, 2)
    one = load_daily(config_for(make_config, source, 1), AS_OF)
    two = load_daily(config, AS_OF)
    pd.testing.assert_frame_equal(tidy(two.day_sums), tidy(one.day_sums))
    assert reports(two) == reports(one)
    dup = next(p for p in two.reports[1].problems if p.reason.startswith("duplicate"))
    assert dup.count == 2 and any(tid in e for e in dup.examples)

    # The late copy's shard was read again here, knowing the earlier shards' ids.
    start = history_start(config, AS_OF)
    tickets = PartitionedTickets(config, AS_OF, None, {f"C{i:03d}" for i in range(1, 6)}, start, 2)
    try:
        pieces, report = tickets.collect()
    finally:
        tickets.close()
    assert len(tickets.jobs) == 4 and tickets.rereads == 1
    assert report.rows_read == one.reports[1].rows_read


def test_an_incremental_night_in_shards_equals_one_process(source, make_config, tmp_path):
    base = {"store": {"url": f"sqlite:///{tmp_path / 'store.db'}"}, "output": {"dir": str(tmp_path / "out")}}
    config = make_config(
        {
            **base,
            "source": {"sql": {"url": source, "read_workers": 1}, "history_days": 400},
            "forecast": {"model": "naive", "horizon": 7},
            "engine": {"backend": "serial"},
        }
    )
    assert run_once(config, AS_OF - dt.timedelta(days=3)).status == "ok"
    store = Store(config.store.url.get())
    try:
        saved = SavedDaySums(store.day_sums_state(), store.load_day_sums)
        one = load_daily(config, AS_OF, saved=saved)
        two = load_daily(config.model_copy(update={"source": config.source.model_copy(update={"sql": config.source.sql.model_copy(update={"read_workers": 2})})}), AS_OF, saved=saved)
    finally:
        store.close()
    assert one.plan.incremental and one.plan.slices
    pd.testing.assert_frame_equal(tidy(two.day_sums), tidy(one.day_sums))
    pd.testing.assert_frame_equal(tidy(two.fresh), tidy(one.fresh))
    assert reports(two) == reports(one)
    assert two.reports[1].rows_read < 0.5 * load_daily(config, AS_OF).reports[1].rows_read


def test_a_created_at_column_that_is_not_a_date_column_is_read_by_one_shard(tmp_path, make_config):
    # Times kept as plain text: the shards cannot cut it; the first reads every row, the rest none.
    url = f"sqlite:///{tmp_path / 'text.db'}"
    demo = make_demo_frames(AS_OF, communities=3, years=1.0, seed=3)
    write_demo_sql(url, demo, seed=3)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE tickets RENAME TO tickets_dated"))
        conn.execute(
            sa.text(
                "CREATE TABLE tickets (ticket_id TEXT, community_id TEXT, created_at TEXT, closed_at TEXT, category TEXT, rating INTEGER)"
            )
        )
        conn.execute(sa.text("INSERT INTO tickets SELECT ticket_id, community_id, created_at, closed_at, category, rating FROM tickets_dated"))
    engine.dispose()
    one = load_daily(config_for(make_config, url, 1), AS_OF)
    three = load_daily(config_for(make_config, url, 3), AS_OF)
    pd.testing.assert_frame_equal(tidy(three.day_sums), tidy(one.day_sums))
    assert reports(three) == reports(one)


def test_a_failing_shard_fails_the_read_with_the_column_named(source, make_config):
    config = make_config(
        {"source": {"sql": {"url": source, "read_workers": 2}, "tables": {"tickets": {"table": "tickets", "columns": {"closed_at": "finished"}}}}}
    )
    with pytest.raises(SourceError, match="finished"):
        load_daily(config, AS_OF)


def test_shard_cuts_share_the_work():
    start, as_of = dt.date(2026, 1, 1), dt.date(2026, 1, 11)  # ten days
    assert shard_cuts(start, as_of, None, 2) == (dt.date(2026, 1, 6),)
    assert shard_cuts(start, as_of, None, 5) == tuple(dt.date(2026, 1, d) for d in (3, 5, 7, 9))
    assert shard_cuts(start, as_of, None, 1) == ()
    assert shard_cuts(start, start + dt.timedelta(days=1), None, 4) == ()
    # More shards than days: one a day at most.
    assert shard_cuts(start, as_of, None, 40) == tuple(dt.date(2026, 1, d) for d in range(2, 11))
    # An incremental night reads days 3–4 and the last two afresh (10 each) and only looks at
    # the six others (1 each): halves of 23 and 23, quarters of 12, 11, 13 and 10.
    plan = ReadPlan("incremental", dt.date(2026, 1, 9), "test", slices=((dt.date(2026, 1, 3), dt.date(2026, 1, 5)),))
    assert shard_cuts(start, as_of, plan, 2) == (dt.date(2026, 1, 6),)
    assert shard_cuts(start, as_of, plan, 4) == (dt.date(2026, 1, 4), dt.date(2026, 1, 6), dt.date(2026, 1, 10))


def test_read_workers_follow_the_engine_unless_set(make_config):
    url = "sqlite:///x.db"
    assert read_workers(make_config({"source": {"sql": {"url": url, "read_workers": 3}}})) == 3
    assert read_workers(make_config({"source": {"sql": {"url": url}}, "engine": {"workers": 5}})) == 5
    assert read_workers(make_config({"source": {"sql": {"url": url}}, "engine": {"backend": "serial", "workers": 5}})) == 1
    assert read_workers(make_config({"source": {"type": "csv", "csv": {"directory": "."}}, "engine": {"workers": 5}})) == 1
    # Another process would open an empty database of its own.
    assert read_workers(make_config({"source": {"sql": {"url": "sqlite://", "read_workers": 4}}})) == 1
    assert read_workers(make_config({"source": {"sql": {"url": "sqlite:///file:x?mode=memory&uri=true", "read_workers": 4}}})) == 1
