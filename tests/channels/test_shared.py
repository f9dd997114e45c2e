"""The rules Slack, Discord and the web share (bot/channels/shared.py): each test runs one rule through
all three real adapters (Slack over signed HTTP against the fake Web API, Discord through the command
tree against the fake REST API, the web through FastAPI) and checks they behave the same."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bot.channels import shared
from bot.channels.slack.render import ACTION_RETRY, ACTION_VOTE_UP
from bot.channels.web.app import create_app
from bot.core.errors import InvalidScope, QuestionRejected
from bot.core.types import Feedback
from bot.wiring import Runtime
from knowledge.accounts import Accounts
from tests.channels.discord.fake_api import (
    ALICE,
    APP_ID,
    BOT_ID,
    BOT_USER,
    admin,
    ask,
    button_click,
    message,
    start_harness,
)
from tests.channels.slack.fake_api import BOT_USER_ID, FakeSlackAPI, SlackHarness, mention_event
from tests.channels.web.helpers import PASSWORD, sign_in
from tests.conftest import make_settings
from tests.fakes import VPN_CHUNK as VPN
from tests.fakes import FakeEmbedder, FakeGenerator, FakeRetriever

LIMIT = 60
LONG = "Please tell me " + "really " * 20 + "what the VPN portal address is?"
QUESTION = "What is the VPN portal address?"
WEBHOOK = rf"/webhooks/{APP_ID}/itoken-\d+"


def too_long_text() -> str:
    with pytest.raises(QuestionRejected) as exc:
        shared.check_question(LONG, make_settings("/tmp", max_question_chars=LIMIT))
    return str(exc.value)


@pytest.fixture
def api():
    with FakeSlackAPI() as fake:
        yield fake


def web_client(tmp_path, **settings) -> tuple[TestClient, Runtime, FakeGenerator]:
    """The web app, signed in as alice."""
    generator = FakeGenerator("The VPN portal address is vpn.acme.example [1].")
    rt = Runtime(make_settings(tmp_path, trusted_hosts=["testserver"], **settings), index=FakeRetriever([VPN]),
                 generator=generator, embedder=FakeEmbedder())
    Accounts(rt.store).add_local("alice", PASSWORD)
    return sign_in(TestClient(create_app(rt)), "alice"), rt, generator


def bot_message(custom_id: str) -> dict:
    """A message of the bot's carrying one button (what a click on it is delivered with)."""
    button = {"type": 2, "style": 2, "label": "button", "custom_id": custom_id}
    return message("an earlier answer", author=BOT_USER, components=[{"type": 1, "components": [button]}])


def slack_replies(api: FakeSlackAPI) -> list[str]:
    return [c.args.get("text", "") for c in api.calls if c.method in ("chat.postMessage", "response_url")]


# --- unit: the rules themselves ------------------------------------------------------------------------
def test_scope_names_and_lists():
    assert shared.parse_scopes(" hr,it  hr ") == ["hr", "it"]
    assert shared.check_scope("eng.platform_2-x") == "eng.platform_2-x"
    for bad in ["", " , ", "a b c d e f g h i j k", "héllo", "../etc", "-lead", "x" * 65]:
        with pytest.raises(InvalidScope):
            shared.parse_scopes(bad)


def test_question_limits_come_from_settings(tmp_path):
    settings = make_settings(tmp_path, max_question_chars=10)
    assert shared.check_question("  short?  ", settings) == "short?"
    with pytest.raises(QuestionRejected, match="Ask me a question"):
        shared.check_question("   ", settings)
    with pytest.raises(QuestionRejected, match="11 characters long; the limit is 10"):
        shared.check_question("x" * 11, settings)


def test_safe_filename_cannot_escape_the_folder():
    assert shared.safe_filename("../../etc/passwd") == "passwd"
    assert shared.safe_filename("..\\..\\boot.ini") == "boot.ini"
    assert shared.safe_filename("Q3 report (final).pdf") == "Q3_report_final_.pdf"
    assert shared.safe_filename("...") == "document"


def test_retry_re_asks_the_standalone_query(store):
    answer_id = store.log_answer(question="and its client?", standalone_query="VPN portal and its client?",
                                 mode="error")
    assert shared.retry_text(store.get_answer(answer_id)) == "VPN portal and its client?"


