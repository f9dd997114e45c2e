"""Slack reliability and safety, each checked against the real Bolt app and a fake Slack Web API:
immediate acks while generating, exactly-once answers under retries and duplicate deliveries,
signature checks, 429 handling, no pings, ignoring bots, failure -> apology -> retry, streaming."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest

from bot.channels.slack.render import ACTION_RETRY, ACTION_VOTE_UP, APOLOGY, PLACEHOLDER
from bot.core.types import Chunk
from tests.channels.slack.fake_api import (
    BOT_ID,
    BOT_USER_ID,
    SIGNING_SECRET,
    FakeSlackAPI,
    SlackHarness,
    event_callback,
    mention_event,
    signed_headers,
)

QUESTION = "what is the VPN server address?"


@pytest.fixture
def api():
    with FakeSlackAPI() as fake:
        yield fake


def finals(api: FakeSlackAPI) -> list[dict]:
    return [
        c.args
        for c in api.of("chat.update")
        if any(b["type"] == "actions" for b in c.args.get("blocks") or [])
    ]


def mention(api: FakeSlackAPI, text: str = QUESTION, channel: str = "C1") -> dict:
    return mention_event(api.user_message(channel, f"<@{BOT_USER_ID}> {text}", channel_type="channel"))


def test_ack_is_immediate_even_while_another_answer_is_generating(tmp_path, api):
    slack = SlackHarness(tmp_path, api, delay=0.15)  # ~1 s per answer, one generation at a time
    try:
        assert slack.send_event(mention(api)).status_code == 200
        api.wait_for("chat.postMessage", 1)
        time.sleep(0.2)  # the first answer is now generating
        resp = slack.send_event(mention(api, "VPN server address please?"))
        assert resp.status_code == 200
        # The ack came back while the first answer was still generating (ordering, not a stopwatch).
        assert finals(api) == [], "the first answer should still be generating"
        api.wait_for("chat.postMessage", 2, timeout=2)  # the second placeholder appears at once too
        slack.settle()
    finally:
        slack.close()
    assert len(finals(api)) == 2 and slack.store.count_answers() == 2


def test_streamed_text_updates_the_placeholder_about_once_a_second(tmp_path, api):
    reply = "The VPN server address is vpn.example.com and the client is the company VPN client [1]"
    slack = SlackHarness(tmp_path, api, reply=reply, delay=0.2)  # 15 words: ~3 s of streaming
    try:
        slack.send_event(mention(api))
        slack.settle()
    finally:
        slack.close()
    updates = api.of("chat.update")
    partial, final = updates[:-1], updates[-1]
    assert 2 <= len(partial) <= 3
    assert all(not any(b["type"] == "actions" for b in u.args["blocks"]) for u in partial)
    assert partial[0].args["text"].startswith("The VPN server")
    placeholder_at = api.of("chat.postMessage")[0].at
    gaps = [b.at - a.at for a, b in zip([api.of("chat.postMessage")[0], *partial], partial, strict=False)]
    assert all(g >= 0.9 for g in gaps), gaps
    assert partial[0].at - placeholder_at >= 0.9
    assert "vpn.example.com" in final.args["text"]


def test_retries_and_duplicate_deliveries_give_exactly_one_answer(tmp_path, api):
    slack = SlackHarness(tmp_path, api)
    other_worker = SlackHarness(tmp_path, api, store=slack.store)  # a second process on the same database
    try:
        event = mention(api)
        body = event_callback(event, "Ev-1")
        message = {k: v for k, v in event.items() if k != "type"} | {
            "type": "message",
            "channel_type": "channel",
        }
        assert slack.send(body).status_code == 200
        assert slack.send(body, retry=1).status_code == 200  # Slack's retry: same event_id
        assert other_worker.send(body, retry=2).status_code == 200
        assert slack.send_event(message, "Ev-2").status_code == 200  # message.channels for the same post
        assert other_worker.send_event(message, "Ev-2").status_code == 200
        slack.settle()
        other_worker.settle()
    finally:
        slack.close()
        other_worker.close()
    assert len(api.of("chat.postMessage")) == 1
    assert len(finals(api)) == 1
    assert slack.store.count_answers() == 1


def test_forged_stale_and_malformed_signatures_are_refused_with_401(tmp_path, api):
    slack = SlackHarness(tmp_path, api)
    body = event_callback(mention(api))
    now = int(time.time())
    cases = {
        "forged": signed_headers(body, secret="not-the-secret"),
        "stale": signed_headers(body, timestamp=now - 600),
        "malformed timestamp": signed_headers(body, timestamp="12ab"),
        "unicode digits": signed_headers(body) | {"X-Slack-Request-Timestamp": "١٢٣".encode()},
        "missing": {"Content-Type": "application/json"},
    }
    try:
        for name, headers in cases.items():
            resp = slack.http.post("/slack/events", content=body.encode(), headers=headers)
            assert resp.status_code == 401, name
        raw = b"\xff\xfe{}"
        resp = slack.http.post("/slack/events", content=raw, headers=signed_headers("x"))
        assert resp.status_code == 401
        garbage = "{not json"
        assert slack.send(garbage).status_code == 400  # correctly signed, not parseable: 4xx, never 500
        challenge = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"})
        resp = slack.send(challenge)
        assert resp.status_code == 200 and "c-123" in resp.text
        slack.settle()
    finally:
        slack.close()
    assert api.of("chat.postMessage") == [] and slack.store.count_answers() == 0


def test_nothing_secret_or_private_is_logged_at_info(tmp_path, api, caplog):
    caplog.set_level(logging.INFO)
    slack = SlackHarness(tmp_path, api)
    secret_question = "what is the VPN server address for project zebrafish?"
    try:
        slack.send_event(mention(api, secret_question))
        body = event_callback(mention(api, "forged zebrafish"))
        slack.http.post("/slack/events", content=body.encode(), headers=signed_headers(body, secret="wrong"))
        slack.settle()
    finally:
        slack.close()
    assert finals(api) and "slack answer" in caplog.text
    for private in ("zebrafish", SIGNING_SECRET, "xoxb-test-token", "vpn.example.com"):
        assert private not in caplog.text


def test_rate_limited_posts_are_retried_after_retry_after_without_duplicates(tmp_path, api):
    api.rate_limited["chat.postMessage"] = 1
    api.rate_limited["chat.update"] = 1
    slack = SlackHarness(tmp_path, api)
    try:
        slack.send_event(mention(api))
        slack.settle()
    finally:
        slack.close()
    posts, updates = api.of("chat.postMessage"), api.of("chat.update")
    assert len(posts) == 2 and len(updates) == 2  # one 429 each, then one success each
    assert posts[1].at - posts[0].at >= 1.0 and updates[1].at - updates[0].at >= 1.0  # Retry-After: 1
    bot_messages = [m for m in api.messages["C1"] if m.get("bot_id") == BOT_ID]
    assert len(bot_messages) == 1 and "vpn.example.com" in bot_messages[0]["text"]


def test_long_answers_are_cut_to_slacks_limits_with_a_link_to_the_full_answer(tmp_path, api):
    long_reply = " ".join(["The VPN server address is vpn.example.com."] * 1500) + " [1]"  # ~64,000 chars
    slack = SlackHarness(tmp_path, api, reply=long_reply)
    try:
        slack.send_event(mention(api))
        slack.settle()
    finally:
        slack.close()
    [final] = finals(api)
    [row] = slack.store.list_answers()
    assert row.answer == long_reply.strip()  # the store keeps the whole answer for the web chat
    sections = [b["text"]["text"] for b in final["blocks"] if b["type"] == "section"]
    assert len(final["blocks"]) <= 50 and all(len(s) <= 3000 for s in sections)
    assert len(final["text"]) <= 40_000
    assert f"https://kbot.example.com/answers/{row.id}" in "".join(sections)


def test_own_messages_other_bots_and_edits_are_ignored(tmp_path, api):
    slack = SlackHarness(tmp_path, api)
    try:
        slack.send_event(mention(api))
        slack.settle()
        thread = api.of("chat.postMessage")[0].args["thread_ts"]
        noise = [
            {
                "type": "message",
                "channel": "C1",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "text": "my own answer",
                "ts": api.next_ts(),
                "thread_ts": thread,
                "channel_type": "channel",
            },
            {
                "type": "message",
                "subtype": "bot_message",
                "bot_id": "BOTHER",
                "channel": "D1",
                "text": "beep",
                "ts": api.next_ts(),
                "channel_type": "im",
            },
            {
                "type": "message",
                "user": "U9",
                "bot_id": "BOTHER",
                "channel": "D1",
                "text": "an app's user",
                "ts": api.next_ts(),
                "channel_type": "im",
            },
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": "D1",
                "hidden": True,
                "ts": api.next_ts(),
                "message": {"type": "message", "user": "U1", "text": "edited question?", "ts": "1.1"},
                "channel_type": "im",
            },
            {
                "type": "message",
                "subtype": "message_deleted",
                "channel": "D1",
                "hidden": True,
                "ts": api.next_ts(),
                "channel_type": "im",
            },
            {
                "type": "message",
                "subtype": "channel_join",
                "user": "U5",
                "channel": "C1",
                "text": "joined",
                "ts": api.next_ts(),
                "thread_ts": thread,
                "channel_type": "channel",
            },
        ]
        for event in noise:
            assert slack.send_event(event).status_code == 200
        slack.settle()
    finally:
        slack.close()
    assert len(api.of("chat.postMessage")) == 1 and slack.store.count_answers() == 1


def test_answers_never_ping_anyone_from_retrieved_text(tmp_path, api):
    chunk = Chunk(
        id="c1",
        score=0.9,
        source="notes.md",
        title="Notes <!here>",
        url="https://wiki/notes",
        text="The VPN server address is vpn.example.com <!channel> <!here> <@U999> @channel @here.",
    )
    slack = SlackHarness(tmp_path, api, chunks=[chunk], reply="I don't know.")  # -> quotes the chunk
    try:
        slack.send_event(mention(api))
        slack.settle()
    finally:
        slack.close()
    [row] = slack.store.list_answers()
    assert "<!channel>" in row.answer  # the evidence really did carry the pings
    for call in api.calls:
        if call.method.startswith("chat."):
            shown = json.dumps(call.args, ensure_ascii=False)
            assert not re.search(r"<!(channel|here|everyone)|<@U999", shown), call.method
            assert not re.search(r"(?<!\u200b)@(channel|here)\b", shown.replace("@\u200b", "")), call.method


def test_failure_shows_an_apology_with_a_retry_button_that_works(tmp_path, api):
    slack = SlackHarness(tmp_path, api, retriever_error=RuntimeError("index unavailable"))
    try:
        slack.send_event(mention(api))
        slack.settle()
        [apology] = api.of("chat.update")
        assert apology.args["text"] == APOLOGY
        [failed] = slack.store.list_answers()
        assert failed.mode == "error" and failed.question == QUESTION
        retry_value = {e["action_id"]: e["value"] for e in apology.args["blocks"][-1]["elements"]}
        assert retry_value == {ACTION_RETRY: failed.id}
        assert slack.send_action(ACTION_VOTE_UP, failed.id).status_code == 200  # feedback is still stored
        slack.retriever.error = None  # the index is back
        for _ in range(2):  # a double click answers once
            resp = slack.send_action(ACTION_RETRY, failed.id, message_ts=apology.args["ts"])
            assert resp.status_code == 200
        slack.settle()
    finally:
        slack.close()
    updates = [c.args for c in api.of("chat.update")]
    assert [u["ts"] for u in updates] == [apology.args["ts"]] * 3
    assert updates[1]["text"] == PLACEHOLDER and "vpn.example.com" in updates[2]["text"]
    assert [f.vote for f in slack.store.list_feedback()] == [1]
    assert [r.mode for r in slack.store.list_answers()] == ["error", "generated"]
