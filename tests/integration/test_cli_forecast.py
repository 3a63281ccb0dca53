"""forecaster forecast / backtest on long CSV files, end to end."""

import numpy as np
import pandas as pd
import pytest

from forecaster.calendar import make_features
from forecaster.cli import main


@pytest.fixture
def long_csv(tmp_path):
    """Two years of two series up to 2026-11-22 that drop on days off (holidays included)."""
    f = make_features("2024-11-01", "2026-11-22")
    rng = np.random.default_rng(5)
    rows = []
    for sid, base in (("翠湖花园:tickets", 30.0), ("=cmd|' /C calc'!A0", 8.0)):
        y = np.where(f["off_day"] == 1, base * 0.5, base) * np.where(f["hol_spring_festival"] == 1, 0.3, 1.0)
        y = rng.poisson(y)
        rows.append(pd.DataFrame({"series_id": sid, "ds": f.index.strftime("%Y-%m-%d"), "y": y}))
    path = tmp_path / "in.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


def test_forecast_writes_one_row_per_series_and_day_across_spring_festival(long_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config.yaml here: the defaults apply
    out = tmp_path / "out.csv"
    code = main(["forecast", "--input", str(long_csv), "--output", str(out), "--horizon", "90", "--model", "arima"])
    assert code == 0, capsys.readouterr()
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    fc = pd.read_csv(out, encoding="utf-8-sig")
    assert list(fc.columns) == ["series_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]
    assert len(fc) == 180 and fc.groupby("series_id").size().eq(90).all()
    assert fc["ds"].min() == "2026-11-23" and fc["ds"].max() == "2027-02-20"
    assert "'=cmd|' /C calc'!A0" in set(fc["series_id"])  # neutralised for Excel
    assert (fc["yhat_lower"] <= fc["yhat"]).all() and (fc["yhat"] <= fc["yhat_upper"]).all() and (fc["yhat_lower"] >= 0).all()
    one = fc[fc["series_id"] == "翠湖花园:tickets"].set_index("ds")["yhat"]
    # Spring Festival 2027 (estimated schedule, 6 Feb) is forecast well below an ordinary weekday.
    assert one["2027-02-08"] < 0.6 * one["2027-01-13"]
    assert "forecast: 2 of 2 series × 90 days" in capsys.readouterr().out


def test_backtest_prints_scores_and_writes_per_series(long_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "scores.csv"
    code = main(["backtest", "-i", str(long_csv), "--horizon", "14", "--folds", "2", "--models", "naive,arima", "-o", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "backtest: 2 series, 2 folds × 14 days, 80% intervals" in text
    for word in ("MASE", "sMAPE%", "coverage", "auto", "naive", "arima"):
        assert word in text
    scores = pd.read_csv(out, encoding="utf-8-sig")
    assert set(scores["model"]) == {"naive", "arima", "auto"} and scores["series_id"].nunique() == 2


def test_bad_input_exits_2_naming_line_and_column(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("series_id,ds,y\na,2026-01-01,1\na,2026-01-02,lots\n", encoding="utf-8")
    assert main(["forecast", "-i", str(bad), "-o", str(tmp_path / "o.csv")]) == 2
    assert "bad.csv: column y: not a number on line(s) 3" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
    assert main(["backtest", "-i", str(bad), "--models", "naive,lstm"]) == 2
    assert "unknown model(s) lstm" in capsys.readouterr().err


def test_options_are_held_to_the_config_schemas_bounds(long_csv, tmp_path, capsys, monkeypatch):
    """--level 150, -20 or 0 and --horizon 100000 used to be taken (tracebacks or zero-width
    intervals); they are refused with the option named, as forecast.level / horizon would be."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o.csv"
    for option, value, says in (("--level", "150", "less than 100"), ("--level", "-20", "greater than 0"),
                                ("--level", "0", "greater than 0"), ("--horizon", "100000", "less than or equal to 730")):
        assert main(["forecast", "-i", str(long_csv), "-o", str(out), option, value]) == 2, (option, value)
        err = capsys.readouterr().err
        assert f"error: {option}: Input should be {says}" in err and "Traceback" not in err
        assert not out.exists()
    assert main(["backtest", "-i", str(long_csv), "--level", "150"]) == 2
    assert "--level: Input should be less than 100" in capsys.readouterr().err


def test_every_series_failing_writes_the_header_and_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "nan.csv"
    empty.write_text("series_id,ds,y\na,2026-01-01,\na,2026-01-02,\nb,2026-01-01,\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    assert main(["forecast", "-i", str(empty), "-o", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "forecast: 0 of 2 series" in printed and "none (every series failed)" in printed and "failed    a:" in printed
    assert pd.read_csv(out, encoding="utf-8-sig").columns.tolist() == ["series_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]


def test_weekly_or_monthly_input_is_refused_naming_the_series(tmp_path, capsys, monkeypatch):
    """Weekly totals were taken as daily values with six missing days between them, and forecast so."""
    monkeypatch.chdir(tmp_path)
    days = pd.date_range("2025-01-01", "2026-06-30", freq="D")
    weeks = pd.date_range("2025-01-06", periods=60, freq="7D").delete([10, 11])  # two weeks missing
    months = pd.date_range("2024-01-31", periods=24, freq="ME")  # month ends
    frame = pd.concat(
        [
            pd.DataFrame({"series_id": "daily", "ds": days.delete(range(5, 40, 3)), "y": 3.0}),  # days missing: still daily
            pd.DataFrame({"series_id": "翠湖花园:weekly", "ds": weeks, "y": 21.0}),
            pd.DataFrame({"series_id": "monthly", "ds": months, "y": 90.0}),
        ]
    )
    path = tmp_path / "mixed.csv"
    frame.assign(ds=frame["ds"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    out = tmp_path / "o.csv"
    assert main(["forecast", "-i", str(path), "-o", str(out), "--model", "naive", "--horizon", "7"]) == 2
    err = capsys.readouterr().err
    assert "mixed.csv: 2 series are not daily" in err
    assert "'翠湖花园:weekly': weekly (58 dates, 2025-01-06 … 2026-02-23)" in err
    assert "'monthly': monthly (24 dates, 2024-01-31 … 2025-12-31)" in err
    assert "'daily'" not in err and not out.exists()
    frame[frame["series_id"] == "daily"].to_csv(path, index=False)
    assert main(["forecast", "-i", str(path), "-o", str(out), "--model", "naive", "--horizon", "7"]) == 0
