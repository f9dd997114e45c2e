"""Read-only views of the store for the admin console: the feedback overview (declined and
down-voted questions, a daily series of volume and satisfaction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from knowledge.store import AnswerRow, FeedbackRow, Store, utcnow


@dataclass(frozen=True)
class Day:
    day: date
    answers: int
    up: int
    down: int

    @property
    def satisfaction(self) -> float | None:
        """Share of up-votes among the day's votes (None: no votes)."""
        votes = self.up + self.down
        return self.up / votes if votes else None


def daily(store: Store, days: int = 30, now: datetime | None = None) -> list[Day]:
    """One row per day for the last `days` days (oldest first), zeros included."""
    end = (now or utcnow()).date()
    start = end - timedelta(days=days - 1)
    since = datetime.combine(start, datetime.min.time())
    with store.session() as s:
        answers = dict(s.execute(select(func.date(AnswerRow.created_at), func.count())
                                 .where(AnswerRow.created_at >= since).group_by(func.date(AnswerRow.created_at))).all())
        votes = s.execute(select(func.date(FeedbackRow.updated_at), FeedbackRow.vote, func.count())
                          .where(FeedbackRow.updated_at >= since, FeedbackRow.vote != 0)
                          .group_by(func.date(FeedbackRow.updated_at), FeedbackRow.vote)).all()
    up: dict[str, int] = {}
    down: dict[str, int] = {}
    for day, vote, count in votes:
        (up if vote > 0 else down)[str(day)] = count
    answers = {str(k): v for k, v in answers.items()}
    out = []
    for i in range(days):
        d = start + timedelta(days=i)
        key = d.isoformat()
        out.append(Day(d, answers.get(key, 0), up.get(key, 0), down.get(key, 0)))
    return out


def declined(store: Store, limit: int = 50) -> list[AnswerRow]:
    """The most recent questions the knowledge base did not cover."""
    with store.session() as s:
        return list(s.scalars(select(AnswerRow).where(AnswerRow.mode == "declined")
                              .order_by(AnswerRow.created_at.desc()).limit(limit)))


def downvoted(store: Store, limit: int = 50) -> list[tuple[AnswerRow, int]]:
    """Answers with down-votes, most down-voted first, with their count."""
    with store.session() as s:
        counts = (select(FeedbackRow.answer_id, func.count().label("n")).where(FeedbackRow.vote < 0)
                  .group_by(FeedbackRow.answer_id).subquery())
        rows = s.execute(select(AnswerRow, counts.c.n).join(counts, counts.c.answer_id == AnswerRow.id)
                         .order_by(counts.c.n.desc(), AnswerRow.created_at.desc()).limit(limit)).all()
        return [(a, n) for a, n in rows]
