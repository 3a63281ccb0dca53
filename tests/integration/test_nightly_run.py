"""The whole nightly cycle on the demo company, as of a date before Spring Festival 2026."""

import datetime as dt

import pandas as pd
import pytest

from forecaster.cli import main
from forecaster.demo import make_demo_frames, write_demo_sql
from forecaster.store import Store, forecasts, series_status
from tests.conftest import render_in_chromium, write_config
from tests.readback import stored

AS_OF = dt.date(2026, 1, 25)  # Spring Festival 2026: 15–23 February; the staffing gap starts ~5 February


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly")
    demo = make_demo_frames(AS_OF, communities=12, years=1.6, seed=3)
    write_demo_sql(f"sqlite:///{root / 'data' / 'demo.db'}", demo, seed=3)
    write_config(
        root,
        {
            "metrics": {"enabled": ["satisfaction", "complaint_count"]},
            "forecast": {"candidates": ["naive", "arima"], "horizon": 60},
        },
    )
    code = main(["run", "--config", str(root / "config.yaml"), "--as-of", AS_OF.isoformat()])
    return root, demo.profiles.set_index("community_id"), code


def test_run_succeeds_and_writes_all_outputs(nightly):
    root, _, code = nightly
    assert code == 0
    out = root / "out" / AS_OF.isoformat()
    fc = pd.read_csv(out / "forecast.csv", encoding="utf-8-sig")
    assert list(fc.columns) == [
        "community_id", "community_name", "metric", "ds", "yhat", "yhat_lower", "yhat_upper",
        "model", "holiday", "season", "flag", "severity",
    ]
    assert fc["ds"].min() == "2026-01-25" and fc.groupby(["community_id", "metric"]).size().eq(60).all()
    sat = fc[fc["metric"] == "satisfaction"]
    assert sat["yhat_upper"].le(100).all() and sat["yhat_lower"].ge(0).all()
    assert (fc.loc[fc["ds"] == "2026-02-17", "holiday"] == "春节前后").all()
    assert fc.loc[(fc["ds"] == "2026-02-17") & fc["community_id"].isin(["C002", "C001"]), "season"].eq("供暖季").all()
    findings = pd.read_csv(out / "findings.csv", encoding="utf-8-sig")
    flagged = fc[fc["flag"] != ""].dropna(subset=["flag"])
    assert set(flagged["severity"]) <= {"提醒", "警告", "严重"} and len(flagged) > 0
    assert set(findings["community_id"]) == set(flagged["community_id"])


def test_fragile_communities_are_flagged_in_spring_festival_and_steady_ones_are_not(nightly):
    root, profiles, _ = nightly
    findings = pd.read_csv(root / "out" / AS_OF.isoformat() / "findings.csv", encoding="utf-8-sig")
    findings["window"] = findings["window"].fillna("")
    sf = findings[(findings["metric"] == "satisfaction") & findings["window"].str.contains("春节前后")]
    fragile = set(profiles.index[(profiles["kind"] == "fragile") & profiles["history_days"].isna()])
    steady = set(profiles.index[profiles["kind"] == "steady"])
    assert fragile and steady
    for cid in fragile:
        hit = sf[sf["community_id"] == cid]
        assert len(hit), f"{cid} (fragile) not flagged at Spring Festival"
        assert hit["severity"].isin(["警告", "严重"]).any()
        assert (pd.to_datetime(hit["first_day"]) <= "2026-02-23").all() and (pd.to_datetime(hit["last_day"]) >= "2026-02-10").all()
    assert not set(findings["community_id"]) & steady, "a steady community was flagged"


