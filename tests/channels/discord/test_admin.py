"""/kbot ingest | status | scope through the real command tree against the fake Discord API, and
how channel, thread and server scopes limit retrieval. Admins are explicit ids (alice is this
server's admin in the fixture); Manage Server or a role *name* makes nobody one, and a server may only
map and ingest into the scopes the operator gave it."""

from __future__ import annotations

from urllib.parse import urlparse

import discord
import pytest

from bot.channels.discord.places import Place, resolve_scopes
from tests.channels.discord.fake_api import (
    ADMIN_ROLE_ID,
    ALICE,
    APP_ID,
    BOB,
    CHANNEL_ID,
    GUILD_ID,
    Harness,
    admin,
    ask,
    snowflake,
    start_harness,
    text_channel,
)
from tests.conftest import make_settings

MANAGE_GUILD = discord.Permissions(manage_guild=True).value
WEBHOOK = rf"/webhooks/{APP_ID}/itoken-\d+"


GUILD_ADMINS = {GUILD_ID: [ALICE["id"]]}
GUILD_SCOPES = {GUILD_ID: ["default", "hr"]}


async def admin_harness(tmp_path, **settings):
    """A harness whose server has alice as its admin, may use default and hr, and whose fake file
    host (a local server) is on the fetch allowlist."""
    settings = {"discord_guild_admins": GUILD_ADMINS, "discord_guild_scopes": GUILD_SCOPES, **settings}
    h = await start_harness(tmp_path, **settings)
    h.runtime.settings.fetch_allow_hosts.append(urlparse(h.fake.api_url).netloc)
    return h


@pytest.fixture
async def harness(tmp_path):
    h = await admin_harness(tmp_path)
    yield h
    await h.close()


def last_reply(h: Harness) -> dict:
    """The body of the last interaction response or follow-up."""
    calls = h.fake.requests("POST", rf"({WEBHOOK}|/interactions/\d+/[^/]+/callback)")
    return calls[-1].body


def option(name: str, value, kind: int = 3) -> dict:
    return {"name": name, "type": kind, "value": value}


# --- who is an admin -----------------------------------------------------------------------------------
async def test_non_admins_are_refused_before_anything_runs(harness):
    await harness.interact(admin("scope", [option("scopes", "hr")], user=BOB))
    reply = last_reply(harness)
    assert reply["type"] == 4 and reply["data"]["flags"] == 64  # an immediate, ephemeral message
    assert reply["data"]["content"].startswith("Only kbot admins")
    assert harness.runtime.store.channel_scopes("discord", CHANNEL_ID) is None


@pytest.mark.parametrize("how, allowed", [
    ("operator user list", True), ("server user list", True), ("server role id", True),
    ("manage server", False), ("administrator", False), ("role named kbot-admin", False),
])
async def test_only_explicit_ids_make_an_admin(tmp_path, how, allowed):
    settings = {
        "operator user list": dict(discord_admin_users=[BOB["id"]]),
        "server user list": dict(discord_guild_admins={GUILD_ID: [BOB["id"]]}),
        "server role id": dict(discord_guild_admins={GUILD_ID: [f"role:{ADMIN_ROLE_ID}"]}),
    }.get(how, {})
    h = await start_harness(tmp_path, **settings)
    try:
        kwargs = {"server role id": dict(roles=[ADMIN_ROLE_ID]), "role named kbot-admin": dict(roles=[ADMIN_ROLE_ID]),
                  "manage server": dict(permissions=MANAGE_GUILD),
                  "administrator": dict(permissions=discord.Permissions(administrator=True).value)}.get(how, {})
        await h.interact(admin("status", user=BOB, **kwargs))
        reply = last_reply(h)
        text = reply.get("content") or reply.get("data", {}).get("content", "")
        assert text.startswith("**kbot status**") is allowed, text
    finally:
        await h.close()


async def test_a_server_admin_cannot_map_or_ingest_outside_the_scopes_of_their_server(tmp_path):
    """The escalation path of issue 16: someone with Manage Server in a server they created (or a
    listed admin of one server) maps a restricted scope into a channel to read it, or ingests into a
    scope other places answer from."""
    h = await admin_harness(tmp_path, discord_guild_scopes={GUILD_ID: ["community"]})
    try:
        # Manage Server alone: not an admin at all.
        await h.interact(admin("scope", [option("scopes", "leadership")], user=BOB))
        assert last_reply(h)["data"]["content"].startswith("Only kbot admins")
        # alice is this server's admin, but leadership (and default) are not this server's scopes.
        for scopes in ("leadership", "community, default"):
            await h.interact(admin("scope", [option("scopes", scopes)]))
            assert "This server may not use scope" in last_reply(h)["data"]["content"]
        assert h.runtime.store.channel_scopes("discord", CHANNEL_ID) is None
        opt, resolved = attachment(h, "notes.md", b"# Notes\n\nReplaced answer.")
        await h.interact(admin("ingest", [opt], resolved=resolved))  # the default scope
        assert "may not use scope default" in last_reply(h)["data"]["content"]
        assert h.ingestor.files == []
        # within the server's scopes it works
        await h.interact(admin("scope", [option("scopes", "community")]))
        assert h.runtime.store.channel_scopes("discord", CHANNEL_ID) == ["community"]
    finally:
        await h.close()


# --- /kbot status ----------------------------------------------------------------------------------
async def test_status_reports_counts_and_this_channels_scopes(harness):
    await harness.interact(ask("What is the VPN server address?"))
    await harness.interact(admin("status"))
    acks = harness.fake.requests("POST", r"/interactions/\d+/[^/]+/callback")
    assert acks[-1].body == {"type": 5, "data": {"flags": 64}}  # deferred, ephemeral
    text = last_reply(harness)["content"]
    assert "Answers: 1" in text and "Adapter: none (base model)" in text
    assert "Scopes here: default (default scope)" in text


