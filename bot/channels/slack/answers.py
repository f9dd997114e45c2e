"""Questions in Slack: @mentions, DMs, thread follow-ups, /ask and the retry button, and how an answer
is streamed into a placeholder message (chat.update) or an ephemeral reply (response_url)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from bot.channels import shared
from bot.channels.slack import render as slack_render
from bot.channels.slack.context import PLATFORM, SlackContext
from bot.core import telemetry
from bot.core.errors import AnswerFailed, QuestionRejected
from bot.core.types import Answer, Question, Turn

log = logging.getLogger(__name__)

UPDATE_INTERVAL_S = 1.0  # streamed text is pushed with chat.update at most this often
RESPONSE_URL_PARTIAL_UPDATES = 2  # a response_url takes 5 posts in 30 minutes; keep most for the final
# Message subtypes that are a person writing; edits, joins, deletions and bot posts are not questions.
USER_SUBTYPES = (None, "thread_broadcast", "file_share")


class Target(Protocol):
    """Where an answer is shown and updated: a bot message, or an ephemeral reply's response_url."""

    ephemeral: bool

    def show(self, text: str, blocks: list[dict[str, Any]], *, final: bool = False) -> None: ...


@dataclass
class MessageTarget:
    client: WebClient
    channel: str
    ts: str
    ephemeral: bool = False

    def show(self, text: str, blocks: list[dict[str, Any]], *, final: bool = False) -> None:
        self.client.chat_update(channel=self.channel, ts=self.ts, text=text, blocks=blocks)


@dataclass
class ResponseUrlTarget:
    response_url: str
    ephemeral: bool = True
    partial_updates: int = 0

    def show(self, text: str, blocks: list[dict[str, Any]], *, final: bool = False) -> None:
        if not final:
            if self.partial_updates >= RESPONSE_URL_PARTIAL_UPDATES:
                return
            self.partial_updates += 1
        resp = webhook(self.response_url).send(
            text=text,
            blocks=blocks,
            replace_original=True,
            response_type="ephemeral",
            unfurl_links=False,
            unfurl_media=False,
        )
        if resp.status_code != 200:
            log.warning("response_url update failed with HTTP %s", resp.status_code)


def webhook(url: str) -> WebhookClient:
    client = WebhookClient(url, timeout=15)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    return client


