"""Forecasts → findings: predicted satisfaction dips and ticket surges a manager can act on. Pure.

For every future day of a series, the probability that the day crosses a limit comes from the
forecast distribution (normal on each side of ``yhat``, with the spread implied by the interval
on that side), not from the point forecast alone. Limits per metric (``thresholds``):

* ``below`` / ``above``: absolute (satisfaction under 85, resolution over 48 hours);
* ``drop_share`` / ``rise_share``: relative to the community's own recent baseline (over its last
  four weeks: the median for levels such as satisfaction; the mean for counts, by weekday type,
  so a quiet Sunday is not a dip).

A day is flagged when that probability reaches ``detect.min_probability``. Flagged days with gaps
of up to ``detect.bridge_days`` (2) between them form one finding, which says when (first, last and peak day), how
deep (expected value against the limit), how sure (peak probability), how bad (severity 提醒 /
警告 / 严重, by the cuts in ``detect.severity``), and which holiday, window or season it falls in.

Identity: a finding is ``community · metric · kind`` plus its dates; `carry_identity` gives a new
finding the id of yesterday's finding it overlaps, so the same predicted dip seen again is the
same finding, updated, not a new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from forecaster.calendar import FeatureBook, Location, day_positions, locations_of
from forecaster.config import ALL_LINES, Config, DetectConfig, Threshold, ThresholdsConfig
from forecaster.util.arrays import true_runs
from forecaster.util.text import optional_text
from forecaster.vocab import SEVERITY_NAMES, is_count, is_dip, is_share, line_of, severity_rank

__all__ = [
    "Finding",
    "thresholds_for",
    "recent_baseline",
    "day_probabilities",
    "find_in_series",
    "carry_identity",
    "findings_frame",
    "detect_findings",
]

@dataclass
class Finding:
    community_id: str
    metric: str
    kind: str  # dip | surge
    first_day: dt.date
    last_day: dt.date
    peak_day: dt.date
    expected: float  # forecast at the peak day
    limit: float  # the threshold crossed at the peak day
    reference: str  # what the limit is: "阈值 85" or "近4周基线 92.1 −5%"
    baseline: float  # the community's recent baseline for this metric
    depth: float  # relative distance of expected beyond the baseline (0.08 = 8% worse)
    probability: float  # peak probability of crossing the limit
    severity: str
    window: str  # holiday / season labels overlapping, "、"-joined, or ""
    estimated: bool  # the holiday schedule involved is computed, not yet published
    days: int
    finding_id: str = ""
    status: str = "new"  # new | updated | unchanged (set by carry_identity)

    def key(self) -> str:
        return f"{self.community_id}:{self.metric}:{self.kind}"


def thresholds_for(
    config: ThresholdsConfig, metric: str, community_id: str, city: str | None, region: str | None, property_type: str | None = None
) -> Threshold | None:
    """The default for ``metric`` (a service line's: ``ticket_count.*`` unless it has its own),
    overridden by the overrides that match the community, the most specific last (it wins)."""
    base = config.defaults.get(metric)
    if base is None and line_of(metric) is not None:
        base = config.defaults.get(ALL_LINES)
    merged = base.model_dump() if base else {}
    for override in sorted(config.overrides, key=lambda o: o.specificity):
        spec = override.metrics.get(metric)
        if spec is None and line_of(metric) is not None:
            spec = override.metrics.get(ALL_LINES)
        if spec is not None and override.matches(community_id, city, region, property_type):
            merged.update({k: v for k, v in spec.model_dump().items() if v is not None})
    if not merged or all(v is None for v in merged.values()):
        return None
    return Threshold(**merged)


def recent_baseline(
    y: np.ndarray, off_day: np.ndarray | None, future_off: np.ndarray, *, days: int = 28, statistic=np.nanmedian
) -> np.ndarray:
    """Per future day, ``statistic`` (median; mean for counts) of the last ``days`` observed
    days of the same type (working day / day off, when ``off_day`` is given; else all days)."""
    recent = slice(max(0, len(y) - days), len(y))
    values = y[recent]
    h = len(future_off)
    overall = float(statistic(values)) if np.isfinite(values).any() else float("nan")
    out = np.full(h, overall)
    if off_day is None:
        return out
    kinds = off_day[recent].astype(bool)
    for kind in (False, True):
        sel = values[kinds == kind]
        if np.isfinite(sel).sum() >= 3:
            out[future_off.astype(bool) == kind] = float(statistic(sel))
    return out


def _prob_below(limit: np.ndarray, mean: np.ndarray, lower: np.ndarray, z: float) -> np.ndarray:
    sd = np.maximum((mean - lower) / z, 1e-9)
    return ndtr((limit - mean) / sd)


def _prob_above(limit: np.ndarray, mean: np.ndarray, upper: np.ndarray, z: float) -> np.ndarray:
    sd = np.maximum((upper - mean) / z, 1e-9)
    return 1.0 - ndtr((limit - mean) / sd)


def _limit_text(metric: str, value: float) -> str:
    """A configured limit as a finding names it: a share as a percentage (90%), else as given."""
    return f"{value:.0%}" if is_share(metric) else f"{value:g}"


def day_probabilities(
    metric: str,
    mean: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    baseline: np.ndarray,
    threshold: Threshold,
    level: float,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per day: the probability of the worst crossing, the limit it concerns, and its description."""
    z = float(ndtri(0.5 + level / 200))
    h = len(mean)
    best_p, best_limit, best_ref = np.zeros(h), np.full(h, np.nan), [""] * h
    candidates: list[tuple[np.ndarray, str]] = []
    excess = threshold.min_excess or 0.0
    if is_dip(metric):
        if threshold.below is not None:
            candidates.append((np.full(h, threshold.below), f"阈值 {_limit_text(metric, threshold.below)}"))
        if threshold.drop_share is not None:
            limit = np.minimum(baseline * (1 - threshold.drop_share), baseline - excess)
            candidates.append((limit, f"近4周基线 −{threshold.drop_share:.0%}"))
        prob = lambda limit: _prob_below(limit, mean, lower, z)  # noqa: E731
    else:
        if threshold.above is not None:
            candidates.append((np.full(h, threshold.above), f"上限 {_limit_text(metric, threshold.above)}"))
        if threshold.rise_share is not None:
            limit = np.maximum(baseline * (1 + threshold.rise_share), baseline + excess)
            candidates.append((limit, f"近4周基线 +{threshold.rise_share:.0%}"))
        prob = lambda limit: _prob_above(limit, mean, upper, z)  # noqa: E731
    for limit, ref in candidates:
        ok = np.isfinite(limit)
        p = np.where(ok, prob(np.where(ok, limit, 0.0)), 0.0)
        better = p > best_p
        best_p = np.where(better, p, best_p)
        best_limit = np.where(better, limit, best_limit)
        best_ref = [r if b else old for r, b, old in zip([ref] * h, better, best_ref)]
    return best_p, best_limit, best_ref


def severity_for(depth: float, probability: float, cuts: DetectConfig) -> str:
    """The most severe level whose cut (``detect.severity``) the finding reaches; else the least."""
    for name in sorted(cuts.severity, key=severity_rank, reverse=True):
        cut = cuts.severity[name]
        if depth >= cut.depth and probability >= cut.probability:
            return name
    return SEVERITY_NAMES[0]


def _bridged(flagged: np.ndarray, bridge_days: int) -> np.ndarray:
    """``flagged`` with gaps of up to ``bridge_days`` unflagged days between flagged ones filled."""
    bridged = flagged.copy()
    hits = np.flatnonzero(flagged)
    for a, b in zip(hits[:-1], hits[1:]):
        if 1 < b - a <= bridge_days + 1:
            bridged[a:b] = True
    return bridged


def _depth(metric: str, expected: float, base: float) -> float:
    """How much worse than the baseline ``expected`` is, as a share of it (never negative)."""
    if not (base and np.isfinite(base)):
        return 0.0
    if is_dip(metric):
        depth = (base - expected) / base
    else:
        depth = (expected - base) / base if base > 0 else 0.0
    return float(max(depth, 0.0))


def _labels(windows: list[str] | None, span: range) -> str:
    """The holiday / season labels of the days in ``span``, each once, in order of appearance."""
    labels: list[str] = []
    for k in span:
        for label in (windows[k].split("、") if windows and windows[k] else []):
            if label not in labels:
                labels.append(label)
    return "、".join(labels)


def find_in_series(
    community_id: str,
    metric: str,
    days: pd.DatetimeIndex,
    mean: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    baseline: np.ndarray,
    threshold: Threshold | None,
    *,
    level: float,
    windows: list[str] | None = None,
    estimated: np.ndarray | None = None,
    rules: DetectConfig = DetectConfig(),
) -> list[Finding]:
    """All findings in one series' forecast. Gaps of up to ``rules.bridge_days`` unflagged days
    between flagged ones are bridged (a dip on Monday and Wednesday is one dip); a finding
    must have at least ``rules.min_days`` flagged days."""
    if threshold is None or len(mean) == 0:
        return []
    p, limit, refs = day_probabilities(metric, mean, lower, upper, baseline, threshold, level)
    flagged = p >= rules.min_probability
    kind = "dip" if is_dip(metric) else "surge"
    findings = []
    for i, j in true_runs(_bridged(flagged, rules.bridge_days)):
        if int(flagged[i : j + 1].sum()) < rules.min_days:
            continue
        span = range(i, j + 1)
        peak = i + int(np.argmax(p[i : j + 1]))
        base = float(baseline[peak]) if np.isfinite(baseline[peak]) else float("nan")
        depth = _depth(metric, float(mean[peak]), base)
        findings.append(
            Finding(
                community_id=community_id,
                metric=metric,
                kind=kind,
                first_day=days[i].date(),
                last_day=days[j].date(),
                peak_day=days[peak].date(),
                expected=float(mean[peak]),
                limit=float(limit[peak]),
                reference=refs[peak],
                baseline=base,
                depth=depth,
                probability=float(p[peak]),
                severity=severity_for(depth, float(p[peak]), rules),
                window=_labels(windows, span),
                estimated=bool(estimated is not None and estimated[i : j + 1].any()),
                days=int(j - i + 1),
            )
        )
    return findings


def _new_id(finding: Finding, taken: set[str]) -> str:
    """A stable id (community, metric, kind, first day) that no other finding has: a finding that
    took over an earlier one's id may hold this one's natural id (it started on the same day)."""
    raw = f"{finding.key()}:{finding.first_day.isoformat()}"
    fid, n = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12], 1
    while fid in taken:
        n += 1
        fid = hashlib.sha1(f"{raw}:{n}".encode("utf-8")).hexdigest()[:12]
    return fid


