"""The ``forecaster`` command: every step of the service by hand.

Exit codes: 0 success; 1 some series failed (the rest was done); 2 a configuration, source or
store error (nothing could be done). Errors are one readable line naming what to fix;
``-v`` shows progress, ``-vv`` debug detail. Secrets never print.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from pathlib import Path

from forecaster import __version__
from forecaster.util.errors import ConfigError, ForecasterError
from forecaster.util.stopping import StopOnSignal
from forecaster.vocab import AUTO, METRIC_KEYS, MODEL_NAMES, SINGLE_MODELS

__all__ = ["main", "build_parser"]

log = logging.getLogger("forecaster")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def _metric_arg(value: str) -> str:
    from forecaster.config import metric_key

    try:
        return metric_key(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    # The common options work before and after the command. Their defaults are SUPPRESS (filled in
    # by parse_args): a subcommand's own default would overwrite what was given before it
    # (`forecaster --config X check-config` read ./config.yaml). The parsers share these actions,
    # so no parser may set_defaults them.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: $FORECASTER_CONFIG or ./config.yaml)",
    )
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more output (-vv for debug)")

    parser = argparse.ArgumentParser(
        prog="forecaster",
        description="Forecasts and early warnings of tickets and resident satisfaction per community (物业).",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"wuye-forecaster {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_nightly_commands(sub, common)
    _add_alert_commands(sub, common)
    _add_data_commands(sub, common)
    return parser


def _command(sub, common: argparse.ArgumentParser, name: str, func, **text) -> argparse.ArgumentParser:
    """One subcommand with the common options, its help and description, run by ``func``."""
    p = sub.add_parser(name, parents=[common], **text)
    if func is not None:
        p.set_defaults(func=func)
    return p


def _add_nightly_commands(sub, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "run", cmd_run,
        help="run one nightly cycle now",
        description="Run one nightly cycle: read the source, aggregate daily series per community and "
        "metric, write outputs under output.dir/<as-of>/ and record the run in the store. History ends "
        "the day before the as-of date (the last complete day).",
    )
    p.add_argument("--as-of", type=_date, metavar="DATE", help="run as of this date (default: today in the configured timezone)")
    p.add_argument("--dry-run", action="store_true", help="read and aggregate only; write no files and record nothing")
    p.add_argument(
        "--no-send",
        action="store_true",
        help="queue the alerts in the outbox but do not send them now (the service or `outbox --send` will)",
    )

    p = _command(sub, common, "serve", cmd_serve,
        help="run the scheduled service (nightly cycle, outbox, watchdog) until stopped",
        description="Run APScheduler in the configured timezone: the nightly cycle (schedule.nightly), the outbox "
        "every schedule.outbox_every_s, a watchdog, and schedule.commands. The schedule is kept in the store, so a "
        "night missed while the service was down runs once at start-up (within schedule.misfire_grace_s). Stops "
        "cleanly on SIGTERM or SIGINT.",
    )

    p = _command(sub, common, "status", cmd_status,
        help="next run times, last runs, outbox backlog and failing series",
        description="What the service did and will do, read from the store (works while the service runs).",
    )
    p.add_argument("--runs", type=int, default=5, metavar="N", help="runs listed (default 5)")


def _add_alert_commands(sub, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "outbox", cmd_outbox,
        help="show, send or retry alert messages",
        description="Every alert is stored in the outbox before it is sent. Without options: counts and the "
        "latest messages with their status (pending, sending, sent, failed) and the platform's last answer.",
    )
    p.add_argument("--status", choices=["pending", "sending", "sent", "failed"], help="only messages in this state")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="messages listed (default 20)")
    p.add_argument("--show", metavar="ID", help="one message: its text and every delivery attempt (an id prefix will do)")
    p.add_argument("--send", action="store_true", help="send what is due now (waits for rate limits up to alerts.delivery.wait_s)")
    p.add_argument("--retry", nargs="+", metavar="ID", help="put these failed messages back in the queue (then --send)")
    p.add_argument("--retry-failed", action="store_true", help="put every failed message back in the queue")

    p = _command(sub, common, "notify-test", cmd_notify_test,
        help="send a test message through a route's channels",
        description="Queue a short test message for every channel of a route and send it now, printing each "
        "platform's answer (a bad token, signature or keyword shows here). Exit 0 when all were delivered.",
    )
    p.add_argument("--route", required=True, metavar="NAME", help="a route name from alerts.routes (or 'default')")

    p = _command(sub, common, "silence", None,
        help="pause alerts for a community, metric or route",
        description="Silences stop alerts (not forecasts) until they end. A silenced finding is alerted when "
        "the silence ends if it is still forecast.",
    )
    silence = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = silence.add_parser("add", parents=[common], help="add a silence")
    q.add_argument("--community", metavar="ID", help="only this community")
    q.add_argument("--metric", type=_metric_arg, metavar="METRIC", help=f"only this metric ({', '.join(METRIC_KEYS)} or ticket_count.<line>)")
    q.add_argument("--route", metavar="NAME", help="only this route")
    q.add_argument("--everything", action="store_true", help="pause every alert (needed when no community, metric or route is named)")
    until = q.add_mutually_exclusive_group(required=True)
    until.add_argument("--until", metavar="WHEN", help="end: a date (silenced through that day) or YYYY-MM-DDTHH:MM, local time")
    until.add_argument("--for", dest="duration", metavar="DURATION", help="length: 12h, 3d, 2w")
    q.add_argument("--reason", required=True, help="why (shown in `silence list`)")
    q.add_argument("--by", metavar="NAME", help="who added it")
    q.set_defaults(func=cmd_silence)
    q = silence.add_parser("list", parents=[common], help="list active silences")
    q.add_argument("--all", action="store_true", help="include ended silences")
    q.set_defaults(func=cmd_silence)
    q = silence.add_parser("remove", parents=[common], help="end a silence now")
    q.add_argument("id", type=int)
    q.set_defaults(func=cmd_silence)


def _add_data_commands(sub, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "demo", cmd_demo,
        help="create realistic demo data (SQLite by default)",
        description="Generate a demo property company (communities in northern and southern cities, "
        "3 years of tickets and surveys up to yesterday) into the configured SQL source, or as CSV files. "
        "Never overwrites tables that are not demo data.",
    )
    p.add_argument("--if-absent", action="store_true", help="only if there is no demo data yet or it is out of date")
    p.add_argument("--as-of", type=_date, metavar="DATE", help="data ends the day before this date (default: today)")
    p.add_argument("--communities", type=int, metavar="N", help="number of communities (default: demo.communities)")
    p.add_argument("--years", type=float, metavar="Y", help="years of history (default: demo.years)")
    p.add_argument("--seed", type=int, help="random seed (default: demo.seed)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--url", metavar="URL", help="write into this database instead of source.sql.url")
    target.add_argument("--csv", metavar="DIR", type=Path, help="write communities.csv, tickets.csv, surveys.csv into DIR")

    p = _command(sub, common, "forecast", cmd_forecast,
        help="forecast every series of a long CSV (series_id, ds, y)",
        description="Forecast each series of a long CSV with columns series_id, ds (daily dates), y. "
        "Writes series_id, ds, yhat, yhat_lower, yhat_upper, model: one row per series and future day. "
        "The model is chosen per series by backtest (--model auto) unless one is forced.",
    )
    p.add_argument("--input", "-i", required=True, type=Path, metavar="IN.csv")
    p.add_argument("--output", "-o", required=True, type=Path, metavar="OUT.csv")
    p.add_argument("--horizon", type=int, metavar="H", help="days to forecast (default: forecast.horizon, 90)")
    p.add_argument(
        "--model",
        choices=[AUTO, *MODEL_NAMES],
        help="default: forecast.model (auto, among forecast.candidates); linear_naive = mean of linear and naive, "
        "ensemble = mean of ARIMA and Prophet",
    )
    _add_series_options(p)

    p = _command(sub, common, "backtest", cmd_backtest,
        help="score the models on a long CSV by rolling-origin backtest",
        description="Rolling-origin backtest of every model (and of auto-selection, which chooses each "
        "fold's model from the folds before it) on a long CSV with series_id, ds, y. Prints MASE, sMAPE "
        "and interval coverage per model, overall and on holiday windows.",
    )
    p.add_argument("--input", "-i", required=True, type=Path, metavar="IN.csv")
    p.add_argument("--horizon", type=int, metavar="H", help="days per fold (default: forecast.backtest_horizon, 28)")
    p.add_argument("--folds", type=int, metavar="K", help="folds scored (default: forecast.backtest_folds, 3)")
    p.add_argument(
        "--models",
        default=",".join(SINGLE_MODELS),
        help="comma-separated models (default all; the means linear_naive and ensemble are scored when their members are)",
    )
    p.add_argument("--output", "-o", type=Path, metavar="OUT.csv", help="also write the scores per series and model")
    _add_series_options(p)

    p = _command(sub, common, "check-config", cmd_check_config,
        help="validate the config file",
        description="Validate the config file and print the effective settings (secrets masked). "
        "Exit 0 when valid, 2 with the key path of each problem otherwise.",
    )
    p.add_argument("--show", action="store_true", help="print the complete effective configuration")
    p.add_argument("--connect", action="store_true", help="also open the source and check its tables and columns")


def _add_series_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--country", help="holiday calendar (default: forecast.country, CN)")
    p.add_argument("--level", type=float, metavar="PCT", help="prediction interval in percent (default 80)")
    p.add_argument(
        "--gaps",
        choices=["missing", "zero"],
        default="missing",
        help="absent days are missing (levels; default) or zero (counts)",
    )


def _load_optional(args: argparse.Namespace):
    """The config when one is given or present; the defaults otherwise (ad-hoc CSV commands)."""
    from forecaster.config import DEFAULT_CONFIG_PATH, Config, load_config

    if args.config or os.environ.get("FORECASTER_CONFIG") or Path(DEFAULT_CONFIG_PATH).is_file():
        return load_config(args.config)
    return Config()


def _setup_logging(verbose: int) -> None:
    from forecaster.util.secret import install_log_redaction

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    install_log_redaction(root)


def _load(args: argparse.Namespace):
    from forecaster.config import load_config

    return load_config(args.config)


def _apply_log_config(config, verbose: int) -> None:
    from forecaster.util.logs import configure_logging

    level = config.log.level if verbose <= 0 else "INFO" if verbose == 1 else "DEBUG"
    configure_logging(config.log.format, level)


def cmd_serve(args: argparse.Namespace) -> int:
    from jobs.service import serve

    config = _load(args)
    _apply_log_config(config, args.verbose)
    return serve(config.path)


def cmd_status(args: argparse.Namespace) -> int:
    from forecaster.status import format_status

    config = _load(args)
    text, code = format_status(config, runs=args.runs)
    print(text)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from forecaster.pipeline import run_once
    from forecaster.summary import format_run_summary, run_exit_code

    config = _load(args)
    if config.log.format == "json":
        _apply_log_config(config, args.verbose)
    with StopOnSignal() as stop:
        result = run_once(config, args.as_of, dry_run=args.dry_run, should_stop=stop.requested)
        delivery = None
        if result.alerts is not None and not args.no_send and not stop.requested():
            delivery = _send(config, config.alerts.delivery.wait_s, should_stop=stop.requested)
    if stop.requested():
        result.exit_code = stop.exit_code  # the summary's last line says what the process exits with
    print(format_run_summary(result, timezone=config.timezone, delivery=delivery))
    if stop.requested():
        print(_stopped_line(stop), file=sys.stderr)
    return run_exit_code(result, delivery)


def _stopped_line(stop) -> str:
    return (
        f"stopped by {stop.signal_name}: the step in hand was finished and recorded; what is left "
        "(a night's remaining stages, queued messages) is done by the next run, `outbox --send` or the service"
    )


def _send(config, max_wait_s: float, store=None, should_stop=lambda: False):
    import requests

    from forecaster.alerts.notify import send_pending
    from forecaster.store import Store
    from forecaster.util.clock import SystemClock

    own = store is None
    store = store or Store(config.store.url.get())
    try:
        with requests.Session() as session:
            return send_pending(config, store, session=session, clock=SystemClock(), max_wait_s=max_wait_s, should_stop=should_stop)
    finally:
        if own:
            store.close()


def _when(moment, zone=None) -> str:
    return "-" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def cmd_outbox(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from forecaster.alerts.queue import MessageQueue
    from forecaster.store import Store
    from forecaster.summary import format_delivery
    from forecaster.util.clock import SystemClock

    config = _load(args)
    zone = ZoneInfo(config.timezone)
    store = Store(config.store.url.get())
    try:
        outbox = MessageQueue(store)
        if args.show:
            msg = outbox.get(args.show)
            if msg is None:
                print(f"error: no single message matches {args.show!r}", file=sys.stderr)
                return 2
            print(f"message {msg.message_id}  {msg.status}  route {msg.route}  channel {msg.channel}  part {msg.part}/{msg.parts}")
            print(f"  created  {_when(msg.created_at, zone)}   sent {_when(msg.sent_at, zone)}   attempts {msg.attempts}  ({config.timezone})")
            if msg.last_error:
                print(f"  last     {msg.last_code} {msg.last_error}")
            print(f"  findings {', '.join(msg.finding_ids) or '-'}")
            print()
            print(_message_text(msg.payload))
            print()
            for a in outbox.attempts(msg.message_id):
                at = a["at"].replace(tzinfo=dt.timezone.utc)
                print(f"  attempt  {_when(at, zone)}  {a['outcome']:<9} {a['code'] or ''} {a['detail'] or ''}")
            return 0
        if args.retry or args.retry_failed:
            n = outbox.retry(None if args.retry_failed else _full_ids(outbox, args.retry), now=SystemClock().now())
            print(f"{n} failed message(s) back in the queue")
        if args.send:
            with StopOnSignal() as stop:
                report = _send(config, config.alerts.delivery.wait_s, store, should_stop=stop.requested)
            print(format_delivery(report))
            if stop.requested():
                print(_stopped_line(stop), file=sys.stderr)
                return stop.exit_code
        counts = outbox.counts()
        print(
            "outbox   "
            + (" · ".join(f"{k} {counts[k]}" for k in ("pending", "sending", "sent", "failed") if counts.get(k)) or "empty")
            + f"  (times in {config.timezone})"
        )
        rows = outbox.messages(status=args.status, limit=args.limit)
        for m in rows:
            last = "" if m.status == "sent" else f"  {m.last_code or ''} {m.last_error or ''}".rstrip()
            print(
                f"  {m.message_id[:10]}  {m.status:<7}  {_when(m.sent_at or m.created_at, zone)}  {m.channel:<14} "
                f"{m.route} · {m.manager or '-'}  {m.part}/{m.parts}  {m.title or ''}{last}"
            )
        failed = counts.get("failed", 0)
        if failed and not args.status:
            print(f"  {failed} failed: see `forecaster outbox --status failed`, fix the channel, then `--retry-failed --send`")
        return 1 if failed else 0
    finally:
        store.close()


def _full_ids(outbox, prefixes: list[str]) -> list[str]:
    out = []
    for prefix in prefixes:
        msg = outbox.get(prefix)
        if msg is None:
            raise ConfigError(f"no single message matches {prefix!r} (see `forecaster outbox`)")
        out.append(msg.message_id)
    return out


def _message_text(payload: dict) -> str:
    for path in (("markdown", "text"), ("markdown", "content"), ("actionCard", "text"), ("text", "content"), ("text",)):
        node = payload
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, str):
            return node
    card = payload.get("card", {})
    for element in card.get("elements", []):
        text = element.get("text", {}).get("content")
        if text:
            return text
    import json

    return json.dumps(payload, ensure_ascii=False, indent=2)


def cmd_notify_test(args: argparse.Namespace) -> int:
    from forecaster.alerts.notify import all_routes, channels_from, notify_test_messages
    from forecaster.alerts.outbox import enqueue
    from forecaster.alerts.queue import MessageQueue
    from forecaster.store import Store
    from forecaster.util.clock import SystemClock

    config = _load(args)
    routes = {r.name: r for r in all_routes(config.alerts)}
    route = routes.get(args.route)
    if route is None:
        raise ConfigError(f"no route named {args.route!r}; routes: {', '.join(routes) or 'none'}")
    clock = SystemClock()
    now = clock.now()
    channels = channels_from(config.alerts)
    messages = notify_test_messages(config, route, now)
    store = Store(config.store.url.get())
    try:
        enqueue(store, messages, now=now)
        outbox = MessageQueue(store)
        _send(config, config.alerts.delivery.wait_s, store)
        ok = True
        for m in messages:
            got = outbox.get(m.message_id)
            assert got is not None
            state = {"sent": "delivered", "failed": "FAILED", "pending": "not yet delivered (will retry)"}.get(got.status, got.status)
            detail = "" if got.status == "sent" else f": {got.last_code or ''} {got.last_error or ''}".rstrip()
            print(f"{route.name} → {m.channel} ({channels[m.channel].type}): {state}{detail}")
            ok = ok and got.status == "sent"
        return 0 if ok else 1
    finally:
        store.close()


def _until(args: argparse.Namespace, timezone: str, now: dt.datetime) -> dt.datetime:
    import re
    from zoneinfo import ZoneInfo

    if args.duration:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([hdw])\s*", args.duration)
        if not m:
            raise ConfigError(f"--for {args.duration!r}: use a number and h, d or w (12h, 3d, 2w)")
        hours = float(m.group(1)) * {"h": 1, "d": 24, "w": 168}[m.group(2)]
        try:
            return now + dt.timedelta(hours=hours)
        except OverflowError:
            raise ConfigError(f"--for {args.duration!r}: too long; give an end date with --until") from None
    text = args.until.strip()
    zone = ZoneInfo(timezone)
    try:
        if "T" in text or " " in text:
            moment = dt.datetime.fromisoformat(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=zone)
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--until {text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)


def cmd_silence(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from forecaster.alerts.silences import Silences
    from forecaster.store import Store
    from forecaster.util.clock import SystemClock

    config = _load(args)
    now = SystemClock().now()
    zone = ZoneInfo(config.timezone)
    store = Store(config.store.url.get())
    try:
        silences = Silences(store)
        if args.action == "add":
            ends = _until(args, config.timezone, now)
            _check_silence_scope(args, config, store)
            if ends <= now:
                raise ConfigError(f"the silence would end in the past ({ends.astimezone(zone):%Y-%m-%d %H:%M})")
            sid = silences.add(
                ends_at=ends, reason=args.reason, now=now, community_id=args.community, metric=args.metric, route=args.route, created_by=args.by
            )
            print(f"silence {sid} added until {ends.astimezone(zone):%Y-%m-%d %H:%M} ({config.timezone})")
            return 0
        if args.action == "remove":
            if not silences.remove(args.id, now=now):
                print(f"error: no active silence {args.id}", file=sys.stderr)
                return 2
            print(f"silence {args.id} removed")
            return 0
        rows = silences.list(now, include_ended=args.all)
        if not rows:
            print("no silences")
        for s in rows:
            scope = " ".join(
                f"{k}={v}" for k, v in (("community", s.community_id), ("metric", s.metric), ("route", s.route)) if v
            ) or "everything"
            ended = " (ended)" if s.ends_at <= now else ""
            print(f"  {s.silence_id:>4}  until {s.ends_at.astimezone(zone):%Y-%m-%d %H:%M}{ended}  {scope}  — {s.reason}")
        return 0
    finally:
        store.close()


def _check_silence_scope(args: argparse.Namespace, config, store) -> None:
    """What a silence names must exist, and a silence of everything must be asked for."""
    if args.route and args.route not in {r.name for r in _routes(config)}:
        raise ConfigError(f"--route {args.route!r}: no such route")
    if not (args.community or args.metric or args.route or args.everything):
        raise ConfigError("silence add: name a --community, --metric or --route, or pass --everything to pause every alert")
    known = store.known_communities()
    if args.community and known and args.community not in known:
        sample = ", ".join(sorted(known)[:5])
        raise ConfigError(f"--community {args.community!r}: the last run saw no such community ({len(known)} known: {sample}…)")


def _routes(config):
    from forecaster.alerts.notify import all_routes

    return all_routes(config.alerts)


def cmd_demo(args: argparse.Namespace) -> int:
    from forecaster.demo import DEMO_VERSION, demo_status, make_demo_frames, write_demo_csv, write_demo_sql
    from forecaster.util.clock import SystemClock, today_in
    from forecaster.util.secret import mask_url

    config = _load(args)
    as_of = args.as_of or today_in(SystemClock(), config.timezone)
    n = args.communities or config.demo.communities
    years = args.years or config.demo.years
    seed = config.demo.seed if args.seed is None else args.seed
    csv_dir = args.csv
    url = args.url
    if csv_dir is None and url is None:
        if config.source.type == "sql":
            url = config.source.sql.url.get()
        elif config.source.type == "csv":
            csv_dir = config.source.csv.directory
        else:
            raise ConfigError("demo: source.type is 'http'; pass --url DATABASE_URL or --csv DIR to say where to write")

    if url is not None:
        state, info = demo_status(url)
        if args.if_absent:
            if state == "foreign":
                print(f"demo: {mask_url(url)} holds real data; leaving it alone")
                return 0
            current = info.get("version") == DEMO_VERSION  # written by this version: it has every column
            if state == "demo" and current and info.get("data_end") == (as_of - dt.timedelta(days=1)).isoformat() and info.get("seed") == str(seed):
                print(f"demo: data in {mask_url(url)} is up to date (ends {info['data_end']})")
                return 0
        data = make_demo_frames(as_of, communities=n, years=years, seed=seed)
        write_demo_sql(url, data, seed=seed)
        where = mask_url(url)
    else:
        if args.if_absent and (csv_dir / "tickets.csv").exists():
            print(f"demo: {csv_dir} already has tickets.csv; leaving it alone")
            return 0
        data = make_demo_frames(as_of, communities=n, years=years, seed=seed)
        write_demo_csv(csv_dir, data)
        where = str(csv_dir)
    print(
        f"demo: {len(data.communities)} communities, {len(data.tickets):,} tickets, {len(data.surveys):,} "
        f"survey days from {data.start} to {data.end} written to {where}"
    )
    return 0


def _read_series(args: argparse.Namespace):
    from forecaster.ingest.longcsv import complete_days, read_long_csv

    return complete_days(read_long_csv(args.input), args.gaps)


def cmd_forecast(args: argparse.Namespace) -> int:
    import pandas as pd

    from forecaster.export import write_csv
    from forecaster.models.select import Settings

    config = _load_optional(args)
    changes = {k: v for k, v in (("horizon", args.horizon), ("model", args.model), ("level", args.level)) if v is not None}
    settings = Settings.from_config(_with_options(config.forecast, changes))
    frame = _read_series(args)
    from forecaster.forecasting import forecast_long

    out, outcomes = forecast_long(frame, settings, country=args.country or config.forecast.country, calendar=config.calendar)
    if out.empty:  # every series failed: the file says so by its header alone
        out = pd.DataFrame(columns=["series_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"])
    out["ds"] = pd.to_datetime(out["ds"]).dt.strftime("%Y-%m-%d")
    for col in ("yhat", "yhat_lower", "yhat_upper"):
        out[col] = out[col].round(3)
    write_csv(out, args.output)
    _print_outcomes(outcomes, settings.horizon, args.output)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _with_options(forecast, changes: dict):
    """``forecast`` settings with the command's options, held to the config schema's bounds
    (--level 150, --level 0 or --horizon 100000 are refused as forecast.level / horizon would be)."""
    from pydantic import ValidationError

    try:
        return type(forecast).model_validate({**forecast.model_dump(), **changes})
    except ValidationError as exc:
        problems = [f"--{err['loc'][0]}: {err['msg']} (got {err.get('input')!r})" for err in exc.errors()]
        raise ConfigError("; ".join(problems)) from None


def _print_outcomes(outcomes, horizon: int, path: Path) -> None:
    from collections import Counter

    done = [o for o in outcomes if o.status != "failed"]
    models = Counter(o.model for o in done)
    print(f"forecast: {len(done)} of {len(outcomes)} series × {horizon} days → {path}")
    print("  models    " + (", ".join(f"{m} {n}" for m, n in models.most_common()) or "none (every series failed)"))
    for status in ("fallback", "failed"):
        rows = [o for o in outcomes if o.status == status]
        for o in rows[:10]:
            print(f"  {status:9} {o.series_id}: {o.reason}")
        if len(rows) > 10:
            print(f"  {status:9} … and {len(rows) - 10} more")


def cmd_backtest(args: argparse.Namespace) -> int:
    from forecaster.export import write_csv
    from forecaster.forecasting import backtest_long
    from forecaster.models.backtest import summarise_backtest
    from forecaster.models.select import MODELS
    from forecaster.vocab import BASELINE, COMBINATIONS

    config = _load_optional(args)
    if args.horizon is None:
        args.horizon = config.forecast.backtest_horizon
    if args.folds is None:
        args.folds = config.forecast.backtest_folds
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError(f"--models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if args.horizon < 1 or args.folds < 1:
        raise ConfigError("--horizon and --folds must be at least 1")
    frame = _read_series(args)
    level = _with_options(config.forecast, {"level": args.level} if args.level is not None else {}).level
    # auto chooses as the nightly run would: among forecast.candidates that were scored (all
    # scored models when none of them was).
    scored = {*models, BASELINE, *(c for c, parts in COMBINATIONS.items() if set(parts) <= {*models, BASELINE})}
    pool = tuple(c for c in config.forecast.candidates if c in scored) or tuple(scored)
    points = backtest_long(
        frame,
        horizon=args.horizon,
        folds=args.folds,
        level=level,
        models=models,
        country=args.country or config.forecast.country,
        calendar=config.calendar,
        min_train=config.forecast.min_history_days,
        selection_folds=config.forecast.backtest_folds,
        autos={"auto": pool},
    )
    if points.empty:
        print(f"backtest: no series in {args.input} is long enough for {args.folds} folds of {args.horizon} days")
        return 1
    table = summarise_backtest(points)
    print(f"backtest: {points['series_id'].nunique()} series, {args.folds} folds × {args.horizon} days, {level:g}% intervals")
    print(_format_table(table))
    if args.output:
        per_series = summarise_backtest(points, by=["series_id"])
        write_csv(per_series.round(4), args.output)
        print(f"per-series scores → {args.output}")
    return 0


def _format_table(table) -> str:
    cols = [
        ("model", "model", "{}"),
        ("mase", "MASE", "{:.3f}"),
        ("smape", "sMAPE%", "{:.1f}"),
        ("coverage", "coverage", "{:.1%}"),
        ("holiday_mase", "holiday MASE", "{:.3f}"),
        ("holiday_smape", "holiday sMAPE%", "{:.1f}"),
        ("holiday_coverage", "holiday coverage", "{:.1%}"),
        ("failed", "failed", "{}"),
    ]
    cols = [c for c in cols if c[0] in table.columns]
    rows = [[title for _, title, _ in cols]]
    for rec in table.to_dict("records"):
        rows.append(["-" if rec[key] != rec[key] else fmt.format(rec[key]) for key, _, fmt in cols])
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    return "\n".join("  " + "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows)


def cmd_check_config(args: argparse.Namespace) -> int:
    from forecaster.config import describe_config
    from forecaster.ingest import check_source, describe_source
    from forecaster.util.secret import mask_url

    config = _load(args)
    print(f"{config.path}: valid")
    print(f"  timezone   {config.timezone}")
    print(f"  source     {describe_source(config)} (timestamps without a zone read as {config.source_timezone})")
    inc = config.source.incremental
    if config.source.type != "sql" and inc.enabled:
        whole = "the whole file" if config.source.type == "csv" else "the whole window"
        reading = (
            f"{config.source.history_days} days; {whole} every night, in batches (a {config.source.type} source cannot "
            f"pick rows by date), but only the last {inc.reread_days} days and a slice of the older ones are summed "
            f"from it afresh (all of them over {inc.history_reread_nights} nights); the rest comes from the saved day totals"
        )
    elif inc.enabled:
        reading = (
            f"{config.source.history_days} days; nightly only tickets created or closed in the last {inc.reread_days} days "
            f"and a slice of the older ones (all of them over {inc.history_reread_nights} nights)"
        )
    else:
        reading = f"all {config.source.history_days} days every night (source.incremental.enabled: false)"
    from forecaster.ingest.partitions import read_workers

    processes = read_workers(config)
    if processes > 1:
        reading += f"; tickets read by {processes} processes at once (source.sql.read_workers)"
    print(f"  reading    {reading}")
    print(f"  store      {mask_url(config.store.url.get())}")
    print(f"  outputs    {config.output.dir}")
    print(f"  metrics    {', '.join(config.metrics.enabled)}")
    channels = ", ".join(f"{name} ({c.type})" for name, c in config.alerts.channels.items()) or "none: alerts print to the console"
    print(f"  channels   {channels}")
    print(f"  schedule   nightly '{config.schedule.nightly}' ({config.timezone})")
    if args.show:
        print()
        print(describe_config(config), end="")
    if args.connect:
        from forecaster.export import check_output_dir

        for line in check_source(config):
            print(f"  checked    {line}")
        print(f"  checked    {check_output_dir(config.output.dir)}")
    return 0


COMMON_DEFAULTS = {"config": None, "verbose": 0}


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The arguments, with the common options' defaults where neither position gave them."""
    args = parser.parse_args(argv)
    for name, value in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except ForecasterError as exc:
        from forecaster.util.secret import redact

        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped reading (`forecaster status | head`): not an error of ours. Point
        # stdout at /dev/null so that flushing it at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
