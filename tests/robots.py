"""A real HTTP server on 127.0.0.1 that behaves like the group robots, for delivery tests.

It checks what the platforms check (DESIGN.md) and answers with their error codes:

* DingTalk ``/robot/send?access_token=T[&timestamp=MS&sign=S]``: unknown token 300001; with a
  secret, a missing or wrong signature or a timestamp more than an hour off 310000; a missing
  keyword 310000; a body over 20,000 bytes 460101; more than ``rate`` messages in
  ``window_s`` 130101, after which the robot stays throttled for 10 minutes.
* WeCom ``/cgi-bin/webhook/send?key=K``: unknown key 93000; markdown over 4,096 bytes or text
  over 2,048 bytes 40058; too many 45009.
* Feishu ``/open-apis/bot/v2/hook/H``: unknown hook 19001; bad signature or timestamp 19021;
  body over 20 KB 9499; too many 11232.
* Generic ``/hook``: ``X-Wuye-Signature`` checked when a secret is set (401 when wrong);
  receipts are deduplicated by ``Idempotency-Key`` the way a careful receiver would.

The signature checks are written here from the platforms' documentation, independently of
``forecaster.alerts.notifiers``. The server's clock is a function, so a test can share its
`FixedClock` with the sender.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

DINGTALK_THROTTLE_S = 600


@dataclass
class Receipt:
    platform: str
    robot: str
    payload: dict[str, Any]
    headers: dict[str, str]
    at: float
    raw_query: str = ""

    @property
    def message_id(self) -> str:
        return self.headers.get("X-Wuye-Message-Id", "")

    def text(self) -> str:
        p = self.payload
        for path in (("markdown", "text"), ("markdown", "content"), ("text", "content"), ("actionCard", "text"), ("text",)):
            node: Any = p
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, str):
                return node
        card = p.get("card") or {}
        return "".join(e.get("text", {}).get("content", "") for e in card.get("elements", []))


@dataclass
class RobotServer:
    dingtalk: dict[str, str | None] = field(default_factory=dict)  # token → secret (None: unsigned)
    wecom: set[str] = field(default_factory=set)
    feishu: dict[str, str | None] = field(default_factory=dict)  # hook → secret
    webhook_secret: str | None = None
    keywords: dict[str, str] = field(default_factory=dict)  # robot → required keyword
    rate: int = 20
    window_s: float = 60.0
    now: Callable[[], float] = time.time
    port: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.delivered: list[Receipt] = []  # accepted by the platform (errcode 0 / 2xx)
        self.requests: list[tuple[str, str, int | str]] = []  # (platform, robot, answer code)
        self.seen_keys: dict[str, int] = defaultdict(int)
        self.sent_times: dict[str, deque] = defaultdict(deque)
        self.throttled_until: dict[str, float] = {}
        self.script: deque[int] = deque()  # HTTP statuses to answer first (e.g. [502, 502])
        self.hold_at: int | None = None  # hold the n-th request (1-based) until released
        self.holding = threading.Event()
        self.release = threading.Event()
        self.httpd: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "RobotServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, answer = server.handle(self.path, dict(self.headers), body)
                data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: senders now get 'connection refused'."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def dingtalk_url(self, token: str) -> str:
        return f"{self.base}/robot/send?access_token={token}"

    def wecom_url(self, key: str) -> str:
        return f"{self.base}/cgi-bin/webhook/send?key={key}"

    def feishu_url(self, hook: str) -> str:
        return f"{self.base}/open-apis/bot/v2/hook/{hook}"

    def webhook_url(self) -> str:
        return f"{self.base}/hook"

    # ------------------------------------------------------------------ behaviour
    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            count = len(self.requests) + 1
            hold = self.hold_at == count
        if hold:
            self.holding.set()
            self.release.wait(30)
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            if self.script:
                status = self.script.popleft()
                self.requests.append(("script", "", status))
                return status, {"error": "scripted"}
            if parts.path == "/robot/send":
                code, answer = self._dingtalk(query, body)
                return self._done("dingtalk", query.get("access_token", ""), code, answer, body, headers, parts.query)
            if parts.path == "/cgi-bin/webhook/send":
                code, answer = self._wecom(query, body)
                return self._done("wecom", query.get("key", ""), code, answer, body, headers, parts.query)
            if parts.path.startswith("/open-apis/bot/v2/hook/"):
                hook = parts.path.rsplit("/", 1)[1]
                code, answer = self._feishu(hook, body)
                return self._done("feishu", hook, code, answer, body, headers, parts.query)
            if parts.path == "/hook":
                return self._webhook(headers, body)
            self.requests.append(("unknown", parts.path, 404))
            return 404, {"error": "not found"}

    def _done(self, platform: str, robot: str, code: int, answer: dict, body: bytes, headers: dict, query: str):
        self.requests.append((platform, robot, code))
        if code == 0:
            self.delivered.append(Receipt(platform, robot, json.loads(body), headers, self.now(), query))
            self.sent_times[robot].append(self.now())
        return 200, answer

    def _rate_ok(self, robot: str) -> bool:
        now = self.now()
        times = self.sent_times[robot]
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return len(times) < self.rate

    def _dingtalk(self, query: dict, body: bytes) -> tuple[int, dict]:
        token = query.get("access_token", "")
        if token not in self.dingtalk:
            return 300001, {"errcode": 300001, "errmsg": "token is not exist"}
        secret = self.dingtalk[token]
        if secret:
            ts, sign = query.get("timestamp"), query.get("sign")
            if not ts or not sign:
                return 310000, {"errcode": 310000, "errmsg": "sign not match"}
            if abs(self.now() * 1000 - int(ts)) > 3600_000:
                return 310000, {"errcode": 310000, "errmsg": "timestamp out of range"}
            mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
            if sign != base64.b64encode(mac).decode():  # parse_qs decoded the sign once
                return 310000, {"errcode": 310000, "errmsg": "sign not match"}
        if len(body) > 20_000:
            return 460101, {"errcode": 460101, "errmsg": "message too long"}
        payload = json.loads(body)
        keyword = self.keywords.get(token)
        if keyword and keyword not in json.dumps(payload, ensure_ascii=False):
            return 310000, {"errcode": 310000, "errmsg": "keywords not in content"}
        if self.throttled_until.get(token, 0) > self.now():
            return 130101, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        if not self._rate_ok(token):
            self.throttled_until[token] = self.now() + DINGTALK_THROTTLE_S
            return 130101, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        return 0, {"errcode": 0, "errmsg": "ok"}

    def _wecom(self, query: dict, body: bytes) -> tuple[int, dict]:
        key = query.get("key", "")
        if key not in self.wecom:
            return 93000, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [x]"}
        payload = json.loads(body)
        kind = payload.get("msgtype")
        content = payload.get(kind, {}).get("content", "")
        if len(content.encode()) > (4096 if kind == "markdown" else 2048):
            return 40058, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
        if not self._rate_ok(key):
            return 45009, {"errcode": 45009, "errmsg": "api freq out of limit"}
        return 0, {"errcode": 0, "errmsg": "ok"}

    def _feishu(self, hook: str, body: bytes) -> tuple[int, dict]:
        if hook not in self.feishu:
            return 19001, {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}
        if len(body) > 20 * 1024:
            return 9499, {"code": 9499, "msg": "Bad Request"}
        payload = json.loads(body)
        secret = self.feishu[hook]
        if secret:
            ts = payload.get("timestamp")
            if not ts or abs(self.now() - int(ts)) > 3600:
                return 19021, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}
            expected = base64.b64encode(hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()
            if payload.get("sign") != expected:
                return 19021, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}
        if not self._rate_ok(hook):
            return 11232, {"code": 11232, "msg": "frequency limited"}
        return 0, {"code": 0, "msg": "success"}

    def _webhook(self, headers: dict, body: bytes) -> tuple[int, dict]:
        if self.webhook_secret:
            ts = headers.get("X-Wuye-Timestamp", "")
            mac = hmac.new(self.webhook_secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
            if headers.get("X-Wuye-Signature") != f"sha256={mac}":
                self.requests.append(("webhook", "", 401))
                return 401, {"error": "bad signature"}
        key = headers.get("Idempotency-Key", "")
        self.requests.append(("webhook", "", 200))
        self.seen_keys[key] += 1
        if self.seen_keys[key] == 1:
            self.delivered.append(Receipt("webhook", "", json.loads(body), headers, self.now()))
        return 200, {"ok": True}

    # ------------------------------------------------------------------ checks
    def max_in_window(self, robot: str) -> int:
        """The most messages this robot accepted in any window of ``window_s``."""
        times = sorted(r.at for r in self.delivered if r.robot == robot)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - self.window_s:
                j += 1
            best = max(best, i - j + 1)
        return best
