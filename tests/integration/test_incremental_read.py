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
from forecaster.ingest.aggregate import DAY_SUM_COLUMNS, line_columns, series_from_day_sums
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
    # 34 of ~430 days (and 3 before them, for deadlines), plus the tickets closed since
    assert second_tickets < first_tickets / 4

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


# ------------------------------------------------------------------ KPIs: deadlines, backlog, lines
KPI_DAY = dt.date(2026, 6, 1)


def kpi_source(url: str) -> None:
    """A small company whose tickets carry responses, own deadlines, several service lines, and
    surveys with a recommend: every day sum and line column has something to hold."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    communities = sa.Table("communities", meta, sa.Column("community_id", sa.String(16), primary_key=True), sa.Column("name", sa.String(64)))
    tickets = sa.Table(
        "tickets",
        meta,
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("community_id", sa.String(16)),
        sa.Column("created_at", sa.DateTime),
        sa.Column("responded_at", sa.DateTime),
        sa.Column("closed_at", sa.DateTime),
        sa.Column("due_at", sa.DateTime),
        sa.Column("category", sa.String(32)),
        sa.Column("rating", sa.Float),
    )
    surveys = sa.Table(
        "surveys",
        meta,
        sa.Column("community_id", sa.String(16)),
        sa.Column("date", sa.Date),
        sa.Column("score", sa.Float),
        sa.Column("responses", sa.Integer),
        sa.Column("source", sa.String(16)),
        sa.Column("recommend", sa.Float),
    )
    meta.create_all(engine)
    rng = np.random.default_rng(5)
    start = KPI_DAY - dt.timedelta(days=200)
    rows, survey_rows = [], []
    categories = ["报修", "投诉", "保洁", "安保", "咨询", "其他"]
    for day in range(200):
        for cid in ("K1", "K2"):
            created0 = dt.datetime.combine(start + dt.timedelta(days=day), dt.time(8))
            for k in range(int(rng.integers(2, 6))):
                created = created0 + dt.timedelta(minutes=int(rng.integers(0, 720)))
                respond = created + dt.timedelta(hours=float(rng.exponential(5)))
                close = respond + dt.timedelta(hours=float(rng.exponential(60)))
                due = created + dt.timedelta(days=int(rng.integers(5, 40))) if rng.random() < 0.1 else None
                rows.append(
                    {
                        "ticket_id": f"{cid}-{day}-{k}",
                        "community_id": cid,
                        "created_at": created,
                        "responded_at": respond if rng.random() < 0.9 else None,
                        "closed_at": close if rng.random() < 0.95 else None,
                        "due_at": due,
                        "category": categories[int(rng.integers(0, len(categories)))],
                        "rating": None,
                    }
                )
            survey_rows.append(
                {"community_id": cid, "date": (start + dt.timedelta(days=day)), "score": float(rng.uniform(60, 100)),
                 "responses": int(rng.integers(1, 5)), "source": "APP", "recommend": float(rng.integers(0, 11))}
            )
    with engine.begin() as conn:
        conn.execute(communities.insert(), [{"community_id": "K1", "name": "一号"}, {"community_id": "K2", "name": "二号"}])
        conn.execute(tickets.insert(), rows)
        conn.execute(surveys.insert(), survey_rows)
    engine.dispose()


def test_an_incremental_night_gives_every_kpi_a_full_read_gives(db_url, make_config, tmp_path):
    """Backlog, deadlines, responses, service lines and NPS: tickets answered, closed or falling
    due weeks after they were created, and tickets edited after the fact, on every database."""
    kpi_source(db_url)
    config = make_config(
        {
            "source": {"sql": {"url": db_url}, "history_days": 365, "incremental": {"history_reread_nights": 30}},
            "store": {"url": db_url},
            "forecast": {"model": "naive", "horizon": 14},
            "engine": {"backend": "serial"},
            "output": {"dir": str(tmp_path / "out")},
        }
    )
    night1 = KPI_DAY - dt.timedelta(days=20)
    engine, tickets = tickets_table(db_url)
    old = night1 - dt.timedelta(days=40)
    blank = {"responded_at": None, "closed_at": None, "due_at": None, "rating": None}
    with engine.begin() as conn:
        # Open on the first night: tickets from weeks ago (one to be closed, one to be answered,
        # one whose own deadline is after the night), and a complaint created just before the
        # days an incremental night reads again, which falls due inside them.
        conn.execute(tickets.insert(), [{**blank, **row} for row in [
            {"ticket_id": "OLD-CLOSED", "community_id": "K1", "created_at": at(old, 9), "category": "报修"},
            {"ticket_id": "OLD-ANSWERED", "community_id": "K1", "created_at": at(old, 10), "category": "投诉"},
            {"ticket_id": "OLD-DUE", "community_id": "K2", "created_at": at(old, 11), "due_at": at(night1 + dt.timedelta(days=5), 18), "category": "保洁"},
            {"ticket_id": "EDGE", "community_id": "K2", "created_at": at(night1 - dt.timedelta(days=16), 20), "category": "投诉"},
        ]])
    first = run_once(config, night1)
    assert first.status == "ok", first.error
    with engine.begin() as conn:
        conn.execute(tickets.update().where(tickets.c.ticket_id == "OLD-CLOSED").values(closed_at=at(night1 + dt.timedelta(days=3), 10)))
        conn.execute(tickets.update().where(tickets.c.ticket_id == "OLD-ANSWERED").values(responded_at=at(night1 + dt.timedelta(days=2), 9)))
        # an edit after the fact: a recent ticket's closing corrected, and its line
        recent = conn.execute(sa.select(tickets.c.ticket_id).where(tickets.c.created_at >= at(night1 - dt.timedelta(days=5), 0)).limit(1)).scalar()
        conn.execute(tickets.update().where(tickets.c.ticket_id == recent).values(closed_at=at(night1 + dt.timedelta(days=1), 8), category="停车"))
    engine.dispose()

    second = run_once(config, KPI_DAY)
    assert second.status == "ok", second.error
    assert second.read.startswith("incremental"), second.read
    store = Store(db_url)
    saved = store.load_day_sums(KPI_DAY - dt.timedelta(days=365))
    store.close()
    full = full_read(config, KPI_DAY)
    columns = ["community_id", "ds", *DAY_SUM_COLUMNS, *line_columns(full)]
    assert line_columns(saved) == line_columns(full) and len(line_columns(full)) >= 4
    for frame in (saved, full):
        frame["community_id"] = frame["community_id"].astype(str)
    pd.testing.assert_frame_equal(
        saved.sort_values(["community_id", "ds"]).reset_index(drop=True)[columns],
        full.sort_values(["community_id", "ds"]).reset_index(drop=True)[columns],
        check_exact=False,
        rtol=1e-9,
    )
    series = series_from_day_sums(saved, KPI_DAY, config.metrics, min_history_days=56).frame
    metrics = set(series["metric"])
    assert {"response_hours", "responded_on_time", "closed_on_time", "open_backlog", "overdue_open", "nps", "ticket_count.parking"} <= metrics
