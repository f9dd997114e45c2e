"""/kbot ingest | status | scope through the real command tree against the fake Discord API, and
how channel, thread and server scopes limit retrieval."""

from __future__ import annotations

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


@pytest.fixture
async def harness(tmp_path):
    h = await start_harness(tmp_path)
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


@pytest.mark.parametrize("how", ["role", "permission", "user list"])
async def test_admins_by_role_permission_or_user_list(tmp_path, how):
    h = await start_harness(tmp_path, discord_admin_users=[BOB["id"]] if how == "user list" else [])
    try:
        kwargs = {"role": dict(roles=[ADMIN_ROLE_ID]), "permission": dict(permissions=MANAGE_GUILD),
                  "user list": {}}[how]
        await h.interact(admin("status", user=BOB, **kwargs))
        assert last_reply(h)["content"].startswith("**kbot status**")
    finally:
        await h.close()


# --- /kbot status ----------------------------------------------------------------------------------
async def test_status_reports_counts_and_this_channels_scopes(harness):
    await harness.interact(ask("What is the VPN server address?"))
    await harness.interact(admin("status", permissions=MANAGE_GUILD))
    acks = harness.fake.requests("POST", r"/interactions/\d+/[^/]+/callback")
    assert acks[-1].body == {"type": 5, "data": {"flags": 64}}  # deferred, ephemeral
    text = last_reply(harness)["content"]
    assert "Answers: 1" in text and "Adapter: none (base model)" in text
    assert "Scopes here: default (default scope)" in text


# --- /kbot scope -----------------------------------------------------------------------------------
async def test_scope_limits_what_the_channel_searches(harness):
    await harness.interact(admin("scope", [option("scopes", "hr")], permissions=MANAGE_GUILD))
    assert harness.runtime.store.channel_scopes("discord", CHANNEL_ID) == ["hr"]
    assert "now search: hr" in last_reply(harness)["content"]

    await harness.interact(ask("How long is parental leave?"))
    assert harness.retriever.calls[-1][1] == ("hr",)
    [embed] = harness.fake.requests("POST", WEBHOOK)[-1].body["embeds"]
    assert "sixteen weeks" in embed["fields"][0]["value"]
    await harness.interact(ask("How long is parental leave?", channel=text_channel(snowflake())))
    assert harness.retriever.calls[-1][1] == ("default",)  # other channels are unaffected


async def test_server_wide_scope_applies_to_every_channel(harness):
    await harness.interact(admin("scope", [option("scopes", "hr, default"), option("server_wide", True, 5)],
                                 permissions=MANAGE_GUILD))
    assert harness.runtime.store.channel_scopes("discord", f"guild:{GUILD_ID}") == ["hr", "default"]
    await harness.interact(ask("How long is parental leave?", channel=text_channel(snowflake())))
    assert harness.retriever.calls[-1][1] == ("hr", "default")


async def test_invalid_scope_names_get_a_clear_message(harness):
    await harness.interact(admin("scope", [option("scopes", "hr, ../etc")], permissions=MANAGE_GUILD))
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
    await harness.interact(admin("ingest", [opt, option("scope", "hr")], permissions=MANAGE_GUILD,
                                 resolved=resolved))
    assert harness.ingestor.files == [("handbook.md", body, "hr", "discord:handbook.md")]
    assert "`handbook.md` into scope `hr`: 1 added" in last_reply(harness)["content"]


async def test_ingest_a_url_names_the_file_from_its_content_type(harness):
    harness.fake.files["handbook"] = (b"<html><body>The office opens at nine.</body></html>", "text/html")
    url = harness.fake.file_url("handbook")
    await harness.interact(admin("ingest", [option("url", url)], permissions=MANAGE_GUILD))
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
    await harness.interact(admin("ingest", options, permissions=MANAGE_GUILD, resolved=resolved))
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
