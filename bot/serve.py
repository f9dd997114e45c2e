"""`kbot serve`: the web chat, plus the Slack and Discord bots when their tokens are set, plus the
adapter watcher (hot swap) and the optional training schedule."""

from __future__ import annotations

import logging
import os
import threading
import time

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
    app = create_app(runtime, learning=TrainingActions(runtime))
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
    check_exposure(s, host or s.host, runtime.store)
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
    start_housekeeping(runtime)
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


# --- access (issue 16): where the web may listen, learning actions for the console, retention -------------
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def check_exposure(settings: Settings, host: str, store: object | None = None) -> None:
    """Refuse to serve without sign-in anywhere but on loopback, and say what is missing for the
    chosen sign-in mode (one line each)."""
    from bot.core.errors import ConfigError

    mode = settings.auth_mode
    if mode == "none" and host not in LOOPBACK_HOSTS:
        raise ConfigError(f"KBOT_WEB_AUTH=none (no sign-in) is only allowed on 127.0.0.1, not {host}: "
                          "use KBOT_WEB_AUTH=local or oidc (README, Production).")
    if mode == "oidc" and not (settings.oidc_issuer and settings.oidc_client_id):
        raise ConfigError("KBOT_WEB_AUTH=oidc needs KBOT_OIDC_ISSUER and KBOT_OIDC_CLIENT_ID (README, Production).")
    if mode == "none":
        log.warning("web sign-in is OFF (KBOT_WEB_AUTH=none): everyone who reaches %s is an admin", host)
    elif mode == "local" and store is not None:
        from knowledge.accounts import Accounts

        if not any(u.is_admin for u in Accounts(store).list()):  # type: ignore[arg-type]
            log.warning("no admin account yet: create one with `kbot users add NAME --admin`")


def train_now_in_child(settings: Settings) -> None:
    """Entry point of a training run an admin started: one `kbot train` (not only if needed)."""
    from training.refresh import run_refresh

    logging.basicConfig(level=logging.INFO, format="%(asctime)s training: %(message)s")
    report = run_refresh(loop_parts(Runtime(settings)), progress=False)
    log.info("%s", report.message)


class TrainingActions:
    """shared.LearningActions with training/: what the console (and chat admins) may do to the loop."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._training: threading.Thread | None = None

    def _registry(self):  # noqa: ANN202
        from training.registry import AdapterRegistry

        return AdapterRegistry(self.runtime.store, self.runtime.settings.adapters_root)

    def train_now(self) -> str:
        from training.scheduler import run_in_process

        if self._training is not None and self._training.is_alive():
            return "A training run is already in progress."
        settings = self.runtime.settings
        self._training = threading.Thread(target=run_in_process, args=(train_now_in_child, settings),
                                          name="kbot-train-now", daemon=True)
        self._training.start()
        return "Training started in the background; the new version appears here when it is done."

    def promote(self, version: str) -> None:
        self._registry().promote(version)

    def rollback(self) -> str | None:
        return self._registry().rollback()

    def approve(self, feedback_id: int, text: str | None = None) -> str:
        from training.corrections import approve_correction

        rt = self.runtime
        if text:
            rt.store.set_correction_text(feedback_id, text)
        _, report = approve_correction(rt.store, rt.ingestor, rt.settings, feedback_id)
        return f"added to the knowledge base ({report.summary()})"

    def reject(self, feedback_id: int) -> None:
        from training.corrections import reject_correction

        rt = self.runtime
        reject_correction(rt.store, rt.ingestor, rt.settings, feedback_id)


def purge_expired(runtime: Runtime) -> dict[str, int]:
    """Delete what the retention settings say is too old (KBOT_ANSWER_RETENTION_DAYS, KBOT_EVENT_RETENTION_DAYS)."""
    from datetime import timedelta

    from knowledge.retention import purge
    from knowledge.store import utcnow

    s, now = runtime.settings, utcnow()
    counts = purge(
        runtime.store,
        answers_before=now - timedelta(days=s.answer_retention_days) if s.answer_retention_days > 0 else None,
        events_before=now - timedelta(days=s.event_retention_days) if s.event_retention_days > 0 else None,
    )
    if any(counts.values()):
        log.info("retention: deleted %(answers)d answers, %(feedback)d feedback rows, %(events)d delivery ids",
                 counts)
    return counts


def start_housekeeping(runtime: Runtime, every_s: float = 6 * 3600) -> threading.Thread:
    """Purge expired rows now and every few hours, on a daemon thread."""

    def loop() -> None:
        while True:
            try:
                purge_expired(runtime)
            except Exception:
                log.exception("retention purge failed; trying again later")
            time.sleep(every_s)

    thread = threading.Thread(target=loop, name="kbot-housekeeping", daemon=True)
    thread.start()
    return thread
