"""Nightly runs reuse each series' model choice for a week; a seventh choose afresh each night."""

import datetime as dt

from forecaster.config import parse_config
from forecaster.demo import make_demo_frames, write_demo_sql
from forecaster.forecasting import reselect_tonight
from forecaster.pipeline import run_once
from forecaster.store import Store
from forecaster.summary import format_run_summary

AS_OF = dt.date(2026, 11, 23)


def test_the_second_night_refits_the_chosen_models_and_a_seventh_choose_afresh(tmp_path):
    night2 = AS_OF + dt.timedelta(days=1)
    source = f"sqlite:///{tmp_path / 'demo.db'}"
    write_demo_sql(source, make_demo_frames(night2, communities=6, years=1.0, seed=4), seed=4)
    config = parse_config(
        {
            "source": {"sql": {"url": source}},
            "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
            "metrics": {"enabled": ["satisfaction", "ticket_count"]},
            "forecast": {"candidates": ["naive", "arima"], "horizon": 30},
            "engine": {"backend": "serial"},
        },
        base_dir=tmp_path,
    )
    first = run_once(config, AS_OF)
    assert first.status == "ok" and first.reused_choices == 0
    store = Store(config.store.url.get())
    chosen = store.model_choices()
    ok = set(first.series_stats.loc[first.series_stats["status"] == "ok", "series_id"])
    assert set(chosen) == ok and {c.model for c in chosen.values()} <= {"naive", "arima"}

    second = run_once(config, night2)
    afresh = {sid for sid in chosen if reselect_tonight(sid, night2, 7)}
    assert second.reused_choices == len(chosen) - len(afresh) > 0
    models = second.series_stats.set_index("series_id")["model"]
    assert all(models[sid] == chosen[sid].model for sid in chosen if sid not in afresh)
    assert "refit with the model chosen on an earlier night" in format_run_summary(second, timezone="Asia/Shanghai")
    # Re-chosen series have a new date; reused ones keep theirs.
    again = store.model_choices()
    assert all(again[sid].chosen_on == chosen[sid].chosen_on for sid in chosen if sid not in afresh)
    assert all(again[sid].chosen_on == AS_OF.isoformat() for sid in afresh if sid in again)
    store.close()
