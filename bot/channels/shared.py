"""Every rule Slack, Discord and the web share, decided once here. Each adapter translates its platform's
events into calls of these functions and renders their results in its own markup.

- Scopes: the scope-name rule, parsing an admin's list, and resolving the scopes of a place.
- Questions: the length limit (settings.max_question_chars) and the messages for an empty or long one.
- Deliveries: the de-duplication key of a platform delivery and the policy when the store cannot say.
- Feedback: recording a vote or correction, its outcomes, and what each outcome tells the person.
- Retry: what a "try again" re-asks.
- Admin: who is an admin, and the facts `/kbot status` shows.
- Files: safe file names and the one document downloader (knowledge.fetch), with its policy.
- Access: the per-person question rate, the scopes a chat admin may map, the learning-loop actions.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.errors import InvalidScope, QuestionRejected, UnknownAnswer
from bot.core.settings import Settings
from bot.core.types import Feedback
from bot.engine.conversation import ConversationEngine
from knowledge.fetch import FetchPolicy, check_url, fetch_to, host_port, safe_filename
from knowledge.store import Store

# the downloader, re-exported for the adapters
__all__ = ["FetchPolicy", "check_url", "fetch_to", "host_port", "safe_filename"]
log = logging.getLogger(__name__)


class Services(Protocol):
    """What the adapters use of a running kbot (bot.wiring.Runtime is the implementation)."""

    settings: Settings
    store: Store
    engine: ConversationEngine
    ingestor: Any  # knowledge.ingest.Ingestor: ingest_file(path, scope, source=, title=), forget(source)


# --- scopes --------------------------------------------------------------------------------------------
SCOPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_SCOPES = 10
SCOPE_RULE = "letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64 characters"


def check_scope(name: str) -> str:
    """`name` if it is a valid scope name; InvalidScope with the rule otherwise."""
    if not SCOPE_NAME.fullmatch(name):
        raise InvalidScope(f"Invalid scope name {name[:40]!r}: use {SCOPE_RULE}.")
    return name


def parse_scopes(text: str) -> list[str]:
    """'hr, it' or 'hr it' -> ['hr', 'it'] (duplicates dropped); InvalidScope with a message to show."""
    scopes = list(dict.fromkeys(s for s in re.split(r"[,\s]+", text) if s))
    if not scopes:
        raise InvalidScope("Give at least one scope, e.g. `hr, it`.")
    if len(scopes) > MAX_SCOPES:
        raise InvalidScope(f"At most {MAX_SCOPES} scopes at once.")
    return [check_scope(s) for s in scopes]


def resolve_scopes(store: Store, platform: str, keys: Sequence[str], configured: Mapping[str, list[str]],
                   default: str) -> tuple[tuple[str, ...], str]:
    """The scopes a question asked at a place may search, and where they came from. `keys` name the
    place, most specific first (a thread, its channel, the server); for each key a mapping an admin
    made with `/kbot scope` (stored) beats one from settings; nothing mapped: the default scope."""
    for key in keys:
        stored = store.channel_scopes(platform, key)
        if stored:
            return tuple(stored), f"set with /kbot scope for {key}"
        if configured.get(key):
            return tuple(configured[key]), f"settings for {key}"
    return (default,), "default scope"


# --- questions -----------------------------------------------------------------------------------------
EMPTY_QUESTION = "Ask me a question and I'll answer from the knowledge base."


def check_question(text: str, settings: Settings) -> str:
    """The question, stripped; QuestionRejected with the message to show when it is empty or too long."""
    text = (text or "").strip()
    if not text:
        raise QuestionRejected(EMPTY_QUESTION)
    if len(text) > settings.max_question_chars:
        raise QuestionRejected(f"That question is {len(text):,} characters long; the limit is "
                               f"{settings.max_question_chars:,}. Please shorten it.")
    return text


# --- deliveries ----------------------------------------------------------------------------------------
def delivery_key(platform: str, kind: str, delivery_id: str) -> str:
    """The store key of one platform delivery (an event, a message, a command, a retry click)."""
    return f"{platform}:{kind}:{delivery_id}"


def first_delivery(store: Store, key: str) -> bool:
    """False when this delivery was handled before (a platform retry, a double click, a replay).

    Failure policy, the same everywhere: when the store cannot say, handle the delivery: a rare
    duplicate answer is better than silence while the database hiccups."""
    try:
        return store.claim_event(key)
    except Exception:
        log.exception("could not claim delivery %s; handling it anyway", key.split(":", 2)[:2])
        return True


# --- feedback ------------------------------------------------------------------------------------------
class FeedbackOutcome(enum.Enum):
    RECORDED = "recorded"
    UNKNOWN_ANSWER = "unknown_answer"
    FAILED = "failed"


UNKNOWN_ANSWER_TEXT = "I can't find that answer any more, so nothing was recorded."
FEEDBACK_FAILED_TEXT = "Sorry, your feedback could not be saved right now. Please try again."


def record_feedback(engine: ConversationEngine, feedback: Feedback) -> FeedbackOutcome:
    """Store a vote or correction under the person's platform identity; never raises."""
    try:
        engine.record_feedback(feedback)
    except UnknownAnswer:
        return FeedbackOutcome.UNKNOWN_ANSWER
    except Exception:
        log.exception("feedback on answer %s could not be stored", feedback.answer_id)
        return FeedbackOutcome.FAILED
    log.info("%s feedback on answer %s: vote %+d%s", feedback.platform, feedback.answer_id, feedback.vote,
             ", correction" if feedback.correction else "")
    return FeedbackOutcome.RECORDED