# --- one rule, three channels ----------------------------------------------------------------------------
async def test_question_length_rule_is_the_same_everywhere(tmp_path, api):
    expected = too_long_text()
    slack = SlackHarness(tmp_path / "s", api, max_question_chars=LIMIT)
    try:
        msg = api.user_message("C1", f"<@{BOT_USER_ID}> {LONG}", channel_type="channel")
        slack.send_event(mention_event(msg))
        acked = slack.send_command("/ask", LONG, response_url=api.response_url()).json()["text"]
        slack.settle()
        assert slack.store.count_answers() == 0
    finally:
        slack.close()
    assert slack_replies(api) == [expected] and acked == expected  # the mention's reply, /ask's ack

    discord = await start_harness(tmp_path / "d", max_question_chars=LIMIT)
    try:
        await discord.interact(ask(LONG))
        await discord.say(message(f"<@{BOT_ID}> {LONG}", mentions=[BOT_USER]))
        posted = [c.body.get("content") for c in discord.fake.requests("POST", r"/(webhooks|channels)/.*")]
        assert posted.count(expected) == 2 and discord.runtime.store.count_answers() == 0
    finally:
        await discord.close()

    web, rt, _ = web_client(tmp_path / "w", max_question_chars=LIMIT)
    resp = web.post("/api/ask", json={"question": LONG})
    assert resp.status_code == 413 and resp.json()["detail"] == expected and rt.store.count_answers() == 0


async def test_scope_name_rule_is_the_same_everywhere(tmp_path, api):
    with pytest.raises(InvalidScope) as exc:
        shared.check_scope("bad!name")
    expected = str(exc.value)
    slack = SlackHarness(tmp_path / "s", api, slack_admins=["UADMIN"])
    try:
        resp = slack.send_command("/kbot", "scope bad!name", user="UADMIN", channel="C9",
                                  response_url=api.response_url())
        assert expected in resp.json()["text"] and slack.store.channel_scopes("slack", "C9") is None
    finally:
        slack.close()

    discord = await start_harness(tmp_path / "d", discord_admin_users=[ALICE["id"]])
    try:
        await discord.interact(admin("scope", [{"type": 3, "name": "scopes", "value": "bad!name"}]))
        reply = discord.fake.requests("POST", r"/interactions/\d+/[^/]+/callback")[-1].body["data"]["content"]
        assert reply == expected
    finally:
        await discord.close()

    web, _, _ = web_client(tmp_path / "w")
    resp = web.get("/api/docs", params={"scope": "bad!name"})
    assert resp.status_code == 422 and resp.json()["detail"] == expected


async def test_deduplication_fails_open_everywhere(tmp_path, api, monkeypatch):
    """When the store cannot say whether a delivery was seen, every channel answers it."""

    def store_down(self, key):
        raise ConnectionError("database unavailable")

    from knowledge.store import Store

    monkeypatch.setattr(Store, "claim_event", store_down)
    slack = SlackHarness(tmp_path / "s", api)
    try:
        msg = api.user_message("C1", f"<@{BOT_USER_ID}> {QUESTION}", channel_type="channel")
        slack.send_event(mention_event(msg))
        slack.settle()
        assert slack.store.count_answers() == 1
    finally:
        slack.close()

    discord = await start_harness(tmp_path / "d")
    discord.expect_errors = True  # the failed claim is logged for the operator
    try:
        await discord.interact(ask(QUESTION))
        assert discord.runtime.store.count_answers() == 1
        assert "vpn" in discord.fake.requests("POST", WEBHOOK)[-1].body["content"].lower()
    finally:
        await discord.close()

    web, rt, _ = web_client(tmp_path / "w")
    resp = web.post("/api/ask", json={"question": QUESTION}, headers={"Idempotency-Key": "k1"})
    assert resp.status_code == 200 and rt.store.count_answers() == 1


async def test_feedback_on_an_unknown_answer_is_the_same_everywhere(tmp_path, api):
    unknown = "f" * 32
    expected = shared.UNKNOWN_ANSWER_TEXT
    slack = SlackHarness(tmp_path / "s", api)
    try:
        slack.send_action(ACTION_VOTE_UP, unknown)
        slack.settle()
        assert slack.store.list_feedback() == []
    finally:
        slack.close()
    assert [c.args["text"] for c in api.of("response_url")] == [expected]

    discord = await start_harness(tmp_path / "d")
    try:
        msg = bot_message(f"kbot:vote:up:{unknown}")
        await discord.interact(button_click(f"kbot:vote:up:{unknown}", msg))
        assert discord.fake.requests("POST", WEBHOOK)[-1].body["content"] == expected
        assert discord.runtime.store.list_feedback() == []
    finally:
        await discord.close()

    web, rt, _ = web_client(tmp_path / "w")
    resp = web.post("/api/feedback", json={"answer_id": unknown, "vote": 1})
    assert resp.status_code == 404 and resp.json()["detail"] == expected and rt.store.list_feedback() == []


