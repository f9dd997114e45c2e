"""The relational store: documents, conversations, answers, feedback, adapters, processed events.

SQLAlchemy 2.x on SQLite by default (WAL, busy timeout) and PostgreSQL via KBOT_DATABASE_URL.
The schema is owned by Alembic (knowledge/migrations); `Store(url)` upgrades to head on open.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from bot.core.errors import StoreError, UnknownAnswer
from bot.core.types import new_id

log = logging.getLogger(__name__)
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class DocumentRow(Base):
    __tablename__ = "documents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # stable doc id derived from source
    source: Mapped[str] = mapped_column(String(2048), unique=True)
    title: Mapped[str] = mapped_column(String(512), default="")
    scope: Mapped[str] = mapped_column(String(128), default="default", index=True)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    ingested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "channel_id", "thread_id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    platform: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(128), default="")
    thread_id: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AnswerRow(Base):
    __tablename__ = "answers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    platform: Mapped[str] = mapped_column(String(32), default="cli")
    channel_id: Mapped[str] = mapped_column(String(128), default="")
    thread_id: Mapped[str] = mapped_column(String(128), default="")
    user_id: Mapped[str] = mapped_column(String(128), default="")
    scopes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    question: Mapped[str] = mapped_column(Text)
    standalone_query: Mapped[str] = mapped_column(Text, default="")
    retrieved: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{id, score, source}]
    prompt: Mapped[str] = mapped_column(Text, default="")  # the exact messages given to the LM (JSON)
    answer: Mapped[str] = mapped_column(Text, default="")
    mode: Mapped[str] = mapped_column(String(16), default="generated")
    citations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    adapter_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    latency: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # retrieve_ms, generate_ms, total_ms
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class FeedbackRow(Base):
    __tablename__ = "feedback"
    # One row per user per answer: a second click changes the vote instead of adding a row.
    __table_args__ = (UniqueConstraint("answer_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    answer_id: Mapped[str] = mapped_column(ForeignKey("answers.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    platform: Mapped[str] = mapped_column(String(32), default="cli")
    vote: Mapped[int] = mapped_column(Integer, default=0)
    correction: Mapped[str | None] = mapped_column(Text, nullable=True)
    # none | pending | approved | rejected (review state of the correction)
    correction_status: Mapped[str] = mapped_column(String(16), default="none")
    # True when the voter's identity was checked (a Slack/Discord user id from a signed request, a
    # signed-in web user, the operator at the CLI); only verified votes count toward training.
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class AdapterRow(Base):
    __tablename__ = "adapters"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(2048))
    base_model: Mapped[str] = mapped_column(String(512), default="")
    parent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="candidate")  # candidate|active|retired|rejected
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ProcessedEventRow(Base):
    """Platform deliveries already handled; the primary key makes the claim atomic across workers."""

    __tablename__ = "processed_events"
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ChannelScopeRow(Base):
    __tablename__ = "channel_scopes"
    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    scopes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


MIGRATIONS = Path(__file__).with_name("migrations")


def upgrade(url: str) -> None:
    """Bring the schema at `url` to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


