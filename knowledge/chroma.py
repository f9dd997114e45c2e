"""Chroma layout: one collection per scope, plus the base collection that carries the index version.

Why one collection per scope: Chroma answers a metadata filter by first resolving it to the set of
matching ids, on every query. At 100k chunks a `scope $in [...]` query took 450 ms at the median
against 5 ms for the same query unfiltered (bench/retrieval_latency.py, docs/benchmarks.md). A
question here searches only the collections of the scopes it may see, each unfiltered: the scope
filter is the choice of collections, so a restricted chunk is never scored for it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SCOPE_KEY = "kbot_scope"
COSINE = {"hnsw:space": "cosine"}
PAGE = 5000  # one get() of 100k ids overflows SQLite's variable limit


def chroma_client(url: str | None, path: Path, token: str | None = None) -> Any:
    """An embedded PersistentClient by default; an HttpClient when a Chroma server URL is set, sending
    `Authorization: Bearer <token>` when a token is given (chromadb's own token client provider)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if url and token:
        chroma_settings.chroma_client_auth_provider = "chromadb.auth.token_authn.TokenAuthClientProvider"
        chroma_settings.chroma_client_auth_credentials = token
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        return chromadb.HttpClient(host=parsed.hostname or "localhost", port=parsed.port or 8000,
                                   ssl=parsed.scheme == "https", settings=chroma_settings)
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def collection_name(base: str, scope: str) -> str:
    """A valid Chroma name for the scope's collection: readable, and unique through a short hash."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", scope).strip("-")[:40] or "scope"
    return f"{base}-{slug}-{hashlib.sha1(scope.encode()).hexdigest()[:8]}"


class ScopedCollections:
    """The Chroma collections of one knowledge base. Thread-safe."""

    def __init__(self, client: Any, base: str):
        self.client, self.base = client, base
        self.meta = client.get_or_create_collection(base, metadata=COSINE)
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._move_legacy_chunks()

    def get(self, scope: str, *, create: bool = False) -> Any | None:
        """The scope's collection; None when it has none yet (unless `create`)."""
        if scope in self._open:
            return self._open[scope]
        name = collection_name(self.base, scope)
        with self._lock:
            if scope in self._open:
                return self._open[scope]
            if create:
                found = self.client.get_or_create_collection(name, metadata={**COSINE, SCOPE_KEY: scope})
            else:
                try:
                    found = self.client.get_collection(name)
                except Exception:  # NotFoundError (embedded) or an HTTP 404 (server): no chunks in it yet
                    return None
            self._open[scope] = found
            return found

    def all(self) -> list[Any]:
        """Every scope's collection, including ones another process created."""
        prefix = f"{self.base}-"
        found = []
        for listed in self.client.list_collections():
            name = listed if isinstance(listed, str) else listed.name
            if not name.startswith(prefix):
                continue
            collection = self.client.get_collection(name) if isinstance(listed, str) else listed
            scope = (collection.metadata or {}).get(SCOPE_KEY)
            if scope is not None and collection_name(self.base, scope) == name:
                self._open.setdefault(scope, collection)
                found.append(collection)
        return found

    @staticmethod
    def scope_of(collection: Any) -> str:
        return (collection.metadata or {})[SCOPE_KEY]

    def page(self, collection: Any, include: list[str]) -> Iterator[dict]:
        for offset in range(0, collection.count(), PAGE):
            yield collection.get(include=include, limit=PAGE, offset=offset)

    def get_all(self, include: list[str]) -> dict[str, list]:
        """Every chunk of every scope, as one Chroma `get` result (ids plus the `include` fields)."""
        merged: dict[str, list] = {key: [] for key in ("ids", *include)}
        for collection in self.all():
            for got in self.page(collection, include):
                for key in merged:
                    merged[key] += got[key]
        return merged

    def _move_legacy_chunks(self) -> None:
        # Data written before the per-scope layout kept every chunk in the base collection: move it once.
        total = self.meta.count()
        if not total:
            return
        log.warning("moving %d chunks into one collection per scope (one-time upgrade)", total)
        while self.meta.count():
            got = self.meta.get(include=["embeddings", "documents", "metadatas"], limit=PAGE)
            by_scope: dict[str, list[int]] = {}
            for i, meta in enumerate(got["metadatas"]):
                by_scope.setdefault(str(meta.get("scope", "default")), []).append(i)
            for scope, rows in by_scope.items():
                self.get(scope, create=True).upsert(
                    ids=[got["ids"][i] for i in rows], embeddings=[got["embeddings"][i] for i in rows],
                    documents=[got["documents"][i] for i in rows], metadatas=[got["metadatas"][i] for i in rows])
            self.meta.delete(ids=got["ids"])
