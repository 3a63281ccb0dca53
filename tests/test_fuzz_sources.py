"""Broken files and rows, generated from a seed: whatever a source delivers, a night ends in a
result or a named error (`ForecasterError`: the file, line or setting at fault), never a
traceback; and a good night after a bad one saves the same totals as if the bad one never happened.

Each CI run draws a few hundred corruptions from the seeds below, the same on every run (a
failure names its seed, to reproduce with ``-k``)."""

from __future__ import annotations

import datetime as dt
import random
import shutil

import numpy as np
import pandas as pd
import pytest

from forecaster.demo import make_demo_frames, write_demo_csv
from forecaster.ingest import load_daily
from forecaster.ingest.aggregate import DAY_SUM_COLUMNS
from forecaster.pipeline import run_once
from forecaster.store import Store
from forecaster.util.errors import ForecasterError

AS_OF = dt.date(2026, 3, 10)
TABLES = ("communities", "tickets", "surveys")
SEEDS = range(240)


def _garbage(rng: random.Random) -> str:
    pool = ["", " ", ",", ";", '"', '""', "\t", "\\", "\x00", "\x1b[31m", "=cmd|' /C calc'!A0", "null", "NaN", "1e308",
            "-1", "9" * 40, "2026-02-30", "2026-13-01 25:61", "1700000000", "1700000000000", "五星", "4.5分",
            "[点我](http://evil.example)", "\n## 伪造", "\u202e", "💥", "\ufeff", "x" * 5000]
    return rng.choice(pool)


def corrupt(text: str, rng: random.Random) -> bytes:
    """One or a few random corruptions of a CSV file's text, as bytes (some not UTF-8)."""
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(12)
        if kind == 0 and lines:  # cut the file at a random point
            cut = rng.randrange(len("\n".join(lines)) + 1)
            lines = "\n".join(lines)[:cut].splitlines()
        elif kind == 1 and len(lines) > 1:  # a cell replaced by garbage
            i = rng.randrange(1, len(lines))
            cells = lines[i].split(",")
            cells[rng.randrange(len(cells))] = _garbage(rng)
            lines[i] = ",".join(cells)
        elif kind == 2 and lines:  # the header: a column renamed, dropped or doubled
            cells = lines[0].split(",")
            j = rng.randrange(len(cells))
            cells[j] = rng.choice([cells[j].upper(), cells[j] + "_x", "", cells[(j + 1) % len(cells)]])
            lines[0] = ",".join(cells)
        elif kind == 3:  # header only, or nothing at all
            lines = lines[:1] if rng.random() < 0.7 else []
        elif kind == 4 and len(lines) > 1:  # rows with too many or too few cells
            i = rng.randrange(1, len(lines))
            lines[i] = lines[i] + ",extra,cells" if rng.random() < 0.5 else lines[i].split(",")[0]
        elif kind == 5:  # another delimiter
            lines = [ln.replace(",", rng.choice([";", "\t", "|"])) for ln in lines]
        elif kind == 6 and len(lines) > 1:  # an unbalanced quote
            i = rng.randrange(1, len(lines))
            lines[i] = '"' + lines[i]
        elif kind == 7 and len(lines) > 1:  # rows duplicated
            lines += rng.sample(lines[1:], min(5, len(lines) - 1))
        elif kind == 8:  # blank lines and whitespace
            lines = [ln if rng.random() < 0.9 else "   " for ln in lines]
        elif kind == 9 and len(lines) > 1:  # every date shifted into another format
            lines = [lines[0]] + [ln.replace("-", "/") for ln in lines[1:]]
        elif kind == 10 and len(lines) > 1:  # a row of pure garbage
            lines.insert(rng.randrange(1, len(lines) + 1), ",".join(_garbage(rng) for _ in range(6)))
        elif kind == 11 and len(lines) > 1:  # dates far in the future or the past
            i = rng.randrange(1, len(lines))
            lines[i] = lines[i].replace("2026", rng.choice(["2062", "1900", "0000"]))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if rng.random() < 0.08:  # bytes that are not UTF-8 (a GBK export, a stray byte)
        at = rng.randrange(len(data) + 1)
        data = data[:at] + rng.choice([b"\xff\xfe", b"\xc4\xe3", b"\x80", b"\xed\xa0\x80"]) + data[at:]
    return data


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    good = tmp_path_factory.mktemp("good")
    write_demo_csv(good, make_demo_frames(AS_OF, communities=3, years=0.3, seed=9))
    return good


