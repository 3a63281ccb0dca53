"""Reading in batches: the night never holds every ticket, and nothing about a row's report
changes because it came in a later batch (duplicates across batches, line numbers, examples)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from forecaster.ingest import csvfiles, load_daily
from forecaster.ingest.aggregate import series_from_day_sums
from forecaster.ingest.incremental import DaySumsState, day_sums_fingerprint, history_slices, plan_read
from forecaster.ingest.validate import SeenKeys

AS_OF = dt.date(2026, 3, 10)


@pytest.fixture
def csv_company(tmp_path, make_config):
    lines = ["ticket_id,community_id,created_at,closed_at,category,rating"]
    rng = np.random.default_rng(5)
    for i in range(1, 41):
        day = dt.date(2026, 2, 1) + dt.timedelta(days=int(rng.integers(0, 36)))
        closed = f"{day} 18:00" if i % 3 else ""
        lines.append(f"{i},{'A01' if i % 2 else 'A02'},{day} 09:00,{closed},{'投诉' if i % 5 == 0 else '报修'},{i % 6}")
    lines.append("7,A01,2026-03-01 09:00,,报修,")  # line 42: the same ticket exported twice
    lines.append("99,A01,not a date,,报修,")  # line 43
    (tmp_path / "tickets.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "communities.csv").write_text("community_id,name\nA01,翠湖花园\nA02,锦绣家园\n", encoding="utf-8")
    (tmp_path / "surveys.csv").write_text("community_id,date,score\nA01,2026-03-02,90\nA02,2026-03-03,70\n", encoding="utf-8")
    return make_config({"source": {"type": "csv", "csv": {"directory": str(tmp_path)}, "history_days": 60}})


def test_batches_give_the_same_series_and_report_as_one_read(csv_company, monkeypatch):
    whole = load_daily(csv_company, AS_OF)  # 42 rows: one batch
    expected = series_from_day_sums(whole.day_sums, AS_OF, csv_company.metrics, min_history_days=14)
    monkeypatch.setattr(csvfiles, "BATCH_ROWS", 7)  # 42 rows: six full batches and one short one
    daily = load_daily(csv_company, AS_OF)
    got = series_from_day_sums(daily.day_sums, AS_OF, csv_company.metrics, min_history_days=14)
    pd.testing.assert_frame_equal(got.frame, expected.frame)
    tickets = next(r for r in daily.reports if r.table == "tickets")
    assert (tickets.rows_read, tickets.rows_kept) == (42, 40)
    problems = {p.reason: p for p in tickets.problems}
    # The duplicate is in the last batch, its first copy in the first: found all the same.
    assert problems["duplicate ticket_id (first kept)"].examples == ["line 42: '7'"]
    assert problems["created_at is not a date/time"].examples == ["line 43: 'not a date'"]
    assert daily.plan.mode == "full" and daily.plan.reason == "no store to keep day sums in"


def test_seen_keys_find_repeats_across_many_batches():
    seen = SeenKeys()
    for lo in range(0, 1000, 50):
        batch = pd.Series([f"T{i}" for i in range(lo, lo + 50)], dtype="string")
        assert not seen.mark(batch).any()
    assert len(seen.runs) < 8  # merged as they grow, not one run per batch
    again = pd.Series(["T0", "T999", "T1000", "T500", pd.NA], dtype="string")
    assert seen.mark(again).tolist() == [True, True, False, True, False]
    assert seen.mark(pd.Series(["T1000"], dtype="string")).tolist() == [True]  # remembered the last batch too


def state(**changes):
    base = dict(
        fingerprint="abc",
        start=dt.date(2023, 3, 1),
        through=dt.date(2026, 3, 8),
        full_read_on=dt.date(2026, 3, 6),
        communities=("A01", "A02"),
    )
    return DaySumsState(**{**base, **changes})


def plan(saved, as_of=AS_OF, start=dt.date(2023, 3, 2), communities=("A01", "A02"), fingerprint="abc"):
    return plan_read(
        saved,
        as_of=as_of,
        start=start,
        communities=list(communities),
        fingerprint=fingerprint,
        reread_days=14,
        history_reread_nights=7,
    )


def test_plan_reads_recent_days_only_when_the_saved_sums_still_hold():
    p = plan(state())
    assert p.incremental and p.since == dt.date(2026, 2, 23) and p.save  # 9 March (first unsaved) − 14
    assert p.slices == history_slices(AS_OF, dt.date(2023, 3, 2), dt.date(2026, 2, 23), 7) and p.slices
    # A night after a gap re-reads from the saved days' end, not from tonight.
    assert plan(state(through=dt.date(2026, 3, 1))).since == dt.date(2026, 2, 16)
    assert plan(None).reason == "no saved day sums yet"
    assert "settings changed" in plan(state(), fingerprint="xyz").reason
    assert plan(state(), start=dt.date(2023, 2, 1)).reason.startswith("history window starts 2023-02-01")
    assert plan(state(), communities=("A01", "A02", "B01", "B02", "B03", "B04")).reason == (
        "4 new communities (B01, B02, B03 and 1 more)"
    )
    assert plan(state(), communities=("A01",)).incremental  # a community gone: its sums just go unused
    old = plan(state(), as_of=dt.date(2026, 3, 8))
    assert old.mode == "full" and not old.save


def test_every_older_day_is_read_again_once_in_seven_nights_a_slice_a_night():
    start, first_night = dt.date(2023, 3, 2), dt.date(2026, 3, 10)
    seen: dict[dt.date, int] = {}
    sizes = []
    for n in range(7):
        night = first_night + dt.timedelta(days=n)
        since = night - dt.timedelta(days=15)
        slices = history_slices(night, start + dt.timedelta(days=n), since, 7)
        days = [a + dt.timedelta(days=i) for a, b in slices for i in range((b - a).days)]
        sizes.append(len(days))
        for day in days:
            seen[day] = seen.get(day, 0) + 1
    # Every day of the window the seven nights share was read exactly once; each night about a seventh.
    shared = [start + dt.timedelta(days=6 + i) for i in range((first_night - dt.timedelta(days=15) - start).days - 6)]
    assert all(seen.get(day) == 1 for day in shared)
    assert max(sizes) <= 2 * (len(shared) // 7 + 1)
    ds = pd.Series(pd.to_datetime(["2026-03-01", "2025-01-01"]))
    p = plan(state())
    inside = any(a <= dt.date(2025, 1, 1) < b for a, b in p.slices)
    assert p.recomputed(ds).tolist() == [True, inside]
    assert history_slices(AS_OF, start, dt.date(2026, 2, 23), 1) == ((start, dt.date(2026, 2, 23)),)


def test_fingerprint_follows_what_shapes_the_sums_only(make_config, tmp_path):
    base = {"source": {"type": "csv", "csv": {"directory": str(tmp_path)}}}
    fp = day_sums_fingerprint(make_config(base))
    assert day_sums_fingerprint(make_config({**base, "metrics": {"enabled": ["ticket_count"]}})) == fp
    assert day_sums_fingerprint(make_config({**base, "forecast": {"horizon": 30}})) == fp
    assert day_sums_fingerprint(make_config({**base, "metrics": {"rating_scale": 10}})) != fp
    assert day_sums_fingerprint(make_config({**base, "timezone": "Asia/Urumqi"})) != fp
    other = {"source": {"type": "csv", "csv": {"directory": str(tmp_path / "other")}}}
    assert day_sums_fingerprint(make_config(other)) != fp
