"""The real Bolt app over HTTP (signed requests, Slack's payload shapes) against a local fake Slack Web
API: mentions, thread follow-ups, DMs, /ask, feedback buttons, the correction modal, channel scopes and
admin commands. Assertions are on what was posted/updated/opened in Slack and what was stored."""

from __future__ import annotations

import json

import pytest

from bot.channels.slack.render import (
    ACTION_CORRECT,
    ACTION_SHARE,
    ACTION_VOTE_DOWN,
    ACTION_VOTE_UP,
    CORRECTION_BLOCK,
    CORRECTION_INPUT,
    PLACEHOLDER,
)
from tests.channels.slack.fake_api import BOT_USER_ID, FakeSlackAPI, SlackHarness, mention_event

QUESTION = "what is the VPN server address?"


@pytest.fixture
def api():
    with FakeSlackAPI() as fake:
        yield fake


@pytest.fixture
def slack(tmp_path, api):
    harness = SlackHarness(tmp_path, api, slack_admins=["UADMIN"])
    yield harness
    harness.close()


def final_updates(api: FakeSlackAPI, ts: str | None = None) -> list[dict]:
    """chat.update calls that carry a finished answer (its feedback buttons)."""
    return [
        c.args
        for c in api.of("chat.update")
        if (ts is None or c.args["ts"] == ts)
        and any(b["type"] == "actions" for b in c.args.get("blocks") or [])
    ]


def buttons(blocks: list[dict]) -> dict[str, str]:
    return {e["action_id"]: e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]}


def ask_in_channel(slack: SlackHarness, text: str = QUESTION, channel: str = "C1") -> dict:
    msg = slack.api.user_message(channel, f"<@{BOT_USER_ID}> {text}", channel_type="channel")
    assert slack.send_event(mention_event(msg)).status_code == 200
    slack.settle()
    return msg


def test_mention_is_answered_in_a_thread_with_linked_sources(slack, api):
    msg = ask_in_channel(slack)

    placeholder = api.of("chat.postMessage")[0].args
    assert placeholder["channel"] == "C1" and placeholder["thread_ts"] == msg["ts"]
    assert placeholder["text"] == PLACEHOLDER
    assert placeholder["unfurl_links"] is False and placeholder["unfurl_media"] is False
    [final] = final_updates(api)
    ts = api.thread("C1", msg["ts"])[-1]["ts"]
    assert final["ts"] == ts and "vpn.example.com" in final["text"]
    blocks_text = json.dumps(final["blocks"], ensure_ascii=False)
    assert "<https://wiki.example.com/vpn|VPN guide> · Connecting" in blocks_text
    [row] = slack.store.list_answers()
    assert buttons(final["blocks"]) == {
        ACTION_VOTE_UP: row.id,
        ACTION_VOTE_DOWN: row.id,
        ACTION_CORRECT: row.id,
    }
    assert (row.platform, row.channel_id, row.thread_id, row.user_id) == ("slack", "C1", msg["ts"], "U1")
    assert row.question == QUESTION and row.scopes == ["default"]


def test_thread_follow_up_needs_no_mention_and_uses_the_thread_as_history(slack, api):
    first = ask_in_channel(slack)
    follow = api.user_message(
        "C1", "which client does it need?", thread_ts=first["ts"], channel_type="channel"
    )
    assert slack.send_event(follow).status_code == 200
    slack.settle()

    assert len(final_updates(api)) == 2
    assert api.of("chat.postMessage")[1].args["thread_ts"] == first["ts"]
    second = slack.store.list_answers()[1]
    assert second.thread_id == first["ts"] and second.question == "which client does it need?"
    assert QUESTION in second.standalone_query  # the thread's first question was read back as history
    assert api.of("conversations.replies")[-1].args["ts"] == first["ts"]


def test_messages_outside_the_bots_threads_are_left_alone(slack, api):
    top = api.user_message("C1", "lunch anyone?", channel_type="channel")
    other_thread = api.user_message(
        "C1", "what is the VPN address?", thread_ts=top["ts"], channel_type="channel"
    )
    for event in (top, other_thread):
        assert slack.send_event(event).status_code == 200
    slack.settle()
    assert api.of("chat.postMessage") == [] and slack.store.count_answers() == 0


