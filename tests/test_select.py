import numpy as np
import pandas as pd
import pytest

from forecaster.calendar import make_features
from forecaster.models import select
from forecaster.models.backtest import FoldForecast, fold_origins, summarise_backtest
from forecaster.models.base import Forecast, ModelError, SeriesSpec
from forecaster.models.select import Settings, backtest_series, calibration_factor, forecast_series
from tests.test_models import holiday_series

FAST = Settings(horizon=30, folds=2, fold_horizon=28, step=28, candidates=("naive", "arima"))


def inputs(end="2026-11-22", h=30):
    ds, y = holiday_series(end=end)
    f = make_features(ds[0], ds[-1] + pd.Timedelta(days=h))
    return ds, y, f.iloc[: len(ds)], f.iloc[len(ds) :]


def test_fold_origins_end_at_the_last_day_and_respect_min_train():
    assert fold_origins(200, 28, 3, 28, 56) == [116, 144, 172]
    assert fold_origins(100, 28, 3, 28, 56) == [72]
    assert fold_origins(60, 28, 3, 28, 56) == []


def test_auto_chooses_the_model_that_backtests_best_and_records_scores():
    ds, y, hist, fut = inputs(end="2026-10-20")  # folds cover National Day 2026
    fc = forecast_series(y, ds, SeriesSpec.for_values(y), hist, fut, FAST)
    assert fc.model == "arima" and fc.status == "ok" and fc.reason == ""
    assert fc.scores["arima"] < fc.scores["naive"] and fc.score == fc.scores["arima"]
    assert len(fc.mean) == 30


def test_short_history_falls_back_to_the_baseline_with_a_reason():
    ds, y, hist, fut = inputs()
    fc = forecast_series(y[-40:], ds[-40:], SeriesSpec.for_values(y), hist.iloc[-40:], fut, FAST)
    assert fc.model == "naive" and fc.status == "fallback"
    assert "history of 40 days" in fc.reason and "min_history_days 56" in fc.reason


class Broken:
    name = "broken"

    def forecast(self, *args, **kw):
        raise ModelError("solver exploded")


def test_a_failing_model_is_skipped_with_its_error_recorded(monkeypatch):
    monkeypatch.setitem(select.MODELS, "broken", Broken)
    ds, y, hist, fut = inputs()
    settings = Settings(horizon=30, folds=1, fold_horizon=28, step=28, candidates=("broken", "naive"))
    fc = forecast_series(y, ds, SeriesSpec.for_values(y), hist, fut, settings)
    assert fc.model == "naive" and "broken failed in backtest: solver exploded" in fc.reason
    forced = forecast_series(y, ds, SeriesSpec.for_values(y), hist, fut, Settings(horizon=30, model="broken", folds=1))
    assert forced.model == "naive" and forced.status == "fallback" and "solver exploded" in forced.reason


def test_calibration_widens_intervals_that_were_too_narrow():
    y = np.array([0.0, 2.0] * 20)
    narrow = Forecast(np.ones(40), np.full(40, 0.5), np.full(40, 1.5))  # half-width 0.5, errors are 1
    calibration = calibration_factor([FoldForecast(0, y, narrow, 1.0)], 80)
    assert calibration.ordinary == pytest.approx(2.0) and calibration.holiday == calibration.ordinary
    too_few = calibration_factor([FoldForecast(0, y[:10], narrow, 1.0)], 80)
    assert (too_few.ordinary, too_few.holiday) == (1.0, 1.0)  # too few points to tell


def test_holiday_window_days_get_their_own_wider_calibration():
    y = np.ones(40)
    y[30:] = 4.0  # errors of 3 on the ten holiday-window days, none elsewhere
    holiday = np.arange(40) >= 30
    fc = Forecast(np.ones(40), np.full(40, 0.5), np.full(40, 1.5))
    calibration = calibration_factor([FoldForecast(0, y, fc, 1.0, holiday=holiday)], 80)
    assert calibration.holiday == pytest.approx(4.0)  # 3 / 0.5 = 6, capped at 4
    assert calibration.ordinary < calibration.holiday
    per_day = calibration.per_day(np.array([False, True, False]), 3)
    assert per_day[1] == calibration.holiday and per_day[0] == calibration.ordinary


def test_backtest_auto_chooses_from_earlier_folds_only():
    ds, y, hist, _ = inputs(end="2026-10-20")
    points = backtest_series(
        y, ds, SeriesSpec.for_values(y), hist, models=("naive", "arima"), h=14, folds=2, step=14, level=80, min_train=56,
        selection_folds=2,
    )
    assert set(points["model"]) == {"naive", "arima", "auto"}
    assert points.groupby("model")["fold"].nunique().eq(2).all()
    table = summarise_backtest(points).set_index("model")
    assert table.loc["auto", "mase"] <= table.loc["naive", "mase"]
    assert {"holiday_mase", "holiday_coverage"} <= set(table.columns)
    assert 0 <= table.loc["auto", "coverage"] <= 1


