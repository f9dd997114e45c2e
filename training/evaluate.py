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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.engine import _DONT_KNOW as DONT_KNOW  # the engine's own test for a reply that abstains
from bot.engine import ConversationEngine
from bot.evaluation import evaluate as run_eval
from bot.metrics import EvalItem, normalize
from bot.ports import Message
from bot.types import DEFAULT_SCOPE
from knowledge.generator import BASE
from knowledge.store import Store

if TYPE_CHECKING:
    from bot.wiring import Runtime
    from training.dataset import Example

MAIN_METRIC = "f1"
# metric -> direction (+1: higher is better, -1: lower is better)
GUARDED = {"grounded": 1, "abstention": 1, "fact_rate": 1, "heldout_loss": -1}


class PinnedGenerator:
    """Generates with one fixed adapter (None: the base model) and remembers each raw reply."""

    def __init__(self, inner: Any, adapter: str | None):
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


def load_version(runtime: Runtime, version: str | None) -> None:
    """Make `version` loadable by name on the runtime's generator (no-op for the base model)."""
    if version is None or version in getattr(runtime.generator, "loaded_adapters", [version]):
        return
    row = runtime.store.get_adapter(version)
    if row is None:
        raise ValueError(f"unknown adapter version {version!r}")
    runtime.generator.load_adapter(version, row.path)


def evaluate_adapter(
    runtime: Runtime,
    version: str | None,
    items: Sequence[EvalItem],
    *,
    heldout: Sequence[Example] = (),
    scopes: tuple[str, ...] | None = None,
    details: bool = False,
) -> dict[str, Any]:
    """Metrics of adapter `version` (None: the base model) on `items`, plus held-out loss."""
    load_version(runtime, version)
    started = time.perf_counter()
    pinned = PinnedGenerator(runtime.generator, version)
    replies: list[str | None] = []

    def on_item(_result: Any) -> None:
        replies.append(pinned.last_reply)
        pinned.last_reply = None

    with tempfile.TemporaryDirectory(prefix="kbot-eval-") as tmp:
        log_store = Store(f"sqlite:///{Path(tmp) / 'eval.db'}")
        engine = ConversationEngine(
            runtime.index, pinned, log_store, runtime.embedder, replace(runtime.engine.config)
        )
        scopes = scopes or (runtime.settings.default_scope or DEFAULT_SCOPE,)
        result = run_eval(engine, items, k=engine.config.top_k, scopes=scopes, on_item=on_item)
        log_store.engine.dispose()
    rows = [dict(row, reply=reply) for row, reply in zip(result["items"], replies, strict=True)]
    metrics: dict[str, Any] = {"adapter": version or BASE, **score_items(rows)}
    metrics["heldout_loss"] = heldout_loss(runtime.generator, version, heldout) if heldout else None
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    if details:
        metrics["items"] = rows
    return metrics


def score_items(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The gate's answer metrics over per-item results (bot.evaluation rows plus the raw `reply`)."""
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
                float(r["mode"] == "declined" or bool(r.get("reply") and DONT_KNOW.search(r["reply"])))
                for r in unanswerable
            ]
        ),
        "modes": modes,
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def heldout_loss(generator: Any, version: str | None, examples: Sequence[Example]) -> float | None:
    """Mean per-token NLL of each example's completion given its prompt, with adapter `version`."""
    if not hasattr(generator, "model") or not hasattr(generator, "tokenizer"):
        return None  # a remote generator: no access to token probabilities
    import torch

    tok = generator.tokenizer
    total, count = 0.0, 0
    # The generator's lock serialises us with serving; the adapter is switched back on exit.
    with getattr(generator, "_lock", nullcontext()), torch.inference_mode(), _using(generator, version):
        for ex in examples:
            prompt_ids = tok(generator.prompt_text(ex.prompt), add_special_tokens=False)["input_ids"]
            full = tok.apply_chat_template(
                ex.prompt + [{"role": "assistant", "content": ex.completion}], tokenize=False
            )
            ids = tok(full, add_special_tokens=False, return_tensors="pt")["input_ids"]
            labels = ids.clone()
            labels[:, : len(prompt_ids)] = -100
            n = int((labels != -100).sum())
            if n == 0:
                continue
            out = generator.model(input_ids=ids, labels=labels)
            total += float(out.loss) * n
            count += n
    return round(total / count, 4) if count else None


@contextmanager
def _using(generator: Any, version: str | None) -> Iterator[None]:
    model = generator.model
    if not getattr(generator, "loaded_adapters", None):
        yield
    elif version is None:
        with model.disable_adapter():
            yield
    else:
        model.set_adapter(version)
        try:
            yield
        finally:
            if generator.active_adapter:
                model.set_adapter(generator.active_adapter)


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
