"""Each model on synthetic series whose right answer is known."""

import numpy as np
import pandas as pd
import pytest

from forecaster.calendar import make_features
from forecaster.models.arima import Arima
from forecaster.models.base import SeriesSpec, predict_with
from forecaster.models.linear import LinearModel, ar_forecast, fit_ar
from forecaster.models.naive import SeasonalNaive, seasonal_naive_scale
from forecaster.models.prophet import ProphetModel


def holiday_series(start="2024-06-01", end="2026-11-22", seed=0):
    """Weekday 20, weekend 12, National Day 4 (a real holiday dip), noise sd 1."""
    rng = np.random.default_rng(seed)
    f = make_features(start, end)
    y = np.where(f["off_day"] == 1, 12.0, 20.0)
    y = np.where(f["hol_national_day"] == 1, 4.0, y) + rng.normal(0, 1, len(f))
    return pd.DatetimeIndex(f.index), np.maximum(y, 0)


def test_seasonal_naive_repeats_last_week_and_widens_with_weeks():
    ds = pd.date_range("2026-01-05", periods=28, freq="D")
    y = np.tile([10, 11, 12, 13, 14, 5, 6], 4).astype(float) + np.random.default_rng(1).normal(0, 0.5, 28)
    y[-2] = np.nan  # a missing Saturday: last week's Saturday stands in
    fc = SeasonalNaive().forecast(y, ds, 14, 80)
    assert fc.mean[0] == y[-7] and fc.mean[5] == y[-9] and fc.mean[7] == fc.mean[0]
    width = fc.upper - fc.lower
    assert width[7] > width[0] and np.isclose(width[7] / width[0], np.sqrt(2))


def test_seasonal_naive_scale_ignores_missing_days():
    y = np.array([1, 2, 3, 4, 5, 6, 7, 3, np.nan, 3, 4, 5, 6, 9], dtype=float)
    assert seasonal_naive_scale(y) == pytest.approx(np.mean([2, 0, 0, 0, 0, 2]))


@pytest.mark.parametrize("model", [LinearModel(), Arima(), ProphetModel()], ids=["linear", "arima", "prophet"])
def test_models_learn_the_holiday_from_last_year(model):
    ds, y = holiday_series()
    hist = make_features(ds[0], ds[-1])
    # Forecast from 2026-09-10 across National Day 2026 (learned from 2024 and 2025).
    cut = int(np.flatnonzero(ds == pd.Timestamp("2026-09-10"))[0])
    fc = predict_with(model, y[:cut], ds[:cut], 40, 80, SeriesSpec.for_values(y), hist.iloc[:cut], hist.iloc[cut : cut + 40])
    days = ds[cut : cut + 40]
    nd = fc.mean[(days >= "2026-10-02") & (days <= "2026-10-06")]
    weekday = fc.mean[(days.day_of_week < 3) & (days >= "2026-10-12")]
    assert nd.max() < 8 and weekday.min() > 16
    truth = y[cut : cut + 40]
    assert np.mean((fc.lower <= truth) & (truth <= fc.upper)) > 0.6


def test_bounds_hold_after_back_transform():
    ds = pd.date_range("2025-01-01", periods=200, freq="D")
    rng = np.random.default_rng(3)
    counts = rng.poisson(0.3, 200).astype(float)  # mostly zeros
    fc = predict_with(Arima(), counts, ds, 30, 95, SeriesSpec.for_values(counts), make_features(ds[0], ds[-1]), make_features(ds[-1] + pd.Timedelta(days=1), ds[-1] + pd.Timedelta(days=30)))
    assert (fc.lower >= 0).all() and (fc.mean >= 0).all()
    sat = np.clip(98 + rng.normal(0, 3, 200), 0, 100)
    spec = SeriesSpec("none", 0.0, 100.0)
    fc = predict_with(SeasonalNaive(), sat, ds, 30, 95, spec)
    assert (fc.upper <= 100).all() and (fc.lower >= 0).all()


