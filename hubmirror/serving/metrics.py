"""What operators watch: Prometheus metrics, an access log line per request, and a health check.

- `Metrics`: one app's collectors in a registry of its own (several apps in one process never collide):
  `hubmirror_http_requests_total{route,method,status}`, `hubmirror_http_response_bytes_total{route}`,
  `hubmirror_http_request_duration_seconds{route}` (a histogram, whole response), `hubmirror_proxy_requests_total
  {outcome}` (hit|miss of `serve --upstream`), `hubmirror_upstream_fetches_total{status}`,
  `hubmirror_store_errors_total`, on a site's bucket `hubmirror_site_refresh_age_seconds` (since the last good
  refresh) and `hubmirror_site_refresh_failures` (in a row), and the process collector. Routes are templates
  (`route_of`), never raw paths.
- `MetricsMiddleware`: records every HTTP request and logs one line to the `hubmirror.serving.access` logger:
  client, method, path (as sent, without its query string), status, bytes of body sent, duration. Headers (so
  `Authorization` and cookies) are never logged.
- `record_proxy(outcome)`, `record_upstream_fetch(status)`, `record_store_error()`: record into the Metrics of the
  request being answered (a context variable the middleware sets; Starlette's worker threads inherit it). Code running
  outside a request (a thread of its own) wraps its work in `metrics.activate()`, or records nothing.
- `/metrics` answers `metrics_response()`; `/healthz` answers `health_response(catalog_path, refresher)`: 200 `ok`
  when the catalog can be read (and, on a site's bucket, its refresh has not failed `DEGRADED_AFTER` times in a
  row), else 503.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sqlite3
import time
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

access_log = logging.getLogger("hubmirror.serving.access")
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
PROXY_OUTCOMES = ("hit", "miss")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other is counted as "other"
_API_MARKERS = {"revision": "api_revision", "tree": "api_tree", "paths-info": "api_paths_info", "refs": "api_refs"}
_current: contextvars.ContextVar[Metrics | None] = contextvars.ContextVar("hubmirror_metrics", default=None)


class Metrics:
    """The collectors of one server, in a registry of their own."""

    def __init__(self, refresher=None):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter("hubmirror_http_requests", "HTTP requests answered, by route template and status",
                                ["route", "method", "status"], registry=self.registry)
        self.response_bytes = Counter("hubmirror_http_response_bytes", "Body bytes sent, by route template",
                                      ["route"], registry=self.registry)
        self.duration = Histogram("hubmirror_http_request_duration_seconds", "Time from request to last byte sent",
                                  ["route"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.proxy = Counter("hubmirror_proxy_requests", "serve --upstream: requests answered from the mirror (hit) "
                             "or after fetching upstream (miss)", ["outcome"], registry=self.registry)
        self.upstream_fetches = Counter("hubmirror_upstream_fetches", "serve --upstream: fetches from the upstream, "
                                        "by outcome", ["status"], registry=self.registry)
        self.store_errors = Counter("hubmirror_store_errors", "Blob store failures while serving",
                                    registry=self.registry)
        if refresher is not None:  # a site's bucket: how stale may the catalog be?
            Gauge("hubmirror_site_refresh_age_seconds", "Seconds since the catalog last refreshed from the site's "
                  "bucket", registry=self.registry).set_function(refresher.age)
            Gauge("hubmirror_site_refresh_failures", "Refreshes from the site's bucket failed in a row",
                  registry=self.registry).set_function(lambda: refresher.failures)

    @contextlib.contextmanager
    def activate(self):
        """Make the module's record_* functions record into these metrics within the block (and the threads that
        inherit its context)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def observe(self, route: str, method: str, status: int, sent: int, seconds: float) -> None:
        """Count one answered request. Every label has a bounded set of values: a client that makes up methods
        (or paths) adds no series."""
        self.requests.labels(route, method if method in METHODS else "other", str(status)).inc()
        self.response_bytes.labels(route).inc(sent)
        self.duration.labels(route).observe(seconds)


