"""Do the service's KPI numbers agree with the city's? Boston 311 tickets of 2015, read by the
service's own ingest, against the city's published OnTime_Status and a plain count of open cases.

    .venv/bin/python bench/boston311_kpis.py                  # every neighbourhood, as of 2016-01-01
    .venv/bin/python bench/boston311_kpis.py --full           # also every neighbourhood × month cell
    .venv/bin/python bench/boston311_kpis.py --neighbourhood Dorchester --neighbourhood Roxbury

The tickets are written as the service's CSV source (`bench.datasets.boston311_source`: due_at =
TARGET_DT) and read as a night reads them (`forecaster.ingest.load_daily` and
`series_from_day_sums`). Then:

* closed_on_time, per ticket: the city's OnTime_Status is CLOSED_DT ≤ TARGET_DT for a closed
  case, and for a case still open when the file was exported (the night of 12–13 January 2016:
  the last CLOSED_DT is 12 Jan 22:22, the open cases are OVERDUE up to a TARGET_DT of 12 Jan
  22:53 and ONTIME from 13 Jan 08:02) whether its TARGET_DT had passed then; a case without a
  TARGET_DT is always ONTIME. The service's rule (closed by the deadline by the as-of date, the
  deadline due_at or else created + metrics.sla close_hours) is recomputed per ticket and
  compared with the flag, by kind of ticket; and the service's day sums are checked to be that
  rule's sums.
* closed_on_time, per neighbourhood and month of the deadline: the service's share (its day sums
  close_met / close_due over the month) against the city's share ONTIME over the tickets with a
  TARGET_DT in that month. Twice: the service reading every ticket (those without TARGET_DT get
  the 72-hour default deadline) and reading only the tickets with a TARGET_DT (like for like).
* open_backlog and overdue_open, per neighbourhood and day: the service's end-of-day open
  (and overdue open) tickets against a direct count from the raw file (OPEN_DT ≤ end of day <
  CLOSED_DT, or not closed). They must agree exactly on every day.

The service's reading of a closing (`forecaster.ingest.validate.validate_tickets`, since session
9): a CLOSED_DT up to 15 minutes (CLOCK_SKEW) before OPEN_DT is two clocks that differ, the case
closed when it was opened (reported as "kept"; 196 cases in 2015, closed 1–58 s before they were
opened, all ONTIME for the city); a worse one (earlier by more, not a date) is cleared and the
case counts as closed at an unknown time: out of the backlog, judged against no deadline (none
in 2015). The rule recomputed here reads closings the same way; those rows are listed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import (  # noqa: E402
    BOSTON_AS_OF,
    DEFAULT_DATA,
    boston311_cases,
    boston311_service_series,
    boston311_source,
    community_id_of,
)
from forecaster.ingest.validate import CLOCK_SKEW  # noqa: E402

# When the city's file was exported: after the last CLOSED_DT (2016-01-12 22:22:40) and the
# last TARGET_DT of an open OVERDUE case (22:53:53), before the first of an open ONTIME one.
EXPORTED = pd.Timestamp("2016-01-12 23:00")
# How the service reports a closing it takes as the creation (action "kept"), and one it clears.
SKEWED_CLOSED = "closed_at up to 15 min before created_at (clocks differ)"
CLEARED_CLOSED = ("closed_at before created_at", "closed_at is not a date/time", "closed_at in the future")


def slice_cases(data: Path, neighbourhoods: list[str] | None = None, created: tuple[str, str] | None = None) -> pd.DataFrame:
    """The raw tickets `boston311_source` writes for the same arguments (every ticket), with
    ``community_id``."""
    cases = boston311_cases(data)
    cases = cases[cases["neighborhood"].notna()]
    if neighbourhoods is not None:
        cases = cases[cases["neighborhood"].isin(neighbourhoods)]
    if created is not None:
        lo, hi = pd.Timestamp(created[0]), pd.Timestamp(created[1]) + pd.Timedelta(days=1)
        cases = cases[(cases["OPEN_DT"] >= lo) & (cases["OPEN_DT"] < hi)]
    return cases.assign(community_id=community_id_of(cases["neighborhood"])).reset_index(drop=True)


def closings(cases: pd.DataFrame) -> pd.DataFrame:
    """Each case's closing as the service reads it: ``closed`` (CLOSED_DT; OPEN_DT for one up to
    CLOCK_SKEW before it; missing if not closed or closed earlier still), ``skewed`` (closed up
    to CLOCK_SKEW before it was opened: taken as closed when opened), ``untimed`` (closed earlier
    still: closed at a time unknown)."""
    raw, opened = cases["CLOSED_DT"], cases["OPEN_DT"]
    skewed = ((raw < opened) & (raw >= opened - CLOCK_SKEW)).to_numpy()
    untimed = (raw < opened - CLOCK_SKEW).to_numpy()
    closed = raw.mask(skewed, opened).mask(untimed)
    return pd.DataFrame({"closed": closed, "skewed": skewed, "untimed": untimed}, index=cases.index)


# ------------------------------------------------------------------------------ closed_on_time
def deadline_day(at: pd.Series) -> pd.Series:
    """The day a deadline falls on (a deadline at midnight ends the day before), as the service says."""
    return (at - pd.Timedelta(microseconds=1)).dt.normalize()


def ticket_rule(cases: pd.DataFrame, as_of: str = BOSTON_AS_OF, close_hours: float = 72.0) -> pd.DataFrame:
    """Each ticket's on-time verdict by the service's rule, recomputed here with plain pandas:
    deadline = TARGET_DT, else OPEN_DT + ``close_hours`` (metrics.sla default); met = closed
    (as `closings` reads it) before the as-of date and by the deadline; a case closed at an
    unknown time (``untimed``) is not judged. Also the city's rule at export time."""
    as_of_t = pd.Timestamp(as_of)
    c = closings(cases)
    closed_then = c["closed"].where(c["closed"] < as_of_t)
    deadline = cases["TARGET_DT"].fillna(cases["OPEN_DT"] + pd.Timedelta(hours=close_hours))
    out = pd.DataFrame(
        {
            "community_id": cases["community_id"],
            "has_target": cases["TARGET_DT"].notna(),
            "closed": cases["CLOSED_DT"].notna(),
            "deadline_ds": deadline_day(deadline),
            "service_met": (closed_then <= deadline).to_numpy(),
            "city": cases["OnTime_Status"],
            "skewed": c["skewed"].to_numpy(),
            "untimed": c["untimed"].to_numpy(),
        }
    )
    # The city's flag as we read it: closed by TARGET_DT, or still open and TARGET_DT not passed at export.
    target, raw_closed = cases["TARGET_DT"], cases["CLOSED_DT"]
    city_rule = np.where(
        target.isna(), True, np.where(raw_closed.notna(), raw_closed <= target, target > EXPORTED)
    )
    out["city_rule"] = np.where(city_rule, "ONTIME", "OVERDUE")
    return out