class Store:
    """All reads and writes of the relational store. Thread-safe; one instance per process."""

    def __init__(self, url: str, *, migrate: bool = True):
        from knowledge.urls import encode_userinfo

        url = encode_userinfo(url)  # a raw '@' in the password means the password, not the host
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        if migrate:
            upgrade(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # --- plumbing ------------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s

    def _retry(self, fn: Callable[[], T], attempts: int = 8) -> T:
        """Run a write, retrying when SQLite reports a lock so that concurrent writers lose nothing."""
        for i in range(attempts):
            try:
                return fn()
            except OperationalError as exc:
                if "locked" not in str(exc).lower() or i == attempts - 1:
                    raise
                time.sleep(0.05 * (2**i))
        raise AssertionError("unreachable")

    # --- documents -----------------------------------------------------------------------------
    def upsert_document(self, **fields: Any) -> None:
        def write() -> None:
            with self.session() as s:
                row = s.get(DocumentRow, fields["id"])
                if row is None:
                    s.add(DocumentRow(**fields))
                else:
                    for k, v in fields.items():
                        setattr(row, k, v)
                    row.updated_at = utcnow()

        self._retry(write)

    def get_document(self, doc_id: str) -> DocumentRow | None:
        with self.session() as s:
            return s.get(DocumentRow, doc_id)

    def find_document(self, source: str) -> DocumentRow | None:
        with self.session() as s:
            return s.scalar(select(DocumentRow).where(DocumentRow.source == source))

    def list_documents(self) -> list[DocumentRow]:
        with self.session() as s:
            return list(s.scalars(select(DocumentRow).order_by(DocumentRow.source)))

    def delete_document(self, doc_id: str) -> bool:
        def write() -> bool:
            with self.session() as s:
                row = s.get(DocumentRow, doc_id)
                if row is None:
                    return False
                s.delete(row)
                return True

        return self._retry(write)

    # --- answers -------------------------------------------------------------------------------
    def conversation_id(self, platform: str, channel_id: str, thread_id: str) -> str | None:
        """The id of the conversation (platform, channel, thread), created on first use."""
        if not thread_id and not channel_id:
            return None

        def write() -> str:
            with self.session() as s:
                q = select(ConversationRow.id).where(
                    ConversationRow.platform == platform,
                    ConversationRow.channel_id == channel_id,
                    ConversationRow.thread_id == thread_id,
                )
                found = s.scalar(q)
                if found:
                    return found
                row = ConversationRow(platform=platform, channel_id=channel_id, thread_id=thread_id)
                s.add(row)
                s.flush()
                return row.id

        try:
            return self._retry(write)
        except IntegrityError:  # another worker created it first
            with self.session() as s:
                return s.scalar(
                    select(ConversationRow.id).where(
                        ConversationRow.platform == platform,
                        ConversationRow.channel_id == channel_id,
                        ConversationRow.thread_id == thread_id,
                    )
                )

    def find_conversation(self, platform: str, channel_id: str, thread_id: str) -> str | None:
        """The id of an existing conversation, without creating one (e.g. 'is the bot in this thread?')."""
        with self.session() as s:
            return s.scalar(
                select(ConversationRow.id).where(
                    ConversationRow.platform == platform,
                    ConversationRow.channel_id == channel_id,
                    ConversationRow.thread_id == thread_id,
                )
            )

    def log_answer(self, **fields: Any) -> str:
        """Insert an answer row; returns its id (generated when not given)."""
        fields.setdefault("id", new_id())

        def write() -> str:
            with self.session() as s:
                s.add(AnswerRow(**fields))
            return fields["id"]

        return self._retry(write)

    def update_answer(self, answer_id: str, **fields: Any) -> None:
        def write() -> None:
            with self.session() as s:
                row = s.get(AnswerRow, answer_id)
                if row is None:
                    raise UnknownAnswer(answer_id)
                for k, v in fields.items():
                    setattr(row, k, v)

        self._retry(write)

    def get_answer(self, answer_id: str) -> AnswerRow | None:
        with self.session() as s:
            return s.get(AnswerRow, answer_id)

    def list_answers(self, limit: int | None = None) -> list[AnswerRow]:
        with self.session() as s:
            q = select(AnswerRow).order_by(AnswerRow.created_at)
            if limit:
                q = q.limit(limit)
            return list(s.scalars(q))

    def count_answers(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(AnswerRow)) or 0

    # --- feedback ------------------------------------------------------------------------------
    def record_feedback(
        self,
        answer_id: str,
        user_id: str,
        *,
        vote: int | None = None,
        correction: str | None = None,
        platform: str = "cli",
        verified: bool = False,
    ) -> FeedbackRow:
        """Upsert one user's feedback on one answer. A vote replaces that user's earlier vote; a
        correction is stored as pending review. Raises UnknownAnswer for an id never logged."""
        if vote is not None and vote not in (-1, 0, 1):
            raise ValueError("vote must be -1, 0 or +1")
        correction = correction.strip() if correction else None

        def write() -> FeedbackRow:
            with self.session() as s:
                if s.get(AnswerRow, answer_id) is None:
                    raise UnknownAnswer(answer_id)
                row = s.scalar(
                    select(FeedbackRow).where(FeedbackRow.answer_id == answer_id, FeedbackRow.user_id == user_id)
                )
                if row is None:
                    row = FeedbackRow(answer_id=answer_id, user_id=user_id, platform=platform, vote=0)
                    s.add(row)
                row.verified = verified
                if vote is not None:
                    row.vote = vote
                if correction:
                    row.correction = correction
                    row.correction_status = "pending"
                row.updated_at = utcnow()
                s.flush()
                return row

        for _ in range(5):
            try:
                return self._retry(write)
            except IntegrityError:
                continue  # a concurrent first write by the same user: retry as an update
        return self._retry(write)

    def list_feedback(self, *, correction_status: str | None = None) -> list[FeedbackRow]:
        with self.session() as s:
            q = select(FeedbackRow).order_by(FeedbackRow.id)
            if correction_status:
                q = q.where(FeedbackRow.correction_status == correction_status)
            return list(s.scalars(q))

    def set_correction_status(self, feedback_id: int, status: str) -> FeedbackRow:
        if status not in ("pending", "approved", "rejected"):
            raise ValueError(f"unknown correction status {status!r}")

        def write() -> FeedbackRow:
            with self.session() as s:
                row = s.get(FeedbackRow, feedback_id)
                if row is None or not row.correction:
                    raise StoreError(f"no correction with feedback id {feedback_id}")
                row.correction_status = status
                row.updated_at = utcnow()
                return row

        return self._retry(write)

    def set_correction_text(self, feedback_id: int, text: str) -> FeedbackRow:
        """An admin's edit of a correction before approving it."""
        text = text.strip()
        if not text:
            raise StoreError("a correction cannot be empty")

        def write() -> FeedbackRow:
            with self.session() as s:
                row = s.get(FeedbackRow, feedback_id)
                if row is None or not row.correction:
                    raise StoreError(f"no correction with feedback id {feedback_id}")
                row.correction = text
                row.updated_at = utcnow()
                return row

        return self._retry(write)

    def count_feedback(self, since: datetime | None = None) -> int:
        with self.session() as s:
            q = select(func.count()).select_from(FeedbackRow)
            if since is not None:
                q = q.where(FeedbackRow.updated_at > since)
            return s.scalar(q) or 0

    # --- de-duplication of platform deliveries -----------------------------------------------------
    def claim_event(self, key: str) -> bool:
        """True for the first caller with this key (across threads, processes and restarts)."""

        def write() -> bool:
            try:
                with self.session() as s:
                    s.add(ProcessedEventRow(key=key[:256]))
                return True
            except IntegrityError:
                return False

        return self._retry(write)

    # --- channel scopes ------------------------------------------------------------------------
    def set_channel_scopes(self, platform: str, channel_id: str, scopes: list[str]) -> None:
        def write() -> None:
            with self.session() as s:
                row = s.get(ChannelScopeRow, (platform, channel_id))
                if row is None:
                    s.add(ChannelScopeRow(platform=platform, channel_id=channel_id, scopes=scopes))
                else:
                    row.scopes = scopes
                    row.updated_at = utcnow()

        self._retry(write)

    def channel_scopes(self, platform: str, channel_id: str) -> list[str] | None:
        with self.session() as s:
            row = s.get(ChannelScopeRow, (platform, channel_id))
            return list(row.scopes) if row else None

    def list_channel_scopes(self) -> list[ChannelScopeRow]:
        with self.session() as s:
            return list(s.scalars(select(ChannelScopeRow).order_by(ChannelScopeRow.platform,
                                                                   ChannelScopeRow.channel_id)))

    def delete_channel_scopes(self, platform: str, channel_id: str) -> bool:
        def write() -> bool:
            with self.session() as s:
                row = s.get(ChannelScopeRow, (platform, channel_id))
                if row is not None:
                    s.delete(row)
                return row is not None

        return self._retry(write)

    # --- adapters ------------------------------------------------------------------------------
    def add_adapter(self, **fields: Any) -> None:
        def write() -> None:
            with self.session() as s:
                s.add(AdapterRow(**fields))

        self._retry(write)

    def get_adapter(self, version: str) -> AdapterRow | None:
        with self.session() as s:
            return s.get(AdapterRow, version)

    def list_adapters(self) -> list[AdapterRow]:
        with self.session() as s:
            return list(s.scalars(select(AdapterRow).order_by(AdapterRow.created_at)))

    def active_adapter(self) -> AdapterRow | None:
        with self.session() as s:
            return s.scalar(select(AdapterRow).where(AdapterRow.status == "active"))

    def set_active_adapter(self, version: str | None) -> None:
        """Atomically make `version` the only active adapter (None: serve the base model)."""

        def write() -> None:
            with self.session() as s:
                for row in s.scalars(select(AdapterRow).where(AdapterRow.status == "active")):
                    row.status = "retired"
                if version is not None:
                    row = s.get(AdapterRow, version)
                    if row is None:
                        raise StoreError(f"unknown adapter version {version!r}")
                    row.status = "active"
                    row.promoted_at = utcnow()

        self._retry(write)

    def update_adapter(self, version: str, **fields: Any) -> None:
        def write() -> None:
            with self.session() as s:
                row = s.get(AdapterRow, version)
                if row is None:
                    raise StoreError(f"unknown adapter version {version!r}")
                for k, v in fields.items():
                    setattr(row, k, v)

        self._retry(write)

    # --- operations: counts for /metrics -----------------------------------------------------------
    def operational_counts(self) -> dict[str, dict[str, int]]:
        """Grouped counts an operator watches (one query each, no rows loaded): documents and chunks
        by document status, corrections by review state, adapter versions by status."""
        with self.session() as s:
            chunks = func.coalesce(func.sum(DocumentRow.chunk_count), 0)
            docs = s.execute(select(DocumentRow.status, func.count(), chunks).group_by(DocumentRow.status)).all()
            corrections = s.execute(select(FeedbackRow.correction_status, func.count())
                                    .where(FeedbackRow.correction.is_not(None))
                                    .group_by(FeedbackRow.correction_status)).all()
            adapters = s.execute(select(AdapterRow.status, func.count()).group_by(AdapterRow.status)).all()
        return {
            "documents": {status: n for status, n, _ in docs},
            "chunks": {status: int(chunks) for status, _, chunks in docs},
            "corrections": dict(corrections),
            "adapters": dict(adapters),
        }


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
