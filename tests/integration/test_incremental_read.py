"""Incremental nights against real databases: day sums saved in the store, only recent tickets
read, and the result the same as reading everything (SQLite always; PostgreSQL and MariaDB when
configured, each holding both the source tables and the store)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from forecaster.demo import make_demo_frames, write_demo_sql
from forecaster.ingest import load_daily
from forecaster.ingest.aggregate import DAY_SUM_COLUMNS, series_from_day_sums
from forecaster.ingest.incremental import history_slices
from forecaster.pipeline import run_once
from forecaster.store import Store

AS_OF = dt.date(2026, 11, 23)
NIGHT1 = AS_OF - dt.timedelta(days=20)


def night_config(make_config, url: str, tmp_path, metrics: dict | None = None, **incremental):
    return make_config(
        {
            "source": {"sql": {"url": url}, "incremental": {"history_reread_nights": 30, **incremental}},
            "store": {"url": url},
            "metrics": {"enabled": ["ticket_count", "resolution_hours"], **(metrics or {})},
            "forecast": {"model": "naive", "horizon": 14},
            "engine": {"backend": "serial"},
            "output": {"dir": str(tmp_path / "out")},
        }
    )


def tickets_table(url: str):
    engine = sa.create_engine(url)
    return engine, sa.Table("tickets", sa.MetaData(), autoload_with=engine)


def add_tickets(url: str, rows: list[dict]) -> None:
    engine, tickets = tickets_table(url)
    with engine.begin() as conn:
        conn.execute(tickets.insert(), rows)
    engine.dispose()


def ticket(tid, cid, created, closed=None, category="报修", rating=None):
    return {"ticket_id": tid, "community_id": cid, "created_at": created, "closed_at": closed, "category": category, "rating": rating}


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour))


def sorted_sums(sums: pd.DataFrame) -> pd.DataFrame:
    out = sums.sort_values(["community_id", "ds"]).reset_index(drop=True)
    out["community_id"] = out["community_id"].astype(str)
    return out[["community_id", "ds", *DAY_SUM_COLUMNS]]


def full_read(config, as_of: dt.date) -> pd.DataFrame:
    return load_daily(config, as_of).day_sums


@pytest.fixture
def source(db_url):
    write_demo_sql(db_url, make_demo_frames(AS_OF, communities=4, years=1.2, seed=11), seed=11)
    # A ticket still open on the first night, closed a few days later (outside the re-read
    # window of its creation day: only its closing brings it back).
    add_tickets(db_url, [ticket("OPEN-1", "C001", at(NIGHT1 - dt.timedelta(days=40), 9))])
    return db_url


def test_an_incremental_night_equals_a_full_read_and_reads_a_fraction(source, make_config, tmp_path):
    config = night_config(make_config, source, tmp_path)
    first = run_once(config, NIGHT1)
    assert first.status == "ok", first.error
    assert first.read.startswith("full (no saved day sums yet)")
    store = Store(source)
    state = store.day_sums_state()
    assert state.through == NIGHT1 - dt.timedelta(days=1) and state.full_read_on == NIGHT1
    assert set(state.communities) == {"C001", "C002", "C003", "C004"}

    # Between the nights: the open ticket is closed; a ticket of three days ago is entered late.
    engine, tickets = tickets_table(source)
    with engine.begin() as conn:
        conn.execute(
            tickets.update().where(tickets.c.ticket_id == "OPEN-1").values(closed_at=at(NIGHT1 + dt.timedelta(days=2), 15))
        )
    engine.dispose()
    add_tickets(source, [ticket("LATE-1", "C002", at(NIGHT1 - dt.timedelta(days=3), 10), at(NIGHT1 - dt.timedelta(days=3), 12))])

    second = run_once(config, AS_OF)
    assert second.status == "ok", second.error
    since = NIGHT1 - dt.timedelta(days=14)  # the saved days end the day before night 1; 14 re-read
    assert second.read.startswith(f"incremental: tickets created or closed since {since}")
    first_tickets = next(r for r in first.reports if r.table == "tickets").rows_read
    second_tickets = next(r for r in second.reports if r.table == "tickets").rows_read
    assert second_tickets < first_tickets / 5  # 34 of ~430 days, plus the tickets closed since

    # What the store now holds is exactly what reading everything gives.
    saved = sorted_sums(store.load_day_sums(AS_OF - dt.timedelta(days=config.source.history_days)))
    full = sorted_sums(full_read(config, AS_OF))
    pd.testing.assert_frame_equal(saved, full, check_exact=False, rtol=1e-9)
    # ...and so are the series forecast from it.
    series = series_from_day_sums(saved, AS_OF, config.metrics, min_history_days=56).frame
    closing = series[(series["series_id"] == "C001:resolution_hours") & (series["ds"] == pd.Timestamp(NIGHT1 + dt.timedelta(days=2)))]
    assert len(closing) == 1 and not np.isnan(closing["y"].iloc[0])
    state = store.day_sums_state()
    assert state.through == AS_OF - dt.timedelta(days=1) and state.full_read_on == NIGHT1
    store.close()


def test_an_old_late_entry_is_picked_up_when_its_days_come_round(source, make_config, tmp_path):
    """Older days are read again a slice a night: a ticket entered late for a day two months
    back is missing from the saved sums until that day's turn, within seven nights."""
    config = night_config(make_config, source, tmp_path, history_reread_nights=7)
    assert run_once(config, NIGHT1).status == "ok"
    old_day = NIGHT1 - dt.timedelta(days=60)
    add_tickets(source, [ticket("BACKDATED-1", "C003", at(old_day, 11))])
    key = ("C003", pd.Timestamp(old_day))
    store = Store(source)
    missing, turns = [], []
    for n in range(1, 8):
        night = NIGHT1 + dt.timedelta(days=n)
        result = run_once(config, night)
        assert result.status == "ok" and result.read.startswith("incremental"), result.read
        start = night - dt.timedelta(days=config.source.history_days)
        # The saved days end the night before: re-read from 14 days before that, plus a slice.
        slices = history_slices(night, start, night - dt.timedelta(days=15), 7)
        turns.append(any(a <= old_day < b for a, b in slices))
        saved = sorted_sums(store.load_day_sums(start))
        full = sorted_sums(full_read(config, night))
        gap = full.set_index(["community_id", "ds"]).loc[key, "created"] - saved.set_index(["community_id", "ds"]).loc[key, "created"]
        missing.append(int(gap))
        if not gap:
            # From its turn on, what is saved is what reading everything gives.
            pd.testing.assert_frame_equal(saved, full, check_exact=False, rtol=1e-9)
    assert turns.count(True) == 1, turns  # its day came round exactly once in the seven nights
    k = turns.index(True)
    assert missing == [1] * k + [0] * (7 - k), (missing, turns)
    assert store.day_sums_state().full_read_on == NIGHT1  # never a whole read again
    store.close()


