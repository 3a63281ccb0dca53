"""A source that suddenly delivers nothing, or far less than usual, is an error: the night is
refused, the saved day totals are left alone (a restored source gives the same totals as if the
bad night never happened) and no all-clear goes out. Real CSV files and a real SQLite store."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest
import sqlalchemy as sa

from forecaster.demo import make_demo_frames, write_demo_csv, write_demo_sql
from forecaster.ingest.aggregate import DAY_SUM_COLUMNS
from forecaster.pipeline import run_once
from forecaster.store import Store

AS_OF = dt.date(2026, 11, 23)
DATA_THROUGH = AS_OF + dt.timedelta(days=5)  # the exports hold the nights after AS_OF too


@pytest.fixture
def company(tmp_path, make_config):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_demo_csv(data_dir, make_demo_frames(DATA_THROUGH, communities=4, years=1.2, seed=3))
    good = tmp_path / "good"
    shutil.copytree(data_dir, good)

    def config(store: str = "store.db", **guard):
        return make_config(
            {
                "source": {"type": "csv", "csv": {"directory": str(data_dir)}, "drop_guard": guard},
                "store": {"url": f"sqlite:///{tmp_path / store}"},
                "forecast": {"model": "naive", "horizon": 14},
                "engine": {"backend": "serial"},
                "output": {"dir": str(tmp_path / "out")},
                "alerts": {"channels": {"console": {"type": "console"}}, "default_channels": ["console"]},
            }
        )

    return config, data_dir, good


def saved_sums(config) -> pd.DataFrame:
    store = Store(config.store.url.get())
    try:
        out = store.load_day_sums(dt.date(2000, 1, 1))
    finally:
        store.close()
    out = out.sort_values(["community_id", "ds"]).reset_index(drop=True)
    out["community_id"] = out["community_id"].astype(str)
    return out[["community_id", "ds", *DAY_SUM_COLUMNS]]


def outbox_rows(config) -> int:
    engine = sa.create_engine(config.store.url.get())
    with engine.connect() as conn:
        n = conn.execute(sa.text("select count(*) from alert_messages")).scalar()
    engine.dispose()
    return n


def header_only(path) -> None:
    header = path.read_text(encoding="utf-8").splitlines()[0]
    path.write_text(header + "\n", encoding="utf-8")


def test_a_header_only_export_after_a_good_night_is_refused_and_the_totals_kept(company):
    make, data_dir, good = company
    config = make()
    first = run_once(config, AS_OF)
    assert first.exit_code == 0, first.error
    before, queued = saved_sums(config), outbox_rows(config)

    header_only(data_dir / "tickets.csv")
    bad = run_once(config, AS_OF + dt.timedelta(days=1))
    assert (bad.status, bad.exit_code) == ("failed", 2)
    assert "tickets" in bad.error and "tickets.csv" in bad.error and "saved day totals are kept" in bad.error
    pd.testing.assert_frame_equal(saved_sums(config), before)
    assert outbox_rows(config) == queued  # no all-clears, nothing at all queued

    # The export is restored: the next night is the same as if the bad one never happened.
    shutil.copy(good / "tickets.csv", data_dir / "tickets.csv")
    after = run_once(config, AS_OF + dt.timedelta(days=2))
    assert after.exit_code == 0, after.error
    restored = saved_sums(config)

    control = make(store="control.db")  # the same nights without the bad one
    assert run_once(control, AS_OF).exit_code == 0
    assert run_once(control, AS_OF + dt.timedelta(days=2)).exit_code == 0
    pd.testing.assert_frame_equal(restored, saved_sums(control))


def test_every_row_rejected_names_the_reason_and_saves_nothing(company):
    make, data_dir, _ = company
    config = make()
    assert run_once(config, AS_OF).exit_code == 0
    before = saved_sums(config)
    # The export changed its date format: every created_at is unreadable now.
    frame = pd.read_csv(data_dir / "tickets.csv", dtype=str, keep_default_na=False)
    frame["created_at"] = "第" + frame.index.astype(str) + "号"
    frame.to_csv(data_dir / "tickets.csv", index=False)
    bad = run_once(config, AS_OF + dt.timedelta(days=1))
    assert bad.exit_code == 2
    assert "every one of the" in bad.error and "created_at is not a date/time" in bad.error
    pd.testing.assert_frame_equal(saved_sums(config), before)
    # Even a first night (nothing saved to compare with) refuses it.
    first_night = run_once(make(store="new.db"), AS_OF)
    assert first_night.exit_code == 2 and "every one of the" in first_night.error


def test_a_cut_short_export_is_refused_and_a_real_drop_passes_with_the_override(company):
    make, data_dir, _ = company
    config = make()
    assert run_once(config, AS_OF).exit_code == 0
    frame = pd.read_csv(data_dir / "tickets.csv", dtype=str, keep_default_na=False)
    recent = pd.to_datetime(frame["created_at"]) >= pd.Timestamp(AS_OF - dt.timedelta(days=30))
    # Two thirds of the recent tickets are missing (an export cut short).
    keep = ~recent | (frame.index % 3 == 0)
    frame[keep].to_csv(data_dir / "tickets.csv", index=False)
    bad = run_once(config, AS_OF + dt.timedelta(days=1))
    assert bad.exit_code == 2 and "looks cut short" in bad.error and "re-read tonight" in bad.error
    assert "source.drop_guard.min_share: 0" in bad.error
    ok = run_once(make(min_share=0), AS_OF + dt.timedelta(days=1))
    assert ok.exit_code == 0, ok.error


def test_an_emptied_sql_table_is_refused_and_the_saved_totals_kept(tmp_path, make_config):
    url = f"sqlite:///{tmp_path / 'company.db'}"
    write_demo_sql(url, make_demo_frames(DATA_THROUGH, communities=4, years=1.2, seed=5), seed=5)
    config = make_config(
        {
            "source": {"sql": {"url": url}},
            "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
            "forecast": {"model": "naive", "horizon": 14},
            "engine": {"backend": "serial"},
            "output": {"dir": str(tmp_path / "out")},
        }
    )
    assert run_once(config, AS_OF).exit_code == 0
    before = saved_sums(config)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("delete from tickets"))
    engine.dispose()
    bad = run_once(config, AS_OF + dt.timedelta(days=1))
    assert bad.exit_code == 2 and "table tickets" in bad.error and "looks cut short" in bad.error, bad.error
    pd.testing.assert_frame_equal(saved_sums(config), before)
