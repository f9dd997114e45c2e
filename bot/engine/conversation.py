"""The conversation engine: the one place that sequences condense -> retrieve -> decide ->
generate -> check -> log. Platform-free: it takes a `Question` and returns an `Answer`."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bot.core import telemetry
from bot.core.errors import AnswerFailed
from bot.core.ports import AnswerLog, Embedder, Generator, Retriever
from bot.core.text import content_words
from bot.core.types import Answer, Chunk, Citation, Feedback, Question, new_id
from bot.engine.grounding import (
    Evidence,
    cited_numbers,
    misplaced_number,
    says_something,
    select_evidence,
    support,
    tidy,
)
from bot.engine.prompt import DECLINED_TEXT, build_messages, number_sources, says_dont_know

log = logging.getLogger(__name__)
_FOLLOW_UP = re.compile(r"\b(it|its|that|this|those|these|they|them|their|there|he|she|one|same|also)\b", re.I)


@dataclass
class EngineConfig:
    top_k: int = 5
    min_score: float = 0.40
    min_score_unknown_terms: float = 0.56
    evidence_sentences: int = 4
    support_threshold: float = 0.75
    history_turns: int = 6


class ConversationEngine:
    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        store: AnswerLog,
        embedder: Embedder,
        config: EngineConfig | None = None,
    ):
        self.retriever = retriever
        self.generator = generator
        self.store = store
        self.embedder = embedder
        self.config = config or EngineConfig()

    # --- public --------------------------------------------------------------------------------
    def answer(self, question: Question, trace: telemetry.AnswerTrace | None = None) -> Answer:
        final = None
        for item in self.stream(question, trace):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def stream(self, question: Question, trace: telemetry.AnswerTrace | None = None) -> Iterator[str | Answer]:
        """Yield generated text pieces as they arrive, then the final `Answer` (whose text may differ:
        an unsupported generation is replaced by the quoted evidence).

        `trace`: the answer's trace, opened by the channel that posts the answer (it adds the
        `kbot.post` step and ends it); without one the engine traces the answer on its own."""
        own_trace = trace is None
        trace = trace or telemetry.AnswerTrace(question.platform)
        try:
            yield from self._stream(question, trace)
        except GeneratorExit:  # the consumer stopped reading (a client went away): not an error
            raise
        except BaseException as exc:
            trace.fail(exc)
            raise
        finally:
            if own_trace:
                trace.end()

    def _stream(self, question: Question, trace: telemetry.AnswerTrace) -> Iterator[str | Answer]:
        started = time.perf_counter()
        answer_id = new_id()
        platform = question.platform
        telemetry.QUESTIONS.labels(platform).inc()
        trace.set(answer_id=answer_id)
        query = self.condense(question)
        row = dict(
            id=answer_id,
            conversation_id=self.store.conversation_id(question.platform, question.channel_id, question.thread_id),
            platform=question.platform,
            channel_id=question.channel_id,
            thread_id=question.thread_id,
            user_id=question.user_id,
            scopes=list(question.scopes),
            question=question.text,
            standalone_query=query,
            adapter_version=self.generator.active_adapter,
        )
        try:
            with trace.step("kbot.retrieve", scopes=",".join(question.scopes), k=self.config.top_k) as span:
                chunks = self.retriever.retrieve(query, question.scopes, self.config.top_k)
                retrieved_ms = _ms(started)
                evidence = select_evidence(query, chunks, self.embedder, self.config.evidence_sentences)
                span.set_attribute("kbot.chunks", len(chunks))
            telemetry.RETRIEVE_SECONDS.labels(platform).observe(retrieved_ms / 1000)
        except Exception as exc:
            self.store.log_answer(**row, mode="error", error=f"retrieval: {exc}", latency={"total_ms": _ms(started)})
            telemetry.ANSWERS.labels(platform, "error").inc()
            log.exception("retrieval failed for answer %s", answer_id)
            raise AnswerFailed(answer_id, exc) from exc
        row["retrieved"] = [{"id": c.id, "score": round(c.score, 4), "source": c.source} for c in chunks]

        if self._should_decline(query, evidence):
            answer = Answer(DECLINED_TEXT, [_citation(c, c.text[:300]) for c in _distinct_docs(chunks)[:3]],
                            "declined", answer_id, query)
            yield self._finish(answer, row, started, retrieved_ms)
            return

        sources = number_sources(evidence)
        messages = build_messages(query, sources)
        row["prompt"] = json.dumps(messages, ensure_ascii=False)
        pieces: list[str] = []
        span = trace.start("kbot.generate", adapter=row["adapter_version"] or "base")
        telemetry.GENERATIONS_IN_FLIGHT.inc()
        try:
            for piece in self.generator.generate(messages):
                if not pieces:
                    first = time.perf_counter() - started
                    telemetry.FIRST_TOKEN_SECONDS.labels(platform).observe(first)
                    span.set_attribute("kbot.first_token_ms", int(first * 1000))
                pieces.append(piece)
                yield piece
        except Exception as exc:  # the evidence is still good: quote it instead of failing
            log.warning("generation failed for answer %s (%s); answering extractively", answer_id, exc)
            row["error"] = f"generation: {exc}"
            span.record_exception(exc)
        finally:
            telemetry.GENERATIONS_IN_FLIGHT.dec()
            span.set_attribute("kbot.pieces", len(pieces))
            span.end()
        generated = tidy("".join(pieces))
        answer = self._decide(generated, evidence, sources, answer_id, query)
        yield self._finish(answer, row, started, retrieved_ms)

    def record_feedback(self, feedback: Feedback) -> None:
        """Store a vote and/or correction; raises UnknownAnswer for unknown ids."""
        self.store.record_feedback(
            feedback.answer_id,
            feedback.user_id,
            vote=feedback.vote if feedback.vote else None,
            correction=feedback.correction,
            platform=feedback.platform,
            verified=feedback.verified,
        )
        telemetry.record_feedback(feedback.platform, feedback.vote, bool(feedback.correction))

    def condense(self, question: Question) -> str:
        """A standalone query: a follow-up ('what version does it need?') borrows the previous
        question's words. A 135M model rewrites queries unreliably, so this is deliberately lexical."""
        text = question.text.strip()
        previous = [t.text for t in question.history if t.role == "user"][-self.config.history_turns:]
        if not previous:
            return text
        if len(content_words(text)) <= 3 or _FOLLOW_UP.search(text):
            return f"{previous[-1].strip()} {text}"
        return text

    # --- steps ---------------------------------------------------------------------------------
    def _should_decline(self, query: str, evidence: list[Evidence]) -> bool:
        """Decline when the best evidence sentence is far from the question, or only moderately close
        while the question names something the knowledge base never mentions ('dental plan' when only
        a vision plan is documented). Thresholds are calibrated by bench/calibrate_abstention.py."""
        if not evidence:
            return True
        best = evidence[0].similarity
        if best < self.config.min_score:
            return True
        return best < self.config.min_score_unknown_terms and bool(self.retriever.unknown_terms(query))

    def _decide(
        self, generated: str, evidence: list[Evidence], sources: list[list[Evidence]], answer_id: str, query: str
    ) -> Answer:
        evidence_text = [e.sentence for e in evidence]
        supported = (
            says_something(generated, evidence_text[0])
            and not says_dont_know(generated)
            and support(generated, evidence_text) >= self.config.support_threshold
            and misplaced_number(generated, evidence_text) is None
        )
        if supported:
            numbers = [n for n in cited_numbers(generated) if 1 <= n <= len(sources)]
            if not numbers:  # uncited: credit the source that shares most words with the answer
                words = content_words(generated)
                best = max(range(len(sources)),
                           key=lambda i: len(words & content_words(" ".join(e.sentence for e in sources[i]))))
                numbers = [best + 1]
                generated = f"{generated} [{best + 1}]"
            cites = [_citation(sources[n - 1][0].chunk, " ".join(e.sentence for e in sources[n - 1]),
                               max(e.score for e in sources[n - 1])) for n in dict.fromkeys(numbers)]
            return Answer(generated, cites, "generated", answer_id, query)
        # Extractive: quote the best sentence and, if it comes from the same chunk, its runner-up.
        best = evidence[0]
        quoted = [best.sentence] + [e.sentence for e in evidence[1:2] if e.chunk.id == best.chunk.id]
        text = " ".join(quoted) + " [1]"
        return Answer(text, [_citation(best.chunk, " ".join(quoted), best.score)], "extractive", answer_id, query)

    def _finish(self, answer: Answer, row: dict, started: float, retrieved_ms: int) -> Answer:
        answer.latency_ms = _ms(started)
        answer.adapter_version = row.get("adapter_version")
        self.store.log_answer(
            **row,
            answer=answer.text,
            mode=answer.mode,
            citations=[c.__dict__ for c in answer.citations],
            latency={"retrieve_ms": retrieved_ms, "total_ms": answer.latency_ms},
        )
        platform = row["platform"]
        telemetry.ANSWERS.labels(platform, answer.mode).inc()
        telemetry.ANSWER_SECONDS.labels(platform, answer.mode).observe(answer.latency_ms / 1000)
        telemetry.serving_adapter(answer.adapter_version)
        log.info("answer %s mode=%s latency=%dms", answer.answer_id, answer.mode, answer.latency_ms,
                 extra={"answer_id": answer.answer_id, "platform": platform, "mode": answer.mode})
        return answer


def _distinct_docs(chunks: list[Chunk]) -> list[Chunk]:
    seen: set[str] = set()
    out = []
    for c in chunks:
        if c.source not in seen:
            seen.add(c.source)
            out.append(c)
    return out


def _citation(chunk: Chunk, text: str, score: float | None = None) -> Citation:
    return Citation(
        source=chunk.source, title=chunk.title or chunk.source, text=text,
        score=round(chunk.score if score is None else score, 4),
        page=chunk.page, heading=chunk.heading, url=chunk.url, chunk_id=chunk.id,
    )


def _ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)
