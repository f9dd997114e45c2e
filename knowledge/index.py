"""The knowledge index: Chroma vectors (through LlamaIndex's ChromaVectorStore) plus a BM25 keyword
index over the same chunks, fused by reciprocal rank. Implements the engine's `Retriever` seam.

The scope filter runs inside both searches: a Chroma `where` clause and a BM25 weight mask, so a
restricted chunk is never scored for a question that may not see it.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import BaseNode, TextNode
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.vector_stores.chroma import ChromaVectorStore

from bot.settings import Settings
from bot.types import Chunk
from knowledge.embedder import LocalEmbedder
from knowledge.rerank import Reranker, collapse_duplicates, make_reranker

log = logging.getLogger(__name__)
VERSION_KEY = "kbot_version"
PAGE = 5000


def chroma_client(url: str | None, path: Path) -> Any:
    """An embedded PersistentClient by default; an HttpClient when a Chroma server URL is set."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        return chromadb.HttpClient(host=parsed.hostname or "localhost", port=parsed.port or 8000,
                                   ssl=parsed.scheme == "https", settings=chroma_settings)
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def node_to_chunk(node: BaseNode, score: float) -> Chunk:
    m = node.metadata
    page = m.get("page")
    return Chunk(
        id=node.node_id, text=node.get_content(), score=float(score), source=m.get("source", ""),
        title=m.get("title", ""), heading=m.get("heading", ""),
        page=int(page) if page not in (None, "", -1) else None, scope=m.get("scope", "default"),
        doc_id=m.get("doc_id", ""), position=int(m.get("position", 0)), url=m.get("url") or None,
    )


# Question words that say how to answer, not what about: their absence from the corpus means nothing.
QUESTION_WORDS = frozenset("much many soon often fast quickly long think get take need want someone anyone "
                           "anybody somebody whom whose ok okay".split())


class KeywordIndex:
    """BM25 (bm25s) over every chunk in the collection, rebuilt when the collection's version changes."""

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

    def search(self, query: str, scopes: Sequence[str], k: int) -> list[tuple[str, float]]:
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
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


