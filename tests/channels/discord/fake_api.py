"""A fake Discord REST API (aiohttp on port 0) and builders for Discord's documented payloads.

The bot under test is a real discord.py client whose `discord.http.Route.BASE` points here; it logs
in over HTTP (GET /users/@me, GET /oauth2/applications/@me) and never opens a gateway. Gateway
events are fed in through discord.py's own parsers (`ConnectionState.parse_interaction_create`,
`parse_message_create`), which build `discord.Interaction(data=..., state=...)` and
`discord.Message(state=..., channel=..., data=...)` exactly as a live gateway would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.discord.bot import KbotBot, build_discord_bot
from bot.core.types import Chunk
from bot.wiring import Runtime
from tests.conftest import make_settings
from tests.fakes import FakeEmbedder, FakeGenerator, FakeIngestor, FakeRetriever

APP_ID = "900000000000000001"
BOT_ID = APP_ID
GUILD_ID = "910000000000000001"
CHANNEL_ID = "920000000000000001"
ADMIN_ROLE_ID = "930000000000000001"
BOT_USER = {"id": BOT_ID, "username": "kbot", "discriminator": "0", "global_name": "kbot", "avatar": None,
            "bot": True}
ALICE = {"id": "940000000000000001", "username": "alice", "discriminator": "0", "global_name": "Alice",
         "avatar": None}
BOB = {"id": "940000000000000002", "username": "bob", "discriminator": "0", "global_name": "Bob",
       "avatar": None}

_counter = itertools.count(1)


def snowflake(at: datetime | None = None) -> str:
    """A unique Discord id whose embedded timestamp is `at` (now by default)."""
    ms = int(((at or datetime.now(UTC)).timestamp() * 1000) - discord.utils.DISCORD_EPOCH)
    return str((ms << 22) + (next(_counter) % (1 << 22)))


def iso(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).isoformat()


# --- payload builders (shapes from https://discord.com/developers/docs) -----------------------------
def member(user: dict, roles: Sequence[str] = (), permissions: int = 0) -> dict:
    return {"user": user, "roles": list(roles), "joined_at": iso(), "deaf": False, "mute": False, "flags": 0,
            "nick": None, "avatar": None, "pending": False, "permissions": str(permissions)}


def role(role_id: str, name: str, permissions: int = 0) -> dict:
    return {"id": role_id, "name": name, "color": 0, "hoist": False, "position": 1,
            "permissions": str(permissions), "managed": False, "mentionable": False, "flags": 0}


def text_channel(channel_id: str = CHANNEL_ID, guild_id: str = GUILD_ID, name: str = "general") -> dict:
    return {"id": channel_id, "type": 0, "guild_id": guild_id, "name": name, "position": 0,
            "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
            "last_message_id": None, "rate_limit_per_user": 0}


def thread_channel(thread_id: str, parent_id: str = CHANNEL_ID, owner_id: str = BOT_ID,
                   name: str = "question", guild_id: str = GUILD_ID) -> dict:
    return {"id": thread_id, "type": 11, "guild_id": guild_id, "parent_id": parent_id, "owner_id": owner_id,
            "name": name, "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0,
            "member_count": 1, "flags": 0,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": iso(),
                                "locked": False}}


def dm_channel(channel_id: str, recipient: dict) -> dict:
    return {"id": channel_id, "type": 1, "recipients": [recipient], "last_message_id": None}


def guild(guild_id: str = GUILD_ID, channels: Sequence[dict] = (), roles: Sequence[dict] = (),
          threads: Sequence[dict] = ()) -> dict:
    everyone = role(guild_id, "@everyone")
    return {"id": guild_id, "name": "Test server", "icon": None, "splash": None, "discovery_splash": None,
            "owner_id": ALICE["id"], "afk_channel_id": None, "afk_timeout": 300, "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "roles": [everyone, *roles],
            "emojis": [], "stickers": [], "features": [], "mfa_level": 0, "system_channel_id": None,
            "system_channel_flags": 0, "rules_channel_id": None, "vanity_url_code": None, "description": None,
            "banner": None, "premium_tier": 0, "preferred_locale": "en-US", "public_updates_channel_id": None,
            "nsfw_level": 0, "premium_progress_bar_enabled": False, "member_count": 2, "large": False,
            "unavailable": False, "joined_at": iso(), "members": [], "voice_states": [], "presences": [],
            "channels": list(channels), "threads": list(threads)}


def message(content: str, *, channel_id: str = CHANNEL_ID, author: dict = ALICE,
            guild_id: str | None = GUILD_ID, mentions: Sequence[dict] = (), message_id: str | None = None,
            msg_type: int = 0, roles: Sequence[str] = (), components: Sequence[dict] = (),
            embeds: Sequence[dict] = (), flags: int = 0) -> dict:
    data = {"id": message_id or snowflake(), "channel_id": channel_id, "author": author, "content": content,
            "timestamp": iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": list(mentions), "mention_roles": [], "attachments": [], "embeds": list(embeds),
            "pinned": False, "type": msg_type, "flags": flags, "components": list(components)}
    if guild_id:
        data["guild_id"] = guild_id
        data["member"] = {k: v for k, v in member(author, roles).items() if k != "user"}
    return data


def mention_of_bot() -> dict:
    return dict(BOT_USER)


def _interaction(kind: int, data: dict, *, user: dict, channel: dict, guild_id: str | None, roles: list[str],
                 permissions: int, interaction_id: str | None, msg: dict | None = None) -> dict:
    iid = interaction_id or snowflake()
    payload: dict[str, Any] = {
        "id": iid, "application_id": APP_ID, "type": kind, "data": data, "channel": channel,
        "channel_id": channel["id"], "token": f"itoken-{iid}", "version": 1,
        "app_permissions": str(discord.Permissions.text().value), "locale": "en-US", "entitlements": [],
        "authorizing_integration_owners": {"0": guild_id or user["id"]}, "attachment_size_limit": 26214400,
        "context": 0 if guild_id else 1,
    }
    if guild_id:
        payload["guild_id"] = guild_id
        payload["guild_locale"] = "en-US"
        payload["guild"] = {"id": guild_id, "locale": "en-US", "features": []}
        payload["member"] = member(user, roles, permissions)
    else:
        payload["user"] = user
    if msg is not None:
        payload["message"] = msg
    return payload


def slash_command(name: str, options: Sequence[dict] = (), *, user: dict = ALICE, channel: dict | None = None,
                  guild_id: str | None = GUILD_ID, roles: Sequence[str] = (), permissions: int = 0,
                  resolved: dict | None = None, interaction_id: str | None = None,
                  created: datetime | None = None) -> dict:
    data: dict[str, Any] = {"id": snowflake(), "name": name, "type": 1, "options": list(options)}
    if guild_id:
        data["guild_id"] = guild_id
    if resolved:
        data["resolved"] = resolved
    channel = channel or (text_channel() if guild_id else dm_channel(snowflake(), user))
    interaction_id = interaction_id or (snowflake(created) if created else None)
    return _interaction(2, data, user=user, channel=channel, guild_id=guild_id, roles=list(roles),
                        permissions=permissions, interaction_id=interaction_id)


def ask(question: str, **kwargs: Any) -> dict:
    return slash_command("ask", [{"name": "question", "type": 3, "value": question}], **kwargs)


def admin(sub: str, options: Sequence[dict] = (), **kwargs: Any) -> dict:
    return slash_command("kbot", [{"name": sub, "type": 1, "options": list(options)}], **kwargs)


def button_click(custom_id: str, msg: dict, *, user: dict = ALICE, guild_id: str | None = GUILD_ID,
                 channel: dict | None = None) -> dict:
    channel = channel or text_channel(msg["channel_id"])
    return _interaction(3, {"custom_id": custom_id, "component_type": 2}, user=user, channel=channel,
                        guild_id=guild_id, roles=[], permissions=0, interaction_id=None, msg=msg)


def modal_submit(custom_id: str, values: dict[str, str], *, user: dict = ALICE,
                 guild_id: str | None = GUILD_ID, msg: dict | None = None) -> dict:
    # Newer clients send text inputs inside Label components (type 18); older ones in action rows (type 1).
    components = [{"type": 18, "id": i + 1,
                   "component": {"type": 4, "id": i + 10, "custom_id": k, "value": v}}
                  for i, (k, v) in enumerate(values.items())]
    return _interaction(5, {"custom_id": custom_id, "components": components}, user=user,
                        channel=text_channel(), guild_id=guild_id, roles=[], permissions=0,
                        interaction_id=None, msg=msg)


# --- the fake REST API -----------------------------------------------------------------------------
@dataclass
class Call:
    method: str
    path: str  # without the /api/v10 prefix
    body: Any
    query: dict[str, str]
    status: int = 200
    response: Any = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict
    headers: dict[str, str]
    times: int


class FakeDiscord:
    """Records every request and answers like Discord's REST API for the routes the bot uses."""

    PREFIX = "/api/v10"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, dict] = {}  # message id -> payload the fake created or was given
        self.history: dict[str, list[dict]] = {}  # channel id -> messages, newest first
        self.files: dict[str, tuple[bytes, str]] = {}  # /files/<name> -> (body, content type)
        self.faults: list[Fault] = []
        self.interaction_channels: dict[str, str] = {}  # interaction id -> its channel (for follow-ups)
        self._server: TestServer | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_route("*", self.PREFIX + "/{tail:.*}", self._handle)
        app.router.add_get("/files/{name}", self._file)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    @property
    def api_url(self) -> str:
        return self.base_url + self.PREFIX

    def file_url(self, name: str) -> str:
        return f"{self.base_url}/files/{name}"

    # --- test controls ---------------------------------------------------------------------------
    def fail(self, method: str, path_regex: str, status: int, body: dict | None = None, *,
             headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.faults.append(Fault(method, re.compile(path_regex), status, body or {}, headers or {}, times))

    def rate_limit(self, method: str, path_regex: str, retry_after: float = 0.05) -> None:
        """A 429 as Discord sends it: JSON body and a Via header (without one discord.py assumes a
        Cloudflare ban and gives up)."""
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        self.fail(method, path_regex, 429, body,
                  headers={"Via": "1.1 google", "Retry-After": str(retry_after), "X-RateLimit-Scope": "user"})

    def requests(self, method: str | None = None, path_regex: str = ".*",
                 status: int | None = 200) -> list[Call]:
        return [c for c in self.calls if (method is None or c.method == method)
                and re.fullmatch(path_regex, c.path) and (status is None or c.status == status)]

    def posted_messages(self) -> list[Call]:
        """Successful message creations: channel messages and interaction follow-ups."""
        return self.requests("POST", r"/(channels/\d+/messages|webhooks/\d+/[^/]+)")

    # --- handlers --------------------------------------------------------------------------------
    async def _file(self, request: web.Request) -> web.Response:
        body, content_type = self.files.get(request.match_info["name"], (b"", ""))
        if not content_type:
            return web.Response(status=404)
        return web.Response(body=body, content_type=content_type)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body = await _read_body(request)
        call = Call(request.method, path, body, dict(request.query))
        self.calls.append(call)
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and fault.pattern.fullmatch(path):
                fault.times -= 1
                call.status = fault.status
                return _json(fault.body, fault.status, fault.headers)
        status, payload = self._route(request.method, path, body, request.query)
        call.status, call.response = status, payload
        if status == 204:
            return web.Response(status=204)
        return _json(payload, status)

    def _route(self, method: str, path: str, body: Any, query: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/users/@me"):
            return 200, BOT_USER
        if (method, path) == ("GET", "/oauth2/applications/@me"):
            return 200, {"id": APP_ID, "name": "kbot", "icon": None, "description": "", "bot_public": False,
                         "bot_require_code_grant": False, "owner": ALICE, "verify_key": "00", "flags": 0,
                         "team": None, "summary": "", "rpc_origins": []}
        if method == "PUT" and re.fullmatch(r"/applications/\d+(/guilds/\d+)?/commands", path):
            return 200, [dict(c, id=snowflake(), application_id=APP_ID, version=snowflake()) for c in body]
        if method == "POST" and (m := re.fullmatch(r"/interactions/(\d+)/[^/]+/callback", path)):
            return 200, {"interaction": {"id": m[1], "type": 2}, "resource": {"type": body.get("type", 5)}}
        if method == "POST" and (m := re.fullmatch(r"/webhooks/\d+/itoken-(\d+)", path)):
            return 200, self._new_message(self._channel_of_token(m[1]), body)
        if method == "PATCH" and (m := re.fullmatch(r"/webhooks/\d+/itoken-(\d+)/messages/@original", path)):
            return 200, self._new_message(self._channel_of_token(m[1]), body)
        if method == "POST" and (m := re.fullmatch(r"/channels/(\d+)/messages", path)):
            return 200, self._new_message(m[1], body)
        if method == "PATCH" and (m := re.fullmatch(r"/webhooks/\d+/itoken-\d+/messages/(\d+)", path)):
            return self._edit_message(m[1], body)
        if method == "PATCH" and (m := re.fullmatch(r"/channels/\d+/messages/(\d+)", path)):
            return self._edit_message(m[1], body)
        if method == "POST" and (m := re.fullmatch(r"/channels/(\d+)/messages/(\d+)/threads", path)):
            return 201, thread_channel(m[2], parent_id=m[1], name=body.get("name", ""))
        if method == "GET" and (m := re.fullmatch(r"/channels/(\d+)/messages", path)):
            return 200, self.history.get(m[1], [])[: int(query.get("limit", 50))]
        if method == "GET" and (m := re.fullmatch(r"/channels/(\d+)/messages/(\d+)", path)):
            found = self.messages.get(m[2])
            return (200, found) if found else (404, {"message": "Unknown Message", "code": 10008})
        if method == "POST" and re.fullmatch(r"/channels/\d+/typing", path):
            return 204, None
        return 404, {"message": f"fake Discord has no route {method} {path}", "code": 0}

    def _channel_of_token(self, interaction_id: str) -> str:
        return self.interaction_channels.get(interaction_id, CHANNEL_ID)

    def _edit_message(self, message_id: str, body: dict) -> tuple[int, dict]:
        """PATCH a message the fake created: the fields given replace the stored ones."""
        msg = self.messages.get(message_id)
        if msg is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        for key in ("content", "embeds", "components", "flags"):
            if key in body:
                msg[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        msg["edited_timestamp"] = iso()
        return 200, msg

    def _new_message(self, channel_id: str, body: dict) -> dict:
        msg = message(body.get("content") or "", channel_id=channel_id, author=BOT_USER, guild_id=None,
                      components=body.get("components") or [], embeds=body.get("embeds") or [],
                      flags=body.get("flags") or 0)
        self.messages[msg["id"]] = msg
        return msg


def _json(payload: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json" as Discord sends it: discord.py compares the header verbatim and
    # treats anything else (aiohttp adds "; charset=utf-8") as text, and a text 429 as a Cloudflare ban.
    return web.Response(body=json.dumps(payload).encode(), status=status,
                        headers={"Content-Type": "application/json", **(headers or {})})


async def _read_body(request: web.Request) -> Any:
    if request.content_type == "application/json":
        return await request.json()
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        return json.loads(str(form.get("payload_json", "{}")))
    return None


# --- driving the bot ---------------------------------------------------------------------------------
_DISCORD_TASKS = ("discord", "CommandTree")


async def settle(timeout: float = 30.0) -> None:
    """Wait until every task discord.py spawned for the delivered events (command invocations,
    listeners, button and modal dispatch) has finished."""
    deadline = time.monotonic() + timeout
    while True:
        await asyncio.sleep(0)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
                   and t.get_name().startswith(_DISCORD_TASKS)]
        if not pending:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"discord tasks still running: {[t.get_name() for t in pending]}")
        await asyncio.wait(pending, timeout=left)


def deliver_interaction(bot: discord.Client, fake: FakeDiscord, payload: dict) -> None:
    """INTERACTION_CREATE as the gateway would deliver it."""
    fake.interaction_channels[payload["id"]] = payload["channel"]["id"]
    bot._connection.parse_interaction_create(payload)  # type: ignore[attr-defined]


def deliver_message(bot: discord.Client, payload: dict) -> None:
    """MESSAGE_CREATE as the gateway would deliver it."""
    bot._connection.parse_message_create(payload)  # type: ignore[attr-defined]


def custom_ids(body: dict) -> list[str]:
    """All component custom ids in a posted message body."""
    out = []
    for row in body.get("components") or []:
        for comp in row.get("components", []):
            if "custom_id" in comp:
                out.append(comp["custom_id"])
    return out


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


# --- a logged-in bot over a test runtime -------------------------------------------------------------
VPN_QUESTION = "What is the VPN server address?"
VPN_REPLY = "The VPN server address is vpn.example.com [1]."
CHUNKS = [
    Chunk("vpn-1", "The VPN server address is vpn.example.com. Use the corporate client to connect to it.",
          0.9, "it/vpn.md", title="VPN guide", heading="Setup"),
    Chunk("vpn-2", "The VPN uses port 443 over TCP. It works from every office.", 0.8, "it/vpn.md",
          title="VPN guide", heading="Ports"),
    Chunk("hr-1", "Parental leave is sixteen weeks at full pay.", 0.9, "hr/leave.md", title="Leave policy",
          scope="hr"),
]
_WATCHED_LOGGERS = ("discord", "bot.channels.discord.bot", "bot.channels.discord.admin",
                    "bot.channels.discord.conversation")


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Harness:
    """A real KbotBot logged in against FakeDiscord, with the fake engine parts it answers from."""

    fake: FakeDiscord
    runtime: Runtime
    retriever: FakeRetriever
    generator: FakeGenerator
    ingestor: FakeIngestor
    bot: KbotBot | None = None
    errors: _ErrorLog = field(default_factory=_ErrorLog)
    expect_errors: bool = False

    async def login(self) -> None:
        self.bot = build_discord_bot(self.runtime)
        await self.bot.login("fake-token")
        # What GUILD_CREATE would have cached: the server, its channel and the admin role.
        self.bot._connection._add_guild_from_data(  # type: ignore[attr-defined]
            guild(channels=[text_channel()], roles=[role(ADMIN_ROLE_ID, "kbot-admin")])
        )

    async def restart(self) -> None:
        """A new bot process: nothing survives in memory, only the store and Discord's messages."""
        assert self.bot is not None
        await self.bot.close()
        await self.login()

    async def interact(self, *payloads: dict) -> None:
        for payload in payloads:
            deliver_interaction(self.bot, self.fake, payload)  # type: ignore[arg-type]
        await settle()

    async def say(self, *payloads: dict) -> None:
        for payload in payloads:
            deliver_message(self.bot, payload)  # type: ignore[arg-type]
        await settle()

    def add_thread(self, payload: dict) -> None:
        """THREAD_CREATE for a thread (Discord sends it after the bot opens one)."""
        self.bot._connection.parse_thread_create(dict(payload, newly_created=True))  # type: ignore[union-attr]

    async def close(self) -> None:
        for name in _WATCHED_LOGGERS:
            logging.getLogger(name).removeHandler(self.errors)
        if self.bot is not None:
            await self.bot.close()
        await self.fake.close()
        if not self.expect_errors:
            assert not self.errors.records, [r.getMessage() for r in self.errors.records]


async def start_harness(tmp_path: Path, *, generator_delay: float = 0.0, **settings: Any) -> Harness:
    fake = await FakeDiscord().start()
    retriever, generator = FakeRetriever(CHUNKS), FakeGenerator(VPN_REPLY, delay=generator_delay)
    ingestor = FakeIngestor()
    runtime = Runtime(make_settings(tmp_path, discord_api_url=fake.api_url, public_url="http://kbot.test",
                                    **settings),
                      index=retriever, generator=generator, embedder=FakeEmbedder(), ingestor=ingestor)
    harness = Harness(fake, runtime, retriever, generator, ingestor)
    for name in _WATCHED_LOGGERS:
        logging.getLogger(name).addHandler(harness.errors)
    await harness.login()
    return harness


def response_message(call: Call) -> dict:
    """The message Discord created for a posted message (to click its buttons later)."""
    assert call.status == 200 and isinstance(call.response, dict), call
    return call.response
