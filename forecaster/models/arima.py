"""ARIMA with calendar regressors: regression on the Chinese calendar with ARMA errors (statsmodels).

Regressors that do not vary in the training window are left out (their effect cannot be
learned, so the forecast ignores them rather than guessing). Missing days are handled by the
state-space model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from forecaster.models.base import Forecast, ModelError, fourier_terms, weekday_dummies

__all__ = ["Arima"]

# off_day is the sum of weekend dummies, holiday_off and -makeup_workday: leave it out.
_COLLINEAR = {"off_day"}


def design(ds: pd.DatetimeIndex, features: pd.DataFrame | None, yearly: bool) -> tuple[np.ndarray, list[str]]:
    parts = [weekday_dummies(ds)]
    names = [f"dow_{d}" for d in range(1, 7)]
    if features is not None:
        pick = [i for i, (c, d) in enumerate(zip(features.columns, features.dtypes)) if d.kind == "f" and c not in _COLLINEAR]
        if len(pick) == features.shape[1]:
            parts.append(features.to_numpy(dtype=float))
        else:
            parts.append(features.iloc[:, pick].to_numpy(dtype=float))
        names += [features.columns[i] for i in pick]
    if yearly:
        parts.append(fourier_terms(ds, 3))
        names += [f"fourier_{i}" for i in range(6)]
    return np.hstack(parts), names


def regression_inputs(
    z: np.ndarray,
    ds: pd.DatetimeIndex,
    h: int,
    features: pd.DataFrame | None,
    future: pd.DataFrame | None,
    max_history: int,
    yearly_min_days: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The last ``max_history`` days of ``z`` and the calendar design of history and horizon:
    ``(z, X, X_future, observed)``, leaving out regressors that do not vary on the observed days
    (their effect cannot be learned, so the forecast ignores them rather than guessing)."""
    if len(z) > max_history:
        cut = len(z) - max_history
        z, ds = z[cut:], ds[cut:]
        features = None if features is None else features.iloc[cut:]
    observed = np.isfinite(z)
    if observed.sum() < 28:
        raise ModelError("fewer than 28 observations")
    yearly = len(z) >= yearly_min_days
    X, _ = design(ds, features, yearly)
    fut_ds = pd.date_range(ds[-1] + pd.Timedelta(days=1), periods=h, freq="D")
    Xf, _ = design(fut_ds, future, yearly)
    keep = X[observed].std(axis=0) > 0
    return z, X[:, keep], Xf[:, keep], observed


class Arima:
    """Regression with ARMA errors, fitted in two steps for speed.

    1. Calendar effects: least squares (slightly ridge-regularised, so an effect seen on only a
       few days, such as last year's Spring Festival, is shrunk rather than over-fitted) of the
       series on weekday dummies, calendar features and yearly Fourier terms.
    2. The residuals' short-term dynamics: ARMA orders from a small set, chosen by AIC, fitted
       by statsmodels' state-space SARIMAX (which handles missing days).

    The forecast adds both parts; the interval comes from the ARMA forecast variance. (Fitting
    both at once by maximum likelihood gives the same forecasts here but is ~10× slower.)
    Observations are weighted with a ``half_life`` in days (recent weeks count more, last
    year's holidays still count a quarter): on Koubei shops this cut ARIMA's MASE from 1.38
    to 1.28 (30 shops, 3 folds) and left Boston 311 unchanged (0.624 vs 0.628).
    """

    name = "arima"

    def __init__(
        self,
        orders=((1, 0, 1), (2, 0, 0), (1, 0, 0)),
        max_history: int = 730,
        ridge: float = 1.0,
        half_life: float | None = 180.0,
    ):
        self.orders = orders
        self.max_history = max_history
        self.ridge = ridge
        self.half_life = half_life

    def forecast(self, z, ds, h, level, features=None, future=None) -> Forecast:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        z, X, Xf, observed = regression_inputs(z, ds, h, features, future, self.max_history, 700)
        weights = None
        if self.half_life:
            age = (len(z) - 1 - np.arange(len(z)))[observed]
            weights = 0.5 ** (age / self.half_life)
        beta = _ridge_fit(X[observed], z[observed], self.ridge, weights)
        resid = z - (beta[0] + X @ beta[1:])
        best, error = None, None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for order in self.orders:
                try:
                    res = SARIMAX(resid, order=order, trend="n", concentrate_scale=True).fit(disp=False, maxiter=50)
                except (np.linalg.LinAlgError, ValueError) as exc:
                    error = exc
                    continue
                if np.isfinite(res.aic) and (best is None or res.aic < best.aic):
                    best = res
            if best is None:
                raise ModelError(f"ARIMA did not fit: {error}")
            pred = best.get_forecast(h)
            arma_mean = np.asarray(pred.predicted_mean)
            ci = np.asarray(pred.conf_int(alpha=1 - level / 100))
        regression = beta[0] + Xf @ beta[1:]
        return Forecast(regression + arma_mean, regression + ci[:, 0], regression + ci[:, 1])


def _ridge_fit(X: np.ndarray, z: np.ndarray, ridge: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Intercept + coefficients minimising Σ w (z - b0 - X b)² + ridge ||b||² (intercept free)."""
    w = np.ones(len(z)) if weights is None else weights
    w = w * (len(z) / w.sum())  # keep the ridge's strength comparable across weightings
    mean_x, mean_z = (w @ X) / w.sum(), (w @ z) / w.sum()
    Xc, zc = X - mean_x, z - mean_z
    gram = (Xc * w[:, None]).T @ Xc + ridge * np.eye(X.shape[1])
    coef = np.linalg.solve(gram, (Xc * w[:, None]).T @ zc)
    return np.concatenate([[mean_z - mean_x @ coef], coef])
