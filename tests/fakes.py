"""One fake per port of bot/core/ports.py (Retriever, Embedder, Generator; the answer log is a real
SQLite store in a temp folder) plus the ingestor. They stand in for the model and the index only in
tests that check something else (adapters, store, engine sequencing); the main-path tests use the
real parts."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Iterator, Sequence

from bot.core.ports import Message
from bot.core.text import content_words
from bot.core.types import Chunk


class FakeEmbedder:
    """Deterministic bag-of-words embedding (hashing trick), unit-normalised."""

    dim = 256

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vec = [0.0] * self.dim
            for w in content_words(text):
                vec[int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
            norm = math.sqrt(sum(x * x for x in vec)) or 1.0
            out.append([x / norm for x in vec])
        return out


class FakeRetriever:
    """Returns the given chunks whose scope is allowed, ranked by word overlap with the query."""

    def __init__(self, chunks: Sequence[Chunk] = (), error: Exception | None = None,
                 unknown: Sequence[str] = ()):
        self.chunks = list(chunks)
        self.error = error
        self.unknown = list(unknown)  # terms unknown_terms reports when the query contains them
        self.calls: list[tuple[str, tuple[str, ...], int]] = []

    def unknown_terms(self, query: str) -> list[str]:
        return [t for t in self.unknown if t in content_words(query)]

    def retrieve(self, query: str, scopes: Sequence[str], k: int) -> list[Chunk]:
        self.calls.append((query, tuple(scopes), k))
        if self.error:
            raise self.error
        q = content_words(query)
        allowed = [c for c in self.chunks if c.scope in scopes]
        ranked = sorted(allowed, key=lambda c: len(q & content_words(c.text)), reverse=True)
        return [c for c in ranked if q & content_words(c.text)][:k]


class FakeGenerator:
    """Streams a scripted reply word by word (like llm's MockModel). `delay` simulates a busy model.
    Hosts adapters like a peft model (a reply per adapter name); cannot score."""

    hosts_adapters = True
    can_score = False

    def __init__(self, reply: str = "", *, delay: float = 0.0, error: Exception | None = None,
                 replies: dict[str | None, str] | None = None):
        self.reply = reply
        self.delay = delay
        self.error = error
        self.active_adapter: str | None = None
        self.prompts: list[list[Message]] = []
        self._lock = threading.Lock()
        # Learning-loop tests: a reply per adapter name (None: the base model) and peft-like loading.
        self.replies = replies or {}
        self.loaded: dict[str, str] = {}
        self.used: list[str | None] = []  # the adapter each generation ran with

    def set_adapter(self, name: str | None) -> None:
        self.active_adapter = name

    @property
    def loaded_adapters(self) -> list[str]:
        return list(self.loaded)

    def load_adapter(self, name: str, path) -> None:
        self.loaded.setdefault(name, str(path))

    def unload_adapter(self, name: str) -> None:
        if name != self.active_adapter:
            self.loaded.pop(name, None)

    def completion_loss(self, pairs, adapter):
        return None

    def generate(self, messages: list[Message], adapter: str | None = None) -> Iterator[str]:
        self.prompts.append(messages)
        if self.error:
            raise self.error
        name = adapter if adapter is not None else self.active_adapter
        name = None if name == "base" else name
        self.used.append(name)
        reply = self.replies.get(name, self.reply)
        with self._lock:  # like the real model: one generation at a time
            for i, word in enumerate(reply.split(" ")):
                if self.delay:
                    time.sleep(self.delay)
                yield word if i == 0 else " " + word


class FakeIngestor:
    """Records what an adapter asked to ingest (path, its bytes, scope, source) and reports it added;
    `error` makes it raise like a reader refusing a bad file."""

    def __init__(self, error: Exception | None = None):
        self.error = error
        self.files: list[tuple[str, bytes, str | None, str | None]] = []
        self.forgotten: list[str] = []

    def ingest_file(self, path, scope: str | None = None, source: str | None = None,
                    title: str | None = None):
        from knowledge.ingest import IngestReport  # imported late: it pulls in LlamaIndex

        if self.error:
            raise self.error
        self.files.append((path.name, path.read_bytes(), scope, source))
        return IngestReport(added=[source or str(path)], chunks_embedded=1)

    def forget(self, source: str) -> int:
        self.forgotten.append(source)
        return 1


# Chunks shared by the learning-loop tests.
VPN_CHUNK = Chunk(id="vpn", source="/docs/vpn.md", title="VPN", scope="default", score=0.9,
                  text="The VPN portal address is vpn.acme.example. The client needs version 6.2.1 or later.")
GUEST_WIFI_CHUNK = Chunk(id="wifi", source="/docs/wifi.md", title="Wi-Fi", scope="default", score=0.9,
                         text="The guest Wi-Fi network is AcmeGuest. Guest vouchers are valid for 24 hours.")


class FakeLearning:
    """The learning-loop actions (bot.channels.shared.LearningActions) for tests of who may use them:
    records the calls; approvals and rejections change the feedback row like the real ones."""

    def __init__(self, store=None):
        self.store = store
        self.calls: list[tuple] = []

    def train_now(self) -> str:
        self.calls.append(("train",))
        return "Training started in the background."

    def promote(self, version: str) -> None:
        from bot.core.errors import RegistryError

        self.calls.append(("promote", version))
        if self.store is not None and self.store.get_adapter(version) is None:
            raise RegistryError(f"unknown adapter version {version!r}")

    def rollback(self) -> str | None:
        from bot.core.errors import RegistryError

        self.calls.append(("rollback",))
        raise RegistryError("no adapter is active; nothing to roll back")

    def approve(self, feedback_id: int, text: str | None = None) -> str:
        self.calls.append(("approve", feedback_id, text))
        if text:
            self.store.set_correction_text(feedback_id, text)
        self.store.set_correction_status(feedback_id, "approved")
        return "approved"

    def reject(self, feedback_id: int) -> None:
        self.calls.append(("reject", feedback_id))
        self.store.set_correction_status(feedback_id, "rejected")
