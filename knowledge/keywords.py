"""BM25 keyword search (bm25s) over every chunk of the knowledge base, with the scope filter applied
as a weight mask so a chunk outside the allowed scopes is never scored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Question words that say how to answer, not what about: their absence from the corpus means nothing.
QUESTION_WORDS = frozenset("much many soon often fast quickly long think get take need want someone anyone "
                           "anybody somebody whom whose ok okay".split())


class KeywordIndex:
    """BM25 (bm25s) over every chunk, rebuilt when the knowledge base's version changes."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.ids: list[str] = []
        self.scopes: np.ndarray = np.array([])
        self.vocab: frozenset[str] = frozenset()
        self._bm25: Any = None
        self._stemmer: Any = None

    def rebuild(self, version: str, ids: list[str], texts: list[str], scopes: list[str]) -> None:
        import bm25s
        import Stemmer

        self._stemmer = Stemmer.Stemmer("english")
        self.ids, self.scopes, self.version = ids, np.array(scopes), version
        if not ids:
            self._bm25 = None
            return
        bm25 = bm25s.BM25()
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)
        bm25.index(tokens, show_progress=False)
        self._bm25 = bm25
        self.vocab = frozenset(tokens.vocab)

    def unknown_terms(self, query: str) -> list[str]:
        """Stemmed content terms of `query` that occur nowhere in the knowledge base."""
        import bm25s

        words = [w for w in query.split() if w.lower().strip("?.,!'\"") not in QUESTION_WORDS]
        if not words or self._stemmer is None:
            return []
        terms = bm25s.tokenize([" ".join(words)], stopwords="en", stemmer=self._stemmer, show_progress=False,
                               return_ids=False)[0]
        return [t for t in dict.fromkeys(terms) if t not in self.vocab]

    def search(self, query: str, scopes: Sequence[str], k: int) -> list[tuple[str, str, float]]:
        """(chunk id, scope, score) of the k best chunks among `scopes`, best first."""
        import bm25s

        if self._bm25 is None:
            return []
        mask = np.isin(self.scopes, list(scopes)).astype(np.float32)
        allowed = int(mask.sum())
        if allowed == 0:
            return []
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self._stemmer, show_progress=False)
        if not tokens.vocab:
            return []
        docs, scores = self._bm25.retrieve(tokens, k=min(k, allowed), weight_mask=mask, show_progress=False)
        return [(self.ids[int(d)], str(self.scopes[int(d)]), float(s))
                for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