def carry_identity(new: list[Finding], previous: list[Finding], *, slack_days: int = 3) -> list[Finding]:
    """Give each new finding the id of the previous finding (same community, metric and kind)
    whose days overlap it (within ``slack_days``), marking it ``updated`` when its severity,
    days or depth changed and ``unchanged`` otherwise; unmatched ones get a fresh id (``new``),
    never one a previous finding had."""
    by_key: dict[str, list[Finding]] = {}
    for f in previous:
        by_key.setdefault(f.key(), []).append(f)
    used: set[str] = set()
    slack = dt.timedelta(days=slack_days)
    fresh = []
    for f in new:
        match = None
        for old in by_key.get(f.key(), []):
            if old.finding_id in used:
                continue
            if f.first_day <= old.last_day + slack and old.first_day <= f.last_day + slack:
                match = old
                break
        if match is None:
            fresh.append(f)
            continue
        used.add(match.finding_id)
        f.finding_id = match.finding_id
        same = (
            f.severity == match.severity
            and f.first_day == match.first_day
            and f.last_day == match.last_day
            and abs(f.depth - match.depth) < 0.01
        )
        f.status = "unchanged" if same else "updated"
    taken = {f.finding_id for f in previous} | used
    for f in fresh:
        f.finding_id, f.status = _new_id(f, taken), "new"
        taken.add(f.finding_id)
    return new


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(f) for f in findings], columns=list(Finding.__dataclass_fields__))
    if len(frame):
        frame["_rank"] = frame["severity"].map(severity_rank)
        frame = frame.sort_values(["_rank", "probability", "first_day"], ascending=[False, False, True]).drop(columns="_rank")
    return frame.reset_index(drop=True)


