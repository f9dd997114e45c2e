"""Retention: delivery ids and stored questions, prompts and answers are deleted after a while
(KBOT_EVENT_RETENTION_DAYS, KBOT_ANSWER_RETENTION_DAYS; `kbot serve` purges every few hours)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from knowledge.store import AnswerRow, FeedbackRow, ProcessedEventRow, Store


def purge(store: Store, *, answers_before: datetime | None, events_before: datetime | None) -> dict[str, int]:
    """Delete delivery ids older than `events_before`, and answers older than `answers_before` with
    their feedback; an answer whose correction still awaits review is kept until it is reviewed."""
    counts = {"events": 0, "answers": 0, "feedback": 0}

    def write() -> None:
        with store.session() as s:
            if events_before is not None:
                counts["events"] = s.execute(
                    delete(ProcessedEventRow).where(ProcessedEventRow.created_at < events_before)).rowcount
            if answers_before is not None:
                pending = select(FeedbackRow.answer_id).where(FeedbackRow.correction_status == "pending")
                old = select(AnswerRow.id).where(AnswerRow.created_at < answers_before, AnswerRow.id.not_in(pending))
                counts["feedback"] = s.execute(delete(FeedbackRow).where(FeedbackRow.answer_id.in_(old))).rowcount
                counts["answers"] = s.execute(delete(AnswerRow).where(AnswerRow.id.in_(old))).rowcount

    store._retry(write)
    return counts
