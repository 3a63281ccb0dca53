import numpy as np
import pandas as pd
import pytest

from forecaster.forecasting import forecast_long
from forecaster.ingest.longcsv import InputError, complete_days, validate_long
from forecaster.models.select import Settings


def frame(rows):
    return pd.DataFrame(rows, columns=["series_id", "ds", "y"], dtype=object)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["a", "2026-01-01"]], None),  # built below without y
        ([["a", "2026-13-01", "1"], ["a", "2026-01-02", "2"]], "column ds: not a date on line(s) 2 (e.g. '2026-13-01'"),
        ([["a", "2026-01-01", "1"], ["a", "2026-01-02", "x"]], "column y: not a number on line(s) 3 (e.g. 'x'"),
        ([["a", "2026-01-01", "1"], ["a", "2026-01-01", "2"]], "duplicate (series_id, ds) on line(s) 2, 3"),
        ([[None, "2026-01-01", "1"]], "empty series_id on line(s) 2"),
        ([["a", "2026-01-01 10:00", "1"]], "daily dates expected"),
        ([["a", "2026-01-01", "inf"]], "not a number"),
    ],
)
def test_bad_input_names_the_column_and_lines(rows, message):
    if message is None:
        with pytest.raises(InputError, match=r"in\.csv: missing column\(s\) y \(columns there: series_id, ds\)"):
            validate_long(pd.DataFrame(rows, columns=["series_id", "ds"]), "in.csv")
        return
    with pytest.raises(InputError) as info:
        validate_long(frame(rows), "in.csv")
    assert message in str(info.value) and str(info.value).startswith("in.csv: ")


def test_empty_y_is_missing_and_gaps_are_completed():
    f = validate_long(frame([["a", "2026-01-01", "1"], ["a", "2026-01-02", None], ["a", "2026-01-05", "4"]]))
    missing = complete_days(f, "missing")
    assert missing["ds"].dt.day.tolist() == [1, 2, 3, 4, 5]
    assert np.isnan(missing["y"].to_numpy()[[1, 2, 3]]).all()
    zero = complete_days(f, "zero")
    assert zero["y"].tolist() == [1.0, 0.0, 0.0, 0.0, 4.0]  # an absent count day is zero


def test_a_failing_series_does_not_stop_the_others():
    ds = pd.date_range("2026-01-01", periods=80, freq="D")
    rows = [["good", d.date().isoformat(), str(10 + i % 7)] for i, d in enumerate(ds)]
    rows += [["bad", d.date().isoformat(), "5"] for d in ds]
    data = validate_long(frame(rows))

    def spec(sid, y):
        if sid == "bad":
            raise RuntimeError("boom")
        from forecaster.models.base import SeriesSpec

        return SeriesSpec.for_values(y)

    out, outcomes = forecast_long(data, Settings(horizon=10, model="naive"), spec=spec)
    by_id = {o.series_id: o for o in outcomes}
    assert by_id["bad"].status == "failed" and "RuntimeError: boom" in by_id["bad"].reason
    assert by_id["good"].status == "ok"
    assert out["series_id"].unique().tolist() == ["good"] and len(out) == 10


def test_chunks_of_one_night_share_one_calendar_book_and_get_the_same_forecasts():
    """A worker's later chunks (series starting later) reuse the first chunk's calendar book when
    it covers their dates, and the forecasts are the same as with a book of their own."""
    from forecaster import forecasting
    from forecaster.config import CalendarConfig

    forecasting._BOOKS.clear()
    rng = np.random.default_rng(0)
    early = pd.date_range("2025-01-01", "2026-11-22", freq="D")
    late = early[200:]
    rows = pd.concat(
        [
            pd.DataFrame({"series_id": "early", "ds": early, "y": rng.poisson(9, len(early)).astype(float)}),
            pd.DataFrame({"series_id": "late", "ds": late, "y": rng.poisson(9, len(late)).astype(float)}),
        ]
    )
    settings = Settings(horizon=30)
    span = (early[0], early[-1])
    forecast_long(rows[rows["series_id"] == "early"], settings, span=span)
    shared, _ = forecast_long(rows[rows["series_id"] == "late"], settings, span=span)
    assert len(forecasting._BOOKS) == 1
    book = next(iter(forecasting._BOOKS.values()))
    assert book is forecasting._book(late[0], late[-1], "CN", CalendarConfig())
    forecasting._BOOKS.clear()
    own, _ = forecast_long(rows[rows["series_id"] == "late"], settings)
    pd.testing.assert_frame_equal(shared, own)
