"""How answers look on Discord: message text and source embeds within Discord's limits, and the
persistent feedback / retry buttons.

The buttons are `discord.ui.DynamicItem`s whose custom ids carry the answer id, so a click is
understood from the id alone: they keep working after a restart (the bot re-registers the classes
with `bot.add_dynamic_items`) and no per-message view is kept in memory. Clicks are handed to the
conversation cog (`FeedbackHandler`), which owns the engine and the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import discord

from bot.channels.markdown import is_web_link, to_discord
from bot.core.types import Answer

# Discord's documented limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
MESSAGE_LIMIT = 2000
EMBED_TOTAL_LIMIT = 6000
EMBED_FIELDS_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
FOOTER_LIMIT = 2048
MODAL_TEXT_LIMIT = 2000

HANDLER_COG = "kbot"  # name of the cog that implements FeedbackHandler
_ANSWER_ID = r"(?P<answer_id>[0-9A-Za-z_-]{1,64})"
CORRECTION_MODAL_ID = re.compile(rf"kbot:correction:{_ANSWER_ID}")
CORRECTION_INPUT_ID = "correction"
NO_MENTIONS = discord.AllowedMentions.none()

_MODE_NOTES = {
    "extractive": "Quoted from the sources.",
    "declined": "Not found in the knowledge base.",
}


class FeedbackHandler(Protocol):
    """What the buttons call; implemented by the conversation cog."""

    async def on_vote(self, interaction: discord.Interaction, answer_id: str, vote: int) -> None: ...

    async def on_retry(self, interaction: discord.Interaction, answer_id: str) -> None: ...


@dataclass
class RenderedAnswer:
    content: str
    embeds: list[discord.Embed]
    truncated: bool = False


def answer_url(public_url: str, answer_id: str) -> str:
    return f"{public_url.rstrip('/')}/answers/{answer_id}"


def clip(text: str, limit: int, suffix: str = "…") -> str:
    """`text` cut to at most `limit` characters, at a word boundary where one is near."""
    if len(text) <= limit:
        return text
    room = max(limit - len(suffix), 0)
    cut = text[:room]
    space = cut.rfind(" ")
    if space > room * 0.8:
        cut = cut[:space]
    return cut.rstrip() + suffix


def render_answer(answer: Answer, public_url: str) -> RenderedAnswer:
    """The message text (answer, at most 2000 characters: longer text ends with a link to the full
    answer in the web chat) and one embed listing the sources within the embed limits."""
    link = answer_url(public_url, answer.answer_id)
    text = answer.text.strip() or "(empty answer)"
    truncated = len(text) > MESSAGE_LIMIT
    if truncated:
        # Angle brackets stop Discord from unfurling the link into a preview embed.
        text = clip(text, MESSAGE_LIMIT, suffix=f"… Full answer: <{link}>")
    return RenderedAnswer(text, [sources_embed(answer, link)] if answer.citations else [], truncated)


def sources_embed(answer: Answer, link: str) -> discord.Embed:
    title = "Sources" if answer.answered else "Closest sources"
    embed = discord.Embed(title=title, colour=discord.Colour.blurple())
    notes = [_MODE_NOTES.get(answer.mode, ""), f"answer {answer.answer_id}"]
    footer = " · ".join(n for n in notes if n)
    # Room kept for the longest footer this embed can get ("N more sources at <link> · ...").
    reserve = len(footer) + len(f"{len(answer.citations)} more sources at {link} · ")
    total = len(title) + reserve
    shown = 0
    for i, cite in enumerate(answer.citations[:EMBED_FIELDS_LIMIT], 1):
        name = clip(f"[{i}] {cite.title or 'source'}" + (f" · {cite.location}" if cite.location else ""),
                    FIELD_NAME_LIMIT)
        # A link that opens: the document's own address, else the source on the answer's web page
        # (never a path on the server).
        target = cite.url if is_web_link(cite.url) else f"{link}#source-{i}"
        tail = f"\n[Open source](<{target}>)"
        # The snippet's Markdown as Discord Markdown, quoted line by line.
        quote = "\n".join(f"> {line}" for line in to_discord(_cut(cite.text, FIELD_VALUE_LIMIT)).splitlines())
        value = clip(quote or "(no excerpt)", FIELD_VALUE_LIMIT - len(tail)) + tail
        if total + len(name) + len(value) > EMBED_TOTAL_LIMIT:
            break
        embed.add_field(name=name, value=value, inline=False)
        total += len(name) + len(value)
        shown += 1
    if shown < len(answer.citations):
        footer = f"{len(answer.citations) - shown} more sources at {link} · " + footer
    embed.set_footer(text=clip(footer, FOOTER_LIMIT))
    return embed


def _cut(text: str, limit: int) -> str:
    """The snippet's Markdown cut before rendering (rendering copes with a construct cut in half)."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


