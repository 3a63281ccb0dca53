"""Validation of source tables into tidy frames: pure functions, no I/O.

Every source (SQL, CSV, HTTP) hands over a `RawTable`: the rows with canonical column names
and, per row, a label a person can find it by ("line 17", "ticket_id=T0042", "page 3 item 8").
Bad rows are never dropped silently: each is counted under a reason, with the first few
labels and values as examples, in a `TableReport`. A row whose key fields are bad is
*skipped*; a row with a bad optional field (a ``closed_at`` before ``created_at``, a rating
off the scale) is kept and only that field is *cleared*, so the ticket still counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecaster.config import TABLE_COLUMNS, MetricsConfig
from forecaster.ingest.mapping import KeyLabels
from forecaster.util.distinct import map_distinct

__all__ = [
    "RawTable",
    "Problem",
    "TableReport",
    "SeenKeys",
    "parse_timestamps",
    "validate_communities",
    "validate_tickets",
    "validate_surveys",
]

MAX_EXAMPLES = 5
# Clocks of one ticket system differ a little: a closing or response this much before the
# ticket's creation is taken as happening when it was created.
CLOCK_SKEW = pd.Timedelta(minutes=15)


@dataclass
class RawTable:
    """Rows as read, with canonical column names (missing optional columns absent)."""

    name: str  # communities | tickets | surveys
    origin: str  # "tickets.csv", "table tickets in sqlite:///…", "GET https://…/tickets"
    frame: pd.DataFrame
    labels: "pd.Series | KeyLabels"  # how a person finds each row: a label per row, or made on demand
    # Rows the source could not read at all (a line not in the file's encoding): already left
    # out of ``frame``, and reported with the table's other skipped rows.
    unread: "list[Problem]" = field(default_factory=list)

    def label_rows(self, positions) -> list[str]:
        if isinstance(self.labels, KeyLabels):
            return self.labels.rows(positions)
        return self.labels.iloc[positions].tolist()

    @classmethod
    def concat(cls, parts: "list[RawTable]") -> "RawTable":
        """One table from the batches of one read (at least one batch)."""
        first = parts[0]
        if len(parts) == 1:
            return first
        frame = pd.concat([p.frame for p in parts], ignore_index=True)
        if isinstance(first.labels, KeyLabels):
            labels: "pd.Series | KeyLabels" = KeyLabels(frame, tuple(first.labels.keys))
        else:
            labels = pd.Series(pd.concat([p.labels for p in parts], ignore_index=True).to_numpy(), dtype=object)
        return cls(first.name, first.origin, frame, labels, [u for p in parts for u in p.unread])


@dataclass
class Problem:
    reason: str
    action: str  # "skipped" (row dropped) or "cleared" (field emptied, row kept)
    count: int
    examples: list[str]

    def describe(self) -> str:
        return f"{self.count} {self.action}: {self.reason} (e.g. {'; '.join(self.examples)})"


@dataclass
class TableReport:
    table: str
    origin: str
    rows_read: int = 0
    rows_kept: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def rows_skipped(self) -> int:
        return sum(p.count for p in self.problems if p.action == "skipped")

    @property
    def fields_cleared(self) -> int:
        return sum(p.count for p in self.problems if p.action == "cleared")

    def add(self, other: "TableReport") -> None:
        """Count another batch of the same table in: problems with the same reason add up,
        keeping the first examples."""
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept
        mine = {(p.reason, p.action): p for p in self.problems}
        for p in other.problems:
            same = mine.get((p.reason, p.action))
            if same is None:
                same = Problem(p.reason, p.action, 0, [])
                self.problems.append(same)
                mine[(p.reason, p.action)] = same
            same.count += p.count
            same.examples.extend(p.examples[: MAX_EXAMPLES - len(same.examples)])


class SeenKeys:
    """Keys of earlier batches of one read, to find duplicates across batches: 64-bit hashes
    (8 bytes a key, not the keys themselves), kept as a few sorted runs that merge as they grow
    (each merge of two sorted runs is linear), so the whole read stays O(n log n)."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def mark(self, keys: pd.Series) -> np.ndarray:
        """True where a key came in an earlier batch; then this batch's keys are remembered.
        Missing keys are never marked nor remembered."""
        given = keys.notna().to_numpy()
        hashes = _hash_keys(keys)
        out = self.hits(hashes)
        self.remember(np.sort(hashes[given]))
        return out & given

    def hits(self, hashes: np.ndarray) -> np.ndarray:
        """True where a hash is remembered."""
        # Searched in sorted order: each search starts where the last ended (half the time of
        # searching millions of remembered hashes in random order).
        order = np.argsort(hashes)
        wanted = hashes[order]
        found = np.zeros(len(hashes), dtype=bool)
        for run in self.runs:
            at = np.searchsorted(run, wanted)
            hit = at < len(run)
            hit[hit] = run[at[hit]] == wanted[hit]
            found |= hit
        out = np.empty_like(found)
        out[order] = found
        return out

    def remember(self, run: np.ndarray) -> None:
        """Remember sorted hashes (from `hashes` of another read, or of a batch)."""
        while self.runs and len(self.runs[-1]) <= 2 * len(run):
            run = np.sort(np.concatenate([self.runs.pop(), run]), kind="stable")  # merges the two runs
        self.runs.append(run)

    def hashes(self) -> np.ndarray:
        """Every remembered hash, sorted."""
        return np.sort(np.concatenate(self.runs)) if self.runs else np.zeros(0, dtype=np.uint64)


