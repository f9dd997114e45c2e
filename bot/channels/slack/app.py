"""The Slack app: a real Bolt app, served in Socket Mode or over HTTP (/slack/events), that turns
mentions, DMs, thread follow-ups and /ask into questions for the engine and renders the answers.

Every listener acks first and hands the slow work (history, retrieval, generation, ingestion) to a
pool of its own, so Slack gets its ack within milliseconds even while the model is busy with other
answers. Deliveries are de-duplicated in the store (`claim_event`), so Slack's retries and the
app_mention + message pair for one post give one answer, across restarts and workers.

Entry points: `build_slack_app`, `slack_router` (HTTP mode), `start_socket_mode`, `run_slack`.
The handlers live in answers (questions), feedback (buttons, modal) and admin; they depend on a
`SlackContext` (context.py), not on this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Request, Response
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool

from bot.channels.shared import Services
from bot.channels.slack.admin import AdminCommands
from bot.channels.slack.answers import Conversations
from bot.channels.slack.context import SlackContext
from bot.channels.slack.feedback import FeedbackHandlers
from bot.channels.slack.render import (
    ACTION_CORRECT,
    ACTION_RETRY,
    ACTION_SHARE,
    ACTION_VOTE_DOWN,
    ACTION_VOTE_UP,
    CORRECTION_VIEW,
)
from bot.core.errors import ChannelNotConfigured
from bot.core.settings import secret

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_BODY_BYTES = 1_000_000  # Slack's payloads are a few KB; anything near this is not from Slack

# What this code uses; deploy/slack-manifest.yml must ask for exactly this (tests/test_slack_manifest.py).
SLASH_COMMANDS = ("/ask", "/kbot")
BOT_EVENTS = ("app_mention", "message.channels", "message.groups", "message.im")
EVENT_SCOPES = {
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
}
API_METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "views.open": (),
    "conversations.replies": ("channels:history", "groups:history", "im:history"),
    "conversations.history": ("im:history",),
    "files.info": ("files:read",),
}
COMMAND_SCOPES = ("commands",)


class _Busy:
    """Counts running listeners and jobs, so `wait_idle` knows when everything has finished."""

    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def add(self, n: int) -> None:
        with self.cond:
            self.count += n
            self.cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count == 0, timeout)


class _TrackedPool(ThreadPoolExecutor):
    def __init__(self, workers: int, name: str, busy: _Busy):
        super().__init__(workers, thread_name_prefix=name)
        self.busy = busy

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.busy.add(1)

        def run() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self.busy.add(-1)

        try:
            return super().submit(run)
        except RuntimeError:  # shut down
            self.busy.add(-1)
            raise


class SlackBot:
    """The Bolt app, its Web API client, the background pool and the listeners."""

    def __init__(self, services: Services, *, answer_workers: int = 4, ack_workers: int = 32):
        self.services = services
        self.settings = services.settings
        token = secret(self.settings.slack_bot_token)
        if not token:
            raise ChannelNotConfigured("SLACK_BOT_TOKEN is not set (see docs/slack.md)")
        base_url = self.settings.slack_api_url.rstrip("/") + "/"
        self.client = WebClient(token=token, base_url=base_url, timeout=30)
        # slack_sdk raises on HTTP 429 unless told otherwise; this waits Retry-After and re-sends.
        self.client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
        self._busy = _Busy()
        self.pool = _TrackedPool(answer_workers, "kbot-slack-work", self._busy)
        self.app = App(
            name="kbot",
            client=self.client,
            signing_secret=secret(self.settings.slack_signing_secret) or "",
            process_before_response=False,
            token_verification_enabled=False,  # auth.test runs on the first request, not when built
            # Listeners only ack and post a placeholder; slow work goes to self.pool, so this pool is
            # never blocked behind generation and acks stay immediate.
            listener_executor=_TrackedPool(ack_workers, "kbot-slack-ack", self._busy),
        )
        self.context = SlackContext(services, self.client, self.submit)
        self.admin = AdminCommands(self.context)
        self.conversations = Conversations(self.context, on_files=self.admin.accept_files)
        self.feedback = FeedbackHandlers(self.context)
        self._register()

    def _register(self) -> None:
        app, conv, fb = self.app, self.conversations, self.feedback
        app.error(_on_listener_error)
        app.event("app_mention")(conv.on_mention)
        app.event("message")(conv.on_message)
        app.command("/ask")(conv.on_ask)
        app.command("/kbot")(self.admin.on_kbot)
        app.action(ACTION_RETRY)(conv.on_retry)
        app.action(ACTION_VOTE_UP)(fb.on_vote)
        app.action(ACTION_VOTE_DOWN)(fb.on_vote)
        app.action(ACTION_CORRECT)(fb.on_correct)
        app.action(ACTION_SHARE)(fb.on_share)
        app.view(CORRECTION_VIEW)(fb.on_correction)

    # --- work after the ack ------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.services.store

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run slow work after the ack, on the work pool (never on Bolt's listener pool)."""

        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("slack background job %s failed", getattr(fn, "__name__", "?"))

        self.pool.submit(run)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until listeners and background work are done (tests, shutdown)."""
        return self._busy.wait_idle(timeout)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _on_listener_error(error: Exception, body: dict[str, Any], logger: logging.Logger) -> None:
    """The one error handler for every listener: log what failed (never the message text)."""
    kind = body.get("type") or "?"
    event = (body.get("event") or {}).get("type") or body.get("command") or ""
    log.error("slack listener failed on %s %s: %s", kind, event, type(error).__name__, exc_info=error)


# --- entry points --------------------------------------------------------------------------------
def build_slack_app(runtime: Services) -> App:
    """The Bolt app for `runtime` (HTTP or Socket Mode). Needs SLACK_BOT_TOKEN."""
    return SlackBot(runtime).app


def slack_router(runtime: Services, bot: SlackBot | None = None) -> APIRouter:
    """POST /slack/events for HTTP mode: signature checked, Bolt run in a worker thread."""
    bot = bot or SlackBot(runtime)
    signing_secret = secret(runtime.settings.slack_signing_secret)
    if not signing_secret:
        raise ChannelNotConfigured("SLACK_SIGNING_SECRET is not set (needed for HTTP mode)")
    verifier = SignatureVerifier(signing_secret)
    router = APIRouter()

    @router.post(EVENTS_PATH, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        # Checked here first: slack_sdk's verifier raises on a non-numeric timestamp (a 500 in Bolt),
        # and a body that is not UTF-8 cannot be signed by Slack. Nothing of the body is logged.
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return Response("request too large", status_code=413)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return Response("invalid request", status_code=401)
        if not (timestamp.isascii() and timestamp.isdigit()) or not verifier.is_valid(
            body, timestamp, request.headers.get("x-slack-signature")
        ):
            log.info("slack request with a bad or stale signature refused")
            return Response("invalid request", status_code=401)
        try:
            bolt_request = to_bolt_request(request, body)
        except ValueError:
            return Response("malformed request body", status_code=400)
        # Bolt blocks until the listener acks; a thread keeps the web server's event loop free.
        bolt_response = await run_in_threadpool(bot.app.dispatch, bolt_request)
        return to_starlette_response(bolt_response)

    router.slack_bot = bot  # type: ignore[attr-defined]  # lets the caller close or inspect it
    return router


class SocketModeConnection:
    """A connected Socket Mode client; `close()` disconnects and stops the background pool."""

    def __init__(self, bot: SlackBot, handler: Any):
        self.bot = bot
        self.handler = handler

    def close(self) -> None:
        self.handler.close()
        self.bot.close()


def start_socket_mode(runtime: Services, bot: SlackBot | None = None) -> SocketModeConnection:
    """Connect over Socket Mode (SLACK_APP_TOKEN) without blocking."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    app_token = secret(runtime.settings.slack_app_token)
    if not app_token:
        raise ChannelNotConfigured("SLACK_APP_TOKEN is not set (needed for Socket Mode)")
    bot = bot or SlackBot(runtime)
    handler = SocketModeHandler(bot.app, app_token, web_client=bot.client)
    handler.connect()
    log.info("Slack Socket Mode connected")
    return SocketModeConnection(bot, handler)


