"""What an operator scrapes and reads from the web app: `GET /metrics` and the access log.

`/metrics` needs no user session (like `/healthz`), so Prometheus can scrape it: it carries counts
and timings only, never text. With KBOT_METRICS_TOKEN set it requires `Authorization: Bearer <token>`.
It joins three sources:

- kbot's own metrics (bot/core/telemetry.py) and the process metrics, on the default registry;
- HTTP metrics of this app (prometheus-fastapi-instrumentator, by route template, not raw path);
- counts read from the store at scrape time (documents, chunks, corrections by review state, adapter
  versions by status): they are true across processes and replicas, and for the training runs that
  `kbot train` (a CronJob) or the scheduler's child process made.

The access log (logger `bot.access`) replaces uvicorn's: one line per request with the method, the
route's path without its query string, the status and the duration; no bodies, headers or text.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from fastapi import FastAPI, Request, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator

from knowledge.store import Store

access_log = logging.getLogger("bot.access")  # not under "kbot": Bolt sets that logger's level
log = logging.getLogger(__name__)
UNSCRAPED = ("/metrics", "/healthz")


class StoreCollector(Collector):
    """Gauges read from the store on each scrape (a few grouped COUNT queries)."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("kbot_store_up", "1 when the store answered the last scrape's queries.")
        try:
            counts = self.store.operational_counts()
        except Exception as exc:  # a scrape must not fail because the database hiccups
            log.warning("metrics: store unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _labelled("kbot_documents", "Documents in the knowledge base by status.", "status", counts["documents"])
        yield _labelled("kbot_chunks_indexed", "Chunks of the documents by document status.", "status",
                        counts["chunks"])
        pending = GaugeMetricFamily("kbot_corrections_pending", "Corrections waiting for review.")
        pending.add_metric([], counts["corrections"].get("pending", 0))
        yield pending
        yield _labelled("kbot_corrections", "Corrections by review state.", "state", counts["corrections"])
        yield _labelled("kbot_adapter_versions", "Adapter versions (finished training runs) by status: active, "
                        "candidate and retired passed the gate, rejected failed it.", "status", counts["adapters"])


def _labelled(name: str, doc: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([str(key)], value)
    return family


def add_operations(app: FastAPI, store: Store, metrics_token: str | None) -> None:
    """Mount `/metrics` and the access log on `app`."""
    registry = CollectorRegistry(auto_describe=True)  # per app: tests build many apps in one process
    registry.register(StoreCollector(store))
    Instrumentator(excluded_handlers=list(UNSCRAPED), registry=registry).instrument(app)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        if metrics_token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {metrics_token}".encode()):
                return Response("metrics need the bearer token (KBOT_METRICS_TOKEN)\n", 401,
                                headers={"WWW-Authenticate": "Bearer"}, media_type="text/plain")
        body = generate_latest(REGISTRY) + generate_latest(registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def log_access(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            if request.url.path not in UNSCRAPED or status >= 400:
                access_log.info("%s %s %d", request.method, request.url.path, status, extra={
                    "http_method": request.method, "http_path": request.url.path, "http_status": status,
                    "duration_ms": int((time.perf_counter() - started) * 1000),
                    "client": request.client.host if request.client else ""})
