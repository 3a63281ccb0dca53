"""The HTTP source against a real HTTP server on 127.0.0.1 (paging, retries, auth errors)."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from forecaster.ingest import load_daily
from forecaster.ingest.request import Capabilities
from forecaster.ingest.tables import make_source
from forecaster.util.errors import SourceError
from tests.readback import read_rows

AS_OF = dt.date(2026, 3, 10)
TOKEN = "api-tok-77f3e1"

COMMUNITIES = [{"code": "A01", "name": "翠湖花园"}, {"code": "A02", "name": "锦绣家园"}]
TICKETS = [
    {"id": f"W{i:03d}", "community": "A01" if i % 3 else "A02", "created": f"2026-03-0{1 + i % 8}T0{i % 10}:15:00+08:00", "rating": 5}
    for i in range(23)
]
TICKETS.append({"id": "W999", "community": "A01", "created": "garbage", "rating": 5})


class Api:
    """What the fake ticket system does; tests change it."""

    def __init__(self):
        self.requests: list[tuple[str, dict]] = []
        self.fail_first: dict[str, list[int]] = {}
        self.style = "page"

    def handle(self, path, query, headers):
        self.requests.append((path, query))
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"error": "invalid token"}
        pending = self.fail_first.get(path)
        if pending:
            return pending.pop(0), {"error": "busy"}
        rows = {"/api/communities": COMMUNITIES, "/api/tickets": TICKETS, "/api/surveys": []}[path]
        size = int(query.get("page_size", ["10"])[0])
        if self.style == "page":
            page = int(query.get("page", ["1"])[0])
            return 200, {"items": rows[(page - 1) * size : page * size]}
        start = int(query.get("cursor", ["0"])[0])
        nxt = start + 10 if start + 10 < len(rows) else None
        return 200, {"items": rows[start : start + 10], "next": None if nxt is None else str(nxt)}


def json_handler(answer):
    """A request handler class that answers each GET with ``answer(request) -> (status, body)`` as JSON."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = answer(self)
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def api():
    state = Api()

    def answer(request):
        parts = urlsplit(request.path)
        return state.handle(parts.path, parse_qs(parts.query), request.headers)

    server = ThreadingHTTPServer(("127.0.0.1", 0), json_handler(answer))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}/api"
    yield state
    server.shutdown()
    server.server_close()


def http_config(make_config, api, **http):
    return make_config(
        {
            "source": {
                "type": "http",
                "http": {"base_url": api.base, "token": "${API_TOKEN}", "page_size": 10, "backoff_s": 0, **http},
                "tables": {
                    "communities": {"table": "communities", "columns": {"community_id": "code"}},
                    "tickets": {"table": "/tickets", "columns": {"ticket_id": "id", "community_id": "community", "created_at": "created"}},
                },
            }
        },
        environ={"API_TOKEN": TOKEN},
    )


def test_pages_until_a_short_page_and_reports_bad_items(api, make_config):
    data = read_rows(http_config(make_config, api), AS_OF)
    assert len(data.tickets) == 23
    ticket_pages = [q for p, q in api.requests if p == "/api/tickets"]
    assert [q["page"] for q in ticket_pages] == [["1"], ["2"], ["3"]]
    assert ticket_pages[0]["since"] == [str(AS_OF - dt.timedelta(days=1098))]
    problems = [p for r in data.reports for p in r.problems]
    assert problems[0].examples == ["page 3 item 4: 'garbage'"]


def test_the_window_is_a_stated_capability_of_the_api_only_with_a_since_param(api, make_config):
    assert make_source(http_config(make_config, api)).capabilities == Capabilities(window=True)
    assert make_source(http_config(make_config, api, since_param=None)).capabilities == Capabilities()


def test_cursor_paging(api, make_config):
    api.style = "next"
    data = read_rows(http_config(make_config, api, paging={"style": "next"}), AS_OF)
    assert len(data.tickets) == 23
    assert [q.get("cursor") for p, q in api.requests if p == "/api/tickets"] == [None, ["10"], ["20"]]


def test_transient_errors_are_retried(api, make_config):
    api.fail_first["/api/tickets"] = [503, 502]
    data = read_rows(http_config(make_config, api, retries=2), AS_OF)
    assert len(data.tickets) == 23


def test_gives_up_after_retries_naming_the_url(api, make_config):
    api.fail_first["/api/tickets"] = [503, 503, 503]
    with pytest.raises(SourceError, match=r"GET http://127\.0\.0\.1:\d+/api/tickets: gave up after 3 attempts: HTTP 503"):
        load_daily(http_config(make_config, api, retries=2), AS_OF)


