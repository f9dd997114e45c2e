"""The sentence embedder: LlamaIndex's HuggingFace embedding over a local sentence-transformers folder."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path


class LocalEmbedder:
    """Unit-normalised embeddings on CPU. Also the LlamaIndex embed model used by ingestion (`.llama`).

    Query-time sentence embeddings are cached (LRU): the same document sentences come back for
    related questions, and re-embedding them is most of the cost of evidence selection."""

    def __init__(self, model_dir: Path, batch_size: int = 64, cache_size: int = 20000):
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        self.model_dir = Path(model_dir)
        self.llama = HuggingFaceEmbedding(
            model_name=str(model_dir), embed_batch_size=batch_size, normalize=True, device="cpu",
            show_progress_bar=False,
        )
        self.batch_size = batch_size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def tokenizer(self):  # the word-piece tokenizer that decides what fits in the 256-token window
        return self.llama._model.tokenizer

    @property
    def max_seq_length(self) -> int:
        return int(self.llama._model.max_seq_length)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self.llama.get_text_embedding_batch(missing)
            with self._lock:
                for text, vec in zip(missing, vectors, strict=True):
                    self._cache[text] = vec
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        with self._lock:
            out = []
            for t in texts:
                self._cache.move_to_end(t)
                out.append(self._cache[t])
            return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]
