"""Answers within Discord's message and embed limits; the persistent buttons' custom ids."""

from __future__ import annotations

import threading

import discord
import pytest

import bot.channels.discord.bot as discord_app
from bot.channels.discord.views import (
    CORRECTION_MODAL_ID,
    DYNAMIC_ITEMS,
    EMBED_FIELDS_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    MESSAGE_LIMIT,
    clip,
    feedback_view,
    render_answer,
    retry_view,
    submitted_value,
)
from bot.core.errors import ChannelNotConfigured
from bot.core.types import Answer, Citation
from bot.wiring import Runtime
from tests.conftest import make_settings

ANSWER_ID = "0123456789abcdef0123456789abcdef"
URL = "https://kbot.example.com"


def cite(i: int, text: str = "The VPN server address is vpn.example.com.", **kw) -> Citation:
    return Citation(source=f"it/doc{i}.md", title=f"Doc {i}", text=text, score=0.9, **kw)


def test_short_answer_is_sent_as_is_with_a_sources_embed():
    answer = Answer("It is vpn.example.com [1].", [cite(1, page=3, url="https://wiki/vpn")],
                    answer_id=ANSWER_ID)
    rendered = render_answer(answer, URL)
    assert rendered.content == "It is vpn.example.com [1]." and not rendered.truncated
    [embed] = rendered.embeds
    assert embed.title == "Sources"
    assert embed.fields[0].name == "[1] Doc 1 · page 3"
    assert embed.fields[0].value == "> The VPN server address is vpn.example.com.\n[Open source](<https://wiki/vpn>)"
    assert ANSWER_ID in embed.footer.text


def test_snippets_are_discord_markdown_and_local_files_link_to_the_answer_page():
    snippet = ("## Requirements\n\n- A company-managed laptop\n- **version 6.2.1 or later** of the "
               "[client](https://wiki/vpn-client) <@123> *not_code*")
    answer = Answer("It needs 6.2.1 [1].", [Citation("/srv/kb/docs/vpn.md", "VPN guide", snippet, 0.9)],
                    answer_id=ANSWER_ID)
    [field] = render_answer(answer, URL).embeds[0].fields
    assert field.value == (
        "> **Requirements**\n> • A company-managed laptop\n"
        "> • **version 6.2.1 or later** of the [client](<https://wiki/vpn-client>) \\<@123\\> *not\\_code*\n"
        f"[Open source](<{URL}/answers/{ANSWER_ID}#source-1>)")
    assert "/srv/kb" not in field.name + field.value and "##" not in field.value


def test_long_answer_is_cut_at_2000_characters_with_a_link():
    answer = Answer("word " * 1000, [cite(1)], answer_id=ANSWER_ID)
    rendered = render_answer(answer, URL + "/")
    assert rendered.truncated and len(rendered.content) <= MESSAGE_LIMIT
    assert rendered.content.endswith(f"… Full answer: <{URL}/answers/{ANSWER_ID}>")


def test_many_long_sources_stay_within_the_embed_limits():
    citations = [cite(i, text="evidence " * 400, heading="A" * 300, url=f"https://wiki/{i}")
                 for i in range(40)]
    embed = render_answer(Answer("short", citations, answer_id=ANSWER_ID), URL).embeds[0]
    assert len(embed.fields) <= EMBED_FIELDS_LIMIT
    assert all(len(f.name) <= FIELD_NAME_LIMIT and len(f.value) <= FIELD_VALUE_LIMIT for f in embed.fields)
    assert len(embed) <= EMBED_TOTAL_LIMIT
    # Source links survive the cuts.
    assert all(f.value.endswith(f"(<https://wiki/{i}>)") for i, f in enumerate(embed.fields))
    assert f"more sources at {URL}/answers/{ANSWER_ID}" in embed.footer.text


