"""Daily series per community × metric, from validated tickets and surveys. Pure, vectorised.

Metrics (DESIGN.md, the series frame contract; their names and kinds are in ``forecaster/vocab.py``,
their computations here):

* ``ticket_count``: tickets created that day; 0 on a quiet day.
* ``complaint_count``: of those, the ones whose category is a complaint (``metrics.complaint_categories``).
* ``satisfaction``: 0–100, the response-weighted mean of survey scores that day and of
  post-ticket ratings given that day (a ticket's rating counts on its closing day). A day
  without any response is *missing*, never 0.
* ``resolution_hours``: mean hours from creation to closing of the tickets closed that day;
  missing on a day nothing was closed.

A community's series run from its first ticket or survey (within the history window) to the
day before ``as_of``. Days are local dates in the configured timezone (validation already
converted the timestamps).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.config import COMPLAINT_LINE, MetricsConfig
from forecaster.vocab import line_of

__all__ = [
    "DailySeries",
    "DAY_SUM_COLUMNS",
    "COUNT_COLUMNS",
    "SUM_COLUMNS",
    "LINE_PREFIX",
    "line_columns",
    "day_sums",
    "combine_day_sums",
    "empty_day_sums",
    "series_from_day_sums",
]


@dataclass
class DailySeries:
    frame: pd.DataFrame  # series_id, community_id, metric, ds, y  (long; y NaN where missing)
    stats: pd.DataFrame  # one row per series: series_id, community_id, metric, first_ds, last_ds, n_days, n_obs, status, reason

    @property
    def n_series(self) -> int:
        return int((self.stats["status"] != "no_data").sum())


def _grid(first: pd.Series, end: pd.Timestamp) -> pd.MultiIndex:
    """(community_id, ds) for every day from each community's first day to ``end``."""
    first = first[first <= end]
    lengths = ((end - first).dt.days + 1).to_numpy()
    communities = np.repeat(first.index.to_numpy(), lengths)
    starts = np.repeat(first.to_numpy().astype("datetime64[D]"), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ds = pd.DatetimeIndex(starts + offsets.astype("timedelta64[D]")).astype("datetime64[ns]")
    return pd.MultiIndex.from_arrays([communities, ds], names=["community_id", "ds"])


# Additive day sums per community: what a day's metrics are computed from. Sums (not means)
# so that the sums of one day read in different batches, or on different nights, add up.
# Counts are whole numbers; the rest are sums of hours or of survey weights.
COUNT_COLUMNS = (
    "created", "complaints", "closed", "closed_untimed", "surveyed", "responded",
    "resp_due", "resp_met", "close_due", "close_met", "overdue_in", "overdue_out",
)
SUM_COLUMNS = ("hours", "sat_w", "sat_wy", "resp_hours", "rec_w", "promoters", "detractors")
DAY_SUM_COLUMNS = COUNT_COLUMNS + SUM_COLUMNS
# Tickets created per service line: one column each, ``created.<line>`` (lines of the config).
LINE_PREFIX = "created."


def line_columns(frame: pd.DataFrame) -> list[str]:
    """The per-line count columns a day-sums frame holds, sorted."""
    return sorted(c for c in frame.columns if c.startswith(LINE_PREFIX))


def _deadline_day(at: pd.Series) -> pd.Series:
    """The day a deadline falls on: a deadline at midnight belongs to the day it ends."""
    return (at - pd.Timedelta(microseconds=1)).dt.normalize()


def day_sums(tickets: pd.DataFrame, surveys: pd.DataFrame, metrics: MetricsConfig) -> pd.DataFrame:
    """Day sums per community from validated tickets and surveys → ``community_id, ds``,
    `DAY_SUM_COLUMNS` and a ``created.<line>`` per service line met, one row per community
    and day with anything on it:

    * ``created`` / ``complaints``: tickets created that day / of them complaints;
    * ``closed`` / ``hours``: tickets closed that day / their hours from creation to closing;
    * ``closed_untimed``: tickets created that day whose closing is no usable time (validation
      cleared it): closed, but neither timed nor judged against a deadline;
    * ``responded`` / ``resp_hours``: tickets first answered that day (``responded_at``) / their
      hours from creation to it;
    * ``resp_due`` / ``resp_met``: tickets whose response deadline (metrics.sla by line) falls
      that day / of them answered by it (a ticket closed without a response time was answered
      when it was closed);
    * ``close_due`` / ``close_met``: tickets whose closing deadline (``due_at``, else metrics.sla)
      falls that day / of them closed by it;
    * ``overdue_in`` / ``overdue_out``: tickets still open when their closing deadline passed,
      counted on the deadline's day / on the day they were closed at last: the overdue open
      tickets at a day's end are the running sum of the difference;
    * ``sat_w`` / ``sat_wy``: satisfaction weight and weighted score given that day (survey
      responses; a ticket's rating on its closing day, or creation day if still open);
    * ``surveyed``: survey rows that day (with ``created``, where a community's history starts);
    * ``rec_w`` / ``promoters`` / ``detractors``: survey responses with a ``recommend`` that day /
      of them 9–10 / 0–6 (NPS: over the week to each day, `NPS_DAYS`).
    """
    tickets = _with_optional(tickets, metrics)
    cid = tickets["community_id"]
    created_at = tickets["created_at"]
    t_day = created_at.dt.normalize()
    line = tickets["line"]
    untimed = tickets["closed_untimed"].to_numpy(dtype=bool)
    created = pd.DataFrame(
        {"created": 1, "complaints": (line == COMPLAINT_LINE).fillna(False).astype(np.int64), "closed_untimed": untimed.astype(np.int64)},
        index=tickets.index,
    )
    for key in metrics.service_lines:
        hit = (line == key).fillna(False).to_numpy(bool)
        if hit.any():
            created[LINE_PREFIX + key] = hit.astype(np.int64)
    pieces = [created.groupby([cid, t_day]).sum()]

    def add(mask: np.ndarray, day: pd.Series, columns: dict[str, object]) -> None:
        if mask.any():
            frame = pd.DataFrame(columns, index=tickets.index)[mask]
            pieces.append(frame.groupby([cid[mask], day[mask]]).sum())

    closed_at = tickets["closed_at"]
    closed = closed_at.notna().to_numpy()
    hours = (closed_at - created_at).dt.total_seconds() / 3600.0
    add(closed, closed_at.dt.normalize(), {"closed": 1, "hours": hours})

    responded_at = tickets["responded_at"]
    add(
        responded_at.notna().to_numpy(),
        responded_at.dt.normalize(),
        {"responded": 1, "resp_hours": (responded_at - created_at).dt.total_seconds() / 3600.0},
    )
    if len(tickets):
        respond_h, close_h = _sla_hours(line, metrics)
        respond_by = created_at + pd.to_timedelta(respond_h, unit="h")
        answered = responded_at.fillna(closed_at)
        judged = ~(untimed & answered.isna().to_numpy())
        add(judged, _deadline_day(respond_by), {"resp_due": 1, "resp_met": (answered <= respond_by).astype(np.int64)})
        close_by = tickets["due_at"].fillna(created_at + pd.to_timedelta(close_h, unit="h"))
        met = (closed_at <= close_by).to_numpy()
        late = {"close_due": 1, "close_met": met.astype(np.int64), "overdue_in": (~met).astype(np.int64)}
        add(~untimed, _deadline_day(close_by), late)
        add(~met & closed, closed_at.dt.normalize(), {"overdue_out": 1})

    if len(surveys):
        # Every survey row starts a community's history; the chosen sources make satisfaction.
        counted = np.full(len(surveys), "surveys" in metrics.satisfaction_from)
        chosen = metrics.satisfaction.sources
        if chosen is not None and "source" in surveys:
            wanted = {c.strip().lower() for c in chosen}
            source = surveys["source"]
            counted &= (source.isna() | source.str.strip().str.lower().isin(wanted)).to_numpy(dtype=bool)
        w = surveys["responses"].where(counted, 0.0)
        pieces.append(
            pd.DataFrame({"sat_w": w, "sat_wy": surveys["score"] * w, "surveyed": 1})
            .groupby([surveys["community_id"], surveys["date"]])
            .sum()
        )
    if len(surveys) and "recommend" in surveys:
        rec = surveys["recommend"]
        given = rec.notna().to_numpy()
        if given.any():
            w = surveys["responses"]
            pieces.append(
                pd.DataFrame({"rec_w": w, "promoters": w.where(rec >= 9, 0.0), "detractors": w.where(rec <= 6, 0.0)})[given]
                .groupby([surveys["community_id"][given], surveys["date"][given]])
                .sum()
            )
    if "ratings" in metrics.satisfaction_from:
        rated = tickets["rating"].notna()
        if rated.any():
            r_day = tickets.loc[rated, "closed_at"].fillna(tickets.loc[rated, "created_at"]).dt.normalize()
            pieces.append(
                pd.DataFrame({"sat_w": 1.0, "sat_wy": tickets.loc[rated, "rating"]}).groupby([cid[rated], r_day]).sum()
            )
    return combine_day_sums(pieces)


def _with_optional(tickets: pd.DataFrame, metrics: MetricsConfig) -> pd.DataFrame:
    """Tickets with every column of validated ones (a frame made elsewhere may lack the optional
    times, or the line, which is then found from the category)."""
    missing: dict[str, pd.Series] = {
        c: pd.Series(pd.NaT, index=tickets.index, dtype="datetime64[ns]") for c in ("responded_at", "due_at") if c not in tickets
    }
    if "closed_untimed" not in tickets:
        missing["closed_untimed"] = pd.Series(False, index=tickets.index)
    if "line" not in tickets:
        lines = metrics.category_lines
        missing["line"] = tickets["category"].str.strip().str.lower().map(lines).astype("string")
    return tickets.assign(**missing) if missing else tickets


def _sla_hours(line: pd.Series, metrics: MetricsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each ticket's response and closing deadlines in hours, by its line (metrics.sla)."""
    default = metrics.sla_for(None)
    respond = np.full(len(line), default.respond_hours, dtype=float)
    close = np.full(len(line), default.close_hours, dtype=float)
    for key, sla in metrics.sla.items():
        hit = (line == key).fillna(False).to_numpy(bool)
        respond[hit], close[hit] = sla.respond_hours, sla.close_hours
    return respond, close


def combine_day_sums(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """Add up day sums (indexed or with ``community_id, ds`` columns) into one row per community
    and day, columns ``community_id, ds``, `DAY_SUM_COLUMNS` and the per-line counts."""
    frames = []
    for piece in pieces:
        if "community_id" in piece.columns:
            piece = piece.set_index(["community_id", "ds"])
        piece.index = piece.index.set_names(["community_id", "ds"])
        frames.append(piece)
    if not frames:
        return empty_day_sums()
    both = pd.concat(frames).fillna(0)
    summed = both.groupby(level=["community_id", "ds"], sort=True).sum() if len(frames) > 1 else both
    for col in DAY_SUM_COLUMNS:
        if col not in summed.columns:
            summed[col] = 0
    lines = line_columns(summed)
    out = summed[[*DAY_SUM_COLUMNS, *lines]].reset_index()
    out["community_id"] = out["community_id"].astype("string")
    out["ds"] = out["ds"].astype("datetime64[ns]")
    for col in (*COUNT_COLUMNS, *lines):
        out[col] = out[col].astype(np.int64)
    for col in SUM_COLUMNS:
        out[col] = out[col].astype("float64")
    return out


def empty_day_sums() -> pd.DataFrame:
    frame = pd.DataFrame({"community_id": pd.Series(dtype="string"), "ds": pd.Series(dtype="datetime64[ns]")})
    for col in DAY_SUM_COLUMNS:
        frame[col] = pd.Series(dtype="int64" if col in COUNT_COLUMNS else "float64")
    return frame


def series_from_day_sums(
    sums: pd.DataFrame,
    as_of: dt.date,
    metrics: MetricsConfig,
    *,
    min_history_days: int,
    communities: pd.Series | None = None,
) -> DailySeries:
    """Daily series up to the day before ``as_of`` from day sums (`day_sums`; a community and
    day may appear more than once: its sums are added up).

    ``communities`` (ids) lists every known community, so that one without any data in the
    window still appears in ``stats`` as ``no_data``.
    """
    end = pd.Timestamp(as_of) - pd.Timedelta(days=1)
    if sums.duplicated(["community_id", "ds"]).any():
        sums = combine_day_sums([sums])
    sums = sums[sums["ds"] <= end]
    starts = sums[(sums["created"] > 0) | (sums["surveyed"] > 0)]
    first = starts.groupby("community_id", sort=True)["ds"].min().astype("datetime64[ns]")
    index = _grid(first, end)
    p = sums.set_index(["community_id", "ds"]).reindex(index)

    enabled = metrics.series_metrics
    daily = daily_metrics(p.fillna(0), enabled)
    long, stats = _long_series(daily, index, sorted(enabled), communities, min_history_days)
    return DailySeries(long, stats)


def _long_series(
    daily: pd.DataFrame, index: pd.MultiIndex, metrics: list[str], communities: pd.Series | None, min_history_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long frame (series with any observation; by community, metric, day) and the stats
    of every community × metric, from one column per metric on the grid of every community's
    days. With arrays: millions of rows, and each id a reference to one string per series (not
    a string per row: at 2,000 communities that alone took gigabytes)."""
    codes = index.codes[0]
    names = np.asarray(index.levels[0], dtype=object)
    ds = index.get_level_values(1).to_numpy()
    # Each community's rows are one block of the grid (it is ordered by community, then day).
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, dtype=np.int64)
    block = codes[starts] if len(codes) else np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.r_[starts, len(codes)])
    pieces, rows = [], []
    for metric in metrics:
        y = daily[metric].to_numpy(dtype="float64")
        observed = np.add.reduceat(np.isfinite(y), starts) if len(y) else np.zeros(0, dtype=np.int64)
        for k, c in enumerate(block):
            rows.append((names[c], metric, ds[starts[k]], ds[starts[k] + lengths[k] - 1], int(lengths[k]), int(observed[k])))
        keep = np.repeat(observed > 0, lengths)
        pieces.append((metric, np.flatnonzero(keep), y))
    stats = _series_stats(rows, metrics, communities, min_history_days)
    if not pieces or not sum(len(at) for _, at, _ in pieces):
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in ("series_id", "community_id", "metric")})
        empty["ds"], empty["y"] = pd.Series(dtype="datetime64[ns]"), pd.Series(dtype="float64")
        return empty, stats
    at = np.concatenate([a for _, a, _ in pieces])
    which = np.concatenate([np.full(len(a), i, dtype=np.int64) for i, (_, a, _) in enumerate(pieces)])
    y = np.concatenate([v[a] for _, a, v in pieces])
    # By community (the grid's order), then metric (the pieces are in name order), then day.
    order = np.lexsort((which, codes[at]))
    at, which, y = at[order], which[order], y[order]
    ids = np.array([[f"{n}:{m}" for m in metrics] for n in names], dtype=object).reshape(len(names), len(metrics))
    long = pd.DataFrame(
        {
            "series_id": ids[codes[at], which],
            "community_id": pd.array(names[codes[at]], dtype="string"),
            "metric": np.asarray(metrics, dtype=object)[which],
            "ds": ds[at],
            "y": y,
        }
    )
    return long, stats


def _ever(values: pd.Series) -> pd.Series:
    """Per row, whether its community has any of ``values`` in the window (else its series of
    that kind are absent, not zero: a source without response times, a line it doesn't have)."""
    return values.groupby(level="community_id").transform("sum") > 0


def _closes(sums: pd.DataFrame) -> pd.Series:
    """Per row, whether its community records closings (timed or not) in the window."""
    return _ever(sums["closed"] + sums["closed_untimed"])


def _running(change: pd.Series) -> pd.Series:
    """The running sum of a day's change within each community: a level at the day's end."""
    return change.groupby(level="community_id").cumsum()


def _last_days(values: pd.Series, days: int) -> pd.Series:
    """The sum over the ``days`` days to each day within each community (fewer at its start)."""
    total = _running(values)
    before = total.groupby(level="community_id").shift(days).fillna(0)
    return total - before


NPS_DAYS = 7  # a day's NPS counts the answers of the week to it: a day alone has a handful


def _share(part: pd.Series, whole: pd.Series) -> pd.Series:
    return (part / whole).where(whole > 0)


# Each metric's daily value from the day sums (`day_sums`) on the grid of every community's days
# (missing sums are zeros); NaN where a day has no value. Adding a metric: its `Metric` in vocab
# and its line here.
METRIC_VALUES = {
    "ticket_count": lambda p: p["created"],
    "complaint_count": lambda p: p["complaints"],
    "satisfaction": lambda p: _share(p["sat_wy"], p["sat_w"]),
    "resolution_hours": lambda p: _share(p["hours"], p["closed"]),
    "response_hours": lambda p: _share(p["resp_hours"], p["responded"]),
    "responded_on_time": lambda p: _share(p["resp_met"], p["resp_due"]).where(_ever(p["responded"])),
    "closed_on_time": lambda p: _share(p["close_met"], p["close_due"]).where(_closes(p)),
    "open_backlog": lambda p: _running(p["created"] - p["closed"] - p["closed_untimed"]).where(_closes(p)),
    "overdue_open": lambda p: _running(p["overdue_in"] - p["overdue_out"]).where(_closes(p)),
    "nps": lambda p: 100.0 * _share(_last_days(p["promoters"] - p["detractors"], NPS_DAYS), _last_days(p["rec_w"], NPS_DAYS)),
}


def daily_metrics(p: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The daily values of ``metrics`` (metric keys, ``ticket_count.<line>`` included) from day
    sums indexed by ``community_id, ds`` on the full grid of days, zeros where nothing happened."""
    daily = pd.DataFrame(index=p.index)
    for key in metrics:
        line = line_of(key)
        if line is not None:
            column = LINE_PREFIX + line
            values = p[column] if column in p else pd.Series(0, index=p.index)
            daily[key] = values.astype("float64").where(_ever(values))
        else:
            daily[key] = METRIC_VALUES[key](p).astype("float64")
    return daily


def _series_stats(rows: list[tuple], metrics: list[str], communities: pd.Series | None, min_history_days: int) -> pd.DataFrame:
    """One row per community × metric: (community_id, metric, first_ds, last_ds, n_days, n_obs)
    ``rows``, and ``no_data`` rows for the known ``communities`` without any."""
    stats = pd.DataFrame(rows, columns=["community_id", "metric", "first_ds", "last_ds", "n_days", "n_obs"])
    stats.insert(0, "series_id", stats["community_id"].astype(str) + ":" + stats["metric"])
    if communities is not None:
        all_ids = pd.MultiIndex.from_product([pd.Index(communities.astype(str).unique()), metrics])
        present = set(zip(stats["community_id"], stats["metric"]))
        missing = [(c, m) for c, m in all_ids if (c, m) not in present]
        if missing:
            extra = pd.DataFrame(missing, columns=["community_id", "metric"])
            extra["series_id"] = extra["community_id"] + ":" + extra["metric"]
            extra["n_days"] = 0
            extra["n_obs"] = 0
            stats = pd.concat([stats, extra], ignore_index=True)
    stats["n_days"] = stats["n_days"].astype(int)
    stats["n_obs"] = stats["n_obs"].astype(int)
    status = np.where(stats["n_obs"] == 0, "no_data", np.where(stats["n_days"] < min_history_days, "short", "ok"))
    reason = np.where(
        status == "no_data",
        "no observations in the history window",
        np.where(
            status == "short",
            "history of " + stats["n_days"].astype(str) + f" days < forecast.min_history_days ({min_history_days})",
            "",
        ),
    )
    stats["status"] = status
    stats["reason"] = reason
    return stats.sort_values(["community_id", "metric"], kind="stable").reset_index(drop=True)
