"""The seams the engine depends on. One method each that matters; a fake for each in tests.

Implementations live in `knowledge/` (Chroma/BM25 retriever, transformers generator, SQL store)
and are chosen in `bot/wiring.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from bot.types import Chunk

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class Retriever(Protocol):
    def retrieve(self, query: str, scopes: Sequence[str], k: int) -> list[Chunk]:
        """The k best chunks for `query`, only from documents in `scopes`, best first."""
        ...


class Generator(Protocol):
    def generate(self, messages: list[Message], adapter: str | None = None) -> Iterator[str]:
        """Stream the reply to a chat as text pieces. adapter=None means the active adapter."""
        ...


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-normalised embeddings, one per text."""
        ...
