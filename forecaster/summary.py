"""The short, readable run summary the CLI prints (and the scheduler logs)."""

from __future__ import annotations

from collections import Counter

from forecaster.pipeline import RunResult
from forecaster.vocab import SEVERITY_NAMES, format_value, severity_rank

__all__ = ["format_run_summary", "format_delivery", "run_exit_code"]

REASONS = {
    "new": "new",
    "unsent": "resent after a failure",
    "worse": "worse",
    "moved": "moved",
    "repeat": "still open",
    "resolved": "all-clear",
    "duplicate": "already sent",
    "better": "eased",
    "silenced": "silenced",
    "below_severity": "below the route's severity",
    "expired": "closed",
}

STATUS_WORDS = {
    "ok": "ok",
    "short": "short history",
    "no_data": "no data",
    "fallback": "fallback",
    "failed": "failed",
}


def _n(value: int) -> str:
    return f"{value:,}"


def run_exit_code(result: RunResult, delivery=None) -> int:
    """What `forecaster run` exits with, in one place so the summary's last line says the same:
    the run's own code, or 1 when the forecasts are fine but a message failed for good (a
    manager did not get an alert)."""
    if delivery is not None and delivery.failed and result.exit_code == 0:
        return 1
    return result.exit_code


def counted(lines: list[str]) -> list[str]:
    """Each distinct line once, in the order first seen, with how often it came. A channel whose
    every message failed the same way is one line, so the other channels' errors are not
    pushed out of the summary by its repeats."""
    times = Counter(lines)
    return [f"{line} ({times[line]} messages)" if times[line] > 1 else line for line in dict.fromkeys(lines)]


def format_delivery(report, *, max_lines: int = 8) -> str:
    """One line (plus reasons) for an outbox drain."""
    parts = [f"{report.delivered} sent"]
    if report.pending:
        parts.append(f"{report.pending} waiting")
    if report.failed:
        parts.append(f"{report.failed} failed")
    if report.reclaimed:
        parts.append(f"{report.reclaimed} resent after an interrupted send")
    lines = ["  delivery   " + ", ".join(parts)]
    for why in report.waiting[:4]:
        lines.append(f"             waiting: {why}")
    failures = counted(report.failures)
    for why in failures[:max_lines]:
        lines.append(f"             failed: {why}")
    if len(failures) > max_lines:
        lines.append(f"             and {len(failures) - max_lines} more: see `forecaster outbox --status failed`")
    return "\n".join(lines)


def format_run_summary(result: RunResult, *, timezone: str, max_examples: int = 2, delivery=None) -> str:
    head = f"run {result.run_id[:8]} as of {result.as_of} ({timezone})"
    if result.dry_run:
        head += " — dry run, nothing written"
    lines = [head]
    if result.source:
        lines.append(f"  source     {result.source}")
    if result.reports:
        read = " · ".join(f"{r.table} {_n(r.rows_read)}" for r in result.reports)
        lines.append(f"  read       {read}" + (f" — {result.read}" if result.read else ""))
        problems = [(r, p) for r in result.reports for p in r.problems]
        if problems:
            skipped, cleared = result.rows_skipped, sum(r.fields_cleared for r in result.reports)
            fields = "field" if cleared == 1 else "fields"
            lines.append(f"  problems   {_n(skipped)} rows skipped, {_n(cleared)} {fields} cleared:")
            for report, problem in problems:
                examples = "; ".join(problem.examples[:max_examples])
                lines.append(f"             {report.table}: {problem.count} {problem.action}, {problem.reason} (e.g. {examples})")
    if not result.series_stats.empty:
        counts = result.status_counts
        usable = sum(v for k, v in counts.items() if k != "no_data")
        parts = [f"{_n(counts[k])} {STATUS_WORDS.get(k, k)}" for k in ("ok", "fallback", "short", "failed", "no_data") if counts.get(k)]
        metrics = result.series_stats["metric"].nunique()
        lines.append(f"  series     {_n(usable)} from {result.communities} communities × {metrics} metrics: {', '.join(parts)}")
        if result.reused_choices:
            lines.append(f"             {_n(result.reused_choices)} refit with the model chosen on an earlier night, the rest chose afresh")
        for status in ("failed", "short"):
            rows = result.series_stats[result.series_stats["status"] == status]
            if len(rows):
                ids = ", ".join(rows["series_id"].head(4))
                more = f" and {len(rows) - 4} more" if len(rows) > 4 else ""
                lines.append(f"             {STATUS_WORDS[status]}: {ids}{more}")
    if result.findings:
        by = result.findings_by_severity
        counts = " · ".join(f"{sev} {by[sev]}" for sev in reversed(SEVERITY_NAMES) if by.get(sev))
        lines.append(f"  findings   {len(result.findings)} ({counts})")
        top = sorted(result.findings, key=lambda f: (-severity_rank(f.severity), -f.probability))[:3]
        for f in top:
            where = f"，{f.window}" if f.window else ""
            lines.append(
                f"             {f.severity} {f.community_id} {f.metric} {f.kind} {f.first_day}…{f.last_day}{where} "
                f"(预计 {format_value(f.metric, f.expected)}，{f.reference}，概率 {f.probability:.0%})"
            )
    elif result.outputs:
        lines.append("  findings   none")
    if result.alerts is not None:
        a = result.alerts
        sent = ", ".join(f"{n} {REASONS.get(k, k)}" for k, n in a.sent_reasons.most_common())
        held = ", ".join(f"{n} {REASONS.get(k, k)}" for k, n in a.held_reasons.most_common())
        if a.messages:
            line = f"  alerts     {a.messages} message(s) queued for {a.groups} manager group(s)"
            line += f" ({sent})" if sent else ""
        else:
            line = "  alerts     nothing new to tell"
        lines.append(line)
        if held:
            lines.append(f"             not sent: {held}")
        if a.unrouted:
            ids = ", ".join(a.unrouted[:4]) + (f" and {len(a.unrouted) - 4} more" if len(a.unrouted) > 4 else "")
            lines.append(f"             no route for {ids}: add a route or alerts.default_channels")
    if delivery is not None:
        lines.append(format_delivery(delivery))
    for name, path in result.outputs.items():
        rows = result.output_rows.get(name)
        lines.append(f"  output     {path}" + (f" ({_n(rows)} rows)" if rows is not None else ""))
    if result.store:
        recorded = "recorded" if result.recorded else "not recorded: see the error"
        lines.append(f"  store      {result.store} (run {result.run_id[:8]} {recorded})")
    if result.timings:
        stages = " · ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
        lines.append(f"  duration   {result.duration_s:.1f} s ({stages})")
    if result.error:
        lines.append(f"  error      {result.error}")
    code = run_exit_code(result, delivery)
    failed = f", {delivery.failed} alert message(s) failed" if code != result.exit_code else ""
    lines.append(f"  status     {result.status}{failed} (exit {code})")
    return "\n".join(lines)
