"""The SQL source against real databases: SQLite always, PostgreSQL and MariaDB when configured."""

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from forecaster.demo import write_demo_sql
from forecaster.ingest import check_source, load_daily
from forecaster.util.errors import SourceError
from tests.readback import read_rows

AS_OF = dt.date(2026, 3, 10)


def company_schema(url):
    """A company whose tables and columns are named its own way, with timestamps in UTC."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    xq = sa.Table("xq_info", md, sa.Column("xq_code", sa.String(16)), sa.Column("xq_name", sa.String(64)), sa.Column("city", sa.String(16)))
    wo = sa.Table(
        "wy_workorder",
        md,
        sa.Column("wo_no", sa.String(32)),
        sa.Column("xq_code", sa.String(16)),
        sa.Column("create_time", sa.DateTime),
        sa.Column("finish_time", sa.DateTime),
        sa.Column("wo_type", sa.String(16)),
        sa.Column("score", sa.Integer),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(xq.insert(), [{"xq_code": "A01", "xq_name": "翠湖花园", "city": "北京"}, {"xq_code": "A02", "xq_name": "锦绣家园", "city": "广州"}])
        conn.execute(
            wo.insert(),
            [
                # 17:30 UTC on 1 March is 01:30 on 2 March in Shanghai.
                {"wo_no": "W1", "xq_code": "A01", "create_time": dt.datetime(2026, 3, 1, 17, 30), "finish_time": dt.datetime(2026, 3, 1, 19, 30), "wo_type": "投诉", "score": 4},
                {"wo_no": "W2", "xq_code": "A01", "create_time": dt.datetime(2026, 3, 2, 2, 0), "finish_time": None, "wo_type": "报修", "score": None},
                {"wo_no": "W2", "xq_code": "A01", "create_time": dt.datetime(2026, 3, 2, 2, 0), "finish_time": None, "wo_type": "报修", "score": None},
                {"wo_no": "W3", "xq_code": "Z99", "create_time": dt.datetime(2026, 3, 3, 2, 0), "finish_time": None, "wo_type": "报修", "score": None},
                {"wo_no": "W4", "xq_code": "A02", "create_time": dt.datetime(2019, 3, 3, 2, 0), "finish_time": None, "wo_type": "报修", "score": None},
            ],
        )
    engine.dispose()


TICKET_COLUMNS = {
    "ticket_id": "wo_no",
    "community_id": "xq_code",
    "created_at": "create_time",
    "closed_at": "finish_time",
    "category": "wo_type",
    "rating": "score",
}


def mapped_config(make_config, url, **ticket_columns):
    return make_config(
        {
            "source": {
                "type": "sql",
                "sql": {"url": url},
                "timezone": "UTC",
                "tables": {
                    "communities": {"table": "xq_info", "columns": {"community_id": "xq_code", "name": "xq_name"}},
                    "tickets": {"table": "wy_workorder", "columns": {**TICKET_COLUMNS, **ticket_columns}},
                    "surveys": None,
                },
            }
        }
    )


def test_mapped_company_schema_with_utc_timestamps(db_url, make_config):
    company_schema(db_url)
    data = read_rows(mapped_config(make_config, db_url), AS_OF)
    assert sorted(data.communities["name"]) == ["翠湖花园", "锦绣家园"]
    tickets = data.tickets.set_index("ticket_id")
    assert list(tickets.index) == ["W1", "W2"]  # W4 is outside the history window
    assert tickets.loc["W1", "created_at"] == pd.Timestamp("2026-03-02 01:30")
    assert tickets.loc["W1", "rating"] == 80.0
    problems = {p.reason: p for r in data.reports for p in r.problems}
    assert problems["duplicate ticket_id (first kept)"].examples == ["ticket_id=W2: 'W2'"]
    assert problems["unknown community_id (not in communities)"].examples == ["ticket_id=W3: 'Z99'"]


def test_missing_table_and_column_name_the_key_to_fix(db_url, make_config):
    company_schema(db_url)
    bad_table = make_config({"source": {"type": "sql", "sql": {"url": db_url}}})
    with pytest.raises(SourceError) as info:
        load_daily(bad_table, AS_OF)
    assert "table 'communities' not found" in str(info.value)
    assert "xq_info" in str(info.value) and "source.tables.communities.table" in str(info.value)

    broken = mapped_config(make_config, db_url, closed_at="done_time")
    with pytest.raises(SourceError) as info:
        load_daily(broken, AS_OF)
    msg = str(info.value)
    assert "column 'done_time' not found (needed as closed_at)" in msg
    assert "source.tables.tickets.columns.closed_at" in msg and "finish_time" in msg


def test_demo_roundtrip_and_check_source(db_url, make_config, small_demo):
    write_demo_sql(db_url, small_demo, seed=7)
    config = make_config({"source": {"type": "sql", "sql": {"url": db_url}}})
    data = read_rows(config, dt.date(2026, 11, 23))
    assert len(data.communities) == 12
    # Every demo ticket but the three dirty ones arrives with the same timestamps.
    expected = small_demo.tickets.drop_duplicates("ticket_id")
    expected = expected[expected["community_id"].isin(small_demo.communities["community_id"])]
    assert len(data.tickets) == len(expected)
    merged = data.tickets.merge(expected, on="ticket_id", suffixes=("", "_src"))
    assert (merged["created_at"] == merged["created_at_src"]).all()
    assert data.rows_skipped == 3
    lines = check_source(config)
    assert [line.split(":")[0] for line in lines] == ["communities", "tickets", "surveys"]


def test_unreachable_database_is_a_source_error_with_masked_password(make_config):
    url = "postgresql+psycopg://app:VerySecret123@127.0.0.1:1/wuye"
    config = make_config({"source": {"type": "sql", "sql": {"url": url}}})
    with pytest.raises(SourceError) as info:
        load_daily(config, AS_OF)
    assert "VerySecret123" not in str(info.value)
    assert "app:***@127.0.0.1:1/wuye" in str(info.value)


def test_sqlite_times_in_other_text_formats_are_parsed_and_bad_ones_reported(tmp_path, make_config):
    """SQLite keeps DATETIME columns as text, and systems write it their own way: the ISO form
    SQLAlchemy writes, "2026/3/2 09:30" or a date alone all parse; text that is no time at all
    skips that row with its id (SQLAlchemy's own converter would have failed the whole table)."""
    url = f"sqlite:///{tmp_path / 'company.db'}"
    company_schema(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO wy_workorder VALUES "
            "('W5', 'A02', '2026/3/2 09:30', '2026-03-02', '报修', 5), "
            "('W6', 'A02', 'yesterday', NULL, '报修', NULL)"
        )
    engine.dispose()
    data = read_rows(mapped_config(make_config, url), AS_OF)
    tickets = data.tickets.set_index("ticket_id")
    assert tickets.loc["W5", "created_at"] == pd.Timestamp("2026-03-02 17:30")  # UTC → Shanghai
    assert tickets.loc["W1", "created_at"] == pd.Timestamp("2026-03-02 01:30")
    problems = {p.reason: p for r in data.reports for p in r.problems}
    assert problems["created_at is not a date/time"].examples == ["ticket_id=W6: 'yesterday'"]
    # W5 closed "2026-03-02" (midnight UTC) is before it was created: the closing time is cleared.
    assert pd.isna(tickets.loc["W5", "closed_at"])


def test_a_missing_sqlite_file_is_refused_not_created(tmp_path, make_config):
    """A mistyped path made an empty database there and said "tables there: none"."""
    for path in (tmp_path / "compnay.db", tmp_path / "data" / "company.db"):
        config = make_config({"source": {"type": "sql", "sql": {"url": f"sqlite:///{path}"}}})
        with pytest.raises(SourceError) as info:
            load_daily(config, AS_OF)
        msg = str(info.value)
        assert f"{path}: SQLite file not found" in msg and "source.sql.url" in msg
        assert not path.exists()


def test_a_schema_on_sqlite_says_sqlite_has_none(tmp_path, make_config):
    """crm.xq_info said "no such table: crm.sqlite_master"."""
    url = f"sqlite:///{tmp_path / 'company.db'}"
    company_schema(url)
    config = make_config(
        {"source": {"type": "sql", "sql": {"url": url}, "tables": {"communities": {"table": "crm.xq_info", "columns": {"community_id": "xq_code"}}}}}
    )
    with pytest.raises(SourceError) as info:
        load_daily(config, AS_OF)
    msg = str(info.value)
    assert "sqlite_master" not in msg
    assert "SQLite has no schema 'crm' (databases there: main)" in msg
    assert "set source.tables.communities.table to 'xq_info'" in msg
