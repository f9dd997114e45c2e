"""The conversation cog: /ask, mentions (answered in a thread opened on the message), follow-ups
in the bot's threads, direct messages, feedback buttons, the correction form and retries.

The engine and the store are synchronous, so every call into them runs in a worker thread
(`asyncio.to_thread`): the gateway heartbeat and the 3-second interaction acknowledgement never
wait behind retrieval or generation. Answers stream into their message about once a second
(bot/channels/discord/streaming.py), then the final answer replaces it with sources and buttons.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import discord
from discord import app_commands
from discord.ext import commands

from bot.channels import shared
from bot.channels.discord.places import PLATFORM, Place, place_of, resolve_scopes
from bot.channels.discord.streaming import LiveMessage, stream
from bot.channels.discord.views import (
    CORRECTION_INPUT_ID,
    CORRECTION_MODAL_ID,
    HANDLER_COG,
    MESSAGE_LIMIT,
    NO_MENTIONS,
    clip,
    feedback_view,
    render_answer,
    retry_view,
    submitted_value,
)
from bot.core import telemetry
from bot.core.errors import AnswerFailed, QuestionRejected
from bot.core.types import Answer, Feedback, Question, Turn

log = logging.getLogger(__name__)

APOLOGY = "Sorry, I couldn't look that up just now. Your question was saved; press **Try again** in a moment."
BROKEN = "Sorry, something went wrong on my side. Please try again later."
HELP = "Ask me something after the mention, e.g. `@kbot how do I set up the VPN?`, or use `/ask`."
# Stop using the interaction token a little before Discord's 15 minutes run out.
TOKEN_MARGIN = timedelta(seconds=30)
_ANSWER_KINDS = (discord.MessageType.default, discord.MessageType.reply)


@dataclass
class Reply:
    """What to post: an answer with feedback buttons, or an apology with a retry button."""

    content: str
    embeds: list[discord.Embed]
    view: discord.ui.View | None
    answer_id: str | None = None


class KbotCog(commands.Cog, name=HANDLER_COG):
    def __init__(self, bot: commands.Bot, services: shared.Services):
        self.bot = bot
        self.services = services
        self.settings = services.settings
        self.limiter = shared.RateLimit.questions(services.settings)

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        """The one error handler of this cog's commands: an apology, never a traceback."""
        await _apologise(interaction)

    # --- /ask ------------------------------------------------------------------------------------
    @app_commands.command(name="ask", description="Ask the knowledge base a question.")
    @app_commands.describe(question="What do you want to know?")
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        # Acknowledge before anything else: Discord drops interactions not answered within 3 s.
        deferred = await _defer(interaction, thinking=True)
        if not await self._first_delivery(shared.delivery_key(PLATFORM, "interaction", str(interaction.id))):
            return
        try:
            question = shared.check_question(question, self.settings)
        except QuestionRejected as exc:
            await _safe_send(interaction.followup.send(str(exc), ephemeral=True))
            return
        if wait := self.limiter.retry_after(PLATFORM, str(interaction.user.id)):
            await _safe_send(interaction.followup.send(shared.slow_down_text(wait), ephemeral=True))
            return
        place = place_of(interaction.channel, interaction.guild_id)
        trace = telemetry.AnswerTrace(PLATFORM)
        try:
            # The first follow-up after the deferral replaces Discord's "thinking" message.
            live = LiveMessage(lambda **kwargs: interaction.followup.send(wait=True, **kwargs),
                               usable=lambda: deferred and _token_valid(interaction))
            reply = await self._answer(question, str(interaction.user.id), place, (), str(interaction.id),
                                       trace, live)
            with trace.step("kbot.post"):
                await live.finish(reply.content, reply.embeds, reply.view, lambda: self._send_followup(
                    interaction, reply, deferred=deferred, asked=question))
        finally:
            trace.end()

    # --- mentions, threads and direct messages -----------------------------------------------------
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or message.type not in _ANSWER_KINDS:
            return
        channel = message.channel
        in_dm = message.guild is None
        mentioned = any(u.id == me.id for u in message.mentions)
        in_our_thread = isinstance(channel, discord.Thread) and channel.owner_id == me.id
        if not (in_dm or mentioned or in_our_thread):
            return
        # Without the Message Content intent, unmentioned thread messages arrive with empty text.
        text = strip_mention(message.content, me.id)
        if not text and not mentioned:
            return
        # Checked only for messages meant for the bot, so ordinary chatter writes nothing.
        if not await self._first_delivery(shared.delivery_key(PLATFORM, "message", str(message.id))):
            return
        if not text:
            await _safe_send(message.channel.send(HELP, allowed_mentions=NO_MENTIONS))
            return
        try:
            text = shared.check_question(text, self.settings)
        except QuestionRejected as exc:
            await _safe_send(message.reply(str(exc), mention_author=False, allowed_mentions=NO_MENTIONS))
            return
        if wait := self.limiter.retry_after(PLATFORM, str(message.author.id)):
            await _safe_send(message.reply(shared.slow_down_text(wait), mention_author=False,
                                           allowed_mentions=NO_MENTIONS))
            return

        history: tuple[Turn, ...] = ()
        target: discord.abc.Messageable = channel
        reply_to: discord.Message | None = None
        if in_dm or isinstance(channel, discord.Thread):
            history = await self._history(channel, message)
            place = place_of(channel, message.guild.id if message.guild else None)
        else:
            thread = await self._open_thread(message, text) if self._wants_thread(channel) else None
            if thread is not None:
                target = thread
                place = Place(str(channel.id), str(thread.id), str(message.guild.id))  # type: ignore[union-attr]
            else:
                reply_to = message
                place = place_of(channel, message.guild.id if message.guild else None)

        async def post(**kwargs: object) -> discord.Message:
            if reply_to is not None:
                return await reply_to.reply(mention_author=False, **kwargs)
            return await target.send(**kwargs)

        async def post_final() -> None:
            kwargs: dict = dict(content=reply.content, embeds=reply.embeds, allowed_mentions=NO_MENTIONS)
            if reply.view is not None:
                kwargs["view"] = reply.view
            await _safe_send(post(**kwargs))

        trace = telemetry.AnswerTrace(PLATFORM)
        try:
            live = LiveMessage(post)
            async with _typing(target):
                reply = await self._answer(text, str(message.author.id), place, history, str(message.id),
                                           trace, live)
            with trace.step("kbot.post"):
                await live.finish(reply.content, reply.embeds, reply.view, post_final)
        finally:
            trace.end()

    # --- feedback ----------------------------------------------------------------------------------
    async def on_vote(self, interaction: discord.Interaction, answer_id: str, vote: int) -> None:
        await interaction.response.defer()  # a silent acknowledgement; the receipt comes ephemeral
        feedback = Feedback(answer_id, str(interaction.user.id), vote=vote, platform=PLATFORM, verified=True)
        await interaction.followup.send(await self._record(feedback), ephemeral=True)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Correction forms (see CorrectionModal: handled here so they survive a restart)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data = interaction.data or {}
        match = CORRECTION_MODAL_ID.fullmatch(str(data.get("custom_id", "")))
        if match is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = (submitted_value(list(data.get("components", [])), CORRECTION_INPUT_ID) or "").strip()
        if not text:
            await interaction.followup.send("The correction was empty, so nothing was saved.", ephemeral=True)
            return
        feedback = Feedback(match["answer_id"], str(interaction.user.id), correction=text, platform=PLATFORM,
                            verified=True)
        result = await self._record(feedback)
        if not result.startswith("Thanks"):  # not saved: hand the text back so it is not lost
            result += "\nYour text:\n" + clip(text, MESSAGE_LIMIT - len(result) - 20)
        await interaction.followup.send(result, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def on_retry(self, interaction: discord.Interaction, answer_id: str) -> None:
        await interaction.response.defer()  # the apology message is replaced by the answer below
        if not await self._first_delivery(shared.delivery_key(PLATFORM, "retry", answer_id)):
            await interaction.followup.send("That question is already being retried.", ephemeral=True)
            return
        row = await asyncio.to_thread(self.services.store.get_answer, answer_id)
        if row is None:
            await interaction.followup.send(shared.RETRY_GONE_TEXT, ephemeral=True)
            return
        place = place_of(interaction.channel, interaction.guild_id)
        text = shared.retry_text(row)
        trace = telemetry.AnswerTrace(PLATFORM)
        try:
            # The apology message is edited in place: first with the text so far, then with the answer.
            live = LiveMessage(lambda **kwargs: interaction.edit_original_response(**kwargs),
                               usable=lambda: _token_valid(interaction))
            reply = await self._answer(text, str(interaction.user.id), place, (), str(interaction.id), trace, live)
            with trace.step("kbot.post"):
                try:
                    await interaction.edit_original_response(
                        content=reply.content, embeds=reply.embeds, view=reply.view, allowed_mentions=NO_MENTIONS
                    )
                except discord.HTTPException as exc:
                    log.warning("could not edit the retried message (%s); posting the answer instead", exc.status)
                    await self._send_followup(interaction, reply, deferred=False, asked=text)
        finally:
            trace.end()

    # --- steps -------------------------------------------------------------------------------------
    async def _answer(
        self, text: str, user_id: str, place: Place, history: tuple[Turn, ...], event_id: str,
        trace: telemetry.AnswerTrace, live: LiveMessage | None = None,
    ) -> Reply:
        """The answer to post, streamed into `live` while it is written."""

        def work() -> Iterator[str | Answer]:
            scopes, _ = resolve_scopes(self.services.store, self.settings, place)
            question = Question(
                text=text, user_id=user_id, platform=PLATFORM, channel_id=place.channel_id,
                thread_id=place.thread_id, scopes=scopes, history=history, event_id=event_id,
            )
            return self.services.engine.stream(question, trace)

        try:
            answer = await stream(work, live)
        except AnswerFailed as exc:
            log.warning("discord answer %s failed: %s", exc.answer_id, type(exc.cause).__name__)
            return Reply(APOLOGY, [], retry_view(exc.answer_id), exc.answer_id)
        except Exception:
            log.exception("discord question could not be answered")
            return Reply(BROKEN, [], None)
        log.info("discord answer %s mode=%s channel=%s", answer.answer_id, answer.mode, place.channel_id,
                 extra={"answer_id": answer.answer_id, "platform": PLATFORM})
        rendered = render_answer(answer, self.settings.public_url)
        return Reply(rendered.content, rendered.embeds, feedback_view(answer.answer_id), answer.answer_id)

    async def _send_followup(
        self, interaction: discord.Interaction, reply: Reply, *, deferred: bool, asked: str
    ) -> None:
        """The answer as the interaction's follow-up while its token is valid (15 minutes), else as a
        plain channel message (the token expired, or Discord refused it)."""
        if deferred and _token_valid(interaction):
            try:
                await interaction.followup.send(
                    content=reply.content, embeds=reply.embeds, view=reply.view or discord.utils.MISSING,
                    allowed_mentions=NO_MENTIONS, wait=True,
                )
                return
            except discord.HTTPException as exc:
                if exc.status not in (401, 404):  # 50027 invalid webhook token / 10015 unknown webhook
                    raise
                log.warning("interaction %s token refused (%s); posting in the channel",
                            interaction.id, exc.code)
        channel_id = interaction.channel_id
        if channel_id is None:
            log.warning("interaction %s has no channel to post the late answer in", interaction.id)
            return
        header = f"{interaction.user.mention} asked: {clip(' '.join(asked.split()), 200)}\n"
        content = clip(header + reply.content, MESSAGE_LIMIT)
        kwargs = dict(content=content, embeds=reply.embeds, allowed_mentions=NO_MENTIONS)
        if reply.view is not None:
            kwargs["view"] = reply.view
        await _safe_send(self.bot.get_partial_messageable(channel_id).send(**kwargs))

    async def _record(self, feedback: Feedback) -> str:
        outcome = await asyncio.to_thread(shared.record_feedback, self.services.engine, feedback)
        return shared.feedback_message(outcome, feedback)

    async def _first_delivery(self, key: str) -> bool:
        """False when this delivery was handled before (gateway resume replay, double delivery)."""
        return await asyncio.to_thread(shared.first_delivery, self.services.store, key)

    async def _history(self, channel: discord.abc.Messageable, before: discord.Message) -> tuple[Turn, ...]:
        """Earlier turns of a thread or DM, oldest first; for a thread started on a message, that
        message (the first question, which lives in the parent channel) comes first."""
        me = self.bot.user
        limit = max(self.settings.history_turns * 2, 2)
        messages: list[discord.Message] = []
        try:
            async for m in channel.history(limit=limit, before=before):
                messages.append(m)
            if isinstance(channel, discord.Thread) and len(messages) < limit:
                starter = channel.starter_message or await self.bot.get_partial_messageable(
                    channel.parent_id
                ).fetch_message(channel.id)
                messages.append(starter)
        except discord.HTTPException as exc:  # e.g. no Read Message History: answer without history
            log.info("no history for channel %s (%s)", getattr(channel, "id", "?"), exc.status)
        turns = []
        for m in reversed(messages):
            if m.type not in _ANSWER_KINDS:
                continue
            text = strip_mention(m.content, me.id) if me else m.content
            if text:
                turns.append(Turn("assistant" if me and m.author.id == me.id else "user", text))
        return tuple(turns)

    def _wants_thread(self, channel: object) -> bool:
        return self.settings.discord_thread_replies and isinstance(channel, discord.TextChannel)

    async def _open_thread(self, message: discord.Message, text: str) -> discord.Thread | None:
        try:
            name = clip(" ".join(text.split()), 90)
            return await message.create_thread(name=name, auto_archive_duration=1440)
        except (discord.HTTPException, ValueError) as exc:  # no thread permission, or one exists
            log.info("could not open a thread on message %s (%s); replying in the channel", message.id, exc)
            return None


def _token_valid(interaction: discord.Interaction) -> bool:
    """The interaction's token may still be used (follow-ups and edits work for 15 minutes)."""
    return discord.utils.utcnow() < interaction.expires_at - TOKEN_MARGIN


def strip_mention(text: str, user_id: int) -> str:
    return re.sub(rf"<@!?{user_id}>", " ", text or "").strip()


async def _defer(interaction: discord.Interaction, *, thinking: bool) -> bool:
    try:
        await interaction.response.defer(thinking=thinking)
        return True
    except discord.HTTPException as exc:  # already acknowledged (a duplicate) or too late
        log.warning("could not acknowledge interaction %s (%s)", interaction.id, exc.code)
        return False


async def _apologise(interaction: discord.Interaction) -> None:
    try:
        if interaction.response.is_done():
            await interaction.followup.send(BROKEN, ephemeral=True)
        else:
            await interaction.response.send_message(BROKEN, ephemeral=True)
    except discord.HTTPException:
        pass


async def _safe_send(coro: object) -> None:
    try:
        await coro  # type: ignore[misc]
    except discord.HTTPException as exc:  # e.g. Missing Permissions: nothing more can be done here
        log.warning("could not post to Discord: %s %s", exc.status, exc.code)


class _typing:
    """`channel.typing()` that never fails the answer when the indicator cannot be shown."""

    def __init__(self, channel: discord.abc.Messageable):
        self._cm = channel.typing()

    async def __aenter__(self) -> None:
        try:
            await self._cm.__aenter__()
        except discord.HTTPException:
            self._cm = None

    async def __aexit__(self, *exc: object) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc)
