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
    with pytest.raises(SourceError, match="it reads as gbk: set source.csv.encoding: gbk"):
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


@pytest.mark.parametrize("sep, shown", [(";", "';'"), ("\t", '"\\t"')])
def test_a_file_separated_by_another_delimiter_says_which_setting(tmp_path, make_config, sep, shown):
    """A semicolon- or tab-separated export only said that ticket_id was missing, columns there:
    'ticket_id;community_id;created_at'."""
    write(tmp_path / "communities.csv", f"community_id{sep}name\nA01{sep}x\n")
    config = csv_config(make_config, tmp_path)
    with pytest.raises(SourceError) as info:
        load_daily(config, AS_OF)
    msg = str(info.value)
    assert "communities.csv: column 'community_id' not found" in msg
    assert f"the header looks separated by {shown}, not ',': set source.csv.delimiter: {shown}" in msg


def test_a_duplicated_mapped_column_is_refused_an_unmapped_one_ignored(tmp_path, make_config):
    """Two community_id columns: pandas read the second as community_id.1 and the first was used silently."""
    write(tmp_path / "communities.csv", "community_id,name,备注,备注\nA01,x,a,b\nA02,y,c,d\n")
    write(tmp_path / "tickets.csv", "ticket_id,community_id,created_at,community_id\n1,A01,2026-03-01 10:00,A02\n")
    config = csv_config(make_config, tmp_path, surveys=None)
    with pytest.raises(SourceError) as info:
        load_daily(config, AS_OF)
    msg = str(info.value)
    assert "tickets.csv: column 'community_id' appears 2 times (columns 2 and 4)" in msg
    assert "source.tables.tickets.columns.community_id" in msg
    write(tmp_path / "tickets.csv", "ticket_id,community_id,created_at\n1,A01,2026-03-01 10:00\n")
    data = read_rows(config, AS_OF)  # the two 备注 columns are not read: no matter
    assert data.communities["community_id"].tolist() == ["A01", "A02"] and len(data.tickets) == 1


def gbk_config(make_config, tmp_path, encoding="gbk"):
    return make_config({"source": {"type": "csv", "csv": {"directory": str(tmp_path), "encoding": encoding}, "tables": {"surveys": None}}})


def test_a_bad_byte_skips_its_row_naming_the_files_line_and_byte(tmp_path, make_config):
    """One bad byte at line 20,001 of a GBK file stopped the night with 'byte 182,957' (an offset
    in pandas' chunk; the file's was 1,265,756), no line, and 'set source.csv.encoding (e.g. gbk)'
    when gbk was already set."""
    (tmp_path / "communities.csv").write_bytes("community_id,name\nA01,翠湖花园\n".encode("gbk"))
    lines = [f"T{i:05d},A01,2026-03-0{1 + i % 8} 10:00,报修" for i in range(25_000)]
    data = ("ticket_id,community_id,created_at,category\n" + "\n".join(lines[:19_999])).encode("gbk")
    bad_at = len(data) + 1 + len("T19999,A01,2026-03-08 10:00,报".encode("gbk"))
    data += b"\nT19999,A01,2026-03-08 10:00,\xb1\xa8\xff\xd0\xde\n" + "\n".join(lines[20_000:]).encode("gbk") + b"\n"
    (tmp_path / "tickets.csv").write_bytes(data)
    read = read_rows(gbk_config(make_config, tmp_path), AS_OF)
    assert len(read.tickets) == 24_999 and "T19999" not in set(read.tickets["ticket_id"])
    report = {r.table: r for r in read.reports}["tickets"]
    assert report.rows_read == 25_000 and report.rows_skipped == 1
    [problem] = report.problems
    assert problem.reason == "not readable as gbk (see source.csv.encoding)"
    assert problem.examples == [f"line 20001: byte {bad_at:,}"]


def test_a_file_in_another_encoding_says_which_it_reads_as(tmp_path, make_config):
    (tmp_path / "communities.csv").write_bytes("community_id,name\nA01,物业服务中心一\nA02,物业服务中心二\n".encode("utf-8"))
    with pytest.raises(UnicodeDecodeError) as gbk:
        "A01,物业服务中心一".encode("utf-8").decode("gbk")
    with pytest.raises(SourceError) as info:
        load_daily(gbk_config(make_config, tmp_path), AS_OF)
    msg = str(info.value)
    assert f"communities.csv: not readable as gbk: 2 of 2 lines are not (the first at line 2, byte {18 + gbk.value.start})" in msg
    assert msg.endswith("it reads as utf-8: set source.csv.encoding: utf-8")


@pytest.mark.parametrize("configured", ["gbk", "utf-8-sig"])
def test_a_byte_order_mark_names_the_files_encoding(tmp_path, make_config, configured):
    """A UTF-16 export (Excel's "Unicode text") was 'not readable as gbk … e.g. gbk'."""
    (tmp_path / "communities.csv").write_text("community_id,name\nA01,翠湖花园\n", encoding="utf-16")
    with pytest.raises(SourceError) as info:
        load_daily(gbk_config(make_config, tmp_path, configured), AS_OF)
    assert str(info.value).endswith(f"starts with a UTF-16 byte-order mark, so it is not {configured}: set source.csv.encoding: utf-16")
    (tmp_path / "tickets.csv").write_text("ticket_id,community_id,created_at\n1,A01,2026-03-01 10:00\n", encoding="utf-16")
    read = read_rows(gbk_config(make_config, tmp_path, "utf-16"), AS_OF)
    assert read.communities["name"].tolist() == ["翠湖花园"] and len(read.tickets) == 1