def record_proxy(outcome: str) -> None:
    """`serve --upstream`: a request answered from what the mirror held ("hit") or after an upstream fetch ("miss")."""
    if outcome not in PROXY_OUTCOMES:
        raise ValueError(f"proxy outcome must be one of {PROXY_OUTCOMES}, not {outcome!r}")
    if (metrics := _current.get()) is not None:
        metrics.proxy.labels(outcome).inc()


def record_upstream_fetch(status) -> None:
    """`serve --upstream`: one fetch from the upstream ended with `status` ("ok", "error", or an HTTP status)."""
    if (metrics := _current.get()) is not None:
        metrics.upstream_fetches.labels(str(status)).inc()


def record_store_error() -> None:
    """The blob store failed (a missing blob, a read error) while a request was answered."""
    if (metrics := _current.get()) is not None:
        metrics.store_errors.inc()


def route_of(path: str) -> str:
    """The route template a request path belongs to (a bounded set of names: never the path itself)."""
    segments = path.strip("/").split("/")
    if path in ("/metrics", "/healthz"):
        return path[1:]
    if segments[:2] == ["api", "models"]:
        tail = segments[2:]
        if not tail or tail == [""]:
            return "api_models"
        marker = next((_API_MARKERS[s] for s in tail[1:3] if s in _API_MARKERS), None)
        return marker or "api_model"
    if segments[:2] == ["torch", "checkpoints"]:
        return "checkpoint"
    if "resolve" in segments[1:3]:
        return "resolve"
    if path == "/":
        return "web_home"
    if segments[0] in ("models", "login", "logout", "static"):
        return f"web_{segments[0]}"
    return "web_tree" if "tree" in segments[1:3] else "web_model"


class MetricsMiddleware:
    """ASGI middleware: every HTTP request counted in `metrics` and written to the access log."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, sent = 500, 0  # what an app that raises before answering amounts to

        async def counting_send(message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            with self.metrics.activate():
                await self.app(scope, receive, counting_send)
        finally:
            seconds = time.perf_counter() - start
            path = _logged_path(scope)
            self.metrics.observe(route_of(scope["path"]), scope["method"], status, sent, seconds)
            client = (scope.get("client") or ("-",))[0]
            access_log.info('%s "%s %s" %d %d %.1fms', client, scope["method"], path, status, sent, seconds * 1000)


def log_access_to_stderr() -> None:
    """Write the access log (one line per request) to stderr, as `hubmirror serve` does."""
    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)


def _logged_path(scope) -> str:
    """The path as the client sent it (percent-encoded, so no control characters reach the log), query dropped: a
    query string may carry secrets."""
    raw = scope.get("raw_path")
    text = raw.decode("latin-1") if raw else scope["path"]
    return "".join(c if c.isprintable() and c != " " else f"%{ord(c):02X}" for c in text.partition("?")[0])


def metrics_response(metrics: Metrics):
    """The Prometheus text exposition of `metrics`."""
    from starlette.responses import Response

    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def catalog_readable(catalog_path: Path) -> bool:
    """Whether catalog.db opens read-only and its models table answers."""
    try:
        conn = sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=2)
        try:
            conn.execute("SELECT 1 FROM models LIMIT 1").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return True


def health_response(catalog_path: Path, refresher=None):
    """`/healthz` for a load balancer: 200 `ok` when the catalog is readable and (on a site's bucket) refreshing,
    else 503 saying why."""
    from starlette.responses import PlainTextResponse

    if not catalog_readable(catalog_path):
        return PlainTextResponse("catalog unreadable\n", status_code=503)
    if refresher is not None and refresher.degraded():
        return PlainTextResponse(f"degraded: {refresher.failures} site refreshes failed in a row, the last "
                                 f"{refresher.age():.0f} s ago was good ({refresher.last_error[:200]})\n",
                                 status_code=503)
    return PlainTextResponse("ok\n")