# --- /kbot scope -----------------------------------------------------------------------------------
async def test_scope_limits_what_the_channel_searches(harness):
    await harness.interact(admin("scope", [option("scopes", "hr")]))
    assert harness.runtime.store.channel_scopes("discord", CHANNEL_ID) == ["hr"]
    assert "now search: hr" in last_reply(harness)["content"]

    await harness.interact(ask("How long is parental leave?"))
    assert harness.retriever.calls[-1][1] == ("hr",)
    [embed] = harness.fake.requests("POST", WEBHOOK)[-1].body["embeds"]
    assert "sixteen weeks" in embed["fields"][0]["value"]
    await harness.interact(ask("How long is parental leave?", channel=text_channel(snowflake())))
    assert harness.retriever.calls[-1][1] == ("default",)  # other channels are unaffected


async def test_server_wide_scope_applies_to_every_channel(harness):
    await harness.interact(admin("scope", [option("scopes", "hr, default"), option("server_wide", True, 5)]))
    assert harness.runtime.store.channel_scopes("discord", f"guild:{GUILD_ID}") == ["hr", "default"]
    await harness.interact(ask("How long is parental leave?", channel=text_channel(snowflake())))
    assert harness.retriever.calls[-1][1] == ("hr", "default")


async def test_invalid_scope_names_get_a_clear_message(harness):
    await harness.interact(admin("scope", [option("scopes", "hr, ../etc")]))
    assert "Invalid scope name '../etc'" in last_reply(harness)["data"]["content"]
    assert harness.runtime.store.channel_scopes("discord", CHANNEL_ID) is None


def test_scope_resolution_prefers_the_most_specific_place_and_the_store(store, tmp_path):
    settings = make_settings(tmp_path, discord_channel_scopes={"c1": ["it"], GUILD_ID: ["all-staff"]})
    in_thread = Place("c1", "t1", GUILD_ID)
    assert resolve_scopes(store, settings, in_thread)[0] == ("it",)  # settings, parent channel
    store.set_channel_scopes("discord", "c1", ["hr"])
    assert resolve_scopes(store, settings, in_thread)[0] == ("hr",)  # the store beats settings
    store.set_channel_scopes("discord", "t1", ["finance"])
    assert resolve_scopes(store, settings, in_thread)[0] == ("finance",)  # the thread beats its channel
    assert resolve_scopes(store, settings, Place("c2", "", GUILD_ID))[0] == ("all-staff",)  # the server
    assert resolve_scopes(store, settings, Place("dm", ""))[0] == ("default",)


# --- /kbot ingest ----------------------------------------------------------------------------------
def attachment(h: Harness, name: str, body: bytes, content_type: str = "text/markdown",
               size: int | None = None) -> tuple[dict, dict]:
    att_id = snowflake()
    h.fake.files[name] = (body, content_type)
    data = {"id": att_id, "filename": name, "size": len(body) if size is None else size,
            "url": h.fake.file_url(name), "proxy_url": h.fake.file_url(name), "content_type": content_type}
    return option("file", att_id, 11), {"attachments": {att_id: data}}


async def test_ingest_an_attachment(harness):
    body = b"# Handbook\n\nThe office opens at nine."
    opt, resolved = attachment(harness, "handbook.md", body)
    await harness.interact(admin("ingest", [opt, option("scope", "hr")],
                                 resolved=resolved))
    assert harness.ingestor.files == [("handbook.md", body, "hr", "discord:handbook.md")]
    assert "`handbook.md` into scope `hr`: 1 added" in last_reply(harness)["content"]


async def test_ingest_a_url_names_the_file_from_its_content_type(harness):
    harness.fake.files["handbook"] = (b"<html><body>The office opens at nine.</body></html>", "text/html")
    url = harness.fake.file_url("handbook")
    await harness.interact(admin("ingest", [option("url", url)]))
    [(name, _, scope, source)] = harness.ingestor.files
    assert (name, scope, source) == ("handbook.html", "default", url)


@pytest.mark.parametrize("case, expected", [
    ("nothing", "Give either a file or a URL"),
    ("too big", "is larger than"),
    ("bad url", "Give an http(s) URL"),
    ("missing", "The server answered HTTP 404"),
    ("reader error", "Could not ingest `notes.md`: unsupported file type"),
])
async def test_ingest_problems_get_a_clear_message(harness, case, expected):
    options, resolved = [], None
    if case == "too big":
        opt, resolved = attachment(harness, "big.pdf", b"x", "application/pdf", size=26 * 1_000_000)
        options = [opt]
    elif case == "bad url":
        options = [option("url", "file:///etc/passwd")]
    elif case == "missing":
        options = [option("url", harness.fake.file_url("nothing-here"))]
    elif case == "reader error":
        harness.ingestor.error = ValueError("unsupported file type")
        opt, resolved = attachment(harness, "notes.md", b"hello")
        options = [opt]
    await harness.interact(admin("ingest", options, resolved=resolved))
    reply = last_reply(harness)
    assert expected in (reply.get("content") or reply.get("data", {}).get("content", ""))
    assert harness.ingestor.files == []


async def test_admin_in_dm_is_recognised_from_the_user_list(tmp_path):
    h = await start_harness(tmp_path, discord_admin_users=[ALICE["id"]])
    try:
        await h.interact(admin("status", guild_id=None))
        assert last_reply(h)["content"].startswith("**kbot status**")
        await h.interact(admin("scope", [option("scopes", "hr")], guild_id=None))
        assert "use this in a server" in last_reply(h)["data"]["content"]
    finally:
        await h.close()
