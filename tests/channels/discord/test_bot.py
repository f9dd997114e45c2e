"""The Discord bot's conversations, driven through discord.py's own gateway parsers against a fake
Discord REST API: /ask, mentions and threads, DMs, feedback buttons and the correction modal,
and the reliability rules (3-second acknowledgement, token window, de-duplication, 429s, failures)."""

from __future__ import annotations

import asyncio

import pytest

from tests.channels.discord.fake_api import (
    ALICE,
    APP_ID,
    BOB,
    BOT_ID,
    BOT_USER,
    CHANNEL_ID,
    GUILD_ID,
    VPN_QUESTION,
    Harness,
    ask,
    button_click,
    custom_ids,
    deliver_interaction,
    dm_channel,
    message,
    minutes_ago,
    modal_submit,
    response_message,
    settle,
    snowflake,
    start_harness,
    thread_channel,
)

WEBHOOK = rf"/webhooks/{APP_ID}/itoken-\d+"
CALLBACK = r"/interactions/\d+/[^/]+/callback"


@pytest.fixture
async def harness(tmp_path):
    h = await start_harness(tmp_path)
    yield h
    await h.close()


def assert_never_pings(h: Harness) -> None:
    posted = h.fake.requests("POST", r"/(channels/\d+/messages|webhooks/.*)", status=None)
    posted += h.fake.requests("PATCH", r"/webhooks/.*", status=None)
    assert posted
    for call in posted:
        assert call.body["allowed_mentions"] == {"parse": []}, call


async def asked(h: Harness, question: str = VPN_QUESTION, **kwargs) -> tuple[dict, dict, str]:
    """Ask with /ask; returns the interaction payload, the follow-up body and the answer id."""
    payload = ask(question, **kwargs)
    await h.interact(payload)
    [post] = h.fake.requests("POST", rf"/webhooks/{APP_ID}/itoken-{payload['id']}")
    return payload, post.body, h.runtime.store.list_answers()[-1].id


# --- start ------------------------------------------------------------------------------------------
async def test_login_syncs_commands_globally(harness):
    [sync] = harness.fake.requests("PUT", rf"/applications/{APP_ID}/commands")
    commands = {c["name"]: c for c in sync.body}
    assert set(commands) == {"ask", "kbot"}
    assert {o["name"] for o in commands["kbot"]["options"]} == {"ingest", "status", "scope"}
    assert commands["ask"]["options"][0]["name"] == "question"