class KnowledgeIndex:
    """Vector + keyword retrieval over one Chroma collection. Thread-safe."""

    def __init__(self, client: Any, collection: str, embedder: LocalEmbedder, settings: Settings,
                 reranker: Reranker | None = None):
        self.client = client
        self.reranker = reranker or make_reranker(settings.reranker)
        self.collection = client.get_or_create_collection(collection, metadata={"hnsw:space": "cosine"})
        self.store = ChromaVectorStore(chroma_collection=self.collection)
        self.embedder = embedder
        self.settings = settings
        self.keywords = KeywordIndex()
        self._lock = threading.Lock()

    # --- writes --------------------------------------------------------------------------------
    def replace(self, doc_id: str, nodes: list[BaseNode], *, bump: bool = True) -> None:
        """Swap a document's chunks for `nodes` (already embedded). Old chunks go only after the new
        ones are in, so a question asked meanwhile still finds one version. A batch of documents
        passes bump=False and calls `bump()` once at the end."""
        old = set(self.chunk_ids(doc_id))
        if nodes:
            self.store.add(nodes)
        stale = list(old - {n.node_id for n in nodes})
        if stale:
            self.collection.delete(ids=stale)
        if bump:
            self.bump()

    def delete(self, doc_id: str) -> int:
        ids = self.chunk_ids(doc_id)
        if ids:
            self.collection.delete(ids=ids)
            self.bump()
        return len(ids)

    def chunk_ids(self, doc_id: str) -> list[str]:
        return list(self.collection.get(where={"doc_id": doc_id}, include=[])["ids"])

    def count(self) -> int:
        return self.collection.count()

    def bump(self) -> None:
        # A new version id in the collection metadata tells every process to rebuild its BM25 index.
        meta = dict(self.collection.metadata or {})
        meta.pop("hnsw:space", None)
        meta[VERSION_KEY] = uuid.uuid4().hex
        self.collection.modify(metadata=meta)

    # --- reads ---------------------------------------------------------------------------------
    def retrieve(self, query: str, scopes: Sequence[str], k: int) -> list[Chunk]:
        """Top-k chunks for `query` from `scopes`: vector search, fused with BM25 when hybrid is on,
        near-duplicates collapsed, reranked, and optionally widened with neighbouring chunks."""
        pool = max(2 * k, 10)
        candidates = self.vector_search(query, scopes, pool)
        if self.settings.hybrid:
            candidates = reciprocal_rank_fusion([candidates, self.keyword_search(query, scopes, pool)], pool)
        chunks = self.reranker.rerank(query, collapse_duplicates(candidates), k)
        if self.settings.expand_neighbors > 0:
            chunks = [self.expand(c, self.settings.expand_neighbors) for c in chunks]
        return chunks

    def expand(self, chunk: Chunk, n: int) -> Chunk:
        """The chunk with the text of its n neighbours on each side merged around it, in order."""
        around = self.neighbors(chunk, n)
        before = [c.text for c in around if c.position < chunk.position]
        after = [c.text for c in around if c.position > chunk.position]
        return replace(chunk, text="\n\n".join([*before, chunk.text, *after]))

    def vector_search(self, query: str, scopes: Sequence[str], k: int) -> list[Chunk]:
        filters = MetadataFilters(filters=[MetadataFilter(key="scope", operator=FilterOperator.IN,
                                                          value=list(scopes))])
        result = self.store.query(VectorStoreQuery(query_embedding=self.embedder.embed_query(query),
                                                   similarity_top_k=k, filters=filters))
        # ChromaVectorStore reports exp(-distance); with cosine space, distance = 1 - cosine.
        return [node_to_chunk(n, 1.0 + math.log(max(s, 1e-9)))
                for n, s in zip(result.nodes or [], result.similarities or [], strict=True)]

    def keyword_search(self, query: str, scopes: Sequence[str], k: int) -> list[Chunk]:
        self._sync_keywords()
        hits = self.keywords.search(query, scopes, k)
        if not hits:
            return []
        got = self.collection.get(ids=[i for i, _ in hits], include=["documents", "metadatas"])
        by_id = {i: (d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)}
        out = []
        for chunk_id, score in hits:
            if chunk_id in by_id:
                text, meta = by_id[chunk_id]
                out.append(node_to_chunk(TextNode(id_=chunk_id, text=text, metadata=_public(meta)), score))
        return out

    def neighbors(self, chunk: Chunk, n: int) -> list[Chunk]:
        """The chunks up to `n` positions before and after `chunk` in its document, in order."""
        if n <= 0 or not chunk.doc_id:
            return []
        where = {"$and": [{"doc_id": chunk.doc_id}, {"position": {"$gte": chunk.position - n}},
                          {"position": {"$lte": chunk.position + n}}]}
        got = self.collection.get(where=where, include=["documents", "metadatas"])
        found = [node_to_chunk(TextNode(id_=i, text=d, metadata=_public(m)), 0.0)
                 for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)]
        return sorted((c for c in found if c.id != chunk.id), key=lambda c: c.position)

    def unknown_terms(self, query: str) -> list[str]:
        """Terms of the query the knowledge base never mentions (a sign it does not cover the question)."""
        self._sync_keywords()
        return self.keywords.unknown_terms(query)

    def get_chunks(self, ids: Sequence[str]) -> list[Chunk]:
        got = self.collection.get(ids=list(ids), include=["documents", "metadatas"])
        return [node_to_chunk(TextNode(id_=i, text=d, metadata=_public(m)), 0.0)
                for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)]

    def _sync_keywords(self) -> None:
        # Re-read the metadata: another process (kbot ingest, a second worker) may have written.
        version = (self.client.get_collection(self.collection.name).metadata or {}).get(VERSION_KEY, "0")
        if version == self.keywords.version:
            return
        with self._lock:
            if version == self.keywords.version:
                return
            ids, texts, scopes = [], [], []
            for offset in range(0, self.collection.count(), PAGE):  # one get() of 100k ids overflows SQLite
                got = self.collection.get(include=["documents", "metadatas"], limit=PAGE, offset=offset)
                ids += got["ids"]
                texts += got["documents"]
                scopes += [m.get("scope", "default") for m in got["metadatas"]]
            self.keywords.rebuild(version, ids, texts, scopes)
            log.info("keyword index rebuilt: %d chunks", len(ids))


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Chunk]], k: int, c: int = 60) -> list[Chunk]:
    """Fuse ranked lists (score = sum of 1/(c + rank)); each chunk keeps its best vector score."""
    fused: dict[str, float] = {}
    first: dict[str, Chunk] = {}
    for ranking in rankings:
        for rank, chunk in enumerate(ranking, 1):
            fused[chunk.id] = fused.get(chunk.id, 0.0) + 1.0 / (c + rank)
            first.setdefault(chunk.id, chunk)
    order = sorted(fused, key=fused.get, reverse=True)[:k]
    return [first[i] for i in order]


def _public(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if not k.startswith("_")}