def csv_config(make_config, directory, store=None):
    # Every day re-read each night: a broken night that went on (rows cut, not refused) saved its
    # own totals for the older slice it read; with slices, the good night after repairs the recent
    # days at once and that slice when its turn comes (within history_reread_nights nights).
    incremental = {"history_reread_nights": 1}
    data = {"source": {"type": "csv", "csv": {"directory": str(directory)}, "history_days": 60, "incremental": incremental}}
    if store is not None:
        data |= {
            "store": {"url": f"sqlite:///{store}"},
            "forecast": {"model": "naive", "horizon": 7},
            "engine": {"backend": "serial"},
            "output": {"dir": str(directory.parent / "out")},
        }
    return make_config(data)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_broken_file_gives_a_result_or_a_named_error(seed, exports, tmp_path, make_config):
    rng = random.Random(seed)
    shutil.copytree(exports, tmp_path / "csv")
    table = rng.choice(TABLES)
    path = tmp_path / "csv" / f"{table}.csv"
    path.write_bytes(corrupt(path.read_text(encoding="utf-8-sig"), rng))
    try:
        data = load_daily(csv_config(make_config, tmp_path / "csv"), AS_OF)
    except ForecasterError as exc:
        message = str(exc)
        assert message.strip() and "Traceback" not in message
        return
    # A night that went on counted what it skipped, and every total it kept is finite and ≥ 0.
    sums = data.day_sums[list(DAY_SUM_COLUMNS)].to_numpy(float)
    assert np.isfinite(sums).all() and (sums >= 0).all()
    assert all(r.rows_kept + r.rows_skipped == r.rows_read for r in data.reports if r.table != "communities")


def saved(store_path) -> pd.DataFrame:
    store = Store(f"sqlite:///{store_path}")
    try:
        out = store.load_day_sums(dt.date(2000, 1, 1))
    finally:
        store.close()
    out["community_id"] = out["community_id"].astype(str)
    return out.sort_values(["community_id", "ds"]).reset_index(drop=True)[["community_id", "ds", *DAY_SUM_COLUMNS]]


@pytest.mark.parametrize("seed", range(6))
def test_a_good_night_after_a_bad_one_saves_what_it_would_have_without_it(seed, exports, tmp_path, make_config):
    """Three nights: good, broken (whatever the corruption does), good again; against two good
    nights alone. A broken night that went on may save its own totals for the days it read; the
    good night after re-reads them and must put them back, and a refused one saves nothing."""
    rng = random.Random(1000 + seed)
    csv = tmp_path / "csv"
    shutil.copytree(exports, csv)
    first, bad, after = AS_OF - dt.timedelta(days=2), AS_OF - dt.timedelta(days=1), AS_OF
    config = csv_config(make_config, csv, tmp_path / "store.db")
    assert run_once(config, first).exit_code == 0
    table = rng.choice(("tickets", "surveys"))
    (csv / f"{table}.csv").write_bytes(corrupt((exports / f"{table}.csv").read_text(encoding="utf-8-sig"), rng))
    night = run_once(config, bad)
    assert night.exit_code in (0, 1, 2) and (night.exit_code == 0 or night.error is None or night.error.strip())
    shutil.copy(exports / f"{table}.csv", csv / f"{table}.csv")
    assert run_once(config, after).exit_code == 0
    control = csv_config(make_config, csv, tmp_path / "control.db")
    assert run_once(control, first).exit_code == 0 and run_once(control, after).exit_code == 0
    pd.testing.assert_frame_equal(saved(tmp_path / "store.db"), saved(tmp_path / "control.db"))