def _hash_keys(keys: pd.Series) -> np.ndarray:
    # Each key hashed as it is: ids are (nearly) all distinct, so pandas' default of hashing
    # the distinct values after finding them costs four times as much.
    return pd.util.hash_array(keys.astype(object).to_numpy(), categorize=False)


class _Checker:
    """Applies checks one after another; each marks rows and records them under a reason."""

    def __init__(self, raw: RawTable):
        self.raw = raw
        self.keep = np.ones(len(raw.frame), dtype=bool)
        self.report = TableReport(table=raw.name, origin=raw.origin, rows_read=len(raw.frame))
        if raw.unread:  # counted as read and skipped, like any other bad row
            self.report.add(TableReport(raw.name, raw.origin, sum(p.count for p in raw.unread), 0, raw.unread))

    def flag(self, bad: np.ndarray | pd.Series, reason: str, column: str | None, action: str = "skipped") -> np.ndarray:
        bad = np.asarray(bad, dtype=bool) & self.keep
        n = int(bad.sum())
        if n:
            idx = np.flatnonzero(bad)[:MAX_EXAMPLES]
            labels = self.raw.label_rows(idx)
            if column is not None and column in self.raw.frame.columns:
                values = self.raw.frame[column].iloc[idx].tolist()
                examples = [f"{lab}: {_show(v)}" for lab, v in zip(labels, values)]
            else:
                examples = [str(lab) for lab in labels]
            self.report.problems.append(Problem(reason, action, n, examples))
            if action == "skipped":
                self.keep &= ~bad
        return bad

    def flag_unknown(self, cid: pd.Series, known_communities: set[str]) -> None:
        unknown = ~cid.isin(known_communities).fillna(False).to_numpy()
        self.flag(unknown, "unknown community_id (not in communities)", "community_id")

    def kept(self, out: pd.DataFrame) -> tuple[pd.DataFrame, TableReport]:
        """The rows of ``out`` (one per row read) not skipped, and the report."""
        out = out[self.keep].reset_index(drop=True)
        self.report.rows_kept = len(out)
        return out, self.report


