import numpy as np
import pandas as pd

from forecaster.ingest.validate import (
    RawTable,
    parse_timestamps,
    validate_communities,
    validate_surveys,
    validate_tickets,
)


def raw(name, rows):
    frame = pd.DataFrame(rows)
    return RawTable(name, f"{name}.csv", frame, pd.Series([f"line {i + 2}" for i in range(len(frame))], dtype=object))


def problem(report, reason):
    found = [p for p in report.problems if p.reason.startswith(reason)]
    assert found, f"no problem {reason!r} in {[p.reason for p in report.problems]}"
    return found[0]


def tickets(rows, known=("C1", "C2"), **kw):
    opts = dict(source_tz="Asia/Shanghai", timezone="Asia/Shanghai", rating_scale=5)
    opts.update(kw)
    return validate_tickets(raw("tickets", rows), set(known), **opts)


def test_bad_ticket_rows_are_skipped_counted_and_shown_with_line_numbers():
    rows = [
        {"ticket_id": "T1", "community_id": "C1", "created_at": "2026-03-01 09:00:00"},
        {"ticket_id": "T2", "community_id": "C1", "created_at": "not a date"},
        {"ticket_id": "T1", "community_id": "C2", "created_at": "2026-03-01 10:00:00"},
        {"ticket_id": "T3", "community_id": "C9", "created_at": "2026-03-01 11:00:00"},
        {"ticket_id": None, "community_id": "C1", "created_at": "2026-03-01 12:00:00"},
        {"ticket_id": "T4", "community_id": " ", "created_at": "2026-03-01 12:00:00"},
        {"ticket_id": "T5", "community_id": "C2", "created_at": "2026/3/2 8:30"},
    ]
    out, report = tickets(rows)
    assert out["ticket_id"].tolist() == ["T1", "T5"]
    assert report.rows_read == 7 and report.rows_kept == 2 and report.rows_skipped == 5
    assert problem(report, "created_at is not a date").examples == ["line 3: 'not a date'"]
    assert problem(report, "duplicate ticket_id").examples == ["line 4: 'T1'"]
    assert problem(report, "unknown community_id").examples == ["line 5: 'C9'"]
    assert problem(report, "missing ticket_id").examples == ["line 6: (empty)"]
    assert problem(report, "missing community_id").count == 1
    assert out.loc[1, "created_at"] == pd.Timestamp("2026-03-02 08:30")  # non-ISO format still parsed


def test_bad_optional_fields_are_cleared_and_the_ticket_still_counts():
    rows = [
        {"ticket_id": "T1", "community_id": "C1", "created_at": "2026-03-01 09:00", "closed_at": "2026-03-01 08:00", "rating": "5"},
        {"ticket_id": "T2", "community_id": "C1", "created_at": "2026-03-01 09:00", "closed_at": "soon", "rating": "7"},
        {"ticket_id": "T3", "community_id": "C1", "created_at": "2026-03-01 09:00", "closed_at": "2026-03-01 13:00", "rating": "-1"},
        {"ticket_id": "T4", "community_id": "C1", "created_at": "2026-03-01 09:00", "closed_at": None, "rating": "good"},
        {"ticket_id": "T5", "community_id": "C1", "created_at": "2026-03-01 09:00", "closed_at": "2026-03-02 09:00", "rating": "4"},
    ]
    out, report = tickets(rows)
    assert len(out) == 5 and report.rows_skipped == 0
    assert report.fields_cleared == 5
    assert problem(report, "closed_at before created_at").examples[0].startswith("line 2:")
    assert problem(report, "closed_at is not a date").examples == ["line 3: 'soon'"]
    assert problem(report, "rating outside 0–5").count == 2
    assert problem(report, "rating is not a number").examples == ["line 5: 'good'"]
    assert out["closed_at"].isna().tolist() == [True, True, False, True, False]
    # Ratings are rescaled to 0-100; bad ones are emptied.
    ratings = out["rating"].tolist()
    assert ratings[0] == 100.0 and ratings[4] == 80.0
    assert np.isnan(ratings[1]) and np.isnan(ratings[2]) and np.isnan(ratings[3])


def test_utc_timestamps_become_local_days():
    rows = [
        {"ticket_id": "T1", "community_id": "C1", "created_at": "2026-03-01 17:30:00"},  # 01:30 next day in Shanghai
        {"ticket_id": "T2", "community_id": "C1", "created_at": "2026-03-01T17:30:00+08:00"},  # offset wins
        {"ticket_id": "T3", "community_id": "C1", "created_at": "2026-03-01T17:30:00Z"},
    ]
    out, _ = tickets(rows, source_tz="UTC")
    assert out["created_at"].tolist() == [
        pd.Timestamp("2026-03-02 01:30"),
        pd.Timestamp("2026-03-01 17:30"),
        pd.Timestamp("2026-03-02 01:30"),
    ]


