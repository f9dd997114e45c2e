"""A local stand-in for Slack: a Web API server (stdlib http.server on port 0, the way bolt-python
tests itself), request signing like Slack does it, Slack's documented payload shapes, and a Socket
Mode WebSocket server. It keeps a small model of channels and threads so that conversations.replies
returns what the bot and the users posted."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
SIGNING_SECRET = "test-signing-secret"
BOT_USER_ID = "UKBOT"
BOT_ID = "BKBOT"
TEAM_ID = "T0001"


@dataclass
class Call:
    method: str  # Web API method ("chat.postMessage"), "response_url" or "file_download"
    args: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class FakeSlackAPI:
    """Records every call; answers in Slack's response shapes. Use as a context manager."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.rate_limited: dict[str, int] = {}  # method -> how many 429s to answer first
        self.errors: dict[str, str] = {}  # method -> Slack error code to answer with (ok: false)
        self.files: dict[str, tuple[str, bytes]] = {}  # file id -> (name, content)
        self.messages: dict[str, list[dict[str, Any]]] = {}  # channel -> messages, oldest first
        self.socket_url: str | None = None  # what apps.connections.open hands out
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.api_url = f"{self.base}/api/"

    # --- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> FakeSlackAPI:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- test helpers ------------------------------------------------------------------------------
    def next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.{next(self._ts):06d}"

    def user_message(
        self, channel: str, text: str, user: str = "U1", thread_ts: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """A message a person posts (kept for conversations.replies); returns the event to deliver."""
        ts = self.next_ts()
        msg = {"type": "message", "user": user, "text": text, "ts": ts, "channel": channel, **extra}
        if thread_ts:
            msg["thread_ts"] = thread_ts
        self.messages.setdefault(channel, []).append(msg)
        return dict(msg)

    def response_url(self, name: str = "r") -> str:
        return f"{self.base}/respond/{name}"

    def of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([c for c in self.calls if c.method == method]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} {method} call(s); got {[c.method for c in self.calls]}"
                    )
                self._cond.wait(left)
            return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.get(channel, []) if m.get("thread_ts", m["ts"]) == thread_ts]

    # --- the server ----------------------------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler, verb: str) -> None:
        url = urlparse(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in req.headers.items()}
        if url.path.startswith("/files/"):
            return self._download(req, url.path, headers)
        args: dict[str, Any] = {k: v[0] for k, v in parse_qs(url.query).items()}
        if raw:
            if headers.get("content-type", "").startswith("application/json"):
                args.update(json.loads(raw))
            else:
                args.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        for key in ("blocks", "view"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        method = "response_url" if url.path.startswith("/respond/") else url.path.removeprefix("/api/")
        if method == "response_url":
            args["_url"] = url.path
        with self._cond:
            self.calls.append(Call(method, args, headers))
            limited = self.rate_limited.get(method, 0)
            if limited:
                self.rate_limited[method] = limited - 1
            self._cond.notify_all()
        if limited:
            return self._reply(req, 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
        if method == "response_url":
            return self._reply(req, 200, None)
        if method in self.errors:
            return self._reply(req, 200, {"ok": False, "error": self.errors[method]})
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if headers.get("authorization") != f"Bearer {expected}":
            return self._reply(req, 200, {"ok": False, "error": "invalid_auth"})
        self._reply(req, 200, self._answer(method, args))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://kbot-test.slack.com/", "team": "Test", "user": "kbot",
                    "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_url}
        if method == "chat.postMessage":
            msg = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": args.get("text", ""),
                   "ts": self.next_ts(), "channel": args["channel"]}
            if args.get("thread_ts"):
                msg["thread_ts"] = args["thread_ts"]
            with self._cond:
                self.messages.setdefault(args["channel"], []).append(msg)
            return {"ok": True, "channel": args["channel"], "ts": msg["ts"], "message": msg}
        if method == "chat.update":
            with self._cond:
                for m in self.messages.get(args["channel"], []):
                    if m["ts"] == args["ts"]:
                        m["text"] = args.get("text", "")
            return {"ok": True, "channel": args["channel"], "ts": args["ts"], "text": args.get("text", "")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self.next_ts()}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V1", **args.get("view", {})}}
        if method == "conversations.replies":
            return {"ok": True, "messages": self.thread(args["channel"], args["ts"]), "has_more": False}
        if method == "conversations.history":
            latest = float(args.get("latest") or "inf")
            msgs = [m for m in self.messages.get(args["channel"], [])
                    if "thread_ts" not in m and float(m["ts"]) < latest]
            return {"ok": True, "messages": msgs[::-1][: int(args.get("limit", 100))], "has_more": False}
        if method == "files.info":
            if args["file"] not in self.files:
                return {"ok": False, "error": "file_not_found"}
            name, content = self.files[args["file"]]
            url = f"{self.base}/files/{args['file']}/{name}"
            info = {"id": args["file"], "name": name, "title": name, "size": len(content),
                    "url_private": url, "url_private_download": url + "?download=1"}
            return {"ok": True, "file": info}
        return {"ok": False, "error": "unknown_method"}

    def _download(self, req: BaseHTTPRequestHandler, path: str, headers: dict[str, str]) -> None:
        file_id = path.split("/")[2]
        with self._cond:
            self.calls.append(Call("file_download", {"file": file_id}, headers))
            self._cond.notify_all()
        if headers.get("authorization") != f"Bearer {BOT_TOKEN}" or file_id not in self.files:
            body = b"<!DOCTYPE html><html>Sign in to Slack</html>"
            req.send_response(200)
            req.send_header("Content-Type", "text/html")
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
            return
        content = self.files[file_id][1]
        req.send_response(200)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Content-Length", str(len(content)))
        req.end_headers()
        req.wfile.write(content)

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, status: int, payload: dict[str, Any] | None,
               headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode() if payload is not None else b"ok"
        req.send_response(status)
        req.send_header("Content-Type", "application/json" if payload is not None else "text/plain")
        req.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(body)


# --- signing and payloads (shapes from Slack's Events API / interactivity docs) ----------------------
def signed_headers(body: str, secret: str = SIGNING_SECRET, timestamp: int | str | None = None,
                   content_type: str = "application/json", retry: int | None = None) -> dict[str, str]:
    """Headers exactly as Slack computes them: v0=HMAC-SHA256(secret, 'v0:{ts}:{body}')."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
               "Content-Type": content_type}
    if retry is not None:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return headers


_event_ids = itertools.count(1)


def event_callback(event: dict[str, Any], event_id: str | None = None) -> str:
    return json.dumps({
        "token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback",
        "event": event, "event_id": event_id or f"Ev{next(_event_ids):08d}", "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    })


def mention_event(message: dict[str, Any]) -> dict[str, Any]:
    """The app_mention event for a message (Slack sends no channel_type with it)."""
    event = {k: v for k, v in message.items() if k != "channel_type"}
    return event | {"type": "app_mention"}


def slash_command(command: str, text: str, response_url: str, user: str = "U1", channel: str = "C1",
                  trigger_id: str | None = None) -> str:
    return urlencode({
        "token": "legacy", "team_id": TEAM_ID, "team_domain": "test", "channel_id": channel,
        "channel_name": "directmessage" if channel.startswith("D") else "general", "user_id": user,
        "user_name": "someone", "command": command, "text": text, "api_app_id": "A0001",
        "response_url": response_url, "trigger_id": trigger_id or f"trig.{next(_event_ids)}",
    })


def block_action(action_id: str, value: str, response_url: str, user: str = "U1", channel: str = "C1",
                 message_ts: str = "1.000001", ephemeral: bool = False) -> str:
    payload = {
        "type": "block_actions", "team": {"id": TEAM_ID}, "user": {"id": user, "team_id": TEAM_ID},
        "api_app_id": "A0001", "token": "legacy", "trigger_id": f"trig.{next(_event_ids)}",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": ephemeral},
        "channel": {"id": channel, "name": "general"}, "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b1", "value": value,
                     "action_ts": str(time.time())}],
    }
    if not ephemeral:
        payload["message"] = {"type": "message", "ts": message_ts, "text": "answer", "user": BOT_USER_ID}
    return urlencode({"payload": json.dumps(payload)})


def view_submission(
    private_metadata: str, values: dict[str, Any], user: str = "U1", callback_id: str = "kbot_correction"
) -> str:
    payload = {
        "type": "view_submission", "team": {"id": TEAM_ID}, "user": {"id": user, "team_id": TEAM_ID},
        "api_app_id": "A0001", "token": "legacy", "trigger_id": f"trig.{next(_event_ids)}",
        "view": {"id": "V1", "type": "modal", "callback_id": callback_id, "team_id": TEAM_ID,
                 "private_metadata": private_metadata, "state": {"values": values}},
    }
    return urlencode({"payload": json.dumps(payload)})


FORM = "application/x-www-form-urlencoded"


# --- Socket Mode ------------------------------------------------------------------------------------
class FakeSocketModeServer:
    """A WebSocket server like wss-primary.slack.com: says hello, sends envelopes, collects acks."""

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self.acks: list[dict[str, Any]] = []
        self._connection: Any = None
        self._cond = threading.Condition()
        self.server = serve(self._session, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/link/?ticket=test"

    def __enter__(self) -> FakeSocketModeServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()

    def _session(self, connection: Any) -> None:
        connection.send(
            json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}})
        )
        with self._cond:
            self._connection = connection
            self._cond.notify_all()
        from websockets.exceptions import ConnectionClosed

        try:
            for message in connection:
                with self._cond:
                    self.acks.append(json.loads(message) | {"_received_at": time.monotonic()})
                    self._cond.notify_all()
        except ConnectionClosed:  # the client closing without a close frame is its business
            pass

    def send_events_api(self, envelope_id: str, body: str, timeout: float = 10.0) -> float:
        """Send an events_api envelope; returns the send time (time.monotonic())."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._connection is not None, timeout):
                raise AssertionError("the Socket Mode client never connected")
            connection = self._connection
        sent = time.monotonic()
        connection.send(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": "events_api",
                    "payload": json.loads(body),
                    "accepts_response_payload": False,
                    "retry_attempt": 0,
                    "retry_reason": "",
                }
            )
        )
        return sent

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> float:
        """Wait for the ack of `envelope_id`; returns when it arrived (time.monotonic())."""

        def found() -> list[dict[str, Any]]:
            return [a for a in self.acks if a.get("envelope_id") == envelope_id]

        with self._cond:
            if not self._cond.wait_for(found, timeout):
                raise AssertionError(f"no ack for envelope {envelope_id}; got {self.acks}")
            return found()[0]["_received_at"]