def test_bad_token_is_not_retried_and_never_shown(api, make_config):
    config = make_config(
        {
            "source": {
                "type": "http",
                "http": {"base_url": api.base, "token": "wrong-token-123", "retries": 5, "backoff_s": 0},
                "tables": {"communities": {"table": "communities", "columns": {"community_id": "code"}}},
            }
        }
    )
    with pytest.raises(SourceError) as info:
        load_daily(config, AS_OF)
    assert "HTTP 401 (check source.http.token)" in str(info.value)
    assert "wrong-token-123" not in str(info.value)
    assert len(api.requests) == 1


def test_connection_refused_is_a_source_error():
    from forecaster.config import parse_config

    config = parse_config(
        {"source": {"type": "http", "http": {"base_url": "http://127.0.0.1:9", "retries": 1, "backoff_s": 0, "timeout_s": 2}}},
        environ={},
    )
    with pytest.raises(SourceError, match="gave up after 2 attempts: connection failed"):
        load_daily(config, AS_OF)


def _listen_on_prefix_ports():
    """Two real servers whose base URLs are string prefixes of each other: ``127.0.0.1:P`` and
    ``127.0.0.1:P·10+d`` (the attack: a next link to the second passed a string-prefix check)."""
    import socket

    for port in range(3100, 6500, 7):
        for extra in range(10):
            sockets = []
            try:
                for p in (port, port * 10 + extra):
                    s = socket.socket()
                    s.bind(("127.0.0.1", p))
                    sockets.append(s)
            except OSError:
                for s in sockets:
                    s.close()
                continue
            ports = [s.getsockname()[1] for s in sockets]
            for s in sockets:
                s.close()
            return ports
    pytest.skip("no free pair of ports P and P·10+d on 127.0.0.1")


def test_a_next_link_to_another_port_never_gets_the_token(make_config):
    api_port, evil_port = _listen_on_prefix_ports()
    seen: list[str | None] = []

    def api(request):
        path = urlsplit(request.path).path
        if path == "/tickets":
            return 200, {"items": TICKETS[:5], "next": f"http://127.0.0.1:{evil_port}/tickets?cursor=5"}
        return 200, {"items": COMMUNITIES if path == "/communities" else [], "next": None}

    def evil(request):
        seen.append(request.headers.get("Authorization"))
        return 200, {"items": [], "next": None}

    servers = [ThreadingHTTPServer(("127.0.0.1", p), json_handler(f)) for p, f in ((api_port, api), (evil_port, evil))]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        class Base:
            base = f"http://127.0.0.1:{api_port}"  # no path: as in the report, base_url is the server

        config = http_config(make_config, Base, paging={"style": "next"})
        link = f"http://127.0.0.1:{evil_port}/tickets"
        assert link.startswith(Base.base)  # the base URL is a string prefix of the other server's link
        with pytest.raises(SourceError, match="next page link leaves"):
            load_daily(config, AS_OF)
        assert seen == []  # the other server was never asked, so never got the token
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_stays_on_compares_scheme_host_port_and_path_not_strings():
    from forecaster.ingest.httpapi import stays_on

    base = "http://127.0.0.1:1808"
    assert stays_on(base, "http://127.0.0.1:1808/tickets?page=2")
    assert stays_on("https://t.example.com/v1", "https://t.example.com:443/v1/tickets")  # the default port
    assert not stays_on(base, "http://127.0.0.1:18082/tickets")  # another port
    assert not stays_on(base, "https://127.0.0.1:1808/tickets")  # another scheme
    assert not stays_on(base, "http://127.0.0.1:1808.evil.example/tickets")  # another host
    assert not stays_on("https://t.example.com/v1", "https://t.example.com/v10/tickets")  # outside the base path
    assert not stays_on(base, "http://127.0.0.1:18o8/tickets")  # no port at all


def test_an_item_with_a_nested_object_is_a_bad_row_not_a_crash(api, make_config, monkeypatch):
    """A field holding a JSON object raised TypeError: unhashable type: 'dict' and ended the night."""
    import tests.integration.test_http_source as here

    nested = [
        {"id": "N01", "community": {"code": "A01"}, "created": "2026-03-02T09:00:00+08:00", "rating": 5},
        {"id": "N02", "community": "A01", "created": "2026-03-02T10:00:00+08:00", "rating": 5, "category": ["维修", "水电"]},
    ]
    monkeypatch.setattr(here, "TICKETS", TICKETS[:5] + nested)
    config = http_config(make_config, api)
    config.source.tables.tickets.columns["category"] = "category"
    data = read_rows(config, AS_OF)
    assert sorted(data.tickets["ticket_id"]) == ["N02", *sorted(t["id"] for t in TICKETS[:5])]
    assert data.tickets.set_index("ticket_id").loc["N02", "category"] == '["维修", "水电"]'  # its text
    problems = {p.reason: p for r in data.reports for p in r.problems}
    assert problems["unknown community_id (not in communities)"].examples == ["""page 1 item 6: '{"code": "A01"}'"""]


