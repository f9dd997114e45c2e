"""The one place that picks implementations from settings and builds the running parts.

Everything is built lazily, so `kbot docs` never loads the language model and `kbot config`
loads nothing at all. Tests (and benchmarks) pass ready-made parts to the constructor instead.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bot.core import telemetry
from bot.core.ports import AnswerLog, Embedder, Generator
from bot.core.settings import Settings, secret
from bot.engine.conversation import ConversationEngine, EngineConfig
from knowledge.store import Store

if TYPE_CHECKING:
    from knowledge.index import KnowledgeIndex
    from knowledge.ingest import Ingestor

log = logging.getLogger(__name__)
_PARTS = ("store", "embedder", "index", "ingestor", "generator")


class Runtime:
    """Lazily built parts of a running kbot, shared by the CLI, the web server and the bots.

    `Runtime(settings, generator=g, embedder=e)` uses the given parts instead of building them."""

    def __init__(self, settings: Settings | None = None, **parts: Any):
        self.settings = settings or Settings()
        unknown = set(parts) - set(_PARTS)
        if unknown:
            raise TypeError(f"unknown runtime parts: {sorted(unknown)} (known: {', '.join(_PARTS)})")
        self.__dict__.update(parts)  # cached_property reads the instance dict first

    @cached_property
    def store(self) -> Store:
        return Store(self.settings.db_url)

    @cached_property
    def embedder(self) -> Embedder:
        from knowledge.embedder import LocalEmbedder
        from knowledge.models import embedder_dir

        return LocalEmbedder(embedder_dir(self.settings.embed_model), batch_size=self.settings.embed_batch_size)

    @cached_property
    def index(self) -> KnowledgeIndex:
        from knowledge.index import KnowledgeIndex, chroma_client

        client = chroma_client(self.settings.chroma_url, self.settings.chroma_dir, secret(self.settings.chroma_token))
        return KnowledgeIndex(client, self.settings.collection, self.embedder, self.settings)

    @cached_property
    def ingestor(self) -> Ingestor:
        from knowledge.ingest import Ingestor

        return Ingestor(self.index, self.store, self.settings)

    @cached_property
    def generator(self) -> Generator:
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
        telemetry.serving_adapter(generator.active_adapter)
        return generator

    @cached_property
    def engine_config(self) -> EngineConfig:
        s = self.settings
        return EngineConfig(top_k=s.top_k, min_score=s.min_score, min_score_unknown_terms=s.min_score_unknown_terms,
                            evidence_sentences=s.evidence_sentences, support_threshold=s.support_threshold,
                            history_turns=s.history_turns)

    @cached_property
    def engine(self) -> ConversationEngine:
        return self.engine_for(self.generator, self.store)

    def engine_for(self, generator: Generator, answer_log: AnswerLog) -> ConversationEngine:
        """An engine over this knowledge base with another generator and answer log (the training
        gate evaluates candidates this way, with a throwaway log)."""
        return ConversationEngine(self.index, generator, answer_log, self.embedder, replace(self.engine_config))

