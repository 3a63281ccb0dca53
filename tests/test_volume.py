"""Judging tonight's read against the usual (`forecaster.ingest.volume`): pure, on frames."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from forecaster.config import DropGuardConfig
from forecaster.ingest.incremental import ReadPlan
from forecaster.ingest.validate import Problem, TableReport
from forecaster.ingest.volume import Usual, judge_read
from forecaster.util.errors import ShortReadError

AS_OF = dt.date(2026, 11, 23)
THROUGH = AS_OF - dt.timedelta(days=2)  # the saved sums end the night before last
SINCE = AS_OF - dt.timedelta(days=14)
WINDOW = (AS_OF - dt.timedelta(days=400), AS_OF)
GUARD = DropGuardConfig()
PLAN = ReadPlan("incremental", SINCE, "test")
FULL = ReadPlan("full", None, "test")


def sums(first: dt.date, last: dt.date, per_day: int, surveys: int = 0) -> pd.DataFrame:
    days = pd.date_range(first, last, freq="D")
    return pd.DataFrame({"community_id": "C1", "ds": days, "created": per_day, "surveyed": surveys})


def reports(tickets: int = 100, kept: int | None = None, surveys: int = 10) -> list[TableReport]:
    return [
        TableReport("communities", "communities.csv", 3, 3),
        TableReport("tickets", "tickets.csv", tickets, tickets if kept is None else kept),
        TableReport("surveys", "surveys.csv", surveys, surveys),
    ]


def judge(fresh, usual, plan=PLAN, reps=None, guard=GUARD):
    judge_read(reps or reports(), fresh, plan, usual, guard, window=WINDOW)


SAVED = Usual(saved=sums(WINDOW[0], THROUGH, 10), through=THROUGH)


def test_a_normal_incremental_night_passes():
    judge(sums(SINCE, AS_OF - dt.timedelta(days=1), 10), SAVED)
    # A few tickets deleted since (a tenth fewer) is not a broken source.
    judge(sums(SINCE, AS_OF - dt.timedelta(days=1), 9), SAVED)


def test_re_read_days_far_below_what_was_saved_are_refused_with_the_figures():
    with pytest.raises(ShortReadError) as err:
        judge(sums(SINCE, AS_OF - dt.timedelta(days=1), 3), SAVED)
    message = str(err.value)
    assert "tickets.csv gave 39 rows on the 13 days 2026-11-09…2026-11-21 re-read tonight, against 130 saved" in message
    assert "(30%)" in message and "source.drop_guard.min_share: 0" in message
    # The override lets a real drop through.
    judge(sums(SINCE, AS_OF - dt.timedelta(days=1), 3), SAVED, guard=DropGuardConfig(min_share=0))


def test_nothing_on_the_new_day_where_many_were_expected_is_an_out_of_date_export():
    with pytest.raises(ShortReadError, match=r"gave no rows for 2026-11-22, where about 10 were expected"):
        judge(sums(SINCE, THROUGH, 10), SAVED, guard=DropGuardConfig(min_rows=5))
    # With few expected (under min_rows), an empty new day can be real.
    judge(sums(SINCE, THROUGH, 10), SAVED)


def test_a_holiday_low_on_the_new_day_is_not_refused():
    fresh = pd.concat([sums(SINCE, THROUGH, 10), sums(THROUGH + dt.timedelta(days=1), AS_OF - dt.timedelta(days=1), 2)])
    judge(fresh, SAVED, guard=DropGuardConfig(min_rows=5))


def test_small_sources_are_not_judged_by_the_share():
    usual = Usual(saved=sums(WINDOW[0], THROUGH, 1), through=THROUGH)  # 13 tickets in the re-read days
    judge(sums(SINCE, AS_OF - dt.timedelta(days=1), 0).iloc[:0], usual)


def test_every_row_rejected_is_refused_even_with_the_override_and_on_a_first_night():
    reps = reports(tickets=500, kept=0)
    reps[1].problems.append(Problem("created_at is not a date/time", "skipped", 500, ["line 2: '1700000000'"]))
    for guard in (GUARD, DropGuardConfig(min_share=0)):
        with pytest.raises(ShortReadError, match=r"every one of the 500 rows read from tickets.csv was rejected \(500 skipped: created_at"):
            judge(sums(SINCE, THROUGH, 0).iloc[:0], Usual(), plan=FULL, reps=reps, guard=guard)


def test_a_full_read_is_judged_by_the_last_full_read():
    usual = Usual(last_full_rows={"tickets": 10_000, "surveys": 300})
    judge(sums(SINCE, THROUGH, 10), usual, plan=FULL, reps=reports(tickets=9_800, surveys=290))
    with pytest.raises(ShortReadError, match=r"tickets: tickets.csv gave 4,000 usable rows, against 10,000 on the last full read \(40%\)"):
        judge(sums(SINCE, THROUGH, 10), usual, plan=FULL, reps=reports(tickets=4_000))


def test_an_empty_tickets_table_beside_surveys_is_refused():
    with pytest.raises(ShortReadError, match=r"tickets: tickets.csv delivered no rows at all .* while surveys.csv gave 10 surveys"):
        judge(sums(SINCE, THROUGH, 0), Usual(), plan=FULL, reps=reports(tickets=0))