def test_parse_timestamps_handles_typed_columns():
    aware = pd.Series(pd.to_datetime(["2026-01-01 16:00"]).tz_localize("UTC"))
    assert parse_timestamps(aware, "UTC", "Asia/Shanghai").iloc[0] == pd.Timestamp("2026-01-02 00:00")
    naive = pd.Series(pd.to_datetime(["2026-01-01 16:00"]))
    assert parse_timestamps(naive, "UTC", "Asia/Shanghai").iloc[0] == pd.Timestamp("2026-01-02 00:00")


def test_epoch_seconds_and_milliseconds_are_instants_judged_by_magnitude():
    """Every row of a system that stores epoch seconds was rejected as "not a date/time"."""
    # 1772330400 s = 2026-03-01 02:00 UTC = 10:00 in Shanghai, whatever the source's zone.
    for values in (
        pd.Series([1772330400, 1772330400123]),  # integers (a BIGINT column, JSON numbers)
        pd.Series([1772330400.0, 1772330400123.0, np.nan]),  # floats (a JSON column with gaps)
        pd.Series(["1772330400", " 1772330400123 ", None]),  # text (CSV)
        pd.Series([1772330400, "1772330400123"], dtype=object),  # mixed
    ):
        out = parse_timestamps(values, "Europe/Berlin", "Asia/Shanghai")
        assert out.iloc[0] == pd.Timestamp("2026-03-01 10:00"), values
        assert out.iloc[1] == pd.Timestamp("2026-03-01 10:00:00.123"), values
    # Neither 10 nor 13 digits: no guess (a count, a yyyymmddHH?), rejected as before.
    assert parse_timestamps(pd.Series([17723304, 177233040012, True]), "UTC", "UTC").isna().all()
    assert parse_timestamps(pd.Series(["177233040", "17723304001234"]), "UTC", "UTC").isna().all()
    assert parse_timestamps(pd.Series(["20260301"]), "UTC", "UTC").iloc[0] == pd.Timestamp("2026-03-01")  # a date, as before


def test_epoch_created_at_keeps_the_ticket():
    rows = [{"ticket_id": "T1", "community_id": "C1", "created_at": "1772330400", "closed_at": 1772334000000}]
    out, report = tickets(rows)
    assert report.rows_skipped == 0
    assert out.loc[0, "created_at"] == pd.Timestamp("2026-03-01 10:00")
    assert out.loc[0, "closed_at"] == pd.Timestamp("2026-03-01 11:00")


def test_surveys_checks_and_scale():
    rows = [
        {"community_id": "C1", "date": "2026-03-01", "score": "4.5", "responses": "3"},
        {"community_id": "C1", "date": "2026-03-02", "score": "6", "responses": "3"},
        {"community_id": "C1", "date": "2026-03-03", "score": "-1", "responses": "3"},
        {"community_id": "C1", "date": "yesterday", "score": "4", "responses": "3"},
        {"community_id": "C1", "date": "2026-03-04", "score": "n/a", "responses": "3"},
        {"community_id": "C1", "date": "2026-03-05", "score": "4", "responses": "0"},
        {"community_id": "C1", "date": "2026-03-06", "score": "4", "responses": "-2"},
        {"community_id": "C7", "date": "2026-03-07", "score": "4", "responses": "1"},
        {"community_id": "C1", "date": "2026-03-08", "score": "5", "responses": None},
    ]
    out, report = validate_surveys(raw("surveys", rows), {"C1"}, timezone="Asia/Shanghai", score_scale=5)
    assert out["score"].tolist() == [90.0, 100.0]
    assert out["responses"].tolist() == [3.0, 1.0]  # a missing count means one response
    assert report.rows_skipped == 7
    assert problem(report, "score outside 0–5").count == 2
    assert problem(report, "date is not a date").examples == ["line 5: 'yesterday'"]
    assert problem(report, "score is not a number").count == 1
    assert problem(report, "no responses").count == 1
    assert problem(report, "responses is not a count").count == 1
    assert problem(report, "unknown community_id").examples == ["line 9: 'C7'"]


def test_communities_duplicates_and_missing_names():
    rows = [
        {"community_id": "C1", "name": "翠湖花园", "city": "北京"},
        {"community_id": "C1", "name": "again", "city": "北京"},
        {"community_id": None, "name": "nobody"},
        {"community_id": 7.0, "name": None},
    ]
    out, report = validate_communities(raw("communities", rows))
    assert out["community_id"].tolist() == ["C1", "7"]
    assert out["name"].tolist() == ["翠湖花园", "7"]  # the id stands in for a missing name
    assert problem(report, "duplicate community_id").examples == ["line 3: 'C1'"]
    assert problem(report, "missing community_id").count == 1


