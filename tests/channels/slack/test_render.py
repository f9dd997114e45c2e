"""Slack rendering: escaping that defuses pings, Slack's size limits, source links, renumbering."""

from __future__ import annotations

import json
import re

from bot.channels.slack.render import (
    ACTION_SHARE,
    MAX_BLOCKS,
    MAX_MESSAGE_CHARS,
    MAX_SECTION_CHARS,
    answer_message,
    escape,
    link,
    renumber_citations,
    split_text,
    unescape,
)
from bot.core.types import Answer, Citation

PUBLIC = "https://kbot.example.com"


def _sections(blocks: list[dict]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def test_escape_defuses_every_kind_of_ping_and_round_trips():
    raw = "Hi <!channel> and <!here|here> <@U123> <!subteam^S1> @channel @here @everyone a&b"
    out = escape(raw)
    assert "<" not in out and ">" not in out
    assert not re.search(r"@(channel|here|everyone)\b", out)
    assert "&amp;" in out and "&lt;@U123&gt;" in out
    assert unescape(out) == raw


def test_links_only_for_http_urls_and_labels_are_escaped():
    assert link("https://wiki.example.com/a b|c>", "Guide <!here>") == (
        "<https://wiki.example.com/a%20b%7Cc%3E|Guide &lt;!here&gt;>"
    )
    assert link("javascript:alert(1)", "x") == "x"
    assert link(None, "<@U1>") == "&lt;@U1&gt;"


def test_split_text_respects_the_limit_and_keeps_every_word():
    text = " ".join(f"word{i}" for i in range(3000))
    pieces = split_text(text, 1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert " ".join(pieces).split() == text.split()
    assert split_text("x" * 2500, 1000) == ["x" * 1000, "x" * 1000, "x" * 500]  # no spaces: hard cuts


def test_renumber_citations_matches_the_listed_sources():
    assert renumber_citations("A [2]. B [3] and [2].", 2) == "A [1]. B [2] and [1]."
    assert renumber_citations("A [1]. B [2].", 2) == "A [1]. B [2]."
    assert renumber_citations("A [1] [7].", 1) == "A [1] [7]."  # unknown numbers: leave as written


def test_answer_with_sources_and_feedback_buttons():
    cites = [
        Citation(
            "docs/vpn.md", "VPN guide", "...", 0.9, heading="Setup", url="https://wiki/vpn", chunk_id="c1"
        ),
        Citation("hr.pdf", "HR <b>", "...", 0.8, page=3),
    ]
    text, blocks = answer_message(
        Answer("Use vpn.example.com [1], see [2].", cites, answer_id="a1"), PUBLIC, share=True
    )
    sources = _sections(blocks)[-1]
    assert "[1] <https://wiki/vpn|VPN guide> · Setup" in sources
    # a local file: its title links to the source on the answer's web page, never to a server path
    assert "[2] <https://kbot.example.com/answers/a1#source-2|HR &lt;b&gt;> · page 3" in sources
    assert "hr.pdf" not in json.dumps(blocks)
    buttons = blocks[-1]["elements"]
    assert [b["text"]["text"] for b in buttons[:2]] == ["👍 Helpful", "👎 Not helpful"]  # words, not only icons
    assert [b["value"] for b in buttons] == ["a1"] * 4
    assert buttons[-1]["action_id"] == ACTION_SHARE
    assert text == "Use vpn.example.com [1], see [2]."


def test_huge_answer_fits_slacks_limits_and_links_the_full_answer():
    paragraphs = "\n\n".join("A paragraph about the VPN. " * 40 for _ in range(60))  # ~65,000 characters
    cites = [Citation(f"s{i}", "T" * 400, "...", 0.5, heading="H" * 400) for i in range(8)]
    text, blocks = answer_message(
        Answer(paragraphs, cites, answer_id="big1"), PUBLIC, share=True, header="<@U1> asked: " + "q" * 5000
    )
    assert len(blocks) <= MAX_BLOCKS
    assert all(len(s) <= MAX_SECTION_CHARS for s in _sections(blocks))
    assert all(
        len(e["text"]) <= MAX_SECTION_CHARS for b in blocks if b["type"] == "context" for e in b["elements"]
    )
    assert len(text) <= MAX_MESSAGE_CHARS and len(text) <= 3_100
    assert len(json.dumps(blocks)) < MAX_MESSAGE_CHARS
    assert "https://kbot.example.com/answers/big1" in "".join(_sections(blocks))
    assert "https://kbot.example.com/answers/big1" in text


def test_unbroken_answer_text_is_cut_into_sections():
    text, blocks = answer_message(Answer("x" * 7000, answer_id="a2"), PUBLIC)
    sections = _sections(blocks)
    assert len(sections) == 3 and all(len(s) <= MAX_SECTION_CHARS for s in sections)
    assert "".join(sections) == "x" * 7000


def test_markdown_in_snippets_and_answers_becomes_mrkdwn():
    snippet = ("## Requirements\n\n- A company-managed laptop\n- **version 6.2.1 or later** of the "
               "[client](https://wiki/vpn-client) <!channel>")
    cite = Citation("/srv/kb/docs/vpn.md", "VPN guide", snippet, 0.9, heading="Requirements")
    _, blocks = answer_message(Answer("You need:\n\n- **6.2.1** or later [1]", [cite], answer_id="a3"), PUBLIC)
    answer, sources = _sections(blocks)[0], _sections(blocks)[-1]
    assert answer == "You need:\n• *6.2.1* or later [1]"
    quote = sources.splitlines()[-1]
    assert quote == (">*Requirements* • A company-managed laptop • *version 6.2.1 or later* of the "
                     "<https://wiki/vpn-client|client> &lt;!channel&gt;")
    assert "##" not in sources and "**" not in sources and "/srv/kb" not in json.dumps(blocks)
