"""What kbot measures and traces, defined once so every layer records the same names.

Metrics are prometheus-client objects on the default registry; `GET /metrics` on the web app
(bot/channels/web/metrics.py) exposes them with the HTTP metrics and the store-derived gauges.
They carry counts and timings only, never text. Labels have a closed set of values (platform, mode,
vote, result, ...), so no label can grow without bound.

Traces use the OpenTelemetry API only: with no SDK configured (the default) every span is a no-op.
`kbot serve` configures an OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set
(bot/observability.py). One answer is one trace:

    kbot.ask            the whole question, opened by the channel adapter (or the engine); a child
                        of the HTTP request's span when the web framework traces requests
    ├── kbot.retrieve   hybrid retrieval in the asker's scopes
    ├── kbot.generate   the language model's reply (first token and length as attributes)
    └── kbot.post       rendering and posting the answer on the platform

Spans are started with explicit parents instead of being attached to the current context, because
an answer's steps run in generators that resume on different threads (Starlette's thread pool,
`asyncio.to_thread`, Slack's worker pool): attaching a context there cannot be undone safely.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

tracer = trace.get_tracer("kbot")

# Latency buckets for a CPU model: retrieval is tens of milliseconds, a full answer many seconds.
_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)

# --- answers (recorded by bot.engine.conversation) ---------------------------------------------------
QUESTIONS = Counter("kbot_questions", "Questions received by the engine.", ["platform"])
ANSWERS = Counter("kbot_answers", "Answers finished, by how they were made (generated, extractive, declined, "
                  "error).", ["platform", "mode"])
RETRIEVE_SECONDS = Histogram("kbot_answer_retrieve_seconds", "Time from the question to the retrieved chunks.",
                             ["platform"], buckets=_FAST)
FIRST_TOKEN_SECONDS = Histogram("kbot_answer_first_token_seconds",
                                "Time from the question to the first generated text piece.", ["platform"],
                                buckets=_SLOW)
ANSWER_SECONDS = Histogram("kbot_answer_seconds", "Time from the question to the final answer.",
                           ["platform", "mode"], buckets=_SLOW)
GENERATIONS_IN_FLIGHT = Gauge("kbot_generations_in_flight",
                              "Generations started and not finished (waiting for the model or generating). "
                              "Recorded by the engine around Generator.generate.")
GENERATION_QUEUE_DEPTH = Gauge("kbot_generation_queue_depth",
                               "Questions waiting for a generation slot. Recorded by the generation queue "
                               "(bot/engine queue) when one is configured; 0 without a queue.")
ADAPTER_SERVING = Gauge("kbot_adapter_serving", "1 for the adapter version this process serves answers with "
                        "('base': the base model). Recorded by the engine and the adapter watcher.", ["version"])

# --- feedback (recorded by ConversationEngine.record_feedback) --------------------------------------------
FEEDBACK = Counter("kbot_feedback", "Votes and corrections stored.", ["platform", "vote"])

# --- knowledge (recorded by knowledge.ingest; connectors by the connector sync job) ------------------------
INGEST_JOBS = Counter("kbot_ingest_jobs", "Ingest runs (a CLI or admin ingest, an upload, a URL, a job of the "
                      "ingest worker), by result: ok when no file failed.", ["result"])
INGEST_FILES = Counter("kbot_ingest_files", "Files seen by ingest runs, by outcome (added, updated, unchanged, "
                       "skipped, failed, removed).", ["outcome"])
INGEST_CHUNKS = Counter("kbot_ingest_chunks", "Chunks embedded and written to the index.")
INGEST_SECONDS = Histogram("kbot_ingest_seconds", "Duration of one ingest run.", buckets=_SLOW)
CONNECTOR_SYNCS = Counter("kbot_connector_syncs", "Connector sync runs by connector kind and result (ok, failed). "
                          "Recorded by the connector sync job (knowledge connectors).", ["connector", "result"])

# --- training (recorded by training.refresh in the process that trains) -----------------------------------
TRAINING_RUNS = Counter("kbot_training_runs", "Learning-loop turns in this process by status (promoted, "
                        "candidate, rejected, skipped, failed). `kbot serve` trains in a child process: its runs "
                        "are counted by kbot_adapter_versions, which reads the store.", ["status"])
GATE_OUTCOMES = Counter("kbot_gate_outcomes", "Adapter gate decisions in this process (passed, failed).",
                        ["outcome"])

VOTES = {1: "up", -1: "down", 0: "none"}


def serving_adapter(version: str | None) -> None:
    """Record which adapter this process answers with (None: the base model)."""
    ADAPTER_SERVING.clear()
    ADAPTER_SERVING.labels(version or "base").set(1)


def record_feedback(platform: str, vote: int, correction: bool) -> None:
    FEEDBACK.labels(platform, VOTES.get(vote, "none")).inc()
    if correction:
        FEEDBACK.labels(platform, "correction").inc()


def record_ingest(report: Any) -> None:
    """Count one finished ingest run from its `knowledge.ingest.IngestReport`."""
    INGEST_JOBS.labels("ok" if report.ok else "failed").inc()
    for outcome in ("added", "updated", "unchanged", "skipped", "failed", "removed"):
        count = len(getattr(report, outcome))
        if count:
            INGEST_FILES.labels(outcome).inc(count)
    INGEST_CHUNKS.inc(report.chunks_embedded)
    INGEST_SECONDS.observe(report.seconds)


# --- traces -------------------------------------------------------------------------------------------
class AnswerTrace:
    """The spans of one answer. The channel that receives a question opens it, hands it to
    `ConversationEngine.stream(..., trace=...)`, wraps its posting in `step("kbot.post")` and ends it;
    when nobody hands one in, the engine opens and ends its own."""

    def __init__(self, platform: str, **attributes: Any):
        # A child of the current span when there is one (the HTTP request's server span), else a root.
        self.root = tracer.start_span("kbot.ask", attributes={"kbot.platform": platform, **attributes})
        self._context = trace.set_span_in_context(self.root, otel_context.Context())
        self._ended = False

    def set(self, **attributes: Any) -> None:
        for key, value in attributes.items():
            if value is not None:
                self.root.set_attribute(f"kbot.{key}", value)

    def start(self, name: str, **attributes: Any) -> trace.Span:
        """A child span the caller ends (for steps that span several generator resumptions)."""
        return tracer.start_span(name, context=self._context,
                                 attributes={f"kbot.{k}": v for k, v in attributes.items() if v is not None})

    @contextmanager
    def step(self, name: str, **attributes: Any) -> Iterator[trace.Span]:
        span = self.start(name, **attributes)
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def fail(self, exc: BaseException) -> None:
        self.root.record_exception(exc)
        self.root.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self.root.end()