def test_survey_responses_must_be_a_believable_whole_number():
    """2.5 responses, or 1e12 (a unit or typing error), used to be taken and outweighed every
    other rating of the day."""
    rows = [
        {"community_id": "C1", "date": "2026-03-01", "score": "90", "responses": "12"},
        {"community_id": "C1", "date": "2026-03-02", "score": "10", "responses": "2.5"},
        {"community_id": "C1", "date": "2026-03-03", "score": "10", "responses": "1e12"},
        {"community_id": "C1", "date": "2026-03-04", "score": "80", "responses": "100000"},
    ]
    out, report = validate_surveys(raw("surveys", rows), {"C1"}, timezone="Asia/Shanghai", score_scale=100)
    assert out["responses"].tolist() == [12.0, 100000.0]
    assert problem(report, "responses is not a whole number").examples == ["line 3: '2.5'"]
    assert problem(report, "responses over 100,000").examples == ["line 4: '1e12'"]
    strict, report = validate_surveys(raw("surveys", rows), {"C1"}, timezone="Asia/Shanghai", score_scale=100, max_responses=50)
    assert strict["responses"].tolist() == [12.0] and problem(report, "responses over 50").count == 2


def test_years_outside_what_nanoseconds_hold_are_not_dates_not_a_crash():
    """Found by tests/test_fuzz_sources.py: a survey dated 0000-01-27 raised OutOfBoundsDatetime."""
    got = parse_timestamps(pd.Series(["0000-01-27", "1500-02-03 10:00", "9999-01-01T00:00+08:00", "2026-01-01 10:00"]), "Asia/Shanghai", "Asia/Shanghai")
    assert got.isna().tolist() == [True, True, True, False]


def test_kpi_fields_bad_values_are_cleared_and_reported_and_the_row_still_counts():
    """A response before the ticket was created, a deadline before it, a recommend of 11 or 十,
    households of 0: each field cleared and shown, the row kept; a category in no service line is
    counted in ticket_count only, and said."""
    from forecaster.config import MetricsConfig

    rows = [
        {"ticket_id": "T1", "community_id": "C1", "created_at": "2026-03-01 09:00", "responded_at": "2026-03-01 08:00", "category": "报修"},
        {"ticket_id": "T2", "community_id": "C1", "created_at": "2026-03-01 09:00", "responded_at": "2026-03-01 09:30", "due_at": "2026-02-01", "category": "其他"},
        {"ticket_id": "T3", "community_id": "C1", "created_at": "2026-03-01 09:00", "responded_at": "马上", "category": " 投诉 "},
    ]
    out, report = tickets(rows, lines=MetricsConfig().category_lines)
    assert len(out) == 3 and report.rows_skipped == 0
    assert problem(report, "responded_at before created_at").examples == ["line 2: '2026-03-01 08:00'"]
    assert problem(report, "responded_at is not a date").examples == ["line 4: '马上'"]
    assert problem(report, "due_at before created_at").count == 1
    unlined = problem(report, "category in no service line")
    assert unlined.action == "kept" and unlined.examples == ["line 3: '其他'"]
    assert report.fields_cleared == 3
    assert out["responded_at"].notna().tolist() == [False, True, False]
    assert out["line"].tolist() == ["repair", pd.NA, "complaint"]

    surveys = [
        {"community_id": "C1", "date": "2026-03-01", "score": "90", "recommend": "10", "source": "APP"},
        {"community_id": "C1", "date": "2026-03-01", "score": "90", "recommend": "11"},
        {"community_id": "C1", "date": "2026-03-01", "score": "90", "recommend": "十"},
    ]
    out, report = validate_surveys(raw("surveys", surveys), {"C1"}, timezone="Asia/Shanghai", score_scale=100)
    assert len(out) == 3
    assert out["recommend"].tolist()[0] == 10.0 and out["recommend"].isna().tolist() == [False, True, True]
    assert problem(report, "recommend outside 0–10").examples == ["line 3: '11'"]
    assert problem(report, "recommend is not a number").examples == ["line 4: '十'"]
    assert out["source"].tolist()[0] == "APP"

    communities = [
        {"community_id": "C1", "households": "1200", "property_type": "住宅"},
        {"community_id": "C2", "households": "0"},
        {"community_id": "C3", "households": "很多"},
        {"community_id": "C4", "households": None},  # not given: nothing to say
    ]
    out, report = validate_communities(raw("communities", communities))
    assert out["households"].tolist()[0] == 1200.0 and out["households"].isna().tolist() == [False, True, True, True]
    assert problem(report, "households is not a whole number").count == 2
    assert out["property_type"].tolist()[0] == "住宅"
    out, report = validate_communities(raw("communities", [{"community_id": "C1"}]))  # no such column
    assert report.problems == [] and out["households"].isna().all()