def serve(handler_class):
    """A real server on 127.0.0.1 for a handler class; its base URL (stopped at the test's end by the caller)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_a_body_that_trickles_is_bounded_by_timeout_s_as_a_whole(make_config):
    """requests' timeout is per socket read: a body at a byte every 0.1 s never timed out."""
    stopped = threading.Event()

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self):
            data = json.dumps({"items": COMMUNITIES}).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for i in range(len(data)):
                    if stopped.wait(0.1):
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
            except OSError:  # the client hung up: what the test wants
                pass

        def log_message(self, *args):
            pass

    server, base = serve(Trickle)
    try:
        config = http_config(make_config, SimpleNamespace(base=f"{base}/api"), timeout_s=1, retries=1)
        with pytest.raises(SourceError) as info:
            load_daily(config, AS_OF)
        msg = str(info.value)
        assert f"GET {base}/api/communities: gave up after 2 attempts" in msg
        assert "answer not complete within 1 s (source.http.timeout_s bounds each request as a whole)" in msg
    finally:
        stopped.set()
        server.shutdown()
        server.server_close()


def test_an_api_that_ignores_the_page_parameter_is_stopped_at_the_first_repeat(api, make_config, monkeypatch):
    """Every page the same full page: 15,769 identical requests in 90 s on their way to max_pages."""
    import tests.integration.test_http_source as here

    monkeypatch.setattr(here, "TICKETS", TICKETS[:10])
    original = api.handle
    api.handle = lambda path, query, headers: original(path, {**query, "page": ["1"]}, headers)  # page ignored
    with pytest.raises(SourceError) as info:
        load_daily(http_config(make_config, api, max_pages=50), AS_OF)
    msg = str(info.value)
    assert "/api/tickets: the API repeats page 1 as page 2" in msg and "source.http.paging.page_param" in msg
    assert len([p for p, _ in api.requests if p == "/api/tickets"]) == 2


def test_an_api_that_repeats_its_cursor_is_stopped(api, make_config):
    api.style = "next"
    original = api.handle

    def same_cursor(path, query, headers):
        status, body = original(path, query, headers)
        if path == "/api/tickets":
            body = {**body, "next": "10"}  # always the same next cursor
        return status, body

    api.handle = same_cursor
    with pytest.raises(SourceError) as info:
        load_daily(http_config(make_config, api, paging={"style": "next"}, max_pages=50), AS_OF)
    msg = str(info.value)
    assert "/api/tickets: the API repeats page 2 as page 3 (its next cursor '10' came before)" in msg
    assert len([p for p, _ in api.requests if p == "/api/tickets"]) == 2


def test_an_html_error_page_is_shown_as_its_text_in_its_own_charset(make_config):
    """A GBK error page without a charset in Content-Type came out as 'é\x94\x99è¯¯' mojibake, tags and all."""
    pages = {
        "/gbk/communities": ("text/html", '<html><head><meta charset="gbk"><title>错误</title><style>p {color: red}</style></head>'
                             "<body><h1>接口不存在</h1><p>请联系&nbsp;管理员</p><script>var x = 1;</script></body></html>", "gbk"),
        "/utf8/communities": ("text/html", "<html><body><h1>未授权的访问：令牌已过期，请重新登录后再试一次。</h1></body></html>", "utf-8"),
        "/long/communities": ("text/html; charset=utf-8", "<p>" + "很长的错误说明" * 100 + "</p>", "utf-8"),
    }

    class Html(BaseHTTPRequestHandler):
        def do_GET(self):
            kind, text, encoding = pages[urlsplit(self.path).path]
            data = text.encode(encoding)
            self.send_response(404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server, base = serve(Html)
    try:
        said = {}
        for name in ("gbk", "utf8", "long"):
            with pytest.raises(SourceError) as info:
                load_daily(http_config(make_config, SimpleNamespace(base=f"{base}/{name}")), AS_OF)
            said[name] = str(info.value)
        assert said["gbk"].endswith("/gbk/communities: HTTP 404: 错误 接口不存在 请联系 管理员")
        assert said["utf8"].endswith("HTTP 404: 未授权的访问：令牌已过期，请重新登录后再试一次。")
        tail = said["long"].split("HTTP 404: ")[1]
        assert tail.startswith("很长的错误说明很长") and tail.endswith("…") and len(tail) == 200
    finally:
        server.shutdown()
        server.server_close()