def detect_findings(
    series: pd.DataFrame,
    forecasts: pd.DataFrame,
    config: Config,
    communities: pd.DataFrame,
    as_of: dt.date,
    book: FeatureBook,
) -> list[Finding]:
    """Findings in every forecast, against each community's thresholds and recent baseline."""
    if forecasts.empty:
        return []
    locations = locations_of(communities)
    kinds = {}
    if "property_type" in communities:
        kinds = dict(zip(communities["community_id"], communities["property_type"].map(optional_text)))
    level = config.forecast.level
    lookahead = config.detect.lookahead_days
    end = pd.Timestamp(as_of) + pd.Timedelta(days=lookahead) if lookahead else None
    # Each series' rows as slices of arrays sorted once (pandas per series cost more than the
    # detection itself at thousands of series).
    history = _Slices(series, "series_id", ["ds", "y"], sort_by=None)
    fcs = _Slices(forecasts, "series_id", ["ds", "yhat", "yhat_lower", "yhat_upper", "community_id", "metric"], sort_by="ds")
    columns: dict[int, dict[str, np.ndarray]] = {}

    def calendar_at(feats: pd.DataFrame, days: np.ndarray) -> dict[str, np.ndarray]:
        """The detection's calendar columns on ``days`` (positions in the book; outside it: none)."""
        cols = columns.get(id(feats))
        if cols is None:
            cols = columns[id(feats)] = {
                "off_day": feats["off_day"].to_numpy(dtype=float),
                "window": feats["window"].fillna("").to_numpy(dtype=object),
                "estimated": feats["estimated"].fillna(False).to_numpy(dtype=bool),
            }
        pos, inside = day_positions(feats, days)
        return {
            "off_day": np.where(inside, cols["off_day"][pos], np.nan),
            "window": np.where(inside, cols["window"][pos], ""),
            "estimated": inside & cols["estimated"][pos],
        }

    found: list[Finding] = []
    for sid, fc in fcs.items():
        cid, metric = fc["community_id"][0], fc["metric"][0]
        hist = history.get(sid)
        if hist is None or len(hist["y"]) < config.forecast.min_history_days:
            continue  # too little history to warn reliably (the series still gets its forecast)
        loc = locations.get(cid, Location(cid))
        threshold = thresholds_for(config.thresholds, metric, cid, loc.city, loc.region, kinds.get(cid))
        if threshold is None:
            continue
        if end is not None:
            soon = fc["ds"] < end.to_datetime64()
            fc = {k: v[soon] for k, v in fc.items()}
        feats = book.get(loc)
        h_feats = calendar_at(feats, hist["ds"][-28:])
        f_feats = calendar_at(feats, fc["ds"])
        counts = is_count(metric)
        baseline = recent_baseline(
            hist["y"][-28:].astype(float),
            h_feats["off_day"] if counts else None,
            f_feats["off_day"],
            statistic=np.nanmean if counts else np.nanmedian,
        )
        found.extend(
            find_in_series(
                cid,
                metric,
                pd.DatetimeIndex(fc["ds"]),
                fc["yhat"].astype(float),
                fc["yhat_lower"].astype(float),
                fc["yhat_upper"].astype(float),
                baseline,
                threshold,
                level=level,
                windows=f_feats["window"].tolist(),
                estimated=f_feats["estimated"],
                rules=config.detect,
            )
        )
    return found


class _Slices:
    """A long frame's rows per key, as numpy slices of its columns: in the order the keys first
    appear, rows in frame order or sorted by ``sort_by`` within each key."""

    def __init__(self, frame: pd.DataFrame, key: str, columns: list[str], sort_by: str | None):
        codes, self.keys = pd.factorize(frame[key], sort=False)
        order = np.lexsort((frame[sort_by].to_numpy(), codes)) if sort_by else np.argsort(codes, kind="stable")
        self.arrays = {c: frame[c].to_numpy()[order] for c in columns}
        bounds = np.searchsorted(codes[order], np.arange(len(self.keys) + 1))
        self.where = {k: (int(bounds[i]), int(bounds[i + 1])) for i, k in enumerate(self.keys)}

    def get(self, key) -> dict[str, np.ndarray] | None:
        at = self.where.get(key)
        return None if at is None else {c: a[at[0] : at[1]] for c, a in self.arrays.items()}

    def items(self):
        for k in self.keys:
            yield k, self.get(k)

