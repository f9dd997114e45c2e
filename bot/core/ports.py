"""The seams the engine, the channels and training depend on. Implementations live in `knowledge/`
and are chosen in `bot/wiring.py`; tests have one fake per port in `tests/fakes.py`.

A port declares what it can do (`Generator.hosts_adapters`, `Generator.can_score`) instead of
callers probing with `hasattr`: a caller asks the capability, then calls the method.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from bot.core.types import Chunk

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
BASE = "base"  # adapter name meaning "the base model, even while an adapter is active"


class Retriever(Protocol):
    def retrieve(self, query: str, scopes: Sequence[str], k: int) -> list[Chunk]:
        """The k best chunks for `query`, only from documents in `scopes`, best first."""
        ...

    def unknown_terms(self, query: str) -> list[str]:
        """Terms of the query the knowledge base never mentions (a sign it does not cover it)."""
        ...


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-normalised embeddings, one per text."""
        ...


class Generator(Protocol):
    """A language model that streams chat replies, optionally with LoRA adapters.

    Capabilities:
    - `hosts_adapters`: `load_adapter` / `set_adapter` / `unload_adapter` work (in-process or on the
      model server); when False they raise ConfigError and the learning loop stays off.
    - `can_score`: `completion_loss` can compute token log-likelihoods (the gate's held-out loss).
    """

    hosts_adapters: bool
    can_score: bool
    active_adapter: str | None

    def generate(self, messages: list[Message], adapter: str | None = None) -> Iterator[str]:
        """Stream the reply to a chat as text pieces. adapter=None means the active adapter, BASE the
        base model."""
        ...

    @property
    def loaded_adapters(self) -> list[str]: ...

    def load_adapter(self, name: str, path: str) -> None:
        """Make adapter `name` (a peft folder at `path`) selectable; a no-op when already loaded."""
        ...

    def set_adapter(self, name: str | None) -> None:
        """Serve with `name` from the next generation on (None: the base model)."""
        ...

    def unload_adapter(self, name: str) -> None:
        """Free an adapter that is not the active one."""
        ...

    def completion_loss(self, pairs: Sequence[tuple[list[Message], str]], adapter: str | None) -> float | None:
        """Mean token NLL of each completion given its chat (None: nothing to score)."""
        ...


class AnswerLog(Protocol):
    """What the engine writes and the channels read: answers, conversations, feedback."""

    def conversation_id(self, platform: str, channel_id: str, thread_id: str) -> str | None: ...

    def log_answer(self, **fields: Any) -> str: ...

    def get_answer(self, answer_id: str) -> Any | None: ...

    def record_feedback(self, answer_id: str, user_id: str, *, vote: int | None = None,
                        correction: str | None = None, platform: str = "cli", verified: bool = False) -> Any:
        """Upsert one user's vote/correction on one answer; raises UnknownAnswer for unknown ids."""
        ...

    def claim_event(self, key: str) -> bool:
        """True for the first caller with this delivery key (across threads, processes, restarts)."""
        ...
