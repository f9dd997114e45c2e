"""End-to-end learning loop on the sample corpus: does feedback make answers better?

1. Ingest examples/docs into a fresh data folder; serve the base model (SmolLM2-135M).
2. Split examples/questions.jsonl: even lines are the training half, odd lines are held out.
3. Measure the held-out half with the base model ("before").
4. Simulated users ask the training half through the real engine and vote by comparing each answer
   with its reference (token-F1 >= 0.5: up; else down, with the reference as a correction; an
   answered unanswerable question is only voted down: there is nothing to correct it with). An admin approves every
   correction, which also files it into the knowledge base.
5. `run_refresh`: datasets -> LoRA (SFT, then DPO on correction pairs, then KTO) -> gate on the
   held-out half, comparing the base model and the candidate on the same knowledge base -> promote.
6. Report before / after: answer token-F1, fact rate, grounded share, abstention, training time.

    .venv/bin/python bench/learning_loop.py [--data-dir DIR] [--epochs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
USERS = [f"sim-user-{i}" for i in range(5)]
ROWS = ("f1", "fact_rate", "grounded", "abstention", "heldout_loss")


def split(items: list) -> tuple[list, list]:
    return items[0::2], items[1::2]


def simulate_users(rt, items) -> dict[str, int]:
    """Ask each training question once, vote like a careful user, and approve every correction."""
    from bot.core.errors import AnswerFailed
    from bot.core.types import Question, Turn
    from bot.engine.scoring import token_f1
    from training.corrections import approve_correction

    counts = {"asked": 0, "up": 0, "down": 0, "corrections": 0, "failed": 0}
    corrections = []
    for i, item in enumerate(items):
        question = Question(
            item.question,
            user_id=USERS[i % len(USERS)],
            platform="bench",
            history=tuple(Turn("user", h) for h in item.history),
        )
        try:
            answer = rt.engine.answer(question)
        except AnswerFailed:
            counts["failed"] += 1
            continue
        counts["asked"] += 1
        if not item.answerable:  # nothing to correct it with: the documents do not say
            good, fix = not answer.answered, None
        else:
            good = answer.answered and token_f1(answer.text, item.answer) >= 0.5
            fix = item.answer
        user = USERS[i % len(USERS)]
        if good:
            rt.store.record_feedback(answer.answer_id, user, vote=1, platform="bench")
            counts["up"] += 1
        elif answer.answered and fix:
            row = rt.store.record_feedback(answer.answer_id, user, vote=-1, correction=fix, platform="bench")
            corrections.append(row.id)
            counts["down"] += 1
        else:
            rt.store.record_feedback(answer.answer_id, user, vote=-1, platform="bench")
            counts["down"] += 1
    for feedback_id in corrections:
        approve_correction(rt.store, rt.ingestor, rt.settings, feedback_id)
        counts["corrections"] += 1
    return counts


def table(columns: dict[str, dict]) -> str:
    lines = ["| metric | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for name in ROWS + ("seconds",):
        cells = []
        for metrics in columns.values():
            v = metrics.get(name)
            cells.append("-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="Default: a fresh temporary folder.")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / ".cache" / "test-models",
        help="Where the converted base model is cached (shared with the tests).",
    )
    parser.add_argument("--questions", type=Path, default=ROOT / "examples" / "questions.jsonl")
    parser.add_argument("--epochs", type=float, default=None, help="Default: settings.train_epochs.")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None, help="Training threads (default: cores - 1).")
    parser.add_argument("--distractor-copies", type=int, default=None,
                        help="RAFT variants per SFT example (default: TrainConfig's).")
    parser.add_argument("--seed", type=int, default=None, help="Training seed (default: TrainConfig's, 0).")
    parser.add_argument("--neftune-alpha", type=float, default=None,
                        help="NEFTune embedding noise during SFT (default: TrainConfig's, 5; 0 turns it off).")
    parser.add_argument(
        "--skip-before", action="store_true", help="Skip the base-model pass on the bare corpus."
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the full results here.")
    args = parser.parse_args()

    import logging

    from bot.core.settings import Settings
    from bot.engine.scoring import load_eval_file
    from bot.serve import loop_parts
    from bot.wiring import Runtime
    from knowledge.models import lm_dir
    from training.evaluate import evaluate_adapter, score_items
    from training.refresh import TrainConfig, run_refresh

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="kbot-loop-"))
    base = lm_dir(None, args.cache)
    rt = Runtime(Settings(_env_file=None, data_dir=data_dir, lm_path=str(base)))
    started = time.perf_counter()
    report = rt.ingestor.ingest_paths([ROOT / "examples" / "docs"])
    print(f"machine: {machine()}; data: {data_dir}")
    print(f"ingest: {report.summary()}")
    train_items, heldout = split(load_eval_file(args.questions))
    print(f"questions: {len(train_items)} for the simulated users, {len(heldout)} held out")

    results: dict = {"machine": machine(), "questions": {"train": len(train_items), "heldout": len(heldout)}}
    if not args.skip_before:
        results["before"] = evaluate_adapter(rt.generator, rt.engine_for, None, heldout, details=True)
        print(f"before (base model, bare corpus): f1 {results['before']['f1']:.3f}")
    t = time.perf_counter()
    results["users"] = simulate_users(rt, train_items)
    results["users"]["seconds"] = round(time.perf_counter() - t, 1)
    print(f"simulated users: {results['users']}")

    config = TrainConfig.from_settings(
        rt.settings, base, epochs=args.epochs, learning_rate=args.learning_rate, threads=args.threads,
        distractor_copies=args.distractor_copies, seed=args.seed, neftune_alpha=args.neftune_alpha,
    )
    loop = run_refresh(loop_parts(rt), eval_items=heldout, config=config, progress=sys.stderr.isatty(), details=True)
    results["loop"] = {
        "status": loop.status,
        "version": loop.version,
        "counts": loop.counts,
        "train": loop.train,
        "reasons": loop.reasons,
        "gate_baseline": loop.baseline,
        "gate_candidate": loop.candidate,
    }
    # The gate also scores held-out feedback; the before/after comparison is on the held-out half only.
    questions = {item.question for item in heldout}
    for key, metrics in (("baseline", loop.baseline), ("after", loop.candidate)):
        if metrics:
            rows = [r for r in metrics["items"] if r["question"] in questions]
            results[key] = {**score_items(rows), "items": rows}
    results["total_seconds"] = round(time.perf_counter() - started, 1)

    columns = {k: results[k] for k in ("before", "baseline", "after") if results.get(k)}
    print()
    print(f"loop: {loop.message}")
    for reason in loop.reasons:
        print(f"  {reason}")
    if loop.train:
        tr = loop.train
        print(
            f"training: {tr['seconds']} s, {tr['examples_seen']} examples seen, "
            f"{tr['examples_per_s']} examples/s, "
            f"SFT {tr['sft_steps']} steps (loss {tr['sft_loss']:.3f}), DPO {tr['dpo_steps']} steps, "
            f"KTO {tr['kto_steps']} steps"
        )
    print()
    print(table(columns))
    print(f"\ntotal: {results['total_seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