def test_the_store_keeps_forecasts_findings_and_series_status(nightly):
    root, _, _ = nightly
    store = Store(f"sqlite:///{root / 'data' / 'forecaster.db'}")
    [run] = store.last_runs()
    assert run.status == "ok" and run.summary["findings_by_severity"]
    assert len(stored(store, forecasts, run.run_id)) == 12 * 2 * 60
    status = stored(store, series_status, run.run_id)
    assert set(status["status"]) <= {"ok", "fallback"}
    assert status.loc[status["status"] == "ok", "model"].isin(["naive", "arima"]).all()
    assert len(store.findings_frame(run.run_id)) == len(pd.read_csv(root / "out" / AS_OF.isoformat() / "findings.csv"))


def test_the_same_dip_tomorrow_keeps_its_identity(nightly):
    root, _, _ = nightly
    first = Store(f"sqlite:///{root / 'data' / 'forecaster.db'}")
    [run1] = first.last_runs(1)
    before = first.findings_frame(run1.run_id)
    assert main(["run", "--config", str(root / "config.yaml"), "--as-of", AS_OF.isoformat()]) == 0
    run2 = first.last_runs(1)[0]
    after = first.findings_frame(run2.run_id)
    # The same data again: every finding is recognised, none is new.
    assert set(after["finding_id"]) == set(before["finding_id"])
    assert set(after["status"]) == {"unchanged"}


def test_report_opens_offline_in_chromium_with_every_chart_drawn(nightly, chromium, tmp_path):
    root, _, _ = nightly
    page = root / "out" / AS_OF.isoformat() / "report.html"
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # nothing to fetch: opens offline
    charts = text.count('<svg class="chart"')
    assert charts >= 1
    findings = pd.read_csv(root / "out" / AS_OF.isoformat() / "findings.csv", encoding="utf-8-sig")
    for name in findings["community_name"].unique():
        assert name in text
    dom = render_in_chromium(chromium, page, screenshot=tmp_path / "report.png")
    assert f'data-charts-rendered="{charts}"' in dom  # every chart laid out with lines in it
    assert dom.count('data-rendered="yes"') == charts
    assert (tmp_path / "report.png").stat().st_size > 20_000  # a real picture, not a blank page


def test_a_failing_series_makes_the_run_partial_with_exit_1_and_the_rest_is_done(tmp_path, monkeypatch, capsys):
    import forecaster.forecasting as forecasting

    real = forecasting.forecast_series

    def flaky(y, ds, spec, features, future, settings, **kw):
        if spec.upper == 100.0 and len(y) % 2 == 0:  # some satisfaction series
            raise RuntimeError("solver crashed")
        return real(y, ds, spec, features, future, settings, **kw)

    monkeypatch.setattr(forecasting, "forecast_series", flaky)
    demo = make_demo_frames(AS_OF, communities=6, years=0.8, seed=9)
    write_demo_sql(f"sqlite:///{tmp_path / 'data' / 'demo.db'}", demo, seed=9)
    write_config(
        tmp_path,
        {
            "forecast": {"model": "naive"},
            "engine": {"backend": "serial"},
            "output": {"chinese_headers": True},
        },
    )
    assert main(["run", "--config", str(tmp_path / "config.yaml"), "--as-of", AS_OF.isoformat()]) == 1
    out = capsys.readouterr().out
    assert "status     partial (exit 1)" in out and "failed:" in out
    store = Store(f"sqlite:///{tmp_path / 'data' / 'forecaster.db'}")
    [run] = store.last_runs()
    status = stored(store, series_status, run.run_id)
    failed = status[status["status"] == "failed"]
    assert run.status == "partial" and len(failed) >= 1
    assert failed["reason"].str.contains("RuntimeError: solver crashed").all()
    assert (status["status"] == "ok").sum() >= 12  # the others were forecast
    forecast = pd.read_csv(tmp_path / "out" / AS_OF.isoformat() / "forecast.csv", encoding="utf-8-sig")
    forecast_ids = set(status.loc[~status["status"].isin(["failed", "no_data"]), "series_id"])
    assert set(forecast["community_id"] + ":" + forecast["metric"]) == forecast_ids
    header = (tmp_path / "out" / AS_OF.isoformat() / "findings.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.startswith("编号,级别,小区编号,小区,城市,区域,负责人")