def feedback_message(outcome: FeedbackOutcome, feedback: Feedback) -> str:
    """What the person who gave the feedback is told."""
    if outcome is FeedbackOutcome.UNKNOWN_ANSWER:
        return UNKNOWN_ANSWER_TEXT
    if outcome is FeedbackOutcome.FAILED:
        return FEEDBACK_FAILED_TEXT
    if feedback.correction:
        return "Thanks! Your correction is saved and waiting for review."
    if feedback.vote > 0:
        return "Thanks! Your 👍 is recorded (you can change your vote)."
    return "Thanks! Your 👎 is recorded. A correction helps even more."


# --- retry ---------------------------------------------------------------------------------------------
RETRY_GONE_TEXT = "I can't find that question any more; please ask again."


def retry_text(row: Any) -> str:
    """What "try again" re-asks: the stored standalone query, which already folds in the conversation
    the first attempt saw (so a retry needs no history), else the question as typed."""
    return row.standalone_query or row.question


# --- files ---------------------------------------------------------------------------------------------
def fetch_policy(settings: Settings, *extra_hosts: str) -> FetchPolicy:
    """What URL downloads may reach: public hosts, plus KBOT_FETCH_ALLOW_HOSTS and `extra_hosts` (e.g.
    the configured Slack API host, which the operator named)."""
    return FetchPolicy.from_settings(settings, extra_hosts)


# --- admin ---------------------------------------------------------------------------------------------
def is_admin(user_id: str, admins: Collection[str], role_ids: Collection[str | int] = ()) -> bool:
    """Admins are listed explicitly, by platform user id or (Discord) by role id written 'role:<id>'.
    Nothing else makes one: not a name, a display name, a role name or a platform permission."""
    listed = {str(a) for a in admins}
    return bool(user_id) and (str(user_id) in listed or any(f"role:{r}" in listed for r in role_ids))


