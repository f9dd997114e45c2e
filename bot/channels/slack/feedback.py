"""Feedback on Slack answers: 👍 / 👎 (one vote per user per answer, a second click changes it), the
"Suggest a correction" modal (stored as pending review) and "Share in channel" for /ask answers.
Every button carries the answer id in its value, so nothing here depends on memory or a restart."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.channels import shared
from bot.channels.slack import render as slack_render
from bot.channels.slack.context import PLATFORM, SlackContext
from bot.channels.slack.render import ACTION_VOTE_UP, CORRECTION_BLOCK, CORRECTION_INPUT, MAX_CORRECTION_CHARS, escape
from bot.core.types import Feedback

log = logging.getLogger(__name__)
_USER_ID = re.compile(r"[UW][A-Z0-9]{1,30}")


def _channel_of(body: dict[str, Any]) -> str:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")


def _tell(respond: Any, text: str) -> None:
    """An ephemeral note to the person who clicked, leaving the answer message as it is."""
    respond(text=text, response_type="ephemeral", replace_original=False)


class FeedbackHandlers:
    def __init__(self, ctx: SlackContext):
        self.bot = ctx

    def on_vote(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        ack()
        vote = 1 if action.get("action_id") == ACTION_VOTE_UP else -1
        answer_id, user = action.get("value") or "", (body.get("user") or {}).get("id", "")
        feedback = Feedback(answer_id, user, vote=vote, platform=PLATFORM, verified=True)
        outcome = shared.record_feedback(self.bot.services.engine, feedback)
        _tell(respond, shared.feedback_message(outcome, feedback))

    def on_correct(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        """Open the correction modal at once (the trigger_id expires after 3 seconds)."""
        ack()
        row = self.bot.store.get_answer(action.get("value") or "")
        if row is None:
            _tell(respond, shared.UNKNOWN_ANSWER_TEXT)
            return
        view = slack_render.correction_modal(row.id, _channel_of(body), row.answer or "")
        self.bot.client.views_open(trigger_id=body["trigger_id"], view=view)

    def on_correction(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Store the correction before the modal closes; any problem keeps the modal open with a note,
        so the text someone typed is never lost."""
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            text = (view["state"]["values"][CORRECTION_BLOCK][CORRECTION_INPUT].get("value") or "").strip()
        except (ValueError, KeyError, TypeError, AttributeError):
            ack(
                response_action="errors",
                errors={CORRECTION_BLOCK: "Something was missing; please try again."},
            )
            return
        if not text:
            ack(response_action="errors", errors={CORRECTION_BLOCK: "Please write the corrected answer."})
            return
        if len(text) > MAX_CORRECTION_CHARS:
            ack(
                response_action="errors",
                errors={CORRECTION_BLOCK: f"Please keep it under {MAX_CORRECTION_CHARS} characters."},
            )
            return
        user = (body.get("user") or {}).get("id", "")
        answer_id = str(meta.get("answer_id", "")) if isinstance(meta, dict) else ""
        feedback = Feedback(answer_id, user, vote=0, correction=text, platform=PLATFORM, verified=True)
        outcome = shared.record_feedback(self.bot.services.engine, feedback)
        if outcome is not shared.FeedbackOutcome.RECORDED:  # the modal stays open with the text in it
            ack(response_action="errors", errors={CORRECTION_BLOCK: shared.feedback_message(outcome, feedback)})
            return
        ack()
        if meta.get("channel_id"):
            try:
                self.bot.client.chat_postEphemeral(
                    channel=meta["channel_id"],
                    user=user,
                    text=shared.feedback_message(outcome, feedback),
                )
            except SlackApiError as exc:
                log.info("could not confirm a correction: %s", exc.response.get("error"))

    def on_share(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        """Post an ephemeral /ask answer in the channel for everyone, then remove the ephemeral copy."""
        ack()
        row = self.bot.store.get_answer(action.get("value") or "")
        if row is None:
            _tell(respond, shared.UNKNOWN_ANSWER_TEXT)
            return
        user = (body.get("user") or {}).get("id", "")
        header = f"<@{user}> asked: {escape(row.question[:500])}" if _USER_ID.fullmatch(user) else None
        text, blocks = slack_render.answer_message(
            slack_render.answer_from_row(row), self.bot.settings.public_url, header=header
        )
        try:
            self.bot.post(_channel_of(body), text, blocks)
        except SlackApiError as exc:
            if exc.response.get("error") not in ("not_in_channel", "channel_not_found"):
                raise
            _tell(
                respond,
                "I need to be a member of this channel to share here: `/invite @kbot`, then try again.",
            )
            return
        respond(delete_original=True)