def run_slack(runtime: Services) -> None:
    """`kbot slack`: Socket Mode when SLACK_APP_TOKEN is set, else an HTTP server for /slack/events."""
    settings = runtime.settings
    socket_mode = bool(secret(settings.slack_app_token))
    if not secret(settings.slack_bot_token):
        raise ChannelNotConfigured("SLACK_BOT_TOKEN is not set (see docs/slack.md)")
    if not socket_mode and not secret(settings.slack_signing_secret):
        raise ChannelNotConfigured("set SLACK_APP_TOKEN for Socket Mode, or SLACK_SIGNING_SECRET for HTTP mode")
    bot = SlackBot(runtime)
    try:
        identity = bot.client.auth_test()  # fails here, clearly, on a wrong token or an unreachable API
    except SlackApiError as exc:
        bot.close()
        raise ChannelNotConfigured(f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')})") from None
    log.info("Slack bot user %s in team %s; loading models", identity.get("user_id"), identity.get("team_id"))
    _ = runtime.engine  # load the models before the first question rather than during it
    if socket_mode:
        connection = start_socket_mode(runtime, bot)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            connection.close()
        return
    import uvicorn
    from fastapi import FastAPI

    api = FastAPI(title="kbot Slack events", docs_url=None, redoc_url=None, openapi_url=None)
    api.include_router(slack_router(runtime, bot))
    log.info("Slack HTTP mode: POST http://%s:%s%s", settings.host, settings.port, EVENTS_PATH)
    try:
        uvicorn.run(api, host=settings.host, port=settings.port, log_config=None, log_level="info")
    finally:
        bot.close()
