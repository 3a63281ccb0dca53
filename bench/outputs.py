"""Did a change alter what the service produces? Snapshot the demo's outputs of a checkout, then
compare two snapshots.

    .venv/bin/python bench/outputs.py snapshot . /tmp/after            # this checkout
    .venv/bin/python bench/outputs.py snapshot /path/to/old /tmp/before # another checkout, same venv
    .venv/bin/python bench/outputs.py compare /tmp/before /tmp/after    # SAME, or each difference

A snapshot generates the demo company (seeded), runs three nights (2026-11-20, -21 and -28: a
full read, an incremental night, a week later) with a route for every platform (DingTalk
markdown with 加签 and card, WeCom, Feishu card with a secret and post, a signed webhook and the
console) against the local robot server of the tests, sends a test message per route, forecasts
and backtests a long CSV, and keeps every output: the CSVs and the report, each night's console
output, `check-config --show`, `outbox`, the alert and finding rows of the store, and every
payload the robots received. Run ids, message ids, durations, clock times and ports differ from
run to run and are masked in the comparison; everything else must match byte for byte.

The checkout's own code runs (``PYTHONPATH``), with this interpreter's packages.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

NIGHTS = ("2026-11-20", "2026-11-21", "2026-11-28")
STORE_TABLES = ("alert_messages", "alert_state", "findings", "series_status", "ingest_problems", "alert_attempts")
# Columns whose values are times or ids of the run itself, not results.
VOLATILE_COLUMNS = {"created_at", "next_attempt_at", "claimed_at", "sent_at", "claimed_by", "alerted_at", "at", "run_id", "id"}
ENV = {"SNAP_DT1": "DT1", "SNAP_DT1S": "SECdt1secret", "SNAP_FSS": "fssecret"}


def make_config(tree: Path, work: Path, base: str, robots) -> dict:
    cfg = yaml.safe_load((tree / "config.yaml").read_text(encoding="utf-8"))
    cfg["source"]["sql"]["url"] = f"sqlite:///{work}/demo.db"
    cfg["store"]["url"] = f"sqlite:///{work}/forecaster.db"
    cfg["output"]["dir"] = str(work / "out")
    fast = {"rate_limit": 100_000}
    cfg["alerts"]["channels"] = {
        "dt-md": {"type": "dingtalk", "url": base + "/robot/send?access_token=${SNAP_DT1}", "secret": "${SNAP_DT1S}", **fast},
        "dt-card": {"type": "dingtalk", "url": robots.dingtalk_url("DT2"), "style": "card", **fast},
        "wecom": {"type": "wecom", "url": robots.wecom_url("WK1"), **fast},
        "fs-card": {"type": "feishu", "url": robots.feishu_url("FS1"), "secret": "${SNAP_FSS}", **fast},
        "fs-post": {"type": "feishu", "url": robots.feishu_url("FS2"), "style": "post", **fast},
        "hook": {"type": "webhook", "url": robots.webhook_url(), "secret": "whsecret", **fast},
        "con": {"type": "console"},
    }
    cfg["alerts"]["routes"] = [
        {"name": "华北", "regions": ["华北"], "channels": ["dt-md", "hook"], "mention_managers": True},
        {"name": "华东", "regions": ["华东"], "channels": ["wecom", "dt-card"], "mention_managers": True},
        {"name": "华中", "regions": ["华中"], "channels": ["fs-card"]},
        {"name": "华南", "regions": ["华南"], "channels": ["fs-post", "con"], "min_severity": "警告"},
    ]
    cfg["alerts"]["report_base_url"] = "https://intra.example.com/r"
    return cfg


def snapshot(tree: Path, dest: Path) -> None:
    tree, dest = tree.resolve(), dest.resolve()
    if dest.exists():
        shutil.rmtree(dest)
    work = dest / "work"
    work.mkdir(parents=True)
    sys.path.insert(0, str(tree))
    from tests.robots import RobotServer

    robots = RobotServer(
        dingtalk={"DT1": "SECdt1secret", "DT2": None}, wecom={"WK1"}, feishu={"FS1": "fssecret", "FS2": None},
        webhook_secret="whsecret", rate=100_000,
    ).start()
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(make_config(tree, work, robots.base, robots), allow_unicode=True), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(tree), NO_COLOR="1", **ENV)

    def run(name: str, *args: str) -> None:
        p = subprocess.run([sys.executable, "-m", "forecaster", "-c", str(config), *args], cwd=work, env=env, capture_output=True, text=True)
        (dest / f"{name}.out").write_text(f"rc={p.returncode}\n--stdout\n{p.stdout}\n--stderr\n{p.stderr}", encoding="utf-8")

    try:
        run("demo", "demo", "--as-of", NIGHTS[0])
        for i, night in enumerate(NIGHTS, 1):
            run(f"night{i}", "run", "--as-of", night)
        run("check", "check-config", "--show")
        run("outbox", "outbox")
        for route in ("华北", "华东", "华中", "华南"):
            run(f"test-{route}", "notify-test", "--route", route)
        series = pd.read_csv(work / "out" / NIGHTS[0] / "series.csv", encoding="utf-8-sig")
        series = series[series["community_id"].isin(sorted(series["community_id"].unique())[:2])]
        long = series.assign(series_id=series["community_id"] + ":" + series["metric"])[["series_id", "ds", "y"]]
        long.to_csv(work / "long.csv", index=False)
        run("fc", "forecast", "--input", str(work / "long.csv"), "--horizon", "14", "--output", str(dest / "adhoc.csv"))
        run("bt", "backtest", "--input", str(work / "long.csv"), "--horizon", "14", "--folds", "2")
    finally:
        robots.stop()
    write_receipts(robots.delivered, dest / "receipts.jsonl")
    write_store_rows(work / "forecaster.db", dest / "store.txt")
    shutil.copytree(work / "out", dest / "out")
    for path in dest.rglob("*"):  # this run's folder and port are not results
        if path.is_file() and "work" not in path.relative_to(dest).parts and path.suffix in (".out", ".txt", ".jsonl", ".csv", ".html"):
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            masked = text.replace(str(dest), "DEST").replace(f"127.0.0.1:{robots.port}", "127.0.0.1:PORT")
            if masked != text:
                path.write_text(masked, encoding="utf-8", errors="surrogateescape")
    shutil.rmtree(work)


def write_receipts(delivered, path: Path) -> None:
    def strip(node):  # signatures and their timestamps change with the clock
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("timestamp", "sign")}
        return [strip(v) for v in node] if isinstance(node, list) else node

    with open(path, "w", encoding="utf-8") as out:
        for r in delivered:
            out.write(json.dumps({"p": r.platform, "robot": r.robot, "payload": strip(r.payload), "mid": r.message_id}, ensure_ascii=False) + "\n")


def write_store_rows(db: Path, path: Path) -> None:
    con = sqlite3.connect(db)
    with open(path, "w", encoding="utf-8") as out:
        for table in STORE_TABLES:
            cur = con.execute(f"select * from {table}")  # noqa: S608 - our own table names
            cols = [d[0] for d in cur.description]
            rows = [
                json.dumps({k: v for k, v in zip(cols, r) if k not in VOLATILE_COLUMNS}, ensure_ascii=False, sort_keys=True, default=str)
                for r in cur
            ]
            out.write(f"## {table} {cols}\n" + "\n".join(sorted(rows)) + "\n")
    con.close()


def mask(text: str) -> str:
    """Ids, durations and clock times of the run masked: what is left are results."""
    text = re.sub(r"\b[0-9a-f]{32}\b", "MID", text)
    text = re.sub(r"(run|运行) [0-9a-f]{8}\b", r"\1 RID", text)
    text = re.sub(r"\b\d+(\.\d+)? s\b", "N s", text)
    text = re.sub(r"20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d)?", "DATETIME", text)
    text = re.sub(r"\b[0-9a-f]{10}\b", "SID", text)
    return re.sub(r"test-\d+-", "test-N-", text)


def compare(a: Path, b: Path) -> int:
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    differ = 0
    for name in sorted(files_a ^ files_b):
        print("only in one:", name)
        differ += 1
    for name in sorted(files_a & files_b):
        x, y = mask((a / name).read_text(errors="replace")), mask((b / name).read_text(errors="replace"))
        if name.suffix in (".txt", ".jsonl"):  # rows in any order
            x, y = "\n".join(sorted(x.splitlines())), "\n".join(sorted(y.splitlines()))
        if x != y:
            differ += 1
            print("DIFF", name)
            for line in list(difflib.unified_diff(x.splitlines(), y.splitlines(), lineterm="", n=0))[:12]:
                print("   ", line[:300])
    print("SAME" if not differ else f"{differ} files differ")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("snapshot", help="run the demo on a checkout and keep its outputs")
    p.add_argument("tree", type=Path, help="the checkout (its forecaster/, jobs/ and tests/robots.py run)")
    p.add_argument("dest", type=Path, help="where the snapshot goes (replaced)")
    p = sub.add_parser("compare", help="compare two snapshots; exit 1 when they differ")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.action == "snapshot":
        snapshot(args.tree, args.dest)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