def test_new_communities_settings_changes_and_old_nights_read_in_full(source, make_config, tmp_path):
    config = night_config(make_config, source, tmp_path)
    assert run_once(config, NIGHT1).status == "ok"

    engine = sa.create_engine(source)
    communities = sa.Table("communities", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(communities.insert(), [{"community_id": "C005", "name": "新城花园"}])
    engine.dispose()
    add_tickets(source, [ticket("NEW-1", "C005", at(NIGHT1 - dt.timedelta(days=100), 9))])
    night = run_once(config, NIGHT1 + dt.timedelta(days=1))
    assert night.read == "full (1 new community (C005))"
    assert "C005" in set(night.series_stats["community_id"])

    changed = night_config(make_config, source, tmp_path, metrics={"complaint_categories": ["投诉", "催缴"]})
    night = run_once(changed, NIGHT1 + dt.timedelta(days=2))
    assert night.read == "full (source or metric settings changed since the saved day sums)"

    store = Store(source)
    through = store.day_sums_state().through
    rerun = run_once(changed, NIGHT1 - dt.timedelta(days=5))  # an old night, re-run
    assert rerun.read.startswith("full (as-of") and "saved sums kept" in rerun.read
    assert store.day_sums_state().through == through
    store.close()

    off = night_config(make_config, source, tmp_path, enabled=False)
    assert run_once(off, NIGHT1 + dt.timedelta(days=3)).read == "full (source.incremental.enabled is false)"
