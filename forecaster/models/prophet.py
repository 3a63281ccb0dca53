"""Prophet with the Chinese calendar: weekly and (with enough history) yearly seasonality, and
the calendar's holidays, holiday windows, make-up workdays and seasons as regressors.

cmdstanpy's and Prophet's console chatter is silenced here, once.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from forecaster.models.base import Forecast, ModelError

__all__ = ["ProphetModel", "quiet_prophet"]

_quiet = False


def quiet_prophet() -> None:
    """Import Prophet with its loggers silenced (cmdstanpy sets its own up at import time)."""
    global _quiet
    if _quiet:
        return
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)  # "Importing plotly failed"
    import cmdstanpy  # noqa: F401
    import prophet  # noqa: F401

    for name in ("cmdstanpy", "prophet", "prophet.models", "prophet.forecaster"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL)
        logger.propagate = False
        logger.disabled = True
    _quiet = True


class ProphetModel:
    name = "prophet"

    def __init__(self, uncertainty_samples: int = 300, yearly_min_days: int = 540, seed: int = 0):
        self.uncertainty_samples = uncertainty_samples
        self.yearly_min_days = yearly_min_days
        self.seed = seed

    def forecast(self, z, ds, h, level, features=None, future=None) -> Forecast:
        quiet_prophet()
        from prophet import Prophet

        observed = np.isfinite(z)
        history = pd.DataFrame({"ds": ds[observed], "y": z[observed]})
        fut_ds = pd.date_range(ds[-1] + pd.Timedelta(days=1), periods=h, freq="D")
        frame = pd.DataFrame({"ds": fut_ds})
        model = Prophet(
            weekly_seasonality=True,
            yearly_seasonality=bool(len(z) >= self.yearly_min_days),
            daily_seasonality=False,
            interval_width=level / 100,
            uncertainty_samples=self.uncertainty_samples,
        )
        if features is not None:
            hist_feats = features.iloc[np.flatnonzero(observed)]
            for col in features.columns:
                if features[col].dtype.kind != "f":
                    continue
                values = hist_feats[col].to_numpy()
                if values.std() == 0:
                    continue  # nothing to learn from: leave it out
                model.add_regressor(col, prior_scale=5.0, standardize=False)
                history[col] = values
                frame[col] = future[col].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.random.seed(self.seed)
            try:
                model.fit(history)
                out = model.predict(frame)
            except Exception as exc:  # Stan and Prophet raise many kinds; all mean "no forecast"
                raise ModelError(f"Prophet failed: {type(exc).__name__}: {exc}") from None
        return Forecast(out["yhat"].to_numpy(), out["yhat_lower"].to_numpy(), out["yhat_upper"].to_numpy())