def test_each_named_auto_chooses_only_from_its_own_candidates():
    """``autos`` scores several candidate sets in one backtest: an auto without the baseline never
    forecasts with it, and each fold's auto forecast is one of its candidates' forecasts."""
    ds, y, hist, _ = inputs(end="2026-10-20")
    points = backtest_series(
        y, ds, SeriesSpec.for_values(y), hist, models=("naive", "linear"), h=14, folds=3, step=14, level=80, min_train=56, selection_folds=2,
        autos={"auto": ("linear", "linear_naive"), "auto_naive": ("naive",)},
    )
    assert {"naive", "linear", "linear_naive", "auto", "auto_naive"} <= set(points["model"])
    by = {m: g.set_index(["fold", "ds"])["yhat"] for m, g in points.groupby("model")}
    for fold in range(3):
        auto = by["auto"].xs(fold, level="fold")
        assert any(np.allclose(auto, by[m].xs(fold, level="fold")) for m in ("linear", "linear_naive"))
    assert np.allclose(by["auto_naive"], by["naive"])


def test_holiday_volatility_compares_week_on_week_moves_in_and_out_of_holiday_windows():
    from forecaster.models.select import holiday_volatility

    rng = np.random.default_rng(0)
    y = 50 + rng.normal(0, 1, 200)
    holiday = np.zeros(200, bool)
    holiday[100:120] = True
    y[100:120] += rng.normal(0, 3, 20)  # three times as jumpy around the holiday
    ratio = holiday_volatility(y, holiday)
    assert 1.5 < ratio <= 2.0  # capped at 2
    assert holiday_volatility(y, np.zeros(200, bool)) == 1.0  # no holiday seen: no change
    assert holiday_volatility(50 + rng.normal(0, 1, 200), holiday) < 1.4  # as calm as usual
    narrow = Forecast(np.ones(40), np.full(40, 0.5), np.full(40, 1.5))
    calm = calibration_factor([FoldForecast(0, np.array([0.0, 2.0] * 20), narrow, 1.0)], 80, holiday_ratio=1.5)
    assert calm.holiday == pytest.approx(1.5 * calm.ordinary)  # no holiday in the folds: scaled fallback


class Counting:
    """Seasonal naive that counts its fits (to see the backtest skipped)."""

    name = "counting"
    fits = 0

    def forecast(self, z, ds, h, level, features=None, future=None):
        Counting.fits += 1
        from forecaster.models.naive import SeasonalNaive

        return SeasonalNaive().forecast(z, ds, h, level, features, future)


def test_a_recent_choice_is_reused_with_one_fit_and_its_calibration(monkeypatch):
    monkeypatch.setitem(select.MODELS, "counting", Counting)
    ds, y, hist, fut = inputs()
    settings = Settings(horizon=30, folds=2, fold_horizon=28, step=28, candidates=("counting", "naive"))
    Counting.fits = 0
    first = forecast_series(y, ds, SeriesSpec.for_values(y), hist, fut, settings)
    assert first.choice is not None and Counting.fits >= 3  # every fold, then the refit
    choice = select.Choice("counting", first.score, 2.0, 3.0, first.choice.ahead, first.choice.chosen_on)
    Counting.fits = 0
    again = forecast_series(y, ds, SeriesSpec.for_values(y), hist, fut, settings, choice=choice, reuse_days=7)
    assert again.reused and again.model == "counting" and Counting.fits == 1
    assert again.calibration == select.Calibration(2.0, 3.0) and again.score == first.score
    # Too old, a new major holiday ahead, or reuse off: choose afresh.
    stale = select.Choice("counting", 1.0, 1.0, 1.0, first.choice.ahead, "2026-11-01")
    ahead = select.Choice("counting", 1.0, 1.0, 1.0, ("national_day",), first.choice.chosen_on)
    for c, days in ((stale, 7), (ahead, 7), (choice, 1)):
        out = forecast_series(y, ds, SeriesSpec.for_values(y), hist, fut, settings, choice=c, reuse_days=days)
        assert not out.reused


def test_reselection_is_spread_over_the_week():
    import datetime as dt

    from forecaster.forecasting import reselect_tonight

    ids = [f"C{i:04d}:satisfaction" for i in range(7000)]
    day = dt.date(2026, 11, 23)
    share = sum(reselect_tonight(s, day, 7) for s in ids) / len(ids)
    assert 0.12 < share < 0.17
    # Over seven nights every series chooses afresh exactly once.
    week = [sum(reselect_tonight(s, day + dt.timedelta(days=k), 7) for k in range(7)) for s in ids[:200]]
    assert set(week) == {1}
    assert all(reselect_tonight(s, day, 1) for s in ids[:10])


def test_a_reused_choice_refits_the_earlier_nights_model_at_tonights_origin():
    """``reused_after`` scores what a night reusing an older choice forecasts: the model chosen
    then, fitted on tonight's history (each fold's forecast is one of the candidates' tonight)."""
    ds, y, hist, _ = inputs(end="2026-10-20")
    args = dict(models=("naive", "linear"), h=14, folds=3, step=14, level=80, min_train=56, selection_folds=2, autos={"auto": ("linear", "linear_naive")})
    plain = backtest_series(y, ds, SeriesSpec.for_values(y), hist, **args)
    points = backtest_series(y, ds, SeriesSpec.for_values(y), hist, **args, reused_after=6)
    assert "auto_reused6d" not in set(plain["model"])
    by = {m: g.set_index(["fold", "ds"])["yhat"] for m, g in points.groupby("model")}
    assert by["auto_reused6d"].index.equals(by["auto"].index)
    assert np.allclose(by["auto"], plain[plain["model"] == "auto"].set_index(["fold", "ds"])["yhat"])
    for fold in range(3):
        reused = by["auto_reused6d"].xs(fold, level="fold")
        assert any(np.allclose(reused, by[m].xs(fold, level="fold")) for m in ("linear", "linear_naive"))
