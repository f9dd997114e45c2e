"""Discord answers stream like Slack's: the follow-up (or the reply to a mention) shows the text so far
about once a second, then the final answer replaces it with its sources and buttons. Against the fake
Discord REST API, with a model that writes one word every 0.25 s."""

from __future__ import annotations

import pytest

from tests.channels.discord.fake_api import (
    APP_ID,
    BOT_USER,
    VPN_QUESTION,
    ask,
    custom_ids,
    message,
    start_harness,
)

LONG_REPLY = ("The VPN server address is vpn.example.com [1]. Use the corporate client to connect to it "
              "from every office and from home.")
WEBHOOK_MESSAGE = rf"/webhooks/{APP_ID}/itoken-\d+/messages/\d+"


@pytest.fixture
async def slow(tmp_path):
    h = await start_harness(tmp_path, generator_delay=0.25)
    h.generator.reply = LONG_REPLY
    yield h
    await h.close()


def partial_texts(calls) -> list[str]:
    return [c.body["content"] for c in calls if c.body["content"].endswith(" …")]


async def test_ask_follow_up_is_edited_with_partial_text_then_finalised(slow):
    payload = ask(VPN_QUESTION)
    await slow.interact(payload)
    [created] = slow.fake.requests("POST", rf"/webhooks/{APP_ID}/itoken-{payload['id']}")
    edits = slow.fake.requests("PATCH", WEBHOOK_MESSAGE)
    assert edits, "the follow-up was never edited"
    message_id = created.response["id"]
    assert all(e.path.endswith(f"/messages/{message_id}") for e in edits)  # one message, edited in place

    # partial updates: growing prefixes of the answer, without buttons or sources
    partials = [created, *edits[:-1]]
    texts = partial_texts(partials)
    assert len(texts) == len(partials) >= 2
    for earlier, later in zip(texts, texts[1:], strict=False):
        assert later.removesuffix(" …").startswith(earlier.removesuffix(" …").rstrip())
    assert all(LONG_REPLY.startswith(t.removesuffix(" …")) for t in texts)
    assert not any(custom_ids(c.body) or c.body.get("embeds") for c in partials)
    # about once a second, never faster
    times = [c.at for c in partials]
    assert all(b - a >= 0.9 for a, b in zip(times, times[1:], strict=False))

    # the final edit: the whole answer, its sources and the feedback buttons
    final = edits[-1]
    answer_id = slow.runtime.store.list_answers()[-1].id
    assert final.body["content"] == LONG_REPLY
    assert final.body["embeds"][0]["fields"][0]["name"] == "[1] VPN guide · Setup"
    assert custom_ids(final.body) == [f"kbot:vote:up:{answer_id}", f"kbot:vote:down:{answer_id}",
                                      f"kbot:fix:{answer_id}"]
    assert final.body["allowed_mentions"] == {"parse": []}
    assert slow.fake.messages[message_id]["content"] == LONG_REPLY


async def test_mention_reply_is_streamed_and_finalised(slow):
    await slow.say(message(f"<@{BOT_USER['id']}> {VPN_QUESTION}", mentions=[BOT_USER]))
    [created] = slow.fake.requests("POST", r"/channels/\d+/messages")
    edits = slow.fake.requests("PATCH", rf"/channels/\d+/messages/{created.response['id']}")
    assert created.body["content"].endswith(" …") and len(edits) >= 1
    assert edits[-1].body["content"] == LONG_REPLY and custom_ids(edits[-1].body)[0].startswith("kbot:vote:up:")


async def test_a_rate_limited_edit_is_waited_out_and_the_answer_still_lands(slow):
    slow.fake.rate_limit("PATCH", WEBHOOK_MESSAGE, retry_after=0.3)
    await slow.interact(ask(VPN_QUESTION))
    patches = slow.fake.requests("PATCH", WEBHOOK_MESSAGE, status=None)
    assert patches[0].status == 429 and patches[1].status == 200
    assert patches[1].at - patches[0].at >= 0.25  # discord.py waited for retry_after before retrying
    assert patches[-1].status == 200 and patches[-1].body["content"] == LONG_REPLY
    assert len(slow.fake.requests("POST", rf"/webhooks/{APP_ID}/itoken-\d+")) == 1


async def test_when_the_partial_message_cannot_be_posted_the_final_answer_still_is(slow):
    slow.fake.fail("POST", rf"/webhooks/{APP_ID}/itoken-\d+", 403, {"message": "Missing Access", "code": 50001})
    await slow.interact(ask(VPN_QUESTION))
    posts = slow.fake.requests("POST", rf"/webhooks/{APP_ID}/itoken-\d+", status=None)
    assert [p.status for p in posts] == [403, 200]  # one failed partial, then the final answer, no more partials
    assert posts[-1].body["content"] == LONG_REPLY and custom_ids(posts[-1].body)
    assert not slow.fake.requests("PATCH", WEBHOOK_MESSAGE, status=None)
