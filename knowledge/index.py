"""The knowledge index: Chroma vectors (through LlamaIndex's ChromaVectorStore) plus a BM25 keyword
index over the same chunks, fused by reciprocal rank. Implements the engine's `Retriever` seam.

The scope filter runs inside both searches: a question queries only the Chroma collections of the
scopes it may see (knowledge/chroma.py says why one collection per scope), and BM25 scores only
chunks of those scopes (a weight mask), so a restricted chunk is never scored for it.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from llama_index.core.schema import BaseNode, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.chroma import ChromaVectorStore

from bot.core.settings import Settings
from bot.core.types import Chunk
from knowledge.chroma import ScopedCollections, chroma_client
from knowledge.embedder import LocalEmbedder
from knowledge.keywords import KeywordIndex
from knowledge.rerank import Reranker, collapse_duplicates, make_reranker

__all__ = ["KnowledgeIndex", "chroma_client", "reciprocal_rank_fusion"]
log = logging.getLogger(__name__)
VERSION_KEY = "kbot_version"
WRITE_LIMIT = 5000  # an embedded Chroma refuses writes of more than 5,461 records at once


def node_to_chunk(node: BaseNode, score: float) -> Chunk:
    m = node.metadata
    page = m.get("page")
    return Chunk(
        id=node.node_id, text=node.get_content(), score=float(score), source=m.get("source", ""),
        title=m.get("title", ""), heading=m.get("heading", ""),
        page=int(page) if page not in (None, "", -1) else None, scope=m.get("scope", "default"),
        doc_id=m.get("doc_id", ""), position=int(m.get("position", 0)), url=m.get("url") or None,
    )


class KnowledgeIndex:
    """Vector + keyword retrieval over one knowledge base (a Chroma collection per scope). Thread-safe."""

    def __init__(self, client: Any, collection: str, embedder: LocalEmbedder, settings: Settings,
                 reranker: Reranker | None = None):
        self.client = client
        self.reranker = reranker or make_reranker(settings.reranker)
        self.collections = ScopedCollections(client, collection)
        self.embedder = embedder
        self.settings = settings
        self.keywords = KeywordIndex()
        self._stores: dict[str, ChromaVectorStore] = {}
        self._lock = threading.Lock()

    # --- writes --------------------------------------------------------------------------------
    def replace(self, doc_id: str, nodes: list[BaseNode], *, bump: bool = True) -> None:
        """Swap a document's chunks for `nodes` (already embedded); see `replace_many`."""
        self.replace_many({doc_id: nodes}, bump=bump)

    def replace_many(self, docs: dict[str, list[BaseNode]], *, bump: bool = True) -> None:
        """Swap each document's chunks for its new nodes (already embedded). Old chunks go only after
        the new ones are in, so a question asked meanwhile still finds one version. One Chroma write
        per scope for the whole batch: a write costs ~35 ms however small (990 chunks took 4.4 s in
        99 writes, 0.8 s in one). A batch passes bump=False and calls `bump()` once at the end."""
        old = self._locate(list(docs))
        by_scope: dict[str, list[BaseNode]] = {}
        for node in (n for nodes in docs.values() for n in nodes):
            by_scope.setdefault(str(node.metadata.get("scope", "default")), []).append(node)
        for scope, group in by_scope.items():
            for part in _parts(group):
                self._store(scope).add(part)
        for collection, ids in old:
            kept = {n.node_id for n in by_scope.get(self.collections.scope_of(collection), [])}
            for part in _parts([i for i in ids if i not in kept]):
                collection.delete(ids=part)
        if bump:
            self.bump()

    def delete(self, doc_id: str) -> int:
        found = self._locate([doc_id])
        for collection, ids in found:
            for part in _parts(ids):
                collection.delete(ids=part)
        if found:
            self.bump()
        return sum(len(ids) for _, ids in found)

    def chunk_ids(self, doc_id: str) -> list[str]:
        return [i for _, ids in self._locate([doc_id]) for i in ids]

    def count(self) -> int:
        return sum(c.count() for c in self.collections.all())

    def bump(self) -> None:
        # A new version id in the base collection's metadata tells every process to rebuild its BM25.
        meta = dict(self.collections.meta.metadata or {})
        meta.pop("hnsw:space", None)
        meta[VERSION_KEY] = uuid.uuid4().hex
        self.collections.meta.modify(metadata=meta)

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
        """The k nearest chunks among the collections of `scopes` (each searched unfiltered)."""
        embedding = self.embedder.embed_query(query)
        found: list[Chunk] = []
        for scope in dict.fromkeys(scopes):
            if self.collections.get(scope) is None:
                continue
            result = self._store(scope).query(VectorStoreQuery(query_embedding=embedding, similarity_top_k=k))
            # ChromaVectorStore reports exp(-distance); with cosine space, distance = 1 - cosine.
            found += [node_to_chunk(n, 1.0 + math.log(max(s, 1e-9)))
                      for n, s in zip(result.nodes or [], result.similarities or [], strict=True)]
        return sorted(found, key=lambda c: c.score, reverse=True)[:k]

    def keyword_search(self, query: str, scopes: Sequence[str], k: int) -> list[Chunk]:
        self._sync_keywords()
        hits = self.keywords.search(query, scopes, k)
        by_id: dict[str, Chunk] = {}
        for scope in dict.fromkeys(s for _, s, _ in hits):
            collection = self.collections.get(scope)
            if collection is not None:
                ids = [i for i, s, _ in hits if s == scope]
                by_id.update((c.id, c) for c in _chunks(collection.get(ids=ids, include=["documents", "metadatas"])))
        return [replace(by_id[i], score=score) for i, _, score in hits if i in by_id]

    def neighbors(self, chunk: Chunk, n: int) -> list[Chunk]:
        """The chunks up to `n` positions before and after `chunk` in its document, in order."""
        collection = self.collections.get(chunk.scope)
        if n <= 0 or not chunk.doc_id or collection is None:
            return []
        where = {"$and": [{"doc_id": chunk.doc_id}, {"position": {"$gte": chunk.position - n}},
                          {"position": {"$lte": chunk.position + n}}]}
        found = _chunks(collection.get(where=where, include=["documents", "metadatas"]))
        return sorted((c for c in found if c.id != chunk.id), key=lambda c: c.position)

    def unknown_terms(self, query: str) -> list[str]:
        """Terms of the query the knowledge base never mentions (a sign it does not cover the question)."""
        self._sync_keywords()
        return self.keywords.unknown_terms(query)

    def all_chunks(self) -> list[Chunk]:
        """Every chunk of every scope (for tests, benchmarks and maintenance; pages through Chroma)."""
        return _chunks(self.collections.get_all(["documents", "metadatas"]))

    # --- internals -----------------------------------------------------------------------------
    def _store(self, scope: str) -> ChromaVectorStore:
        if scope not in self._stores:
            self._stores[scope] = ChromaVectorStore(chroma_collection=self.collections.get(scope, create=True))
        return self._stores[scope]

    def _locate(self, doc_ids: list[str]) -> list[tuple[Any, list[str]]]:
        """(collection, chunk ids) for each collection holding chunks of the documents."""
        found = []
        for collection in self.collections.all():
            ids = collection.get(where={"doc_id": {"$in": doc_ids}}, include=[])["ids"]
            if ids:
                found.append((collection, list(ids)))
        return found

    def _sync_keywords(self) -> None:
        # Re-read the metadata: another process (kbot ingest, a second worker) may have written.
        meta = self.client.get_collection(self.collections.base).metadata or {}
        version = meta.get(VERSION_KEY, "0")
        if version == self.keywords.version:
            return
        with self._lock:
            if version == self.keywords.version:
                return
            ids, texts, scopes = [], [], []
            for collection in self.collections.all():
                scope = self.collections.scope_of(collection)
                for got in self.collections.page(collection, ["documents"]):
                    ids += got["ids"]
                    texts += got["documents"]
                    scopes += [scope] * len(got["ids"])
            self.keywords.rebuild(version, ids, texts, scopes)
            log.info("keyword index rebuilt: %d chunks", len(ids))


def _parts(items: list) -> list[list]:
    """`items` in slices Chroma accepts in one write."""
    return [items[start:start + WRITE_LIMIT] for start in range(0, len(items), WRITE_LIMIT)]


def _chunks(got: dict) -> list[Chunk]:
    return [node_to_chunk(TextNode(id_=i, text=d, metadata=_public(m)), 0.0)
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)]


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
