"""``/metrics`` (Prometheus text format) and ``/healthz`` (JSON) for an operations team.

Both read the store when asked, so they show what every instance sharing the database did.
``/healthz`` answers 200 while the last nightly run is ok or partial and no alert has failed
for good, 503 otherwise (a failed, interrupted or missed run, or a failed delivery).
``/metrics`` needs the optional ``prometheus_client`` package (``pip install '.[metrics]'``).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa

from forecaster.alerts.queue import MessageQueue
from forecaster.store import Store, job_slots, series_status

__all__ = ["health", "start_metrics_server", "render_metrics"]


def _last_nightly(store: Store):
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(job_slots).where(job_slots.c.job == "nightly").order_by(job_slots.c.slot.desc()).limit(1)
        ).mappings().first()


def health(store: Store) -> tuple[bool, dict]:
    slot = _last_nightly(store)
    runs = store.last_runs(1)
    counts = MessageQueue(store).counts()
    last = runs[0] if runs else None
    body = {
        "last_nightly": None
        if slot is None
        else {"due": slot["slot"], "status": slot["status"], "instance": slot["holder"], "run_id": slot["run_id"]},
        "last_run": None
        if last is None
        else {
            "run_id": last.run_id,
            "as_of": last.as_of.isoformat(),
            "status": last.status,
            "started_at": last.started_at.isoformat() + "Z",
            "duration_s": last.duration_s,
            "series_by_status": last.summary.get("series_by_status", {}),
        },
        "outbox": counts,
    }
    ok = (slot is None or slot["status"] in ("running", "ok", "partial")) and not counts.get("failed")
    body["status"] = "ok" if ok else "failing"
    return ok, body


def render_metrics(store: Store) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    class StoreCollector:
        def collect(self):
            runs = store.last_runs(1)
            last = runs[0] if runs else None
            g = GaugeMetricFamily("wuye_last_run_timestamp_seconds", "Start of the last run (Unix time)")
            g.add_metric([], last.started_at.replace(tzinfo=dt.timezone.utc).timestamp() if last else 0)
            yield g
            g = GaugeMetricFamily("wuye_last_run_ok", "1 when the last run was ok or partial", labels=["status"])
            g.add_metric([last.status if last else "none"], 1.0 if last and last.status in ("ok", "partial") else 0.0)
            yield g
            g = GaugeMetricFamily("wuye_last_run_duration_seconds", "Duration of the last run")
            g.add_metric([], float(last.duration_s or 0) if last else 0.0)
            yield g
            g = GaugeMetricFamily("wuye_series", "Series in the last run by status", labels=["status"])
            if last is not None:
                with store.engine.connect() as conn:
                    for status, n in conn.execute(
                        sa.select(series_status.c.status, sa.func.count())
                        .where(series_status.c.run_id == last.run_id)
                        .group_by(series_status.c.status)
                    ):
                        g.add_metric([status], n)
            yield g
            g = GaugeMetricFamily("wuye_findings", "Findings in the last run by severity", labels=["severity"])
            for severity, n in (last.summary.get("findings_by_severity", {}) if last else {}).items():
                g.add_metric([severity], n)
            yield g
            g = GaugeMetricFamily("wuye_outbox_messages", "Alert messages in the outbox by status", labels=["status"])
            for status, n in MessageQueue(store).counts().items():
                g.add_metric([status], n)
            yield g

    registry = CollectorRegistry()
    registry.register(StoreCollector())
    return generate_latest(registry)


def start_metrics_server(service, host: str, port: int) -> ThreadingHTTPServer:
    store = service.store

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/healthz"):
                ok, body = health(store)
                body["instance"] = service.instance
                self._send(200 if ok else 503, json.dumps(body, ensure_ascii=False).encode(), "application/json; charset=utf-8")
            elif self.path.startswith("/metrics"):
                try:
                    data = render_metrics(store)
                except ImportError:
                    self._send(501, b"prometheus_client is not installed: pip install 'wuye-forecaster[metrics]'\n", "text/plain")
                    return
                self._send(200, data, "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, b"try /healthz or /metrics\n", "text/plain")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
