"""Answers as Slack messages (Block Kit), inside Slack's limits, with nothing able to ping anyone.

Everything shown comes from documents and people, so every piece of text goes through `escape`
before it is placed in mrkdwn: `<!channel>`, `<!here>` and `<@U123>` in a retrieved chunk become
plain text, and bare `@channel` / `@here` get a zero-width space so no client turns them into pings.
Markdown in answers and snippets is converted to mrkdwn by bot/channels/markdown.py (the one place
that converts, with this escaping). Sources show a title and a link that opens (the document's URL,
else the source on the answer's web page), never a path on the server.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.channels.markdown import slack_escape, slack_link, to_slack
from bot.core.types import Answer, Citation

# Slack's documented limits: 40,000 characters of message text, 50 blocks, 3,000 characters per
# section text. Answers longer than SHOWN_ANSWER_CHARS are cut and linked to the web chat.
MAX_MESSAGE_CHARS = 40_000
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3_000
SHOWN_ANSWER_CHARS = 12_000
FALLBACK_CHARS = 3_000  # the notification / screen-reader text that accompanies the blocks
MAX_SOURCES = 5
SNIPPET_CHARS = 180  # of each source's Markdown shown under its title

PLACEHOLDER = "Searching the knowledge base..."
APOLOGY = "Sorry, something went wrong while answering. Your question was saved; you can try again."

ACTION_VOTE_UP = "kbot_vote_up"
ACTION_VOTE_DOWN = "kbot_vote_down"
ACTION_CORRECT = "kbot_correct"
ACTION_SHARE = "kbot_share"
ACTION_RETRY = "kbot_retry"
CORRECTION_VIEW = "kbot_correction"
CORRECTION_BLOCK = "correction"
CORRECTION_INPUT = "text"
MAX_CORRECTION_CHARS = 3_000

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_CITE = re.compile(r"\[(\d{1,2})\]")
_ZWSP = "\u200b"


def escape(text: str) -> str:
    """Text safe to put in mrkdwn: Slack's own &, <, > escaping plus defused @channel/@here."""
    return slack_escape(text)


def unescape(text: str) -> str:
    """Inverse of `escape` (used when the bot's own messages are read back as thread history)."""
    return text.replace(_ZWSP, "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def link(url: str | None, label: str) -> str:
    """`<url|label>` for http(s) URLs; other schemes are shown as plain text, never as links."""
    return slack_link(url or "", escape(label))


def full_answer_url(public_url: str, answer_id: str) -> str:
    return f"{public_url.rstrip('/')}/answers/{answer_id}"


def source_url(citation: Citation, answer_url: str, number: int) -> str:
    """Where a source's title links: the document's own web address, else the source as shown on the
    answer's web page."""
    return citation.url if citation.url and citation.url.lower().startswith(("http://", "https://")) \
        else f"{answer_url}#source-{number}"


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """A source's Markdown cut at a word boundary; rendering copes with a construct cut in half."""
    text = " ".join(text.split()) if "\n" not in text else text.strip()
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def split_text(text: str, limit: int = MAX_SECTION_CHARS - 100) -> list[str]:
    """Pieces of at most `limit` characters, cut at paragraph, line or word boundaries if possible."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n\n", 0, limit), text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        if cut < limit // 2:
            cut = limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def renumber_citations(text: str, count: int) -> str:
    """The engine lists citations in the order the answer first cites them ([2] then [1] gives
    citations [source 2, source 1]); renumber the markers so [n] matches the n-th listed source."""
    order = list(dict.fromkeys(int(n) for n in _CITE.findall(text)))
    if not order or len(order) != count or order == list(range(1, count + 1)):
        return text
    mapping = {n: i + 1 for i, n in enumerate(order)}
    return _CITE.sub(lambda m: f"[{mapping[int(m.group(1))]}]", text)


def source_line(number: int, citation: Citation, answer_url: str) -> str:
    """`[n] <link|title> · location` and, on the next line, the snippet as a quote."""
    title = (citation.title or "source")[:200]
    line = f"[{number}] {link(source_url(citation, answer_url, number), title)}"
    if citation.location:
        line += f" · {escape(citation.location[:200])}"
    quoted = " ".join(to_slack(snippet(citation.text)).splitlines())
    return f"{line}\n>{quoted}" if quoted else line


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def feedback_actions(answer_id: str, *, share: bool) -> dict[str, Any]:
    """Buttons carry the answer id in their value, so they keep working after a restart."""
    elements = [
        _button("👍 Helpful", ACTION_VOTE_UP, answer_id),
        _button("👎 Not helpful", ACTION_VOTE_DOWN, answer_id),
        _button("Suggest a correction", ACTION_CORRECT, answer_id),
    ]
    if share:
        elements.append(_button("Share in channel", ACTION_SHARE, answer_id, "primary"))
    return {"type": "actions", "block_id": f"kbot_feedback:{answer_id}"[:255], "elements": elements}


def answer_message(
    answer: Answer, public_url: str, *, share: bool = False, header: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for a finished answer: text sections, sources, feedback buttons.
    `header` is already-escaped mrkdwn shown above the answer (e.g. who shared it)."""
    body = renumber_citations(answer.text.strip(), len(answer.citations)) or "(empty answer)"
    url = full_answer_url(public_url, answer.answer_id)
    truncated = len(body) > SHOWN_ANSWER_CHARS
    if truncated:
        body = body[:SHOWN_ANSWER_CHARS].rsplit(" ", 1)[0] + " …"
    blocks: list[dict[str, Any]] = []
    if header:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": header[:MAX_SECTION_CHARS]}]}
        )
    # 3 blocks stay reserved for the "full answer" link, the sources and the buttons.
    room = MAX_BLOCKS - len(blocks) - 3
    pieces = split_text(to_slack(body) or escape(body))
    if len(pieces) > room:
        pieces, truncated = pieces[:room], True
    blocks.extend(_section(p) for p in pieces)
    if truncated:
        blocks.append(_section(f"_The answer was cut to fit in Slack._ {link(url, 'Read the full answer')}"))
    if answer.citations:
        label = "Closest sources" if answer.mode == "declined" else "Sources"
        lines = [source_line(i, c, url) for i, c in enumerate(answer.citations[:MAX_SOURCES], 1)]
        text = f"*{label}*\n" + "\n".join(lines)
        blocks.append(_section(text[:MAX_SECTION_CHARS]))
    blocks.append(feedback_actions(answer.answer_id, share=share))
    fallback = escape(body)
    if len(fallback) > FALLBACK_CHARS:
        fallback = fallback[:FALLBACK_CHARS].rsplit(" ", 1)[0] + f" … {link(url, 'full answer')}"
    return fallback, blocks