def ticket_agreement(rule: pd.DataFrame, as_of: str = BOSTON_AS_OF) -> pd.DataFrame:
    """Per kind of ticket: how many, how often the city's flag matches our reading of it
    (``city_rule``), and how often it matches the service's verdict (deadline before as_of)."""
    r = rule[rule["city"].notna()].copy()
    r["kind"] = np.select(
        [r["has_target"] & r["closed"], r["has_target"]], ["TARGET_DT, closed", "TARGET_DT, open at export"], "no TARGET_DT"
    )
    r["due_in_window"] = (r["deadline_ds"] < pd.Timestamp(as_of)) & ~r["untimed"]
    r["agree_rule"] = r["city_rule"] == r["city"]
    r["agree_service"] = np.where(r["service_met"], "ONTIME", "OVERDUE") == r["city"]
    rows = []
    for kind, g in [*r.groupby("kind", sort=True), ("all", r)]:
        w = g[g["due_in_window"]]
        rows.append(
            {
                "tickets": kind,
                "n": len(g),
                "city_ontime": (g["city"] == "ONTIME").mean(),
                "city_flag_rule_agrees": g["agree_rule"].mean(),
                "n_due_2015": len(w),
                "service_agrees": w["agree_service"].mean() if len(w) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def rule_sums(rule: pd.DataFrame, as_of: str = BOSTON_AS_OF) -> pd.DataFrame:
    """The ticket rule summed per community and deadline day (what close_due/close_met should be)."""
    due = rule[(rule["deadline_ds"] < pd.Timestamp(as_of)) & ~rule["untimed"]]
    return (
        due.groupby(["community_id", "deadline_ds"])["service_met"]
        .agg(close_due="size", close_met="sum")
        .rename_axis(["community_id", "ds"])
        .reset_index()
    )


def check_day_sums(sums: pd.DataFrame, rule: pd.DataFrame, as_of: str = BOSTON_AS_OF) -> pd.DataFrame:
    """Days where the service's close_due/close_met differ from the ticket rule's sums (none expected)."""
    mine = rule_sums(rule, as_of)
    theirs = sums.groupby(["community_id", "ds"])[["close_due", "close_met"]].sum().reset_index()
    theirs = theirs[theirs["close_due"] > 0]
    both = mine.merge(theirs, on=["community_id", "ds"], how="outer", suffixes=("_rule", "_service")).fillna(0)
    return both[(both["close_due_rule"] != both["close_due_service"]) | (both["close_met_rule"] != both["close_met_service"])]


def service_monthly(sums: pd.DataFrame) -> pd.DataFrame:
    """The service's closed_on_time per community and month: Σ close_met / Σ close_due."""
    s = sums.assign(month=sums["ds"].dt.to_period("M"))
    g = s.groupby(["community_id", "month"])[["close_due", "close_met"]].sum()
    g = g[g["close_due"] > 0]
    g["service"] = g["close_met"] / g["close_due"]
    return g.reset_index()


def city_monthly(cases: pd.DataFrame, as_of: str = BOSTON_AS_OF) -> pd.DataFrame:
    """The city's on-time share per community and month of TARGET_DT (tickets with one and a flag)."""
    c = cases[cases["TARGET_DT"].notna() & cases["OnTime_Status"].notna()]
    c = c[c["TARGET_DT"] < pd.Timestamp(as_of)]
    c = c.assign(month=deadline_day(c["TARGET_DT"]).dt.to_period("M"), ontime=c["OnTime_Status"] == "ONTIME")
    g = c.groupby(["community_id", "month"])["ontime"].agg(city_n="size", city_ontime="sum").reset_index()
    g["city"] = g["city_ontime"] / g["city_n"]
    return g


def explained(table: pd.DataFrame, rule: pd.DataFrame, as_of: str = BOSTON_AS_OF) -> pd.DataFrame:
    """The like-for-like gaps (the service reading the tickets with a TARGET_DT) taken apart per
    cell: ``unflagged_due`` / ``unflagged_met``: tickets the service counts that the city gives no
    OnTime_Status; ``untimed_flagged``: flagged tickets the service does not judge (closed at an
    unknown time; none in 2015); ``flagged_other``: flagged tickets the service judges otherwise
    than the city (none expected; ``flagged_net``: service met − city met over them);
    ``skewed``: flagged tickets closed up to CLOCK_SKEW before they were opened (closed at
    creation, so met, as the city says: no part of a gap, counted to show where they are).
    ``residual_due`` / ``residual_met``: what is left of the difference in tickets due / met once
    those are taken off (zero expected)."""
    r = rule[rule["has_target"] & (rule["deadline_ds"] < pd.Timestamp(as_of))]
    r = r.assign(month=r["deadline_ds"].dt.to_period("M"), flagged=r["city"].notna())
    city_met = (r["city"] == "ONTIME").astype(int)
    judged = r["flagged"] & ~r["untimed"]
    net = judged.astype(int) * (r["service_met"].astype(int) - city_met)
    r = r.assign(
        unflagged_due=(~r["flagged"] & ~r["untimed"]).astype(int),
        unflagged_met=(~r["flagged"] & r["service_met"]).astype(int),
        untimed_flagged=(r["flagged"] & r["untimed"]).astype(int),
        untimed_flagged_met=(r["flagged"] & r["untimed"]).astype(int) * city_met,
        flagged_net=net,
        flagged_other=net.abs(),
        skewed=(r["flagged"] & r["skewed"]).astype(int),
    )
    cols = ["unflagged_due", "unflagged_met", "untimed_flagged", "untimed_flagged_met", "flagged_net", "flagged_other", "skewed"]
    parts = r.groupby(["community_id", "month"])[cols].sum().reset_index()
    t = table.merge(parts, on=["community_id", "month"], how="left")
    for c in ("close_due", "close_met", "city_n", "city_ontime", *cols):
        t[c] = t[c].fillna(0).astype(int)
    t["residual_due"] = t["close_due"] - t["city_n"] - t["unflagged_due"] + t["untimed_flagged"]
    t["residual_met"] = t["close_met"] - t["city_ontime"] - t["unflagged_met"] + t["untimed_flagged_met"] - t["flagged_net"]
    return t


def monthly_table(service: pd.DataFrame, city: pd.DataFrame) -> pd.DataFrame:
    both = service.merge(city, on=["community_id", "month"], how="outer")
    both["diff"] = both["service"] - both["city"]
    return both


def cell_summary(table: pd.DataFrame, min_n: int = 20) -> dict[str, float]:
    """How close the cells are: those with at least ``min_n`` city tickets."""
    t = table[(table["city_n"] >= min_n) & table["service"].notna()]
    d = t["diff"].abs()
    return {
        "cells": len(t),
        "mean_abs_diff": d.mean(),
        "median_abs_diff": d.median(),
        "p90_abs_diff": d.quantile(0.9),
        "max_abs_diff": d.max(),
        "within_1pt": (d <= 0.01).mean(),
        "within_5pt": (d <= 0.05).mean(),
    }


def pooled(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Service and city shares pooled over the other dimension (``by``: community_id or month)."""
    g = table.groupby(by)[["close_due", "close_met", "city_n", "city_ontime"]].sum().astype(int)
    g["service"] = g["close_met"] / g["close_due"]
    g["city"] = g["city_ontime"] / g["city_n"]
    g["diff"] = g["service"] - g["city"]
    return g.reset_index()


# -------------------------------------------------------------------------------- open_backlog
def direct_counts(cases: pd.DataFrame, days: pd.DatetimeIndex, close_hours: float = 72.0) -> pd.DataFrame:
    """Open and overdue open tickets at the end of each day per community, counted directly from
    the raw rows: open = OPEN_DT ≤ end of day < CLOSED_DT, or no CLOSED_DT (the end of a day is
    the last instant before midnight: a ticket opened or closed at midnight belongs to the new
    day, as the service counts it); overdue = open and its deadline (TARGET_DT, else OPEN_DT +
    ``close_hours``) ≤ midnight. A case closed before it was opened counts as closed when opened
    (what the city's data means: a few seconds between two clocks; `backlog_table` passes
    `closings`' reading, where a case closed at an unknown time is closed at its opening too).
    → community_id, ds, direct, direct_overdue."""
    parts = []
    ends = (days + pd.Timedelta(days=1)).to_numpy()
    for cid, g in cases.groupby("community_id", sort=True):
        opened = g["OPEN_DT"].to_numpy()[:, None] < ends[None, :]
        closed = g["CLOSED_DT"].to_numpy()[:, None]
        still = opened & (np.isnat(closed) | (closed >= ends[None, :]))
        deadline = g["TARGET_DT"].fillna(g["OPEN_DT"] + pd.Timedelta(hours=close_hours)).to_numpy()[:, None]
        overdue = still & (deadline <= ends[None, :])
        parts.append(pd.DataFrame({"community_id": cid, "ds": days, "direct": still.sum(axis=0), "direct_overdue": overdue.sum(axis=0)}))
    if not parts:
        return pd.DataFrame({"community_id": pd.Series(dtype=object), "ds": pd.Series(dtype="datetime64[ns]"), "direct": 0, "direct_overdue": 0})
    return pd.concat(parts, ignore_index=True)


def backlog_table(series_frame: pd.DataFrame, cases: pd.DataFrame, as_of: str = BOSTON_AS_OF) -> pd.DataFrame:
    """Service open_backlog and overdue_open against `direct_counts` on the service's days
    (``diff`` / ``diff_overdue``: service − direct, zero expected), and ``skewed``: the cases
    closed before they were opened created by that day (what the service's backlog was too
    high by before session 9, when it cleared their closing and kept them open for ever;
    ``skewed_overdue``: those of them past their deadline)."""
    f = series_frame[series_frame["metric"].isin(["open_backlog", "overdue_open"])]
    svc = f.pivot_table(index=["community_id", "ds"], columns="metric", values="y").reset_index()
    svc = svc.rename(columns={"open_backlog": "service", "overdue_open": "service_overdue"})
    days = pd.date_range(cases["OPEN_DT"].min().normalize(), pd.Timestamp(as_of) - pd.Timedelta(days=1), freq="D")
    c = closings(cases)
    read = cases.assign(CLOSED_DT=c["closed"].where(~c["untimed"], cases["OPEN_DT"]))
    t = svc.merge(direct_counts(read, days), on=["community_id", "ds"], how="left")
    skewed = cases[c["skewed"]].assign(CLOSED_DT=pd.NaT)  # open for ever, as the service had them
    extra = direct_counts(skewed, days).rename(columns={"direct": "skewed", "direct_overdue": "skewed_overdue"})
    t = t.merge(extra, on=["community_id", "ds"], how="left").fillna({"skewed": 0, "skewed_overdue": 0})
    t["skewed"] = t["skewed"].astype(int)
    t["skewed_overdue"] = t["skewed_overdue"].astype(int)
    t["diff"] = t["service"] - t["direct"]
    t["diff_overdue"] = t["service_overdue"] - t["direct_overdue"]
    return t.sort_values(["community_id", "ds"]).reset_index(drop=True)


ROW_COLUMNS = ["CASE_ENQUIRY_ID", "neighborhood", "OPEN_DT", "CLOSED_DT", "TARGET_DT", "OnTime_Status", "TYPE"]


def skewed_rows(cases: pd.DataFrame) -> pd.DataFrame:
    """The cases closed up to CLOCK_SKEW before they were opened (taken as closed when opened)."""
    return cases.loc[closings(cases)["skewed"], ROW_COLUMNS]


def untimed_rows(cases: pd.DataFrame) -> pd.DataFrame:
    """The cases closed earlier still before they were opened (closed at a time unknown)."""
    return cases.loc[closings(cases)["untimed"], ROW_COLUMNS]


# -------------------------------------------------------------------------------------- report
def compare(data: Path, neighbourhoods: list[str] | None = None, created: tuple[str, str] | None = None, work: Path | None = None) -> dict:
    """Everything the script prints, as frames (the test reads these)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(work or tmp)
        all_cfg = boston311_source(data, base / "all", neighbourhoods=neighbourhoods, created=created)
        tgt_cfg = boston311_source(data, base / "targets", neighbourhoods=neighbourhoods, created=created, targets_only=True)
        daily, series = boston311_service_series(all_cfg)
        daily_t, _ = boston311_service_series(tgt_cfg)
    cases = slice_cases(data, neighbourhoods, created)
    rule = ticket_rule(cases)
    city = city_monthly(cases)
    tickets_report = next(r for r in daily.reports if r.table == "tickets")
    problems = tickets_report.problems
    return {
        "cases": cases,
        "reports": daily.reports,
        "skewed_reported": sum(p.count for p in problems if p.reason.startswith(SKEWED_CLOSED) and p.action == "kept"),
        "cleared_reported": sum(p.count for p in problems if p.reason.startswith(CLEARED_CLOSED)),
        "rejected": [p for p in problems if p.action != "kept"],
        "tickets": ticket_agreement(rule),
        "day_sum_mismatches": check_day_sums(daily.day_sums, rule),
        "monthly_all": monthly_table(service_monthly(daily.day_sums), city),
        "monthly_targets": explained(monthly_table(service_monthly(daily_t.day_sums), city), rule),
        "rule": rule,
        "backlog": backlog_table(series.frame, cases),
        "skewed_rows": skewed_rows(cases),
        "untimed_rows": untimed_rows(cases),
        "series": series,
    }


def _md(frame: pd.DataFrame, pct: tuple[str, ...] = (), digits: int = 3) -> str:
    cols = list(frame.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in frame.to_dict("records"):
        cells = []
        for c in cols:
            v = rec[c]
            if isinstance(v, (float, np.floating)) and not isinstance(v, bool):
                cells.append("" if np.isnan(v) else f"{v:+.1%}" if c == "diff" else f"{v:.1%}" if c in pct else f"{v:.{digits}f}")
            else:
                cells.append(str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


SHARES = ("service", "city", "city_ontime_share", "city_ontime", "city_flag_rule_agrees", "service_agrees", "within_1pt", "within_5pt",
          "mean_abs_diff", "median_abs_diff", "p90_abs_diff", "max_abs_diff")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared/data folder")
    p.add_argument("--neighbourhood", action="append", help="only this neighbourhood (repeat for more)")
    p.add_argument("--created", nargs=2, metavar=("FIRST", "LAST"), help="only tickets created in these days")
    p.add_argument("--full", action="store_true", help="also print every neighbourhood × month cell")
    p.add_argument("--output", type=Path, help="write the tables as CSV files into this folder")
    args = p.parse_args()
    if not (args.data / "boston311").is_dir():
        print(f"data folder not found: {args.data / 'boston311'} (pass --data)", file=sys.stderr)
        return 2
    r = compare(args.data, args.neighbourhood, tuple(args.created) if args.created else None)
    cases = r["cases"]
    print(f"# Boston 311, 2015: {len(cases):,} tickets in {cases['community_id'].nunique()} neighbourhoods, as of {BOSTON_AS_OF}\n")
    print("Rows the service reported (tickets):")
    for rep in r["reports"]:
        for prob in rep.problems:
            print(f"- {rep.table}: {prob.describe()}")

    print("\n## closed_on_time per ticket: the city's OnTime_Status against our reading of it and the service's verdict\n")
    print("city_flag_rule_agrees: CLOSED_DT ≤ TARGET_DT if closed, TARGET_DT after the export (2016-01-12 23:00) if open, ONTIME without a TARGET_DT.")
    print("service_agrees: over tickets whose deadline falls in 2015, the service's rule (closed before 2016-01-01 by due_at, else by created + 72 h).\n")
    print(_md(r["tickets"], pct=SHARES))
    rule = r["rule"]
    judged = rule[rule["has_target"] & rule["city"].notna() & ~rule["untimed"] & (rule["deadline_ds"] < pd.Timestamp(BOSTON_AS_OF))]
    differ = np.where(judged["service_met"], "ONTIME", "OVERDUE") != judged["city"]
    unflagged = rule[rule["has_target"] & rule["city"].isna() & ~rule["untimed"] & (rule["deadline_ds"] < pd.Timestamp(BOSTON_AS_OF))]
    u = cases.loc[unflagged.index]
    as_of_t = pd.Timestamp(BOSTON_AS_OF)
    print(
        f"\nOf the {len(judged):,} flagged tickets with a TARGET_DT in 2015 the service's verdict differs from the city's for "
        f"{int(differ.sum())}; {int(judged['skewed'].sum())} of them were closed before they were opened (closed at creation for "
        f"the service, ONTIME for both). The service also judges {len(unflagged)} tickets the city gives no OnTime_Status, "
        f"{int(unflagged['service_met'].sum())} of them met ({int(((u['CLOSED_DT'] < as_of_t) & (u['CLOSED_DT'] > u['TARGET_DT'])).sum())} "
        f"closed in 2015 after their TARGET_DT, {int((u['CLOSED_DT'] >= as_of_t).sum())} closed in 2016, "
        f"{int(u['CLOSED_DT'].isna().sum())} open at the export): they make the like-for-like gaps below. "
        f"Closed at an unknown time (not judged): {int(rule['untimed'].sum())}."
    )
    mism = r["day_sum_mismatches"]
    print(f"\nService day sums (close_due, close_met) against the same rule summed per neighbourhood and deadline day: {len(mism)} days differ")
    if len(mism):
        print(_md(mism.head(20)))

    for key, title in (
        ("monthly_targets", "service reading only the tickets with a TARGET_DT (like for like)"),
        ("monthly_all", "service reading every ticket (no TARGET_DT: 72-hour default deadline)"),
    ):
        t = r[key]
        print(f"\n## closed_on_time per neighbourhood × month of deadline: {title}\n")
        s = cell_summary(t)
        print(_md(pd.DataFrame([s]), pct=SHARES))
        if "residual_due" in t:
            print(
                f"\nThe gaps taken apart ({len(t)} cells): {int(t['unflagged_due'].sum())} tickets due without a city flag "
                f"({int(t['unflagged_met'].sum())} of them met) in {int((t['unflagged_due'] > 0).sum())} cells, "
                f"{int(t['flagged_other'].sum())} flagged tickets judged differently, {int(t['untimed_flagged'].sum())} flagged "
                f"but closed at an unknown time; cells with anything left unexplained: "
                f"{int(((t['residual_due'] != 0) | (t['residual_met'] != 0)).sum())}; cells with a gap but no unflagged ticket: "
                f"{int(((t['diff'].fillna(0) != 0) & (t['unflagged_due'] == 0)).sum())}. ({int(t['skewed'].sum())} flagged tickets "
                "closed before they were opened are in these cells, on time for both.)"
            )
        print("\nBy month (all neighbourhoods pooled):\n")
        print(_md(pooled(t, "month")[["month", "close_due", "service", "city_n", "city", "diff"]], pct=SHARES))
        print("\nBy neighbourhood (all months pooled):\n")
        print(_md(pooled(t, "community_id")[["community_id", "close_due", "service", "city_n", "city", "diff"]], pct=SHARES))
        if args.full:
            print("\nEvery cell:\n")
            print(_md(t[["community_id", "month", "close_due", "service", "city_n", "city", "diff"]], pct=SHARES))

    b = r["backlog"]
    print("\n## open_backlog and overdue_open per neighbourhood × day: service against a direct count of the raw rows\n")
    print("diff: service − direct count (a case closed before it was opened counted closed when opened); skewed: of those cases,")
    print("the ones created by that day, what the service's backlog was too high by before session 9 (it kept them open for ever).\n")
    per = b.groupby("community_id").agg(
        days=("ds", "size"), mean_open=("direct", "mean"), days_equal=("diff", lambda d: int((d == 0).sum())),
        max_abs_diff=("diff", lambda d: d.abs().max()), mean_overdue=("direct_overdue", "mean"),
        overdue_days_equal=("diff_overdue", lambda d: int((d == 0).sum())), skewed=("skewed", "max"),
    )
    print(_md(per.reset_index(), digits=1))
    n = len(b)
    print(
        f"\n{n:,} neighbourhood-days. open_backlog: {(b['diff'] == 0).mean():.2%} equal; overdue_open: "
        f"{(b['diff_overdue'] == 0).mean():.2%} equal; {int(b['direct'].isna().sum())} service days missing from the direct count. "
        f"The service reported {r['skewed_reported']} tickets as '{SKEWED_CLOSED}' (kept, closed when created) and cleared "
        f"{r['cleared_reported']} closings. Before session 9 it cleared those {r['skewed_reported']} and kept them open: "
        f"{(b['skewed'] == 0).mean():.2%} of days equal then."
    )
    cl = r["skewed_rows"]
    if len(cl):
        secs = (cl["OPEN_DT"] - cl["CLOSED_DT"]).dt.total_seconds().astype(int)
        print(f"\nThe {len(cl)} rows closed before they were opened ({secs.min()}–{secs.max()} s before; all taken as closed when opened):\n")
        summary = cl.assign(seconds=secs)
        print(_md(summary.groupby(["neighborhood", "TYPE"]).agg(n=("seconds", "size"), max_seconds=("seconds", "max")).reset_index()))
        print("\nFirst ten:\n")
        print(_md(summary.head(10).astype(str)))
    un = r["untimed_rows"]
    print(f"\nRows closed more than {CLOCK_SKEW.seconds // 60} min before they were opened (closed at an unknown time): {len(un)}")
    if len(un):
        print(_md(un.head(10).astype(str)))
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        for key in ("tickets", "day_sum_mismatches", "monthly_all", "monthly_targets", "backlog", "skewed_rows", "untimed_rows"):
            r[key].to_csv(args.output / f"{key}.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
