"""The one place that picks implementations from settings and builds the running parts.

Everything is built lazily, so `kbot docs` never loads the language model and `kbot config`
loads nothing at all.
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bot.engine import ConversationEngine, EngineConfig
from bot.settings import Settings, secret
from knowledge.store import Store

if TYPE_CHECKING:
    from knowledge.embedder import LocalEmbedder
    from knowledge.index import KnowledgeIndex
    from knowledge.ingest import Ingestor

log = logging.getLogger(__name__)


class Runtime:
    """Lazily built parts of a running kbot, shared by the CLI, the web server and the bots."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self._lock = threading.Lock()

    @cached_property
    def store(self) -> Store:
        return Store(self.settings.db_url)

    @cached_property
    def embedder(self) -> LocalEmbedder:
        from knowledge.embedder import LocalEmbedder
        from knowledge.models import embedder_dir

        return LocalEmbedder(embedder_dir(self.settings.embed_model), batch_size=self.settings.embed_batch_size)

    @cached_property
    def index(self) -> KnowledgeIndex:
        from knowledge.index import KnowledgeIndex, chroma_client

        client = chroma_client(self.settings.chroma_url, self.settings.chroma_dir)
        return KnowledgeIndex(client, self.settings.collection, self.embedder, self.settings)

    @cached_property
    def ingestor(self) -> Ingestor:
        from knowledge.ingest import Ingestor

        return Ingestor(self.index, self.store, self.settings)

    @cached_property
    def generator(self) -> Any:
        s = self.settings
        if s.openai_base_url:
            from knowledge.generator import OpenAIGenerator

            return OpenAIGenerator(s.openai_base_url, s.openai_model, secret(s.openai_api_key),
                                   max_new_tokens=s.max_new_tokens, temperature=s.temperature)
        from transformers.utils import logging as hf_logging

        from knowledge.generator import LocalGenerator
        from knowledge.models import lm_dir

        hf_logging.disable_progress_bar()
        generator = LocalGenerator(
            lm_dir(s.lm_path, s.data_dir), dtype=s.lm_dtype, max_new_tokens=s.max_new_tokens,
            repetition_penalty=s.repetition_penalty, temperature=s.temperature, threads=s.lm_threads,
            adapter_path=s.adapter_path,
        )
        active = None if s.adapter_path else self.store.active_adapter()
        if active is not None:  # serve the promoted adapter of the learning loop
            generator.load_adapter(active.version, active.path)
            generator.set_adapter(active.version)
        return generator

    @cached_property
    def engine(self) -> ConversationEngine:
        s = self.settings
        config = EngineConfig(top_k=s.top_k, min_score=s.min_score, min_score_unknown_terms=s.min_score_unknown_terms,
                              evidence_sentences=s.evidence_sentences,
                              support_threshold=s.support_threshold, history_turns=s.history_turns)
        return ConversationEngine(self.index, self.generator, self.store, self.embedder, config)