def partial_message(text: str) -> tuple[str, list[dict[str, Any]]]:
    """A streamed, unfinished answer: the text so far, cut to one section."""
    shown = escape(text.strip())
    if len(shown) > MAX_SECTION_CHARS - 100:
        shown = shown[: MAX_SECTION_CHARS - 100] + " …"
    shown = shown or PLACEHOLDER
    return shown, [
        _section(shown),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "_writing…_"}]},
    ]


def placeholder_message() -> tuple[str, list[dict[str, Any]]]:
    return PLACEHOLDER, [_section(f":mag: {PLACEHOLDER}")]


def failure_message(answer_id: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The apology that replaces the placeholder; the retry button finds the question by its id."""
    blocks: list[dict[str, Any]] = [_section(f":warning: {APOLOGY}")]
    if answer_id:
        blocks.append({"type": "actions", "elements": [_button("Try again", ACTION_RETRY, answer_id)]})
    return APOLOGY, blocks


def correction_modal(answer_id: str, channel_id: str, answer_text: str) -> dict[str, Any]:
    """The "Suggest a correction" modal; private_metadata says which answer (and where to confirm)."""
    shown = escape(answer_text.strip())[: MAX_SECTION_CHARS - 100] or "(empty answer)"
    return {
        "type": "modal",
        "callback_id": CORRECTION_VIEW,
        "private_metadata": json.dumps({"answer_id": answer_id, "channel_id": channel_id}),
        "title": {"type": "plain_text", "text": "Suggest a correction"},
        "submit": {"type": "plain_text", "text": "Submit"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"*The answer:*\n{shown}"}]},
            {
                "type": "input",
                "block_id": CORRECTION_BLOCK,
                "label": {"type": "plain_text", "text": "What should the answer be?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": CORRECTION_INPUT,
                    "multiline": True,
                    "max_length": MAX_CORRECTION_CHARS,
                },
            },
        ],
    }


def answer_from_row(row: Any) -> Answer:
    """Rebuild an `Answer` from its stored row (for sharing an answer after a restart)."""
    known = set(Citation.__dataclass_fields__)
    citations = [Citation(**{k: v for k, v in c.items() if k in known}) for c in (row.citations or [])]
    mode = row.mode if row.mode in ("generated", "extractive", "declined") else "generated"
    return Answer(
        text=row.answer or "",
        citations=citations,
        mode=mode,
        answer_id=row.id,
        standalone_query=row.standalone_query or "",
        adapter_version=row.adapter_version,
    )
