import datetime as dt

import pytest

from forecaster.ingest import load_daily
from forecaster.ingest.request import Capabilities, ReadRequest
from forecaster.ingest.tables import make_source
from forecaster.util.errors import EmptySourceError, SourceError
from tests.readback import read_rows

AS_OF = dt.date(2026, 3, 10)


def csv_config(make_config, tmp_path, **tables):
    return make_config({"source": {"type": "csv", "csv": {"directory": str(tmp_path)}, "tables": tables}})


def write(path, text, encoding="utf-8-sig"):
    path.write_text(text, encoding=encoding)


def test_reads_mapped_columns_and_reports_bad_rows_with_file_and_line(tmp_path, make_config):
    write(tmp_path / "xq.csv", "CODE,XQ_NAME,CITY\nA01,翠湖花园,北京\nA02,锦绣家园,广州\n")
    write(
        tmp_path / "workorders.csv",
        "id,xq,create_time,finish_time,kind,stars\n"
        "1,A01,2026-03-01 09:00,2026-03-01 12:00,报修,5\n"
        "2,A01,2026-03-0X 09:00,,投诉,\n"
        "3,A03,2026-03-02 09:00,,报修,\n"
        "4,A02,2026-03-02 10:00,2026-03-02 11:00,投诉,9\n",
    )
    write(tmp_path / "surveys.csv", "community_id,date,score,responses\nA01,2026-03-01,88,2\nA02,2026-03-02,abc,1\n")
    config = csv_config(
        make_config,
        tmp_path,
        communities={"table": "xq.csv", "columns": {"community_id": "code", "name": "xq_name", "city": "city"}},
        tickets={
            "table": "workorders",
            "columns": {
                "ticket_id": "id",
                "community_id": "xq",
                "created_at": "create_time",
                "closed_at": "finish_time",
                "category": "kind",
                "rating": "stars",
            },
        },
    )
    data = read_rows(config, AS_OF)
    assert data.communities["name"].tolist() == ["翠湖花园", "锦绣家园"]
    assert data.tickets["ticket_id"].tolist() == ["1", "4"]
    reports = {r.table: r for r in data.reports}
    problems = {p.reason: p for p in reports["tickets"].problems}
    assert problems["created_at is not a date/time"].examples == ["line 3: '2026-03-0X 09:00'"]
    assert problems["unknown community_id (not in communities)"].examples == ["line 4: 'A03'"]
    assert problems["rating outside 0–5"].examples == ["line 5: '9'"]
    assert reports["tickets"].origin == "workorders.csv"
    assert [p.reason for p in reports["surveys"].problems] == ["score is not a number"]
    assert data.rows_skipped == 3


def test_missing_column_names_the_file_the_columns_and_the_key(tmp_path, make_config):
    write(tmp_path / "communities.csv", "community_id,name\nA01,x\n")
    write(tmp_path / "tickets.csv", "ticket_id,community,created_at\n1,A01,2026-03-01\n")
    config = csv_config(make_config, tmp_path, surveys=None)
    with pytest.raises(SourceError) as info:
        load_daily(config, AS_OF)
    msg = str(info.value)
    assert "tickets.csv" in msg and "'community_id' not found" in msg
    assert "columns there: community, created_at, ticket_id" in msg
    assert "source.tables.tickets.columns.community_id" in msg


def test_missing_file_names_path_and_key(tmp_path, make_config):
    write(tmp_path / "communities.csv", "community_id\nA01\n")
    config = csv_config(make_config, tmp_path)
    with pytest.raises(SourceError, match=r"tickets\.csv: file not found .*source\.tables\.tickets\.table"):
        load_daily(config, AS_OF)


def test_wrong_encoding_says_which_setting_to_change(tmp_path, make_config):
    (tmp_path / "communities.csv").write_bytes("community_id,name\nA01,翠湖花园\n".encode("gbk"))
    config = csv_config(make_config, tmp_path)
    with pytest.raises(SourceError, match="source.csv.encoding"):
        load_daily(config, AS_OF)
    gbk = make_config({"source": {"type": "csv", "csv": {"directory": str(tmp_path), "encoding": "gbk"}, "tables": {"surveys": None}}})
    (tmp_path / "tickets.csv").write_bytes("ticket_id,community_id,created_at\n1,A01,2026-03-01 10:00\n".encode("gbk"))
    data = read_rows(gbk, AS_OF)
    assert data.communities["name"].tolist() == ["翠湖花园"]