# --- the app under test ----------------------------------------------------------------------------
VPN_CHUNK_TEXT = (
    "The VPN server address is vpn.example.com. Connect with the company VPN client "
    "and sign in with your single sign-on account."
)


class SlackHarness:
    """The real Bolt app (SlackBot) over a real Store and engine with fake retriever/generator, served by
    the real FastAPI router, talking to a FakeSlackAPI. `send_*` deliver signed requests like Slack."""

    def __init__(
        self,
        tmp_path: Any,
        api: FakeSlackAPI,
        *,
        chunks: Any = None,
        reply: str = "",
        delay: float = 0.0,
        retriever_error: Exception | None = None,
        store: Any = None,
        **overrides: Any,
    ) -> None:
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from bot.channels.slack.app import SlackBot, slack_router
        from bot.core.types import Chunk
        from bot.wiring import Runtime
        from knowledge.store import Store
        from tests.conftest import make_settings
        from tests.fakes import FakeEmbedder, FakeGenerator, FakeIngestor, FakeRetriever

        if chunks is None:
            chunks = [
                Chunk(
                    id="vpn-1",
                    text=VPN_CHUNK_TEXT,
                    score=0.9,
                    source="docs/it/vpn.md",
                    title="VPN guide",
                    heading="Connecting",
                    url="https://wiki.example.com/vpn",
                )
            ]
        settings = (
            dict(
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                slack_api_url=api.api_url,
                public_url="https://kbot.example.com",
            )
            | overrides
        )
        self.api = api
        self.store = store or Store(f"sqlite:///{tmp_path / 'kbot.db'}")
        self.retriever = FakeRetriever(chunks, error=retriever_error)
        self.generator = FakeGenerator(reply or "The VPN server address is vpn.example.com [1]", delay=delay)
        self.ingestor = FakeIngestor()
        self.runtime = Runtime(make_settings(tmp_path, **settings), store=self.store, ingestor=self.ingestor,
                               index=self.retriever, generator=self.generator, embedder=FakeEmbedder())
        self.bot = SlackBot(self.runtime)
        web = FastAPI()
        web.include_router(slack_router(self.runtime, bot=self.bot))
        self.http = TestClient(web, raise_server_exceptions=False)

    def close(self) -> None:
        self.bot.wait_idle(10)
        self.bot.close()

    def send(self, body: str, content_type: str = "application/json", **sign: Any) -> Any:
        return self.http.post(
            "/slack/events",
            content=body.encode(),
            headers=signed_headers(body, content_type=content_type, **sign),
        )

    def send_event(self, event: dict[str, Any], event_id: str | None = None, **sign: Any) -> Any:
        return self.send(event_callback(event, event_id), **sign)

    def send_command(self, command: str, text: str, **kwargs: Any) -> Any:
        return self.send(slash_command(command, text, **kwargs), content_type=FORM)

    def send_action(self, action_id: str, value: str, **kwargs: Any) -> Any:
        kwargs.setdefault("response_url", self.api.response_url("action"))
        return self.send(block_action(action_id, value, **kwargs), content_type=FORM)

    def send_view(self, private_metadata: str, values: dict[str, Any], **kwargs: Any) -> Any:
        return self.send(view_submission(private_metadata, values, **kwargs), content_type=FORM)

    def settle(self) -> None:
        assert self.bot.wait_idle(15), "background Slack work did not finish"