def test_direct_messages_are_questions_with_the_dm_as_history(tmp_path, api):
    slack = SlackHarness(tmp_path, api, slack_user_scopes={"U1": ["hr"]})
    try:
        first = api.user_message("D1", QUESTION, channel_type="im")
        assert slack.send_event(first).status_code == 200
        slack.settle()
        second = api.user_message("D1", "which client for it?", channel_type="im")
        assert slack.send_event(second).status_code == 200
        slack.settle()
    finally:
        slack.close()

    posts = api.of("chat.postMessage")
    assert [p.args["channel"] for p in posts] == ["D1", "D1"]
    assert all(p.args.get("thread_ts") is None for p in posts)  # a DM is answered in place, not in a thread
    assert len(final_updates(api)) == 2
    rows = slack.store.list_answers()
    assert rows[0].scopes == ["default", "hr"]  # DMs: the default scope plus the user's own grants
    assert slack.retriever.calls[0][1] == ("default", "hr")
    assert QUESTION in rows[1].standalone_query
    assert api.of("conversations.history")[-1].args["latest"] == second["ts"]


def test_ask_is_ephemeral_and_share_posts_it_in_the_channel(slack, api):
    resp = slack.send_command("/ask", QUESTION, response_url=api.response_url("ask"))
    assert resp.status_code == 200
    assert resp.json() == {"response_type": "ephemeral", "text": PLACEHOLDER}
    slack.settle()

    [answer_reply] = api.of("response_url")
    assert answer_reply.args["replace_original"] is True and answer_reply.args["response_type"] == "ephemeral"
    [row] = slack.store.list_answers()
    assert buttons(answer_reply.args["blocks"])[ACTION_SHARE] == row.id
    assert api.of("chat.postMessage") == []  # nothing public yet

    resp = slack.send_action(ACTION_SHARE, row.id, ephemeral=True, response_url=api.response_url("share"))
    assert resp.status_code == 200
    slack.settle()
    [shared] = api.of("chat.postMessage")
    assert shared.args["channel"] == "C1" and shared.args["unfurl_links"] is False
    assert "<@U1> asked: what is the VPN server address?" in json.dumps(
        shared.args["blocks"], ensure_ascii=False
    )
    assert ACTION_SHARE not in buttons(shared.args["blocks"]) and ACTION_VOTE_UP in buttons(
        shared.args["blocks"]
    )
    removed = api.of("response_url")[-1].args
    assert removed["_url"] == "/respond/share" and removed["delete_original"] is True


def test_ask_without_a_question_explains_how(slack, api):
    resp = slack.send_command("/ask", "   ", response_url=api.response_url())
    assert resp.status_code == 200 and "/ask How do I" in resp.json()["text"]
    slack.settle()
    assert slack.store.count_answers() == 0


def test_votes_one_per_user_and_buttons_work_after_a_restart(tmp_path, api):
    first = SlackHarness(tmp_path, api)
    ask_in_channel(first)
    first.close()
    [row] = first.store.list_answers()
    restarted = SlackHarness(tmp_path, api, store=first.store)  # a new process: nothing in memory
    try:
        for user, action in [("U2", ACTION_VOTE_UP), ("U2", ACTION_VOTE_DOWN), ("U3", ACTION_VOTE_UP)]:
            assert restarted.send_action(action, row.id, user=user).status_code == 200
        restarted.settle()
        assert restarted.send_action(ACTION_VOTE_UP, "no-such-answer").status_code == 200
        restarted.settle()
    finally:
        restarted.close()

    votes = {(f.user_id, f.vote) for f in restarted.store.list_feedback()}
    assert votes == {("U2", -1), ("U3", 1)}  # U2's second click replaced the first
    assert all(f.answer_id == row.id and f.platform == "slack" for f in restarted.store.list_feedback())
    notes = [c.args for c in api.of("response_url")]
    assert all(n["response_type"] == "ephemeral" and n["replace_original"] is False for n in notes)
    assert "recorded" in notes[0]["text"] and "can't find" in notes[-1]["text"]