def test_empty_sources_are_a_clear_error(tmp_path, make_config):
    write(tmp_path / "communities.csv", "community_id,name\n")
    write(tmp_path / "tickets.csv", "ticket_id,community_id,created_at\n")
    config = csv_config(make_config, tmp_path, surveys=None)
    with pytest.raises(EmptySourceError, match="no communities"):
        load_daily(config, AS_OF)
    write(tmp_path / "communities.csv", "community_id,name\nA01,x\n")
    with pytest.raises(EmptySourceError, match="no tickets or surveys between"):
        load_daily(config, AS_OF)


def test_rows_outside_the_window_are_left_out(tmp_path, make_config):
    write(tmp_path / "communities.csv", "community_id\nA01\n")
    write(
        tmp_path / "tickets.csv",
        "ticket_id,community_id,created_at,closed_at\n"
        "1,A01,2020-01-01 10:00,\n"  # before the history window
        "2,A01,2026-03-09 10:00,2026-03-10 09:00\n"  # closed on the as-of day: still open then
        "3,A01,2026-03-10 08:00,\n",  # the as-of day itself is incomplete
    )
    data = read_rows(csv_config(make_config, tmp_path, surveys=None), AS_OF)
    assert data.tickets["ticket_id"].tolist() == ["2"]
    assert data.tickets["closed_at"].isna().all()


def test_rows_dated_in_the_future_are_reported_not_dropped_silently(tmp_path, make_config):
    """A re-run of an old night leaves later rows out quietly (they are not wrong); rows dated
    after now are wrong (a typo in the year, a wrong timezone) and are counted and shown."""
    write(tmp_path / "communities.csv", "community_id\nA01\n")
    write(
        tmp_path / "tickets.csv",
        "ticket_id,community_id,created_at,closed_at\n"
        "1,A01,2026-03-09 10:00,2026-03-10 07:50\n"  # closed today, before now: fine (still open on the as-of date)
        "2,A01,2062-03-09 10:00,\n"  # line 3: the year typed wrong
        "3,A01,2026-03-08 10:00,2026-03-11 09:00\n",  # line 4: closed tomorrow
    )
    write(tmp_path / "surveys.csv", "community_id,date,score\nA01,2026-03-09,90\nA01,2026-03-12,80\n")
    now = dt.datetime(2026, 3, 10, 0, 0, tzinfo=dt.timezone.utc)  # 08:00 in Asia/Shanghai
    data = read_rows(csv_config(make_config, tmp_path), AS_OF, now=now)
    reports = {r.table: {p.reason: p for p in r.problems} for r in data.reports}
    future = reports["tickets"]["created_at in the future (after 2026-03-10 08:15)"]
    assert (future.count, future.action, future.examples) == (1, "skipped", ["line 3: '2062-03-09 10:00'"])
    closed = reports["tickets"]["closed_at in the future (after 2026-03-10 08:15)"]
    assert (closed.action, closed.examples) == ("cleared", ["line 4: '2026-03-11 09:00'"])
    assert reports["surveys"]["date in the future (after 2026-03-10)"].examples == ["line 3: '2026-03-12'"]
    assert sorted(data.tickets["ticket_id"]) == ["1", "3"]
    # Read as of an old night: the rows after it but before now are not wrong, only left out.
    old = read_rows(csv_config(make_config, tmp_path), dt.date(2026, 3, 5), now=now)
    counts = lambda rows: {(r.table, p.reason): p.count for r in rows.reports for p in r.problems}  # noqa: E731
    assert counts(old) == counts(data) and old.tickets.empty


def test_a_file_is_read_in_full_and_refuses_a_shard(tmp_path, make_config):
    """CSV applies none of a read request's cuts (it says so), and a shard it cannot give."""
    write(tmp_path / "communities.csv", "community_id\nA01\n")
    write(tmp_path / "tickets.csv", "ticket_id,community_id,created_at\n1,A01,2020-01-01 10:00\n2,A01,2026-03-09 10:00\n")
    config = csv_config(make_config, tmp_path, surveys=None)
    reader = make_source(config)
    assert reader.capabilities == Capabilities(window=False, changes=False, shards=False)
    tmap = config.source.tables.tickets
    recent = ReadRequest("tickets", tmap, since=dt.datetime(2026, 3, 1), changes=((dt.datetime(2026, 3, 9), None),))
    assert reader.read(recent).frame["ticket_id"].tolist() == ["1", "2"]  # the caller cuts
    with pytest.raises(ValueError, match="cannot read a shard of tickets"):
        reader.read(ReadRequest("tickets", tmap, shard=(None, dt.datetime(2026, 1, 1))))
