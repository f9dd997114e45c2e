"""`kbot eval`: run the real engine over a JSONL question file and measure retrieval and answers.

Per question: the rank of the first expected source among the retrieved documents, token-F1 of
the answer against the reference, whether the key fact appears, the answer mode and latency. In
total: hit@1/@3/@k, MRR, mean F1, fact rate, mode shares (and fact rate per mode), abstention
precision/recall on unanswerable items, latency p50/p95.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from bot.core.errors import AnswerFailed
from bot.core.types import DEFAULT_SCOPE, Question, Turn
from bot.engine.conversation import ConversationEngine
from bot.engine.scoring import EvalItem, contains_fact, first_hit_rank, token_f1


@dataclass
class ItemResult:
    question: str
    answerable: bool
    mode: str
    answer: str
    rank: int | None  # 1-based rank of the first expected source among retrieved documents
    f1: float | None  # answerable items only
    fact: bool | None  # answerable items only
    latency_ms: int
    sources: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def run_item(engine: ConversationEngine, item: EvalItem, scopes: tuple[str, ...]) -> ItemResult:
    history = tuple(Turn("user", h) for h in item.history)
    question = Question(item.question, platform="eval", scopes=scopes, history=history)
    try:
        answer = engine.answer(question)
        mode, text, latency, answer_id = answer.mode, answer.text, answer.latency_ms, answer.answer_id
    except AnswerFailed as exc:
        mode, text, latency, answer_id = "error", "", 0, exc.answer_id
    row = engine.store.get_answer(answer_id)
    retrieved = [r["source"] for r in (row.retrieved if row else [])]
    rank = first_hit_rank(retrieved, item.sources) if item.sources else None
    answered = mode in ("generated", "extractive")
    return ItemResult(
        question=item.question, answerable=item.answerable, mode=mode, answer=text, rank=rank,
        f1=token_f1(text if answered else "", item.answer) if item.answerable else None,
        fact=(answered and contains_fact(text, item.key_fact)) if item.answerable else None,
        latency_ms=latency, sources=list(dict.fromkeys(retrieved)),
    )


def summarize(results: Sequence[ItemResult], items: Sequence[EvalItem], k: int) -> dict:
    """Totals over per-item results. Retrieval metrics count answerable items that name sources."""
    hits = [r.rank for r, item in zip(results, items, strict=True) if item.answerable and item.sources]
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    declined = [r for r in results if r.mode == "declined"]
    true_declines = [r for r in declined if not r.answerable]
    modes = {}
    for mode in ("generated", "extractive", "declined", "error"):
        group = [r for r in results if r.mode == mode]
        facts = [float(bool(r.fact)) for r in group if r.answerable]
        modes[mode] = {"count": len(group), "share": len(group) / len(results) if results else 0.0,
                       "fact_rate": _mean(facts) if facts else None}

    def hit_at(n: int) -> float | None:
        return _mean([float(h is not None and h <= n) for h in hits]) if hits else None

    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "k": k,
        "hit@1": hit_at(1),
        "hit@3": hit_at(3),
        "hit@k": hit_at(k),
        "mrr": _mean([1.0 / h if h else 0.0 for h in hits]) if hits else None,
        "f1": _mean([r.f1 or 0.0 for r in answerable]),
        "fact_rate": _mean([float(bool(r.fact)) for r in answerable]),
        "modes": modes,
        "abstention_precision": len(true_declines) / len(declined) if declined else None,
        "abstention_recall": len(true_declines) / len(unanswerable) if unanswerable else None,
        "latency_p50_ms": percentile([r.latency_ms for r in results], 50),
        "latency_p95_ms": percentile([r.latency_ms for r in results], 95),
    }


def evaluate(
    engine: ConversationEngine,
    items: Sequence[EvalItem],
    k: int = 5,
    scopes: tuple[str, ...] = (DEFAULT_SCOPE,),
    on_item: Callable[[ItemResult], None] | None = None,
) -> dict:
    """Answer every item with the real engine; returns {"summary": {...}, "items": [...]}."""
    original_k = engine.config.top_k
    engine.config.top_k = k
    results = []
    try:
        for item in items:
            result = run_item(engine, item, scopes)
            results.append(result)
            if on_item:
                on_item(result)
    finally:
        engine.config.top_k = original_k
    return {"summary": summarize(results, items, k), "items": [asdict(r) for r in results]}