def _show(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "(empty)"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _trimmed(value: object) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def _text(series: pd.Series) -> pd.Series:
    """Identifiers as trimmed strings; blank becomes missing. Numbers like 101.0 read as '101'."""
    if pd.api.types.is_float_dtype(series):
        whole = series.dropna()
        if len(whole) and (whole == whole.round()).all():
            series = series.astype("Int64")
    elif pd.api.types.is_object_dtype(series):
        # Mixed Python values: converted and trimmed once per distinct value.
        return map_distinct(series, _trimmed).astype("string")
    out = series.astype("string").str.strip()
    return out.mask(out == "")


def _blank(series: pd.Series) -> np.ndarray:
    return series.isna().to_numpy()


_OFFSET_RE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
# Epoch instants are judged by magnitude: 10 digits are seconds (2001–2286), 13 are milliseconds
# (the same years). Other numbers (a count, 20260301 as a number) are no guess and are rejected.
EPOCH_UNITS = ((1e9, 1e10, "s"), (1e12, 1e13, "ms"))
_EPOCH_RE = re.compile(r"\d{10}(?:\.\d*)?|\d{13}(?:\.\d*)?")


def parse_timestamps(values: pd.Series, source_tz: str, target_tz: str) -> pd.Series:
    """Parse timestamps into naive local time of ``target_tz`` (NaT where unparseable).

    Values carrying an offset (``…+08:00``, ``…Z``, tz-aware datetimes) are converted;
    values without one are taken to be in ``source_tz``. Epoch seconds and milliseconds
    (numbers or digits, see `EPOCH_UNITS`) are instants, like values with an offset: UTC by
    definition, whatever ``source_tz`` says. ISO 8601 is parsed fast; anything else
    (``2024/3/5 14:00``) falls back to a flexible parser, row by row.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(target_tz).dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values):
        return _localize(values, source_tz, target_tz)
    if pd.api.types.is_bool_dtype(values):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if pd.api.types.is_numeric_dtype(values):
        return _from_epoch(values.astype("float64"), target_tz)
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    text = values.astype("string").str.strip()
    epoch = text.str.fullmatch(_EPOCH_RE, na=False).to_numpy(dtype=bool)
    has_offset = text.str.contains(_OFFSET_RE, na=False).to_numpy(dtype=bool) & ~epoch
    local = ~has_offset & ~epoch
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if local.any():
        out[local] = _localize(_parse_text(text[local], utc=False), source_tz, target_tz)
    if has_offset.any():
        aware = _parse_text(text[has_offset], utc=True)
        out[has_offset] = aware.dt.tz_convert(target_tz).dt.tz_localize(None)
    if epoch.any():
        out[epoch] = _from_epoch(pd.to_numeric(text[epoch]).astype("float64"), target_tz)
    return out


def _from_epoch(numbers: pd.Series, target_tz: str) -> pd.Series:
    """Epoch seconds or milliseconds (by magnitude, `EPOCH_UNITS`) as naive local time of
    ``target_tz``; NaT for other numbers."""
    out = pd.Series(pd.NaT, index=numbers.index, dtype="datetime64[ns]")
    for lo, hi, unit in EPOCH_UNITS:
        hit = ((numbers >= lo) & (numbers < hi)).to_numpy(dtype=bool)
        if hit.any():
            # Whole milliseconds as integers: a float's ns would come out as …122999999.
            whole = numbers[hit] * (1000 if unit == "s" else 1)
            instants = pd.to_datetime(whole.round().astype("int64"), unit="ms", utc=True)
            out[hit] = instants.dt.tz_convert(target_tz).dt.tz_localize(None)
    return out


def _parse_text(text: pd.Series, *, utc: bool) -> pd.Series:
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=utc)
    retry = parsed.isna() & text.notna()
    if retry.any():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed[retry] = pd.to_datetime(text[retry], errors="coerce", format="mixed", utc=utc)
    return _in_ns_range(parsed)


def _in_ns_range(parsed: pd.Series) -> pd.Series:
    """Times outside what nanoseconds hold (1677–2262: a year 0000 or 9999 typed by hand), which
    pandas keeps in coarser units and which would overflow later, as NaT (so: not a date)."""
    unit = getattr(parsed.dt, "unit", "ns")
    if unit == "ns":
        return parsed
    lo, hi = pd.Timestamp.min, pd.Timestamp.max
    if parsed.dt.tz is not None:
        lo, hi = lo.tz_localize("UTC"), hi.tz_localize("UTC")
    inside = (parsed >= lo) & (parsed <= hi)
    return parsed.where(inside).dt.as_unit("ns")


def _localize(naive: pd.Series, source_tz: str, target_tz: str) -> pd.Series:
    naive = naive.astype("datetime64[ns]")
    if source_tz == target_tz:
        return naive
    aware = naive.dt.tz_localize(source_tz, ambiguous="NaT", nonexistent="shift_forward")
    return aware.dt.tz_convert(target_tz).dt.tz_localize(None)


def _column(raw: RawTable, name: str) -> pd.Series:
    if name in raw.frame.columns:
        return raw.frame[name]
    return pd.Series(pd.NA, index=raw.frame.index, dtype="object")


def validate_communities(raw: RawTable) -> tuple[pd.DataFrame, TableReport]:
    """→ ``community_id, name, city, region, manager, manager_mobile, property_type`` (strings)
    and ``households`` (a number; cleared unless a whole number ≥ 1), one row per id."""
    check = _Checker(raw)
    cid = _text(_column(raw, "community_id"))
    check.flag(_blank(cid), "missing community_id", "community_id")
    check.flag(cid.duplicated(keep="first").to_numpy() & ~_blank(cid), "duplicate community_id (first kept)", "community_id")
    out = pd.DataFrame({"community_id": cid})
    for col in TABLE_COLUMNS["communities"].optional:
        out[col] = _text(_column(raw, col))
    out["name"] = out["name"].fillna(out["community_id"])
    households_raw = _column(raw, "households")
    households = pd.to_numeric(households_raw, errors="coerce")
    given = _text(households_raw).notna().to_numpy()
    bad = given & (households.isna() | (households < 1) | (households % 1 != 0)).to_numpy(dtype=bool)
    bad = check.flag(bad, "households is not a whole number ≥ 1", "households", "cleared")
    out["households"] = households.mask(bad).astype("float64")
    return check.kept(out)


def validate_tickets(
    raw: RawTable,
    known_communities: set[str],
    *,
    source_tz: str,
    timezone: str,
    rating_scale: float,
    seen: SeenKeys | None = None,
    latest: pd.Timestamp | None = None,
    lines: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, TableReport]:
    """→ ``ticket_id, community_id, created_at, responded_at, closed_at, closed_untimed, due_at,
    category, line, rating`` with times in naive local time of ``timezone`` and ``rating`` rescaled to
    0–100. ``lines`` maps a category (trimmed, lower case) to its service line
    (`MetricsConfig.category_lines`); a category in none is kept and reported, its ticket
    counted in ``ticket_count`` only. ``closed_untimed``: a closing was given but is no usable
    time (cleared): the ticket is closed, when is not known.

    ``seen`` holds the ticket ids of earlier batches of the same read: a ticket id seen there
    is a duplicate too (and the ids of this batch are remembered in it). ``latest``: the
    latest credible time (now, in local time, with a little slack for clocks): a ticket created
    after it is skipped, a closing after it cleared (a wrong timezone or a typo in the year)."""
    check = _Checker(raw)
    tid = _text(_column(raw, "ticket_id"))
    cid = _text(_column(raw, "community_id"))
    created = parse_timestamps(_column(raw, "created_at"), source_tz, timezone)
    check.flag(_blank(tid), "missing ticket_id", "ticket_id")
    check.flag(_blank(cid), "missing community_id", "community_id")
    check.flag(created.isna().to_numpy(), "created_at is not a date/time", "created_at")
    dup = tid.duplicated(keep="first").to_numpy() & ~_blank(tid)
    if seen is not None:
        dup |= seen.mark(tid)
    check.flag(dup, "duplicate ticket_id (first kept)", "ticket_id")
    check.flag_unknown(cid, known_communities)
    if latest is not None:
        check.flag((created > latest).fillna(False).to_numpy(), f"created_at in the future (after {latest:%Y-%m-%d %H:%M})", "created_at")

    closed_raw = _column(raw, "closed_at")
    closed = parse_timestamps(closed_raw, source_tz, timezone)
    given = _text(closed_raw).notna().to_numpy()
    # A closing a few minutes before the creation is two clocks that differ: closed when created.
    skew = ((closed < created) & (closed >= created - CLOCK_SKEW)).fillna(False).to_numpy()
    check.flag(skew, f"closed_at up to {CLOCK_SKEW.seconds // 60} min before created_at (clocks differ): taken as closed when created", "closed_at", "kept")
    closed = closed.mask(skew, created)
    # Otherwise a closing that is no time is cleared, and the ticket counts as closed at a time
    # unknown (``closed_untimed``): not open for ever, not timed, on time or late.
    bad_closed = check.flag(closed.isna().to_numpy() & given, "closed_at is not a date/time", "closed_at", "cleared")
    before = check.flag((closed < created).fillna(False).to_numpy(), "closed_at before created_at", "closed_at", "cleared")
    later = np.zeros(len(closed), dtype=bool)
    if latest is not None:
        later = check.flag((closed > latest).fillna(False).to_numpy(), f"closed_at in the future (after {latest:%Y-%m-%d %H:%M})", "closed_at", "cleared")
    untimed = bad_closed | before | later
    closed = closed.mask(untimed)
    responded = _optional_time(check, raw, "responded_at", created, source_tz, timezone, latest)
    due = _optional_time(check, raw, "due_at", created, source_tz, timezone, None)

    category = _text(_column(raw, "category"))
    line = pd.Series(pd.NA, index=category.index, dtype="string")
    if lines:
        line = map_distinct(category.str.lower(), lambda c: lines.get(c)).astype("string")
        check.flag(
            (line.isna() & category.notna()).to_numpy(),
            "category in no service line (metrics.service_lines): counted in ticket_count only",
            "category",
            "kept",
        )

    rating_raw = _column(raw, "rating")
    rating = pd.to_numeric(rating_raw, errors="coerce")
    present = _text(rating_raw).notna().to_numpy()
    check.flag(rating.isna().to_numpy() & present, "rating is not a number", "rating", "cleared")
    off = check.flag(((rating < 0) | (rating > rating_scale)).fillna(False).to_numpy(), f"rating outside 0–{rating_scale:g}", "rating", "cleared")
    rating = rating.mask(off) * (100.0 / rating_scale)

    out = pd.DataFrame(
        {
            "ticket_id": tid,
            "community_id": cid,
            "created_at": created,
            "responded_at": responded,
            "closed_at": closed,
            "closed_untimed": untimed,
            "due_at": due,
            "category": category,
            "line": line,
            "rating": rating.astype("float64"),
        }
    )
    return check.kept(out)


def _optional_time(
    check: _Checker, raw: RawTable, name: str, created: pd.Series, source_tz: str, timezone: str, latest: pd.Timestamp | None
) -> pd.Series:
    """An optional time of a ticket (responded_at, due_at), cleared where it is not a time, is
    before created_at, or (with ``latest``) in the future."""
    given_raw = _column(raw, name)
    value = parse_timestamps(given_raw, source_tz, timezone)
    given = _text(given_raw).notna().to_numpy()
    bad = check.flag(value.isna().to_numpy() & given, f"{name} is not a date/time", name, "cleared")
    skew = ((value < created) & (value >= created - CLOCK_SKEW)).fillna(False).to_numpy()
    check.flag(skew, f"{name} up to {CLOCK_SKEW.seconds // 60} min before created_at (clocks differ): taken as created_at", name, "kept")
    value = value.mask(skew, created)
    bad |= check.flag((value < created).fillna(False).to_numpy(), f"{name} before created_at", name, "cleared")
    if latest is not None:
        bad |= check.flag((value > latest).fillna(False).to_numpy(), f"{name} in the future (after {latest:%Y-%m-%d %H:%M})", name, "cleared")
    return value.mask(bad)


def validate_surveys(
    raw: RawTable,
    known_communities: set[str],
    *,
    timezone: str,
    score_scale: float,
    max_responses: int = MetricsConfig().max_survey_responses,
    latest: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, TableReport]:
    """→ ``community_id, date, score, responses, source, recommend``; ``score`` rescaled to
    0–100, ``date`` a local day; ``responses`` a whole number from 1 to ``max_responses``
    (missing: one response); ``recommend`` 0–10 (the answer of each of the row's responses;
    else missing). A survey dated after the day of ``latest`` (now, local) is skipped."""
    check = _Checker(raw)
    cid = _text(_column(raw, "community_id"))
    # A survey date is a calendar day: no timezone shift unless it carries an offset.
    date = parse_timestamps(_column(raw, "date"), timezone, timezone).dt.normalize()
    score = pd.to_numeric(_column(raw, "score"), errors="coerce")
    responses_raw = _column(raw, "responses")
    responses = pd.to_numeric(responses_raw, errors="coerce")
    responses = responses.where(_text(responses_raw).notna(), 1.0)

    check.flag(_blank(cid), "missing community_id", "community_id")
    check.flag(date.isna().to_numpy(), "date is not a date", "date")
    if latest is not None:
        check.flag((date > latest.normalize()).fillna(False).to_numpy(), f"date in the future (after {latest:%Y-%m-%d})", "date")
    check.flag(score.isna().to_numpy(), "score is not a number", "score")
    check.flag(((score < 0) | (score > score_scale)).fillna(False).to_numpy(), f"score outside 0–{score_scale:g}", "score")
    check.flag(responses.isna().to_numpy() | (responses < 0).fillna(False).to_numpy(), "responses is not a count ≥ 0", "responses")
    check.flag((responses == 0).fillna(False).to_numpy(), "no responses", "responses")
    check.flag(((responses % 1) != 0).fillna(False).to_numpy(), "responses is not a whole number", "responses")
    check.flag((responses > max_responses).fillna(False).to_numpy(), f"responses over {max_responses:,}", "responses")
    check.flag_unknown(cid, known_communities)

    recommend_raw = _column(raw, "recommend")
    recommend = pd.to_numeric(recommend_raw, errors="coerce")
    given = _text(recommend_raw).notna().to_numpy()
    not_number = check.flag(recommend.isna().to_numpy() & given, "recommend is not a number (0–10)", "recommend", "cleared")
    off = check.flag(((recommend < 0) | (recommend > 10)).fillna(False).to_numpy(), "recommend outside 0–10", "recommend", "cleared")
    out = pd.DataFrame(
        {
            "community_id": cid,
            "date": date,
            "score": (score * (100.0 / score_scale)).astype("float64"),
            "responses": responses.astype("float64"),
            "source": _text(_column(raw, "source")),
            "recommend": recommend.mask(not_number | off).astype("float64"),
        }
    )
    return check.kept(out)