def test_correction_modal_stores_a_pending_correction(slack, api):
    ask_in_channel(slack)
    [row] = slack.store.list_answers()
    assert slack.send_action(ACTION_CORRECT, row.id).status_code == 200
    slack.settle()
    [opened] = api.of("views.open")
    view = opened.args["view"]
    assert opened.args["trigger_id"].startswith("trig.") and view["callback_id"] == "kbot_correction"
    meta = view["private_metadata"]
    assert json.loads(meta) == {"answer_id": row.id, "channel_id": "C1"}

    empty = slack.send_view(
        meta, {CORRECTION_BLOCK: {CORRECTION_INPUT: {"type": "plain_text_input", "value": " "}}}
    )
    assert empty.status_code == 200 and empty.json()["response_action"] == "errors"
    value = {
        CORRECTION_BLOCK: {CORRECTION_INPUT: {"type": "plain_text_input", "value": "It is vpn2.example.com"}}
    }
    ok = slack.send_view(meta, value, user="U7")
    assert ok.status_code == 200 and ok.text == ""  # an empty ack closes the modal
    slack.settle()

    [fb] = slack.store.list_feedback(correction_status="pending")
    assert (fb.answer_id, fb.user_id, fb.correction, fb.vote) == (row.id, "U7", "It is vpn2.example.com", 0)
    assert api.of("chat.postEphemeral")[0].args["user"] == "U7"

    unknown = slack.send_view(json.dumps({"answer_id": "gone"}), value)
    garbled = slack.send_view("{not json", value)
    for resp in (unknown, garbled):
        assert resp.status_code == 200 and resp.json()["response_action"] == "errors"
    assert len(slack.store.list_feedback()) == 1


def test_channel_scopes_from_settings_and_from_kbot_scope(tmp_path, api):
    slack = SlackHarness(tmp_path, api, slack_admins=["UADMIN"], slack_channel_scopes={"C5": ["eng"]})
    try:
        ask_in_channel(slack, channel="C5")
        refused = slack.send_command(
            "/kbot", "scope hr", user="U1", channel="C9", response_url=api.response_url()
        )
        assert "for kbot admins" in refused.json()["text"]
        bad = slack.send_command(
            "/kbot", "scope bad!name", user="UADMIN", channel="C9", response_url=api.response_url()
        )
        assert "Invalid scope name 'bad!name'" in bad.json()["text"]
        ok = slack.send_command(
            "/kbot", "scope hr, eng", user="UADMIN", channel="C9", response_url=api.response_url()
        )
        assert "`hr`, `eng`" in ok.json()["text"]
        other = slack.send_command(
            "/kbot",
            "scope <#C7|general> finance",
            user="UADMIN",
            channel="C9",
            response_url=api.response_url(),
        )
        assert "<#C7>" in other.json()["text"]
        ask_in_channel(slack, channel="C9")
        ask_in_channel(slack, channel="C1")
    finally:
        slack.close()

    assert slack.store.channel_scopes("slack", "C9") == ["hr", "eng"]
    assert slack.store.channel_scopes("slack", "C7") == ["finance"]
    assert [call[1] for call in slack.retriever.calls] == [("eng",), ("hr", "eng"), ("default",)]


def test_admin_shares_a_file_in_a_dm_and_it_is_ingested(slack, api):
    api.files["F1"] = ("handbook.md", b"# Handbook\nThe VPN is vpn.example.com.\n")
    event = api.user_message(
        "D1",
        "scope=hr",
        user="UADMIN",
        channel_type="im",
        subtype="file_share",
        files=[{"id": "F1", "name": "handbook.md"}],
    )
    assert slack.send_event(event).status_code == 200
    slack.settle()

    [download] = api.of("file_download")
    assert download.headers["authorization"] == "Bearer xoxb-test-token"
    assert slack.ingestor.files == [
        ("handbook.md", b"# Handbook\nThe VPN is vpn.example.com.\n", "hr", "slack:handbook.md")
    ]
    replies = [c.args["text"] for c in api.of("chat.postMessage")]
    assert "Adding 1 file(s) to scope `hr`" in replies[0]
    assert replies[1].startswith("Ingested *handbook.md* into scope `hr`: 1 added")
    assert slack.store.count_answers() == 0  # a file share is not a question


