"""Score an adapter (or the base model) on held-out questions, and the promotion gate.

The candidate answers through the real engine (same retrieval, prompt and grounding check as
serving) but with its own throwaway answer log, so evaluation never shows up as user traffic, and
with the adapter pinned per call, so a server using the same generator keeps serving its own.

Metrics (higher is better unless noted):
- f1: answer token-F1 against the reference, answerable questions (the main metric)
- fact_rate: share of answerable questions whose key fact appears in the answer
- grounded: share of answerable questions answered by generation that passed the grounding check
  (the rest were quoted extractively or declined)
- abstention: share of unanswerable questions the engine declined or the model said it did not know
- heldout_loss (lower is better): mean token NLL of held-out good answers given their logged prompts
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.errors import RegistryError
from bot.core.ports import BASE, AnswerLog, Generator, Message
from bot.core.types import DEFAULT_SCOPE
from bot.engine.conversation import ConversationEngine
from bot.engine.evaluation import evaluate as run_eval
from bot.engine.prompt import says_dont_know
from bot.engine.scoring import EvalItem, normalize
from knowledge.store import Store

if TYPE_CHECKING:
    from training.dataset import Example

# Builds the real engine (same retrieval, evidence and checks as serving) around a given generator and
# answer log; bot.wiring.Runtime.engine_for is the one implementation.
EngineFactory = Callable[[Generator, AnswerLog], ConversationEngine]

MAIN_METRIC = "f1"
# metric -> direction (+1: higher is better, -1: lower is better)
GUARDED = {"grounded": 1, "abstention": 1, "fact_rate": 1, "heldout_loss": -1}


class PinnedGenerator:
    """Generates with one fixed adapter (None: the base model) and remembers each raw reply."""

    hosts_adapters = False
    can_score = False
    loaded_adapters: list[str] = []

    def __init__(self, inner: Generator, adapter: str | None):
        self.inner = inner
        self.adapter = adapter
        self.active_adapter = adapter  # what the engine records as the answer's adapter_version
        self.last_reply: str | None = None

    def generate(self, messages: list[Message], adapter: str | None = None) -> Iterator[str]:
        pieces: list[str] = []
        try:
            for piece in self.inner.generate(messages, adapter=self.adapter or BASE):
                pieces.append(piece)
                yield piece
        finally:
            self.last_reply = "".join(pieces)


def load_version(store: Store, generator: Generator, version: str | None) -> None:
    """Make `version` selectable by name on `generator` (no-op for the base model)."""
    if version is None or version in generator.loaded_adapters:
        return
    row = store.get_adapter(version)
    if row is None:
        raise RegistryError(f"unknown adapter version {version!r} (see `kbot adapters list`)")
    generator.load_adapter(version, row.path)


def evaluate_adapter(
    generator: Generator,
    make_engine: EngineFactory,
    version: str | None,
    items: Sequence[EvalItem],
    *,
    heldout: Sequence[Example] = (),
    scopes: tuple[str, ...] | None = None,
    details: bool = False,
) -> dict[str, Any]:
    """Metrics of adapter `version` (None: the base model, already loaded otherwise) on `items`, plus
    held-out loss."""
    started = time.perf_counter()
    pinned = PinnedGenerator(generator, version)
    replies: list[str | None] = []

    def on_item(_result: Any) -> None:
        replies.append(pinned.last_reply)
        pinned.last_reply = None

    with tempfile.TemporaryDirectory(prefix="kbot-eval-") as tmp:
        log_store = Store(f"sqlite:///{Path(tmp) / 'eval.db'}")
        engine = make_engine(pinned, log_store)
        scopes = scopes or (DEFAULT_SCOPE,)
        result = run_eval(engine, items, k=engine.config.top_k, scopes=scopes, on_item=on_item)
        log_store.engine.dispose()
    rows = [dict(row, reply=reply) for row, reply in zip(result["items"], replies, strict=True)]
    metrics: dict[str, Any] = {"adapter": version or BASE, **score_items(rows)}
    metrics["heldout_loss"] = heldout_loss(generator, version, heldout)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    if details:
        metrics["items"] = rows
    return metrics


def score_items(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The gate's answer metrics over per-item results (bot.engine.evaluation rows plus the raw `reply`)."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    modes: dict[str, int] = {}
    for r in rows:
        modes[r["mode"]] = modes.get(r["mode"], 0) + 1
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "f1": _mean([r["f1"] or 0.0 for r in answerable]),
        "fact_rate": _mean([float(bool(r["fact"])) for r in answerable]),
        "grounded": _mean([float(r["mode"] == "generated") for r in answerable]),
        "abstention": _mean(
            [
                float(r["mode"] == "declined" or bool(r.get("reply") and says_dont_know(r["reply"])))
                for r in unanswerable
            ]
        ),
        "modes": modes,
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def heldout_loss(generator: Generator, version: str | None, examples: Sequence[Example]) -> float | None:
    """Mean token NLL of held-out good answers given their logged prompts (None: a generator that
    cannot score, e.g. a remote server)."""
    if not generator.can_score or not examples:
        return None
    return generator.completion_loss([(ex.prompt, ex.completion) for ex in examples], version)


def gate(candidate: dict[str, Any], active: dict[str, Any], tolerance: float) -> tuple[bool, list[str]]:
    """Promote only if the candidate is better on the main metric and not worse beyond `tolerance` on
    the others (absolute for rates, relative for the loss). A rate may also drop by one question's
    worth: on 40 questions one answer is 0.025, and a gate that flips on one answer measures noise.
    Returns (passed, reasons)."""
    reasons: list[str] = []
    ok = True
    c, a = candidate.get(MAIN_METRIC), active.get(MAIN_METRIC)
    if c is None or a is None:
        return False, [f"{MAIN_METRIC}: no answerable held-out questions to compare on"]
    if c > a:
        reasons.append(f"{MAIN_METRIC} {a:.3f} -> {c:.3f} ({c - a:+.3f}): better")
    else:
        ok = False
        reasons.append(f"{MAIN_METRIC} {a:.3f} -> {c:.3f} ({c - a:+.3f}): not better than the active adapter")
    for name, direction in GUARDED.items():
        c, a = candidate.get(name), active.get(name)
        if c is None or a is None:
            reasons.append(f"{name}: not measured")
            continue
        allowed = tolerance * abs(a) if name == "heldout_loss" else max(tolerance, _one_item(name, candidate))
        worse = (a - c) if direction > 0 else (c - a)
        verdict = "worse beyond tolerance" if worse > allowed + 1e-12 else "within tolerance"
        if worse > allowed + 1e-12:
            ok = False
        reasons.append(f"{name} {a:.3f} -> {c:.3f} ({c - a:+.3f}): {verdict}")
    return ok, reasons


def _one_item(metric: str, metrics: dict[str, Any]) -> float:
    n = metrics.get("unanswerable" if metric == "abstention" else "answerable") or 0
    return 1.0 / n if n else 0.0


def filter_heldout(items: Sequence[EvalItem], trained_questions: set[str]) -> list[EvalItem]:
    """Eval items whose question was never trained on (the gate's set must be held out)."""
    return [i for i in items if normalize(i.question) not in trained_questions]
