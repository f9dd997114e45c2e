"""deploy/slack-manifest.yml asks for exactly the scopes, events, commands and interactivity the code
uses: the code declares what it uses (bot.channels.slack.app), and a run through every feature against the fake
Slack API checks that declaration against the Web API methods actually called."""

from __future__ import annotations

import json

import yaml

from bot.channels.slack.app import (
    API_METHOD_SCOPES,
    BOT_EVENTS,
    COMMAND_SCOPES,
    EVENT_SCOPES,
    EVENTS_PATH,
    SLASH_COMMANDS,
)
from bot.channels.slack.render import ACTION_CORRECT, ACTION_RETRY, ACTION_SHARE, CORRECTION_BLOCK, CORRECTION_INPUT
from tests.channels.slack.fake_api import BOT_USER_ID, FakeSlackAPI, SlackHarness, mention_event
from tests.conftest import ROOT

MANIFEST = ROOT / "deploy" / "slack-manifest.yml"


def test_manifest_matches_what_the_code_uses():
    manifest = yaml.safe_load(MANIFEST.read_text())
    needed = {s for scopes in API_METHOD_SCOPES.values() for s in scopes}
    needed |= {EVENT_SCOPES[e] for e in BOT_EVENTS} | set(COMMAND_SCOPES)
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed
    assert "user" not in manifest["oauth_config"]["scopes"]
    settings = manifest["settings"]
    assert tuple(settings["event_subscriptions"]["bot_events"]) == BOT_EVENTS
    assert settings["interactivity"]["is_enabled"] is True
    commands = manifest["features"]["slash_commands"]
    assert tuple(c["command"] for c in commands) == SLASH_COMMANDS
    urls = [settings["event_subscriptions"]["request_url"], settings["interactivity"]["request_url"]]
    assert all(u.endswith(EVENTS_PATH) for u in urls + [c["url"] for c in commands])
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True  # people can DM the bot


def test_every_web_api_method_the_bot_calls_is_declared(tmp_path):
    with FakeSlackAPI() as api:
        slack = SlackHarness(tmp_path, api, slack_admins=["UADMIN"])
        try:
            first = api.user_message(
                "C1", f"<@{BOT_USER_ID}> what is the VPN server address?", channel_type="channel"
            )
            slack.send_event(mention_event(first))
            slack.settle()
            slack.send_event(
                api.user_message("C1", "and for it?", thread_ts=first["ts"], channel_type="channel")
            )
            slack.send_event(api.user_message("D1", "what is the VPN server address?", channel_type="im"))
            slack.send_command("/ask", "what is the VPN server address?", response_url=api.response_url())
            slack.settle()
            answer_id = slack.store.list_answers()[0].id
            slack.send_action(ACTION_CORRECT, answer_id)
            slack.send_action(ACTION_SHARE, answer_id, ephemeral=True)
            slack.send_action(ACTION_RETRY, answer_id)
            value = {CORRECTION_BLOCK: {CORRECTION_INPUT: {"type": "plain_text_input", "value": "fixed"}}}
            slack.send_view(json.dumps({"answer_id": answer_id, "channel_id": "C1"}), value)
            api.files["F1"] = ("a.md", b"# A")
            slack.send_event(
                api.user_message(
                    "D2", "", user="UADMIN", channel_type="im", subtype="file_share", files=[{"id": "F1"}]
                )
            )
            slack.settle()
        finally:
            slack.close()
    called = {c.method for c in api.calls} - {"response_url", "file_download"}
    assert {
        "chat.postMessage",
        "chat.update",
        "conversations.replies",
        "conversations.history",
        "views.open",
        "chat.postEphemeral",
        "files.info",
    } <= called
    assert called <= set(API_METHOD_SCOPES), called - set(API_METHOD_SCOPES)