# --- buttons -------------------------------------------------------------------------------------
def _handler(interaction: discord.Interaction) -> FeedbackHandler:
    cog = interaction.client.get_cog(HANDLER_COG)  # type: ignore[attr-defined]
    if cog is None:
        raise RuntimeError("the kbot cog is not loaded")
    return cog  # type: ignore[return-value]


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"kbot:vote:(?P<vote>up|down):{_ANSWER_ID}",
):
    def __init__(self, answer_id: str, vote: str) -> None:
        up = vote == "up"
        super().__init__(
            discord.ui.Button(
                label="Helpful" if up else "Not helpful",
                emoji="👍" if up else "👎",
                style=discord.ButtonStyle.secondary,
                custom_id=f"kbot:vote:{vote}:{answer_id}",
            )
        )
        self.answer_id = answer_id
        self.vote = vote

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> VoteButton:
        return cls(match["answer_id"], match["vote"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _handler(interaction).on_vote(interaction, self.answer_id, 1 if self.vote == "up" else -1)


class CorrectionButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"kbot:fix:{_ANSWER_ID}"):
    def __init__(self, answer_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Suggest a correction", emoji="✏️", style=discord.ButtonStyle.secondary,
                custom_id=f"kbot:fix:{answer_id}",
            )
        )
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> CorrectionButton:
        return cls(match["answer_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        # A modal must be the first response to the click, so nothing slow may come before it.
        await interaction.response.send_modal(CorrectionModal(self.answer_id))


class RetryButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"kbot:retry:{_ANSWER_ID}"):
    def __init__(self, answer_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Try again", emoji="🔁", style=discord.ButtonStyle.primary,
                custom_id=f"kbot:retry:{answer_id}",
            )
        )
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> RetryButton:
        return cls(match["answer_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _handler(interaction).on_retry(interaction, self.answer_id)


DYNAMIC_ITEMS = (VoteButton, CorrectionButton, RetryButton)


class CorrectionModal(discord.ui.Modal):
    """The correction form. Its submission is handled by the cog's `on_interaction` listener from the
    custom id alone (not by `on_submit`), so a form opened before a restart still saves its text:
    discord.py only routes a submit to `on_submit` while this object is alive in memory."""

    def __init__(self, answer_id: str) -> None:
        super().__init__(title="Suggest a correction", custom_id=f"kbot:correction:{answer_id}", timeout=900)
        self.correction: discord.ui.TextInput = discord.ui.TextInput(
            label="What should the answer say?",
            style=discord.TextStyle.paragraph,
            custom_id=CORRECTION_INPUT_ID,
            min_length=1,
            max_length=MODAL_TEXT_LIMIT,
            placeholder="The correct answer, and where it is written down if you know.",
        )
        self.add_item(self.correction)


def submitted_value(components: list[dict[str, Any]], custom_id: str) -> str | None:
    """The value of text input `custom_id` in a modal-submit payload (action rows or labels)."""
    for component in components:
        if component.get("type") == 1:
            found = submitted_value(component.get("components", []), custom_id)
        elif component.get("type") == 18:
            found = submitted_value([component.get("component", {})], custom_id)
        else:
            found = component.get("value") if component.get("custom_id") == custom_id else None
        if found is not None:
            return found
    return None


def feedback_view(answer_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton(answer_id, "up"))
    view.add_item(VoteButton(answer_id, "down"))
    view.add_item(CorrectionButton(answer_id))
    return view


def retry_view(answer_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RetryButton(answer_id))
    return view