def test_non_admins_get_a_polite_refusal(slack, api):
    api.files["F2"] = ("secret.md", b"x")
    event = api.user_message(
        "D1", "", user="U1", channel_type="im", subtype="file_share", files=[{"id": "F2"}]
    )
    assert slack.send_event(event).status_code == 200
    status = slack.send_command("/kbot", "status", user="U1", response_url=api.response_url())
    ingest = slack.send_command(
        "/kbot", "ingest https://example.com/a.md", user="U1", response_url=api.response_url()
    )
    slack.settle()
    assert "only kbot admins can add documents" in api.of("chat.postMessage")[0].args["text"]
    assert "for kbot admins" in status.json()["text"] and "for kbot admins" in ingest.json()["text"]
    assert api.of("file_download") == [] and slack.ingestor.files == []


def test_admin_status_and_ingest_by_url(slack, api, tmp_path):
    ask_in_channel(slack)
    status = slack.send_command("/kbot", "status", user="UADMIN", response_url=api.response_url())
    text = status.json()["text"]
    assert "Documents: 0" in text and "Adapter: none" in text and "Answers: 1" in text
    assert "Last ingest: never" in text
    slack.store.upsert_document(id="d1", source="docs/vpn.md", title="VPN guide", chunk_count=3)
    slack.store.add_adapter(version="v7", path=str(tmp_path / "v7"))
    slack.store.set_active_adapter("v7")
    again = slack.send_command("/kbot", "status", user="UADMIN", response_url=api.response_url())
    text = again.json()["text"]
    assert "Documents: 1 (3 chunks)" in text and "(VPN guide)" in text and "Adapter: v7" in text

    api.files["F3"] = ("notes.txt", b"Printer is on floor 2.")
    url = f"{api.base}/files/F3/notes.txt"
    resp = slack.send_command(
        "/kbot", f"ingest <{url}> facilities", user="UADMIN", response_url=api.response_url("ing")
    )
    assert "Fetching" in resp.json()["text"]
    slack.settle()
    assert slack.ingestor.files == [("notes.txt", b"Printer is on floor 2.", "facilities", url)]
    reply = api.of("response_url")[-1].args
    assert reply["_url"] == "/respond/ing" and "1 added" in reply["text"]

    bad = slack.send_command("/kbot", "ingest ftp://x/y", user="UADMIN", response_url=api.response_url())
    assert "Usage: `/kbot ingest" in bad.json()["text"]
    help_text = slack.send_command("/kbot", "", user="U1", response_url=api.response_url()).json()["text"]
    assert "/kbot status" in help_text


def test_entry_points_build_a_bolt_app_and_say_which_setting_is_missing(tmp_path, api):
    from slack_bolt import App

    from bot.channels.slack.app import build_slack_app, run_slack, slack_router
    from bot.core.errors import ChannelNotConfigured
    from bot.wiring import Runtime
    from tests.conftest import make_settings

    def runtime(**values) -> Runtime:
        return Runtime(make_settings(tmp_path, slack_api_url=api.api_url, **values))

    app = build_slack_app(runtime(SLACK_BOT_TOKEN="xoxb-test-token"))
    assert isinstance(app, App) and app.client.base_url == api.api_url
    assert api.calls == []  # building the app calls nothing (auth.test waits for the first request)
    with pytest.raises(ChannelNotConfigured, match="SLACK_BOT_TOKEN"):
        build_slack_app(runtime())
    with pytest.raises(ChannelNotConfigured, match="SLACK_SIGNING_SECRET"):
        slack_router(runtime(SLACK_BOT_TOKEN="xoxb-test-token"))
    with pytest.raises(ChannelNotConfigured, match="SLACK_APP_TOKEN .* or SLACK_SIGNING_SECRET"):
        run_slack(runtime(SLACK_BOT_TOKEN="xoxb-test-token"))