async def test_retry_re_asks_the_same_thing_everywhere(tmp_path, api):
    """A retry re-asks the failed answer's stored standalone query (it already folds in the thread the
    first attempt saw), with no history, on every channel."""
    standalone = "What is the VPN portal address for the Acme client?"

    def failed(store) -> str:
        return store.log_answer(question="and for the client?", standalone_query=standalone, mode="error",
                                platform="test", channel_id="C1")

    def asked(generator: FakeGenerator) -> str:
        return generator.prompts[-1][-1]["content"].rsplit("Question: ", 1)[1]

    slack = SlackHarness(tmp_path / "s", api)
    try:
        answer_id = failed(slack.store)
        slack.send_action(ACTION_RETRY, answer_id, message_ts="5.000001")
        slack.settle()
        assert asked(slack.generator) == standalone
        assert api.of("conversations.replies") == [] and api.of("conversations.history") == []
    finally:
        slack.close()

    discord = await start_harness(tmp_path / "d")
    try:
        answer_id = failed(discord.runtime.store)
        await discord.interact(button_click(f"kbot:retry:{answer_id}", bot_message(f"kbot:retry:{answer_id}")))
        assert asked(discord.generator) == standalone
    finally:
        await discord.close()

    web, rt, generator = web_client(tmp_path / "w")
    answer_id = failed(rt.store)
    resp = web.post("/api/ask", json={"retry_of": answer_id, "history": ["something else"]})
    assert resp.status_code == 200 and asked(generator) == standalone
    assert web.post("/api/ask", json={"retry_of": "0" * 32}).status_code == 404


def test_feedback_outcome_messages():
    up, down = Feedback("a", "u", vote=1), Feedback("a", "u", vote=-1)
    fix = Feedback("a", "u", correction="It is 5.")
    assert "👍" in shared.feedback_message(shared.FeedbackOutcome.RECORDED, up)
    assert "👎" in shared.feedback_message(shared.FeedbackOutcome.RECORDED, down)
    assert "review" in shared.feedback_message(shared.FeedbackOutcome.RECORDED, fix)
    assert shared.feedback_message(shared.FeedbackOutcome.FAILED, up) == shared.FEEDBACK_FAILED_TEXT


async def test_question_rate_is_polite_everywhere(tmp_path, api):
    """One question a minute: the second is answered with the same polite line (an ephemeral message in
    Slack and Discord, 429 with Retry-After on the web) and never reaches the engine."""
    slack = SlackHarness(tmp_path / "s", api, question_rate="1/minute")
    try:
        for _ in range(2):
            msg = api.user_message("C1", f"<@{BOT_USER_ID}> {QUESTION}", channel_type="channel")
            slack.send_event(mention_event(msg))
            slack.settle()
        acked = slack.send_command("/ask", QUESTION, response_url=api.response_url()).json()["text"]
        assert slack.store.count_answers() == 1
    finally:
        slack.close()
    [ephemeral] = api.of("chat.postEphemeral")
    assert ephemeral.args["text"].startswith("You're asking faster than I can keep up")
    assert ephemeral.args["user"] == "U1"
    assert acked.startswith("You're asking faster")

    discord = await start_harness(tmp_path / "d", question_rate="1/minute")
    try:
        await discord.interact(ask(QUESTION))
        await discord.interact(ask(QUESTION))
        last = discord.fake.requests("POST", WEBHOOK)[-1].body
        assert last["content"].startswith("You're asking faster") and last["flags"] == 64
        assert discord.runtime.store.count_answers() == 1
    finally:
        await discord.close()

    web, rt, _ = web_client(tmp_path / "w", question_rate="1/minute")
    assert web.post("/api/ask", json={"question": QUESTION}).status_code == 200
    limited = web.post("/api/ask", json={"question": QUESTION})
    assert limited.status_code == 429 and limited.headers["retry-after"].isdigit()
    assert limited.json()["detail"].startswith("You're asking faster") and rt.store.count_answers() == 1
