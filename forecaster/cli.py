"""The ``forecaster`` command: every step of the service by hand.

Exit codes: 0 success; 1 some series failed (the rest was done); 2 a configuration, source or
store error (nothing could be done). Errors are one readable line naming what to fix;
``-v`` shows progress, ``-vv`` debug detail. Secrets never print.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import sys
from pathlib import Path

from forecaster import __version__
from forecaster.errors import ConfigError, ForecasterError

__all__ = ["main", "build_parser"]

log = logging.getLogger("forecaster")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        help="config file (default: $FORECASTER_CONFIG or ./config.yaml)",
    )
    common.add_argument("-v", "--verbose", action="count", default=0, help="more output (-vv for debug)")

    parser = argparse.ArgumentParser(
        prog="forecaster",
        description="Forecasts and early warnings of tickets and resident satisfaction per community (物业).",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"wuye-forecaster {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "run",
        parents=[common],
        help="run one nightly cycle now",
        description="Run one nightly cycle: read the source, aggregate daily series per community and "
        "metric, write outputs under output.dir/<as-of>/ and record the run in the store. History ends "
        "the day before the as-of date (the last complete day).",
    )
    p.add_argument("--as-of", type=_date, metavar="DATE", help="run as of this date (default: today in the configured timezone)")
    p.add_argument("--dry-run", action="store_true", help="read and aggregate only; write no files and record nothing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "demo",
        parents=[common],
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
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "forecast",
        parents=[common],
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
        choices=["auto", "naive", "arima", "prophet", "ensemble"],
        help="default: forecast.model (auto); ensemble = mean of ARIMA and Prophet",
    )
    _add_series_options(p)
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser(
        "backtest",
        parents=[common],
        help="score the models on a long CSV by rolling-origin backtest",
        description="Rolling-origin backtest of every model (and of auto-selection, which chooses each "
        "fold's model from the folds before it) on a long CSV with series_id, ds, y. Prints MASE, sMAPE "
        "and interval coverage per model, overall and on holiday windows.",
    )
    p.add_argument("--input", "-i", required=True, type=Path, metavar="IN.csv")
    p.add_argument("--horizon", type=int, default=28, metavar="H", help="days per fold (default 28)")
    p.add_argument("--folds", type=int, default=3, metavar="K", help="folds scored (default 3)")
    p.add_argument(
        "--models",
        default="naive,arima,prophet",
        help="comma-separated models (default all; with arima and prophet the ensemble is scored too)",
    )
    p.add_argument("--output", "-o", type=Path, metavar="OUT.csv", help="also write the scores per series and model")
    _add_series_options(p)
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser(
        "check-config",
        parents=[common],
        help="validate the config file",
        description="Validate the config file and print the effective settings (secrets masked). "
        "Exit 0 when valid, 2 with the key path of each problem otherwise.",
    )
    p.add_argument("--show", action="store_true", help="print the complete effective configuration")
    p.add_argument("--connect", action="store_true", help="also open the source and check its tables and columns")
    p.set_defaults(func=cmd_check_config)
    return parser


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
    import os

    from forecaster.config import DEFAULT_CONFIG_PATH, Config, load_config

    if args.config or os.environ.get("FORECASTER_CONFIG") or Path(DEFAULT_CONFIG_PATH).is_file():
        return load_config(args.config)
    return Config()


def _setup_logging(verbose: int) -> None:
    from forecaster.secret import install_log_redaction

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


def cmd_run(args: argparse.Namespace) -> int:
    from forecaster.pipeline import run_once
    from forecaster.summary import format_run_summary

    config = _load(args)
    result = run_once(config, args.as_of, dry_run=args.dry_run)
    print(format_run_summary(result, timezone=config.timezone))
    return result.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    from forecaster.clock import SystemClock, today_in
    from forecaster.demo import demo_status, make_demo_frames, write_demo_csv, write_demo_sql
    from forecaster.secret import mask_url

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
            if state == "demo" and info.get("data_end") == (as_of - dt.timedelta(days=1)).isoformat() and info.get("seed") == str(seed):
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
    from forecaster.forecasting import complete_days, read_long_csv

    return complete_days(read_long_csv(args.input), args.gaps)


def cmd_forecast(args: argparse.Namespace) -> int:
    from forecaster.export import write_csv
    from forecaster.models.select import Settings

    config = _load_optional(args)
    frame = _read_series(args)
    if args.horizon is not None and args.horizon < 1:
        raise ConfigError("--horizon must be at least 1")
    changes = {k: v for k, v in (("horizon", args.horizon), ("model", args.model), ("level", args.level)) if v is not None}
    settings = dataclasses.replace(Settings.from_config(config.forecast), **changes)
    from forecaster.forecasting import forecast_long

    out, outcomes = forecast_long(frame, settings, country=args.country or config.forecast.country, calendar=config.calendar)
    out["ds"] = out["ds"].dt.strftime("%Y-%m-%d")
    for col in ("yhat", "yhat_lower", "yhat_upper"):
        out[col] = out[col].round(3)
    write_csv(out, args.output)
    _print_outcomes(outcomes, settings.horizon, args.output)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _print_outcomes(outcomes, horizon: int, path: Path) -> None:
    from collections import Counter

    done = [o for o in outcomes if o.status != "failed"]
    models = Counter(o.model for o in done)
    print(f"forecast: {len(done)} of {len(outcomes)} series × {horizon} days → {path}")
    print("  models    " + ", ".join(f"{m} {n}" for m, n in models.most_common()))
    for status in ("fallback", "failed"):
        rows = [o for o in outcomes if o.status == status]
        for o in rows[:10]:
            print(f"  {status:9} {o.series_id}: {o.reason}")
        if len(rows) > 10:
            print(f"  {status:9} … and {len(rows) - 10} more")


def cmd_backtest(args: argparse.Namespace) -> int:
    from forecaster.export import write_csv
    from forecaster.forecasting import backtest_long
    from forecaster.models.select import MODELS, summarise_backtest

    config = _load_optional(args)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError(f"--models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if args.horizon < 1 or args.folds < 1:
        raise ConfigError("--horizon and --folds must be at least 1")
    frame = _read_series(args)
    level = args.level or config.forecast.level
    points = backtest_long(
        frame,
        horizon=args.horizon,
        folds=args.folds,
        level=level,
        models=models,
        country=args.country or config.forecast.country,
        calendar=config.calendar,
        min_train=config.forecast.min_history_days,
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
    from forecaster.secret import mask_url

    config = _load(args)
    print(f"{config.path}: valid")
    print(f"  timezone   {config.timezone}")
    print(f"  source     {describe_source(config)} (timestamps without a zone read as {config.source_timezone})")
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
        for line in check_source(config):
            print(f"  checked    {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except ForecasterError as exc:
        from forecaster.secret import redact

        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