def test_declined_and_extractive_answers_say_so():
    declined = render_answer(Answer("Not found.", [cite(1)], mode="declined", answer_id=ANSWER_ID), URL)
    assert declined.embeds[0].title == "Closest sources"
    assert "Not found in the knowledge base" in declined.embeds[0].footer.text
    extractive = render_answer(Answer("Quote [1]", [cite(1)], mode="extractive", answer_id=ANSWER_ID), URL)
    assert "Quoted from the sources" in extractive.embeds[0].footer.text
    assert render_answer(Answer("No sources", [], answer_id=ANSWER_ID), URL).embeds == []


def test_clip_prefers_a_word_boundary():
    assert clip("short", 10) == "short"
    assert clip("alpha beta gamma delta", 13) == "alpha beta…"
    assert len(clip("x" * 50, 10)) == 10


def test_button_custom_ids_carry_the_answer_id_and_match_their_templates():
    ids = [item.custom_id for item in feedback_view(ANSWER_ID).children]
    assert ids == [f"kbot:vote:up:{ANSWER_ID}", f"kbot:vote:down:{ANSWER_ID}", f"kbot:fix:{ANSWER_ID}"]
    ids += [item.custom_id for item in retry_view(ANSWER_ID).children]
    assert all(len(i) <= 100 for i in ids)  # Discord's custom id limit
    templates = [cls.__discord_ui_compiled_template__ for cls in DYNAMIC_ITEMS]
    assert all(sum(bool(t.fullmatch(i)) for t in templates) == 1 for i in ids)
    assert feedback_view(ANSWER_ID).timeout is None and feedback_view(ANSWER_ID).is_persistent()
    assert CORRECTION_MODAL_ID.fullmatch(f"kbot:correction:{ANSWER_ID}")["answer_id"] == ANSWER_ID


def test_submitted_value_reads_labels_and_action_rows():
    label = [{"type": 18, "component": {"type": 4, "custom_id": "correction", "value": "new"}}]
    row = [{"type": 1, "components": [{"type": 4, "custom_id": "correction", "value": "old"}]}]
    assert submitted_value(label, "correction") == "new"
    assert submitted_value(row, "correction") == "old"
    assert submitted_value(row, "other") is None


# --- entry points ---------------------------------------------------------------------------------------
def test_build_points_discord_py_at_the_configured_api(tmp_path):
    runtime = Runtime(make_settings(tmp_path, discord_api_url="http://127.0.0.1:9/api/v10/"))
    bot = discord_app.build_discord_bot(runtime)
    assert discord.http.Route.BASE == "http://127.0.0.1:9/api/v10"
    assert bot.intents.message_content and bot.intents.guilds and bot.intents.dm_messages
    assert not bot.intents.members and not bot.intents.presences
    assert bot.allowed_mentions.to_dict() == {"parse": []}


def test_run_without_a_token_says_what_is_missing(tmp_path):
    with pytest.raises(ChannelNotConfigured, match="DISCORD_TOKEN"):
        discord_app.run_discord(Runtime(make_settings(tmp_path)))


def test_missing_message_content_intent_falls_back_to_mentions_and_commands(tmp_path, monkeypatch):
    """Discord closes the gateway with 4014 when a privileged intent is not enabled for the bot."""
    attempts = []

    async def start(self, token, *, reconnect=True):
        attempts.append(self.intents.message_content)
        if self.intents.message_content:
            raise discord.PrivilegedIntentsRequired(None)

    monkeypatch.setattr(discord_app.KbotBot, "start", start)
    discord_app.run_discord(Runtime(make_settings(tmp_path, discord_token="t")))
    assert attempts == [True, False]


def test_start_in_thread_runs_the_bot_on_its_own_loop(tmp_path, monkeypatch):
    ran = threading.Event()

    async def start(self, token, *, reconnect=True):
        assert token == "t"
        ran.set()

    monkeypatch.setattr(discord_app.KbotBot, "start", start)
    thread = discord_app.start_discord_in_thread(Runtime(make_settings(tmp_path, discord_token="t")))
    thread.join(10)
    assert thread.daemon and ran.is_set() and not thread.is_alive()
