"""Markdown from documents, shown on each platform in its own format: the one place that converts.

Citation snippets and answers are Markdown-ish text (headings as `#` lines, lists, emphasis, links,
tables) that was written for a Markdown renderer, not for people: `## Requirements - A laptop **6.2.1**`.
markdown-it-py (CommonMark) parses it once into tokens, and a renderer per platform writes them out:

- `to_html`: the web, through markdown-it's own HTML renderer with raw HTML off (it is escaped) and
  its link validation (no `javascript:`, `vbscript:`, `file:` or `data:` links); links open in a new tab.
- `to_slack`: Slack mrkdwn (`*bold*`, `_italic_`, `<url|label>`, `•` lists) with Slack's escaping of
  `&`, `<`, `>` and defused `@channel` / `@here` / `@everyone`.
- `to_discord`: Discord Markdown (`**bold**`, `[label](<url>)`, `•` lists, headings as bold lines) with
  Discord's formatting characters escaped in the text itself.
- `to_text`: plain text, for notifications and fallbacks.

Only http(s) links become links; anything else is shown as its label.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

_parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_html = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_ZWSP = "\u200b"
_DISCORD_SPECIAL = re.compile(r"([\\*_~`|<>\[\]])")


def _open_in_new_tab(renderer: object, tokens: Sequence[Token], idx: int, options: object, env: object) -> str:
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return _html.renderer.renderToken(tokens, idx, options, env)  # type: ignore[arg-type]


_html.add_render_rule("link_open", _open_in_new_tab)


def is_web_link(url: str | None) -> bool:
    return bool(url) and url.lower().startswith(("http://", "https://"))  # type: ignore[union-attr]


def to_html(markdown: str) -> str:
    """Safe HTML for `markdown` (raw HTML in it is shown as text, unsafe links are not links)."""
    return _html.render(markdown or "")


# --- the chat renderers --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Style:
    """How one chat platform writes each Markdown construct."""

    escape: Callable[[str], str]
    bold: str
    italic: str
    strike: str
    link: Callable[[str, str], str]  # (url, rendered label) -> markup
    heading: Callable[[str], str]
    code: Callable[[str], str]


def slack_escape(text: str) -> str:
    """Text safe in Slack mrkdwn: Slack's &, <, > escaping plus defused @channel/@here/@everyone."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: f"@{_ZWSP}{m.group(1)}", text)


def slack_link(url: str, label: str) -> str:
    """`<url|label>` (label already escaped) for http(s) URLs; other schemes stay plain text."""
    if not is_web_link(url):
        return label
    safe = url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{safe}|{label}>"


def discord_escape(text: str) -> str:
    """Text shown literally by Discord: its formatting characters escaped, broadcasts defused."""
    return _BROADCAST.sub(lambda m: f"@{_ZWSP}{m.group(1)}", _DISCORD_SPECIAL.sub(r"\\\1", text))


def discord_link(url: str, label: str) -> str:
    """A masked link; the angle brackets stop Discord from adding a preview."""
    if not is_web_link(url):
        return label
    return f"[{label}](<{url.replace('>', '%3E').replace(' ', '%20')}>)"


_SLACK = _Style(slack_escape, "*", "_", "~", slack_link, lambda t: f"*{t}*",
                lambda t: f"`{slack_escape(t).replace('`', 'ˋ')}`")
_DISCORD = _Style(discord_escape, "**", "*", "~~", discord_link, lambda t: f"**{t}**",
                  lambda t: f"`{t.replace('`', 'ˋ')}`")
_TEXT = _Style(lambda t: t, "", "", "", lambda url, label: label, lambda t: t, lambda t: t)


def _inline(children: Sequence[Token], style: _Style) -> str:
    out: list[str] = []
    links: list[str] = []  # hrefs of open links; their label is collected in a nested buffer
    buffers: list[list[str]] = [out]
    for tok in children:
        buf = buffers[-1]
        if tok.type == "text":
            buf.append(style.escape(tok.content))
        elif tok.type == "code_inline":
            buf.append(style.code(tok.content))
        elif tok.type in ("softbreak", "hardbreak"):
            buf.append(" " if tok.type == "softbreak" else "\n")
        elif tok.type in ("strong_open", "strong_close"):
            buf.append(style.bold)
        elif tok.type in ("em_open", "em_close"):
            buf.append(style.italic)
        elif tok.type in ("s_open", "s_close"):
            buf.append(style.strike)
        elif tok.type == "link_open":
            links.append(str(tok.attrGet("href") or ""))
            buffers.append([])
        elif tok.type == "link_close" and links:
            label = "".join(buffers.pop())
            buffers[-1].append(style.link(links.pop(), label))
        elif tok.type == "image":
            buffers[-1].append(style.escape(tok.content or "image"))
    while len(buffers) > 1:  # an unclosed link (a cut snippet): keep its text
        label = "".join(buffers.pop())
        buffers[-1].append(label)
    return "".join(out)


def _blocks(markdown: str, style: _Style) -> list[str]:
    """One output line per paragraph, heading, list item, table row, code block or rule."""
    lines: list[str] = []
    lists: list[list[int]] = []  # a counter per open list: [next number], or [-1] for bullets
    quote = 0
    heading = False
    row: list[str] | None = None
    item = ""  # the marker of a list item whose first paragraph comes next
    for tok in _parser.parse(markdown or ""):
        prefix = "> " * quote if style is not _TEXT else ""
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            lists.append([int(tok.attrGet("start") or 1)] if tok.type == "ordered_list_open" else [-1])
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif tok.type == "list_item_open" and lists:
            counter, indent = lists[-1], "  " * (len(lists) - 1)
            item = f"{indent}• " if counter[0] < 0 else f"{indent}{counter[0]}. "
            counter[0] += 0 if counter[0] < 0 else 1
        elif tok.type in ("blockquote_open", "blockquote_close"):
            quote += 1 if tok.type == "blockquote_open" else -1
        elif tok.type in ("heading_open", "heading_close"):
            heading = tok.type == "heading_open"
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close" and row is not None:
            lines.append(prefix + " | ".join(row))
            row = None
        elif tok.type in ("fence", "code_block"):
            body = tok.content.rstrip("\n")
            lines.append(prefix + (f"```\n{body}\n```" if style is not _TEXT else body))
        elif tok.type == "hr":
            lines.append(prefix + "―――")
        elif tok.type == "inline":
            text = _inline(tok.children or [], style)
            if row is not None:
                row.append(text)
            elif heading:
                lines.append(prefix + style.heading(text))
            else:
                lines.append(prefix + item + text)
                item = ""
    return [line for line in lines if line.strip()]


def _render(markdown: str, style: _Style) -> str:
    return "\n".join(_blocks(markdown, style))


def to_slack(markdown: str) -> str:
    """Slack mrkdwn, escaped; one line per block."""
    return _render(markdown, _SLACK)


def to_discord(markdown: str) -> str:
    """Discord Markdown, escaped; one line per block."""
    return _render(markdown, _DISCORD)


def to_text(markdown: str) -> str:
    """Plain text without Markdown syntax; one line per block."""
    return _render(markdown, _TEXT)