@dataclass(frozen=True)
class Status:
    """The facts `/kbot status` shows on every platform."""

    documents: int
    chunks: int
    failed: int
    last_ingest: str  # "2026-01-05 10:00 UTC (title)" or "never"
    adapter: str
    answers: int
    feedback: int
    pending_corrections: int
    scopes: tuple[str, ...]
    scopes_origin: str

    def lines(self, bold: str) -> list[str]:
        """Plain lines; `bold` is the platform's emphasis marker ('*' in Slack, '**' in Discord)."""
        failed = f", {self.failed} failed" if self.failed else ""
        return [
            f"{bold}kbot status{bold}",
            f"Documents: {self.documents} ({self.chunks} chunks{failed})",
            f"Last ingest: {self.last_ingest}",
            f"Adapter: {self.adapter}",
            f"Answers: {self.answers} · feedback: {self.feedback} · corrections to review: "
            f"{self.pending_corrections}",
            f"Scopes here: {', '.join(self.scopes)} ({self.scopes_origin})",
        ]


def status(store: Store, scopes: tuple[str, ...], origin: str) -> Status:
    docs = store.list_documents()
    last = max(docs, key=lambda d: d.updated_at or d.ingested_at) if docs else None
    when = (f"{(last.updated_at or last.ingested_at):%Y-%m-%d %H:%M} UTC ({last.title or last.source})"
            if last else "never")
    active = store.active_adapter()
    return Status(
        documents=len(docs), chunks=sum(d.chunk_count or 0 for d in docs),
        failed=sum(1 for d in docs if d.status != "ok"), last_ingest=when,
        adapter=active.version if active else "none (base model)", answers=store.count_answers(),
        feedback=store.count_feedback(), pending_corrections=len(store.list_feedback(correction_status="pending")),
        scopes=scopes, scopes_origin=origin,
    )


# --- access (issue 16): per-person question rate, what a chat admin may map, learning actions -------------
SLOW_DOWN_TEXT = "You're asking faster than I can keep up. Please wait about {seconds} seconds and ask again."


class RateLimit:
    """A rate per key, e.g. questions per person (settings.question_rate: '20/minute;200/day'), one
    counter per platform and user id, kept in settings.rate_limit_storage (memory, or Redis when
    several replicas serve)."""

    def __init__(self, rate: str, storage_uri: str = "memory://", namespace: str = "questions"):
        from limits import parse_many, storage, strategies

        self.items = parse_many(rate)
        self.namespace = namespace
        self.limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))

    @classmethod
    def questions(cls, settings: Settings) -> RateLimit:
        """The per-person question rate every platform applies."""
        return cls(settings.question_rate, settings.rate_limit_storage)

    def retry_after(self, platform: str, user_id: str) -> int | None:
        """None when this person may ask now (the question is counted), else seconds to wait."""
        import time

        for item in self.items:
            if not self.limiter.hit(item, self.namespace, platform, str(user_id)):
                reset = self.limiter.get_window_stats(item, self.namespace, platform, str(user_id)).reset_time
                return max(1, int(reset - time.time() + 0.999))
        return None


def slow_down_text(seconds: int) -> str:
    """The polite answer to someone over the question rate."""
    return SLOW_DOWN_TEXT.format(seconds=seconds)


def check_mappable(scopes: Sequence[str], allowed: Collection[str] | None, where: str) -> None:
    """InvalidScope unless every scope is one `where` (a Discord server, a Slack workspace) may use;
    `allowed` None means any scope (an explicit, operator-configured admin list)."""
    if allowed is None:
        return
    refused = [s for s in scopes if s not in set(allowed)]
    if refused:
        permitted = ", ".join(sorted(allowed)) or "none"
        raise InvalidScope(f"{where} may not use scope {', '.join(refused)} (allowed here: {permitted}). "
                           "The operator grants scopes per server in the kbot settings.")


class LearningActions(Protocol):
    """What an admin can do to the learning loop from a chat or the console; bot.serve implements it
    with training/ (the channels do not import training)."""

    def train_now(self) -> str:
        """Start one training run in the background; a line saying what happened."""
        ...

    def promote(self, version: str) -> None: ...

    def rollback(self) -> str | None:
        """The version now served (None: the base model)."""
        ...

    def approve(self, feedback_id: int, text: str | None = None) -> str:
        """Approve a correction (optionally edited first) and ingest it; a summary line."""
        ...

    def reject(self, feedback_id: int) -> None: ...