def test_fit_ar_recovers_the_coefficient_despite_gaps():
    rng = np.random.default_rng(4)
    r = np.zeros(3000)
    for t in range(1, len(r)):
        r[t] = 0.6 * r[t - 1] + rng.normal(0, 1)
    r[rng.choice(len(r), 300, replace=False)] = np.nan
    coef, sigma2 = fit_ar(r, max_p=2)
    assert len(coef) >= 1 and coef[0] == pytest.approx(0.6, abs=0.06)
    assert sigma2 == pytest.approx(1.0, rel=0.1)
    # The forecast decays towards 0 from the last value, and its spread grows to the process's.
    r[-1] = 3.0
    mean, sd = ar_forecast(r, coef, sigma2, 30)
    assert mean[0] == pytest.approx(coef[0] * 3.0 + (coef[1] * r[-2] if len(coef) > 1 else 0), abs=1e-9)
    assert abs(mean[-1]) < 0.05 and sd[0] == pytest.approx(np.sqrt(sigma2))
    assert sd[-1] == pytest.approx(np.sqrt(sigma2 / (1 - 0.36)), rel=0.15)


def test_fit_ar_never_returns_an_explosive_process():
    r = np.cumsum(np.ones(200))  # a ramp: least squares says "1.0 × yesterday" (a unit root)
    coef, _ = fit_ar(r - r.mean(), max_p=1)
    assert np.max(np.abs(np.roots(np.concatenate([[1.0], -coef])))) < 0.98


def test_linear_model_follows_a_level_shift_and_keeps_weekly_shape():
    """A series that steps from 20 to 30 three months before the end: the forecast is near the
    new level (the half-life weighting and the trend), with the weekend dip kept."""
    rng = np.random.default_rng(5)
    ds = pd.date_range("2024-01-01", "2025-12-31", freq="D")
    f = make_features(ds[0], ds[-1] + pd.Timedelta(days=28))
    level = np.where(ds >= "2025-10-01", 30.0, 20.0)
    weekend = np.where(ds.day_of_week >= 5, -6.0, 0.0)
    y = level + weekend + rng.normal(0, 1, len(ds))
    spec = SeriesSpec("none", 0.0, None)
    fc = predict_with(LinearModel(), y, ds, 28, 80, spec, f.iloc[: len(ds)], f.iloc[len(ds) :])
    fut = pd.date_range(ds[-1] + pd.Timedelta(days=1), periods=28)
    weekday, weekend_days = fc.mean[fut.day_of_week < 5], fc.mean[fut.day_of_week >= 5]
    assert 27 < weekday.mean() < 31.5 and 5 < weekday.mean() - weekend_days.mean() < 7


def test_linear_model_interval_covers_about_its_level_on_a_stable_series():
    """Weekly pattern plus AR(1) noise: over 40 origins, the 80% interval of the next 14 days
    covers close to 80% of what happened (the model's own interval, before calibration)."""
    rng = np.random.default_rng(6)
    ds = pd.date_range("2024-01-01", "2026-06-30", freq="D")
    noise = np.zeros(len(ds))
    for t in range(1, len(ds)):
        noise[t] = 0.5 * noise[t - 1] + rng.normal(0, 1)
    y = 20 + np.where(ds.day_of_week >= 5, -6.0, 0.0) + noise
    f = make_features(ds[0], ds[-1])
    spec = SeriesSpec("none", None, None)
    hits = []
    for cut in range(len(ds) - 40 * 14, len(ds), 14):
        fc = predict_with(LinearModel(), y[:cut], ds[:cut], 14, 80, spec, f.iloc[:cut], f.iloc[cut : cut + 14])
        truth = y[cut : cut + 14]
        hits.extend((fc.lower <= truth) & (truth <= fc.upper))
    assert 0.72 <= np.mean(hits) <= 0.88
