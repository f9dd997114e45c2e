"""The small, platform-free types that cross the engine boundary.

Adapters (Slack, Discord, web, CLI) translate platform events into a `Question` and render an
`Answer`; nothing platform-specific goes past them. No SDK imports here.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

AnswerMode = Literal["generated", "extractive", "declined"]
DEFAULT_SCOPE = "default"


def new_id() -> str:
    """A fresh id for an answer, a conversation or a job (32 hex characters)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Turn:
    """One earlier message in the conversation (oldest first in `Question.history`)."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class Question:
    """A question as the engine sees it, whatever platform it came from."""

    text: str
    user_id: str = "local"
    platform: str = "cli"
    channel_id: str = ""
    thread_id: str = ""
    scopes: tuple[str, ...] = (DEFAULT_SCOPE,)
    history: tuple[Turn, ...] = ()
    # Platform delivery id (Slack event_id / message ts, Discord message id) used for de-duplication.
    event_id: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A retrieved piece of a document with its score (higher is better)."""

    id: str
    text: str
    score: float
    source: str
    title: str = ""
    heading: str = ""
    page: int | None = None
    scope: str = DEFAULT_SCOPE
    doc_id: str = ""
    position: int = 0
    url: str | None = None


@dataclass(frozen=True)
class Citation:
    """A source shown with an answer: the chunk that supports it and the quoted evidence."""

    source: str
    title: str
    text: str
    score: float
    page: int | None = None
    heading: str = ""
    url: str | None = None
    chunk_id: str = ""

    @property
    def location(self) -> str:
        """Human-readable place in the document: 'page 3' or the heading path."""
        if self.page is not None:
            return f"page {self.page}"
        return self.heading


@dataclass
class Answer:
    """What the engine returns. `mode` says how the text was produced."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    mode: AnswerMode = "generated"
    answer_id: str = ""
    standalone_query: str = ""
    latency_ms: int = 0
    adapter_version: str | None = None

    @property
    def answered(self) -> bool:
        return self.mode != "declined"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of an answer (`kbot ask --json`, the web API)."""
        return {
            "answer": self.text,
            "answered": self.answered,
            "mode": self.mode,
            "answer_id": self.answer_id,
            "latency_ms": self.latency_ms,
            "standalone_query": self.standalone_query,
            "adapter_version": self.adapter_version,
            "citations": [{k: v for k, v in asdict(c).items() if k != "chunk_id"} for c in self.citations],
        }


@dataclass(frozen=True)
class Feedback:
    """A vote (+1 / -1) and/or a correction on an answer. vote=0 means 'correction only'."""

    answer_id: str
    user_id: str
    vote: int = 0
    correction: str | None = None
    platform: str = "cli"
    # The platform vouched for user_id (a signed Slack/Discord request, a signed-in web user, the CLI
    # operator). Only verified votes count toward training.
    verified: bool = False
