"""Reranking behind one seam: `rerank(query, chunks, k) -> chunks`.

- `LexicalReranker` (default, free): keeps the fused order as a prior and adds the share of the
  query's words each chunk contains, so a chunk that names every term of the question rises.
- `CrossEncoderReranker`: a local sentence-transformers cross-encoder folder, when configured.
  Nothing is fetched from a hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from bot.core.text import lexical_overlap, tokens
from bot.core.types import Chunk


class Reranker(Protocol):
    def rerank(self, query: str, chunks: Sequence[Chunk], k: int) -> list[Chunk]: ...


class NoReranker:
    def rerank(self, query: str, chunks: Sequence[Chunk], k: int) -> list[Chunk]:
        return list(chunks[:k])


class LexicalReranker:
    def __init__(self, weight: float = 0.5):
        self.weight = weight

    def rerank(self, query: str, chunks: Sequence[Chunk], k: int) -> list[Chunk]:
        n = len(chunks)
        scored = [(1 - i / max(n, 1) + self.weight * lexical_overlap(query, c.text), i, c)
                  for i, c in enumerate(chunks)]
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [c for _, _, c in scored[:k]]


class CrossEncoderReranker:
    def __init__(self, model_dir: str | Path):
        from sentence_transformers import CrossEncoder

        path = Path(model_dir).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"cross-encoder folder not found: {path}")
        self.model = CrossEncoder(str(path), device="cpu")

    def rerank(self, query: str, chunks: Sequence[Chunk], k: int) -> list[Chunk]:
        if not chunks:
            return []
        scores = self.model.predict([(query, c.text) for c in chunks])
        order = sorted(range(len(chunks)), key=lambda i: -float(scores[i]))
        return [replace(chunks[i], score=float(scores[i])) for i in order[:k]]


def make_reranker(name: str) -> Reranker:
    """'none', 'lexical', or a path to a local cross-encoder folder."""
    if name in ("", "none"):
        return NoReranker()
    if name == "lexical":
        return LexicalReranker()
    return CrossEncoderReranker(name)


def collapse_duplicates(chunks: Sequence[Chunk], threshold: float = 0.85) -> list[Chunk]:
    """Drop chunks whose words mostly repeat an earlier (better ranked) chunk's (Jaccard >= threshold)."""
    kept: list[tuple[Chunk, set[str]]] = []
    for chunk in chunks:
        words = set(tokens(chunk.text))
        if any(len(words & w) / max(len(words | w), 1) >= threshold for _, w in kept):
            continue
        kept.append((chunk, words))
    return [c for c, _ in kept]