def strip_mentions(text: str, bot_user_id: str | None) -> str:
    """The question without the bot's own @-mention (other mentions stay as they are)."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    else:  # unknown bot id: drop a leading mention, which is how people address the bot
        text = re.sub(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def from_a_bot(event: dict[str, Any], bot_user_id: str | None) -> bool:
    return bool(
        event.get("bot_id")
        or event.get("bot_profile")
        or event.get("subtype") == "bot_message"
        or (bot_user_id and event.get("user") == bot_user_id)
    )


def is_dm_channel(channel_id: str, channel_type: str | None = None) -> bool:
    return channel_type == "im" or channel_id.startswith("D")


class Conversations:
    """Listeners that turn Slack messages into questions, and the answering job itself."""

    def __init__(self, ctx: SlackContext, on_files: Callable[[dict[str, Any], str, str], None]):
        self.bot = ctx
        self.on_files = on_files  # a file shared in a DM goes to the admin handlers
        self.limiter = shared.RateLimit.questions(ctx.settings)

    # --- messages: mentions, DMs, thread follow-ups ----------------------------------------------
    def on_mention(self, ack: Any, event: dict[str, Any], context: Any) -> None:
        ack()
        self.accept_message(event, context.bot_user_id, mentioned=True)

    def on_message(self, ack: Any, event: dict[str, Any], context: Any) -> None:
        ack()
        self.accept_message(event, context.bot_user_id, mentioned=False)

    def accept_message(self, event: dict[str, Any], bot_user_id: str | None, *, mentioned: bool) -> None:
        """Decide whether a message is a question for the bot; if so claim it and start answering."""
        bot, store = self.bot, self.bot.store
        if from_a_bot(event, bot_user_id) or event.get("subtype") not in USER_SUBTYPES:
            return
        channel, ts, user = event.get("channel", ""), event.get("ts", ""), event.get("user", "")
        if not (channel and ts and user):
            return
        is_dm = is_dm_channel(channel, event.get("channel_type"))
        thread_ts = event.get("thread_ts")
        raw = event.get("text") or ""
        if not is_dm and not mentioned and not (bot_user_id and f"<@{bot_user_id}" in raw):
            # Without a mention, only follow-ups in a thread the bot is already answering in.
            if not thread_ts or thread_ts == ts or not store.find_conversation(PLATFORM, channel, thread_ts):
                return
        # One key per post: Slack's retries and the app_mention + message pair share it.
        if not shared.first_delivery(store, shared.delivery_key(PLATFORM, "msg", f"{channel}:{ts}")):
            log.info("slack message %s/%s already handled (retry or duplicate delivery)", channel, ts)
            return
        if event.get("subtype") == "file_share" and is_dm:
            self.on_files(event, user, channel)
            return
        reply_thread = thread_ts or (None if is_dm else ts)
        try:
            text = shared.check_question(strip_mentions(raw, bot_user_id), bot.settings)
        except QuestionRejected as exc:
            bot.post(channel, slack_render.escape(str(exc)), thread_ts=reply_thread)
            return
        if wait := self.limiter.retry_after(PLATFORM, user):
            log.info("slack user %s is over the question rate", user)
            bot.client.chat_postEphemeral(channel=channel, user=user, text=shared.slow_down_text(wait),
                                          thread_ts=reply_thread)
            return
        question = Question(
            text=text,
            user_id=user,
            platform=PLATFORM,
            channel_id=channel,
            thread_id=reply_thread or "",
            scopes=bot.scopes_for(channel, user, is_dm),
            event_id=f"{channel}:{ts}",
        )
        if reply_thread:  # a conversation from now on, so follow-ups sent while answering are recognised
            store.conversation_id(PLATFORM, channel, reply_thread)
        placeholder_ts = bot.post(channel, *slack_render.placeholder_message(), thread_ts=reply_thread)
        target = MessageTarget(bot.client, channel, placeholder_ts)
        with_history = is_dm or bool(reply_thread)
        bot.submit(self.answer, question, target, with_history, {ts, placeholder_ts}, bot_user_id, ts)

    # --- /ask ------------------------------------------------------------------------------------
    def on_ask(self, ack: Any, command: dict[str, Any]) -> None:
        """Answer ephemerally: the ack is the placeholder, the response_url gets the answer."""
        try:
            text = shared.check_question(command.get("text") or "", self.bot.settings)
        except QuestionRejected as exc:
            empty = not (command.get("text") or "").strip()
            example = " For example: `/ask How do I reset my VPN password?`" if empty else ""
            ack(response_type="ephemeral", text=slack_render.escape(str(exc)) + example)
            return
        if wait := self.limiter.retry_after(PLATFORM, command.get("user_id", "")):
            ack(response_type="ephemeral", text=shared.slow_down_text(wait))
            return
        ack(response_type="ephemeral", text=slack_render.PLACEHOLDER)
        trigger = command.get("trigger_id") or ""
        if not shared.first_delivery(self.bot.store, shared.delivery_key(PLATFORM, "cmd", trigger)):
            return
        channel, user = command.get("channel_id", ""), command.get("user_id", "")
        is_dm = is_dm_channel(channel, "im" if command.get("channel_name") == "directmessage" else None)
        question = Question(
            text=text,
            user_id=user,
            platform=PLATFORM,
            channel_id=channel,
            scopes=self.bot.scopes_for(channel, user, is_dm),
            event_id=f"cmd:{trigger}",
        )
        self.bot.submit(self.answer, question, ResponseUrlTarget(command["response_url"]), False)

    # --- the retry button on an apology ------------------------------------------------------------
    def on_retry(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, context: Any
    ) -> None:
        """Answer a failed question again, in place of the apology (shared.retry_text says what)."""
        ack()
        failed_id = action.get("value") or ""
        row = self.bot.store.get_answer(failed_id)
        if row is None:
            respond(text=shared.RETRY_GONE_TEXT, replace_original=False)
            return
        if not shared.first_delivery(self.bot.store, shared.delivery_key(PLATFORM, "retry", failed_id)):
            return  # a double click: the first one is already answering
        container = body.get("container", {})
        channel = row.channel_id or container.get("channel_id", "")
        target: Target
        if container.get("is_ephemeral") or not container.get("message_ts"):
            target = ResponseUrlTarget(body["response_url"])
        else:
            target = MessageTarget(
                self.bot.client, container.get("channel_id") or channel, container["message_ts"]
            )
        target.show(*slack_render.placeholder_message())
        is_dm = is_dm_channel(channel)
        user = (body.get("user") or {}).get("id") or row.user_id
        question = Question(
            text=shared.retry_text(row),
            user_id=user,
            platform=PLATFORM,
            channel_id=channel,
            thread_id=row.thread_id or "",
            scopes=self.bot.scopes_for(channel, user, is_dm),
            event_id=f"retry:{failed_id}",
        )
        self.bot.submit(self.answer, question, target, False)  # the retried query needs no history

    # --- answering -------------------------------------------------------------------------------
    def answer(
        self,
        question: Question,
        target: Target,
        with_history: bool,
        skip_ts: set[str] | None = None,
        bot_user_id: str | None = None,
        before_ts: str | None = None,
    ) -> None:
        """Fetch the thread history, stream the engine's answer into `target`, then render it.
        `before_ts`: in a DM outside threads, the history is the messages before this one."""
        if with_history:
            history = self.history(question, skip_ts or set(), bot_user_id, before_ts)
            question = replace(question, history=history)
        trace = telemetry.AnswerTrace(PLATFORM)
        try:
            self._stream_into(question, target, trace)
        finally:
            trace.end()

    def _stream_into(self, question: Question, target: Target, trace: telemetry.AnswerTrace) -> None:
        public_url = self.bot.settings.public_url
        try:
            final: Answer | None = None
            pieces: list[str] = []
            last_update = time.monotonic()
            for item in self.bot.services.engine.stream(question, trace):
                if isinstance(item, Answer):
                    final = item
                    continue
                pieces.append(item)
                if time.monotonic() - last_update >= UPDATE_INTERVAL_S:
                    target.show(*slack_render.partial_message("".join(pieces)))
                    last_update = time.monotonic()
            if final is None:
                raise RuntimeError("the engine's stream ended without an Answer")
        except AnswerFailed as exc:
            log.warning("slack answer %s failed: %s", exc.answer_id, type(exc.cause).__name__)
            target.show(*slack_render.failure_message(exc.answer_id), final=True)
            return
        except Exception:
            log.exception("slack answer failed in channel %s", question.channel_id)
            target.show(*slack_render.failure_message(None), final=True)
            return
        text, blocks = slack_render.answer_message(final, public_url, share=target.ephemeral)
        with trace.step("kbot.post"):
            try:
                target.show(text, blocks, final=True)
            except SlackApiError as exc:  # never leave the placeholder behind: a short text and a link
                log.warning(
                    "rendering answer %s failed (%s); sending a link", final.answer_id, exc.response.get("error")
                )
                url = slack_render.full_answer_url(public_url, final.answer_id)
                target.show(f"{text[:2000]}\n{slack_render.link(url, 'Full answer')}", [], final=True)
        log.info("slack answer %s shown in %s (mode=%s)", final.answer_id, question.channel_id, final.mode,
                 extra={"answer_id": final.answer_id, "platform": PLATFORM})

    def history(
        self, question: Question, skip_ts: set[str], bot_user_id: str | None, before_ts: str | None = None
    ) -> tuple[Turn, ...]:
        """Earlier turns of the thread (or of the DM), oldest first, read back from Slack."""
        client, limit = self.bot.client, 2 * self.bot.settings.history_turns + 2
        try:
            if question.thread_id:
                messages = client.conversations_replies(
                    channel=question.channel_id, ts=question.thread_id, limit=100
                )["messages"]
            else:  # a DM outside threads: the messages before this one (newest first from Slack)
                messages = client.conversations_history(
                    channel=question.channel_id, latest=before_ts, limit=limit
                )["messages"][::-1]
        except SlackApiError as exc:
            log.warning("could not read history in %s: %s", question.channel_id, exc.response.get("error"))
            return ()
        turns: list[Turn] = []
        for m in messages:
            if m.get("ts") in skip_ts or m.get("subtype") not in (*USER_SUBTYPES, "bot_message"):
                continue
            mine = m.get("user") == bot_user_id if bot_user_id else bool(m.get("bot_id"))
            if m.get("bot_id") and not mine:
                continue  # other bots are not part of the conversation
            raw = m.get("text") or ""
            text = slack_render.unescape(raw) if mine else strip_mentions(raw, bot_user_id)
            if text and text not in (slack_render.PLACEHOLDER, slack_render.APOLOGY):
                turns.append(Turn("assistant" if mine else "user", text))
        return tuple(turns[-limit:])