async def test_login_syncs_commands_to_the_configured_guild(tmp_path):
    h = await start_harness(tmp_path, discord_guild_id=int(GUILD_ID))
    try:
        [sync] = h.fake.requests("PUT", rf"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
        assert {c["name"] for c in sync.body} == {"ask", "kbot"}
        assert not h.fake.requests("PUT", rf"/applications/{APP_ID}/commands")
    finally:
        await h.close()


# --- /ask -------------------------------------------------------------------------------------------
async def test_ask_defers_then_follows_up_with_sources_and_feedback_buttons(harness):
    payload, body, answer_id = await asked(harness)
    callback, followup = [c for c in harness.fake.calls if c.method == "POST"]
    assert callback.path == f"/interactions/{payload['id']}/{payload['token']}/callback"
    assert callback.body["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, before anything else
    assert followup.path.startswith("/webhooks/") and followup.at >= callback.at
    assert body["content"] == "The VPN server address is vpn.example.com [1]."
    [embed] = body["embeds"]
    assert embed["fields"][0]["name"] == "[1] VPN guide · Setup"
    assert "vpn.example.com" in embed["fields"][0]["value"]
    assert custom_ids(body) == [f"kbot:vote:up:{answer_id}", f"kbot:vote:down:{answer_id}",
                                f"kbot:fix:{answer_id}"]
    row = harness.runtime.store.get_answer(answer_id)
    assert (row.platform, row.user_id, row.channel_id, row.question) == ("discord", ALICE["id"], CHANNEL_ID,
                                                                         VPN_QUESTION)
    assert row.mode == "generated" and row.scopes == ["default"]
    assert_never_pings(harness)


async def test_ask_is_acknowledged_at_once_while_the_model_is_slow(tmp_path):
    # Seven words at 0.25 s each: every answer takes 1.75 s, and the model answers one at a time.
    h = await start_harness(tmp_path, generator_delay=0.25)
    try:
        first, second = ask(VPN_QUESTION), ask("Which port does the VPN use?")
        deliver_interaction(h.bot, h.fake, first)
        while not h.generator.prompts:  # wait until the model is busy with the first question
            await asyncio.sleep(0.01)
        deliver_interaction(h.bot, h.fake, second)
        await settle()
        defers = h.fake.requests("POST", CALLBACK)
        answers = h.fake.requests("POST", WEBHOOK)
        assert [c.path.split("/")[2] for c in defers] == [first["id"], second["id"]] and len(answers) == 2
        # The second question was acknowledged while the first was still being generated: the
        # engine runs in a worker thread and never blocks the event loop (or the gateway heartbeat).
        assert defers[1].at < min(c.at for c in answers)
    finally:
        await h.close()


async def test_answer_after_the_token_window_goes_to_the_channel(harness):
    payload = ask(VPN_QUESTION, created=minutes_ago(16))
    await harness.interact(payload)
    assert not harness.fake.requests("POST", WEBHOOK, status=None)
    [post] = harness.fake.requests("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert post.body["content"].startswith(f"<@{ALICE['id']}> asked: {VPN_QUESTION}\n")
    assert "vpn.example.com" in post.body["content"]
    assert custom_ids(post.body)[0].startswith("kbot:vote:up:")
    assert_never_pings(harness)


async def test_refused_follow_up_token_falls_back_to_a_channel_message(harness):
    harness.fake.fail("POST", WEBHOOK, 401, {"message": "Invalid Webhook Token", "code": 50027})
    await harness.interact(ask(VPN_QUESTION))
    assert len(harness.fake.requests("POST", WEBHOOK, status=401)) == 1
    [post] = harness.fake.requests("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert "vpn.example.com" in post.body["content"]


async def test_rate_limited_follow_up_is_retried_and_posted_once(harness):
    harness.fake.rate_limit("POST", WEBHOOK)
    await harness.interact(ask(VPN_QUESTION))
    attempts = harness.fake.requests("POST", WEBHOOK, status=None)
    assert [c.status for c in attempts] == [429, 200]
    assert harness.runtime.store.count_answers() == 1


async def test_failed_retrieval_apologises_keeps_the_question_and_retries(harness):
    harness.retriever.error = RuntimeError("vector store unreachable")
    payload = ask(VPN_QUESTION)
    await harness.interact(payload)
    [post] = harness.fake.requests("POST", WEBHOOK)
    assert post.body["content"].startswith("Sorry")
    [retry_id] = custom_ids(post.body)
    failed_id = retry_id.removeprefix("kbot:retry:")
    row = harness.runtime.store.get_answer(failed_id)
    assert row.mode == "error" and row.question == VPN_QUESTION

    harness.retriever.error = None
    await harness.interact(button_click(retry_id, response_message(post)))
    [click_ack] = harness.fake.requests("POST", CALLBACK)[1:]
    assert click_ack.body["type"] == 6  # DEFERRED_UPDATE_MESSAGE: the apology is edited in place
    [edit] = harness.fake.requests("PATCH", rf"{WEBHOOK}/messages/@original")
    assert "vpn.example.com" in edit.body["content"]
    new_id = harness.runtime.store.list_answers()[-1].id
    assert new_id != failed_id and custom_ids(edit.body)[0] == f"kbot:vote:up:{new_id}"

    # A second click on the same retry button does not ask again.
    await harness.interact(button_click(retry_id, response_message(post), user=BOB))
    assert harness.runtime.store.count_answers() == 2
    assert "already" in harness.fake.requests("POST", WEBHOOK)[-1].body["content"]


async def test_generation_failure_still_answers_from_the_evidence(harness):
    harness.generator.error = RuntimeError("model crashed")
    _, body, answer_id = await asked(harness)
    assert "vpn.example.com" in body["content"]
    assert harness.runtime.store.get_answer(answer_id).mode == "extractive"


async def test_unexpected_engine_error_gets_a_short_apology(harness, monkeypatch):
    def broken_log(**fields):
        raise KeyError("bug")

    monkeypatch.setattr(harness.runtime.store, "log_answer", broken_log)  # a bug past the engine's guards
    harness.expect_errors = True  # logged with its traceback for the operator
    await harness.interact(ask(VPN_QUESTION))
    [post] = harness.fake.requests("POST", WEBHOOK)
    assert post.body["content"].startswith("Sorry, something went wrong") and not custom_ids(post.body)
    assert [r.name for r in harness.errors.records] == ["bot.channels.discord.conversation"]


async def test_long_answers_are_cut_with_a_link_to_the_full_answer(harness):
    harness.generator.reply = " ".join(["The VPN server address is vpn.example.com [1]."] * 80)
    _, body, answer_id = await asked(harness)
    assert len(body["content"]) <= 2000
    assert body["content"].endswith(f"Full answer: <http://kbot.test/answers/{answer_id}>")


# --- feedback -----------------------------------------------------------------------------------------
async def test_votes_work_after_a_restart_and_count_once_per_user(harness):
    _, body, answer_id = await asked(harness)
    [post] = harness.fake.requests("POST", WEBHOOK)
    msg = response_message(post)
    await harness.restart()  # only the custom ids on Discord's message remain

    await harness.interact(button_click(f"kbot:vote:up:{answer_id}", msg, user=ALICE))
    await harness.interact(button_click(f"kbot:vote:down:{answer_id}", msg, user=ALICE))
    await harness.interact(button_click(f"kbot:vote:up:{answer_id}", msg, user=BOB))

    votes = {(f.user_id, f.vote, f.platform) for f in harness.runtime.store.list_feedback()}
    assert votes == {(ALICE["id"], -1, "discord"), (BOB["id"], 1, "discord")}
    acks = harness.fake.requests("POST", CALLBACK)[1:]
    assert [c.body["type"] for c in acks] == [6, 6, 6]
    receipts = harness.fake.requests("POST", WEBHOOK)[1:]
    assert len(receipts) == 3 and all(c.body["flags"] == 64 for c in receipts)  # ephemeral
    assert receipts[0].body["content"].startswith("Thanks")


async def test_vote_on_an_unknown_answer_says_so_and_stores_nothing(harness):
    _, body, _ = await asked(harness)
    msg = response_message(harness.fake.requests("POST", WEBHOOK)[0])
    unknown = "f" * 32
    msg["components"][0]["components"][0]["custom_id"] = f"kbot:vote:up:{unknown}"
    await harness.interact(button_click(f"kbot:vote:up:{unknown}", msg))
    assert "can't find" in harness.fake.requests("POST", WEBHOOK)[-1].body["content"]
    assert harness.runtime.store.list_feedback() == []


async def test_correction_modal_is_saved_for_review_even_after_a_restart(harness):
    _, _, answer_id = await asked(harness)
    msg = response_message(harness.fake.requests("POST", WEBHOOK)[0])
    await harness.interact(button_click(f"kbot:fix:{answer_id}", msg))
    modal = harness.fake.requests("POST", CALLBACK)[-1].body
    assert modal["type"] == 9 and modal["data"]["custom_id"] == f"kbot:correction:{answer_id}"
    assert "correction" in str(modal["data"]["components"])

    await harness.restart()  # the modal object is gone; the submit must still be understood
    text = "The address changed to vpn2.example.com in May."
    submit = modal_submit(f"kbot:correction:{answer_id}", {"correction": text}, user=BOB, msg=msg)
    await harness.interact(submit)
    [row] = harness.runtime.store.list_feedback(correction_status="pending")
    assert (row.answer_id, row.user_id, row.correction, row.vote) == (answer_id, BOB["id"], text, 0)
    ack = harness.fake.requests("POST", CALLBACK)[-1].body
    assert ack == {"type": 5, "data": {"flags": 64}}
    assert "saved" in harness.fake.requests("POST", WEBHOOK)[-1].body["content"]


async def test_correction_submitted_without_restart_is_answered_once(harness):
    _, _, answer_id = await asked(harness)
    msg = response_message(harness.fake.requests("POST", WEBHOOK)[0])
    await harness.interact(button_click(f"kbot:fix:{answer_id}", msg))
    submit = modal_submit(f"kbot:correction:{answer_id}", {"correction": "Use vpn2."}, msg=msg)
    await harness.interact(submit)
    assert len(harness.fake.requests("POST", rf"/interactions/{submit['id']}/.*", status=None)) == 1
    assert [f.correction for f in harness.runtime.store.list_feedback()] == ["Use vpn2."]


async def test_blank_correction_is_refused(harness):
    _, _, answer_id = await asked(harness)
    await harness.interact(modal_submit(f"kbot:correction:{answer_id}", {"correction": "   "}))
    assert harness.runtime.store.list_feedback() == []
    assert "empty" in harness.fake.requests("POST", WEBHOOK)[-1].body["content"]


# --- mentions, threads, DMs ------------------------------------------------------------------------------
def mention(text: str = VPN_QUESTION, **kwargs) -> dict:
    return message(f"<@{BOT_ID}> {text}", mentions=[BOT_USER], **kwargs)


async def test_mention_opens_a_thread_and_answers_in_it(harness):
    payload = mention()
    await harness.say(payload)
    threads = rf"/channels/{CHANNEL_ID}/messages/{payload['id']}/threads"
    [opened] = harness.fake.requests("POST", threads, status=201)
    assert opened.body["name"] == VPN_QUESTION
    thread_id = payload["id"]  # a thread started on a message has that message's id
    assert harness.fake.requests("POST", rf"/channels/{thread_id}/typing", status=204)
    [post] = harness.fake.requests("POST", rf"/channels/{thread_id}/messages")
    assert "vpn.example.com" in post.body["content"] and len(custom_ids(post.body)) == 3
    row = harness.runtime.store.list_answers()[-1]
    assert (row.channel_id, row.thread_id, row.question) == (CHANNEL_ID, thread_id, VPN_QUESTION)
    assert_never_pings(harness)


async def test_follow_up_in_the_bots_thread_needs_no_mention_and_uses_the_thread(harness):
    first = mention()
    await harness.say(first)
    thread_id = first["id"]
    harness.add_thread(thread_channel(thread_id, owner_id=BOT_ID, name=VPN_QUESTION))
    answer = harness.fake.requests("POST", rf"/channels/{thread_id}/messages")[0].response
    harness.fake.history[thread_id] = [answer]  # what GET /channels/{thread}/messages returns, newest first
    harness.fake.messages[thread_id] = first  # the thread's starter message, in the parent channel

    harness.generator.reply = "The VPN uses port 443 over TCP [1]."
    follow_up = message("Which port does it use?", channel_id=thread_id)
    await harness.say(follow_up)
    [history] = harness.fake.requests("GET", rf"/channels/{thread_id}/messages")
    assert history.query["before"] == follow_up["id"]
    # The follow-up was condensed with the first question found through the thread's history.
    assert harness.retriever.calls[-1][0] == f"{VPN_QUESTION} Which port does it use?"
    posts = harness.fake.requests("POST", rf"/channels/{thread_id}/messages")
    assert len(posts) == 2 and "443" in posts[-1].body["content"]
    assert harness.runtime.store.list_answers()[-1].thread_id == thread_id


async def test_messages_not_meant_for_the_bot_are_ignored(harness):
    other_thread = snowflake()
    harness.add_thread(thread_channel(other_thread, owner_id=ALICE["id"]))
    ignored = [
        message(VPN_QUESTION),  # no mention in a channel
        message(VPN_QUESTION, channel_id=other_thread),  # someone else's thread
        message(f"<@{BOT_ID}> {VPN_QUESTION}", mentions=[BOT_USER], author=dict(BOB, bot=True)),  # a bot
        mention(msg_type=7),  # a system message (member join)
    ]
    await harness.say(*ignored)
    assert harness.fake.requests("POST", status=None) == []
    assert harness.runtime.store.count_answers() == 0
    # Nothing was even claimed: ignored chatter writes nothing to the store.
    assert all(harness.runtime.store.claim_event(f"discord:message:{m['id']}") for m in ignored)


async def test_bare_mention_gets_a_hint(harness):
    await harness.say(message(f"<@{BOT_ID}>", mentions=[BOT_USER]))
    [post] = harness.fake.requests("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert "/ask" in post.body["content"]
    assert harness.runtime.store.count_answers() == 0


async def test_without_thread_replies_the_bot_replies_in_the_channel(tmp_path):
    h = await start_harness(tmp_path, discord_thread_replies=False)
    try:
        payload = mention()
        await h.say(payload)
        assert not h.fake.requests("POST", r".*/threads", status=None)
        [post] = h.fake.requests("POST", rf"/channels/{CHANNEL_ID}/messages")
        assert str(post.body["message_reference"]["message_id"]) == payload["id"]
        assert "vpn.example.com" in post.body["content"]
        assert h.runtime.store.list_answers()[-1].thread_id == ""
    finally:
        await h.close()


async def test_thread_refused_falls_back_to_a_reply(harness):
    harness.fake.fail("POST", r".*/threads", 403, {"message": "Missing Permissions", "code": 50013})
    payload = mention()
    await harness.say(payload)
    [post] = harness.fake.requests("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert str(post.body["message_reference"]["message_id"]) == payload["id"]


async def test_every_direct_message_is_a_question(harness):
    dm = dm_channel(snowflake(), ALICE)["id"]
    payload = message(VPN_QUESTION, channel_id=dm, guild_id=None)
    await harness.say(payload)
    [post] = harness.fake.requests("POST", rf"/channels/{dm}/messages")
    assert "vpn.example.com" in post.body["content"]
    row = harness.runtime.store.list_answers()[-1]
    assert (row.channel_id, row.thread_id, row.scopes) == (dm, "", ["default"])


async def test_a_message_delivered_twice_or_replayed_after_resume_is_answered_once(harness):
    payload = mention()
    # Two deliveries at once (the listener runs concurrently), then a replay after a reconnect.
    deliver = harness.bot._connection.parse_message_create
    deliver(payload)
    deliver(payload)
    await settle()
    await harness.restart()
    await harness.say(payload)
    assert len(harness.fake.requests("POST", r".*/threads", status=None)) == 1
    assert len(harness.fake.requests("POST", r"/channels/\d+/messages")) == 1
    assert harness.runtime.store.count_answers() == 1


async def test_rate_limited_channel_message_is_posted_once(harness):
    payload = mention()
    harness.fake.rate_limit("POST", rf"/channels/{payload['id']}/messages")
    await harness.say(payload)
    attempts = harness.fake.requests("POST", rf"/channels/{payload['id']}/messages", status=None)
    assert [c.status for c in attempts] == [429, 200]


async def test_failed_answer_to_a_mention_offers_a_retry(harness):
    harness.retriever.error = RuntimeError("vector store unreachable")
    payload = mention()
    await harness.say(payload)
    [post] = harness.fake.requests("POST", rf"/channels/{payload['id']}/messages")
    assert post.body["content"].startswith("Sorry") and custom_ids(post.body)[0].startswith("kbot:retry:")
    assert harness.runtime.store.list_answers()[0].mode == "error"
