"""`kbot serve`: the web chat, plus the Slack and Discord bots when their tokens are set, plus the
adapter watcher (hot swap) and the optional training schedule."""

from __future__ import annotations

import logging
import os

import uvicorn
from fastapi import FastAPI

from bot.channels.web.app import create_app
from bot.core.logs import configure_logging
from bot.core.settings import Settings, secret
from bot.wiring import Runtime
from training.refresh import LoopParts

log = logging.getLogger(__name__)


def build_server_app(runtime: Runtime, closers: list | None = None) -> FastAPI:
    """The FastAPI app with the Slack HTTP endpoint mounted when Slack is configured for HTTP mode."""
    app = create_app(runtime)
    s = runtime.settings
    if secret(s.slack_bot_token) and secret(s.slack_signing_secret) and not secret(s.slack_app_token):
        from bot.channels.slack.app import slack_router

        router = slack_router(runtime)
        app.include_router(router)
        if closers is not None:
            closers.append(router.slack_bot)
        log.info("Slack: HTTP mode at /slack/events")
    return app


def serve(runtime: Runtime, host: str | None = None, port: int | None = None) -> None:
    s = runtime.settings
    configure_tracing("kbot-serve")
    _ = runtime.engine  # load the models before accepting traffic, not on the first question
    background = []
    if secret(s.slack_bot_token) and secret(s.slack_app_token):
        from bot.channels.slack.app import start_socket_mode

        background.append(start_socket_mode(runtime))
        log.info("Slack: Socket Mode connected")
    elif not secret(s.slack_bot_token):
        log.info("Slack: off (set SLACK_BOT_TOKEN to start it)")
    if secret(s.discord_token):
        from bot.channels.discord.bot import start_discord_in_thread

        start_discord_in_thread(runtime)
        log.info("Discord: starting")
    else:
        log.info("Discord: off (set DISCORD_TOKEN to start it)")
    start_learning_loop(runtime)
    app = build_server_app(runtime, background)
    log.info("web chat on http://%s:%d", host or s.host, port or s.port)
    try:
        # log_config=None: uvicorn's records go through kbot's handler (JSON or Rich); its access log
        # is replaced by bot.access (bot/channels/web/metrics.py), which never logs query strings.
        uvicorn.run(app, host=host or s.host, port=port or s.port, log_config=None, access_log=False,
                    log_level="info")
    finally:
        for item in background:
            item.close()


# --- traces --------------------------------------------------------------------------------------------
def configure_tracing(service: str, environ: dict[str, str] | None = None) -> bool:
    """Export kbot's spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific
    variable) is set; otherwise leave the OpenTelemetry API's no-op tracer in place. The exporter reads
    the standard OTEL_* variables itself (headers, timeout, certificate)."""
    env = os.environ if environ is None else environ
    if not (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME", service)}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("traces: exporting over OTLP/HTTP")
    return True


def loop_parts(runtime: Runtime) -> LoopParts:
    """The learning loop's parts from a runtime (training never builds them itself)."""
    return LoopParts(runtime.settings, runtime.store, lambda: runtime.generator, runtime.engine_for)


def train_in_child(settings: Settings) -> None:
    """Entry point of the scheduler's training process: one `kbot train --if-needed`."""
    from training.refresh import run_refresh

    configure_logging(fmt=settings.log_format)
    configure_tracing("kbot-train")
    report = run_refresh(loop_parts(Runtime(settings)), if_needed=True, progress=False)
    log.info("%s", report.message)
    for reason in report.reasons:
        log.info("  %s", reason)


def start_learning_loop(runtime: Runtime) -> None:
    """Hot-swap promoted adapters while serving, and train on schedule when configured."""
    if not runtime.generator.hosts_adapters:
        log.info("learning loop: off (the generator does not host adapters)")
        return
    from training.registry import AdapterWatcher
    from training.scheduler import TrainingScheduler, run_in_process

    AdapterWatcher(runtime.store, runtime.generator).start()
    settings = runtime.settings
    TrainingScheduler(settings, runtime.store, lambda: run_in_process(train_in_child, settings)).start()
