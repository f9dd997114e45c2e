"""Calibrate the abstention thresholds on an eval file. For every question: the similarity of the
best evidence sentence and whether the question has terms the knowledge base never mentions (the
two signals the engine's decline rule uses), then the precision/recall of declining for a grid of
KBOT_MIN_SCORE x KBOT_MIN_SCORE_UNKNOWN_TERMS. No generation: fast.

    .venv/bin/python bench/calibrate_abstention.py [examples/questions.jsonl] [--data-dir DIR]

With no --data-dir, the sample corpus is ingested into a temp folder first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, nargs="?", default=ROOT / "examples" / "questions.jsonl")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()

    from bot.core.settings import Settings
    from bot.core.types import Question, Turn
    from bot.engine.conversation import ConversationEngine
    from bot.engine.grounding import select_evidence
    from bot.engine.scoring import first_hit_rank, load_eval_file
    from bot.wiring import Runtime

    data = args.data_dir or Path(tempfile.mkdtemp(prefix="kbot-calib-"))
    rt = Runtime(Settings(_env_file=None, data_dir=data))
    if not args.data_dir:
        rt.ingestor.ingest_paths([ROOT / "examples" / "docs"])
    items = load_eval_file(args.file)
    rows = []
    for item in items:
        question = Question(item.question, history=tuple(Turn("user", h) for h in item.history))
        query = ConversationEngine(rt.index, None, rt.store, rt.embedder).condense(question)
        chunks = rt.index.retrieve(query, ["default"], args.k)
        evidence = select_evidence(query, chunks, rt.embedder, rt.settings.evidence_sentences)
        best = evidence[0].similarity if evidence else 0.0
        rank = first_hit_rank([c.source for c in chunks], item.sources) if item.sources else None
        rows.append((item, best, rank, bool(rt.index.unknown_terms(query))))
    answerable = sorted(b for i, b, _, _ in rows if i.answerable)
    unanswerable = sorted(b for i, b, _, _ in rows if not i.answerable)
    print(f"machine: {machine()}  file: {args.file.name}  questions: {len(rows)}")
    hits = [r for i, _, r, _ in rows if i.answerable and i.sources]
    print(f"hit@1 {sum(1 for r in hits if r == 1) / len(hits):.3f}  hit@{args.k} "
          f"{sum(1 for r in hits if r) / len(hits):.3f}")
    print("best-evidence similarity, answerable:  ", " ".join(f"{b:.2f}" for b in answerable))
    print("best-evidence similarity, unanswerable:", " ".join(f"{b:.2f}" for b in unanswerable))
    print("| min_score | min_score_unknown_terms | declined answerable | declined unanswerable | precision | recall |")
    print("| --- | --- | --- | --- | --- | --- |")
    n_unanswerable = sum(1 for i, *_ in rows if not i.answerable)
    for low in (0.30, 0.35, 0.40, 0.45):
        for high in (low, 0.50, 0.53, 0.56, 0.59):
            declined = [(i, b) for i, b, _, unknown in rows if b < low or (unknown and b < high)]
            tp = sum(1 for i, _ in declined if not i.answerable)
            fp = len(declined) - tp
            precision = tp / len(declined) if declined else float("nan")
            print(f"| {low:.2f} | {high:.2f} | {fp}/{len(answerable)} | {tp}/{n_unanswerable} | {precision:.2f} | "
                  f"{tp / n_unanswerable:.2f} |")
    for item, _, rank, _ in rows:
        if item.answerable and not rank:
            print(f"MISS (not in top {args.k}): {item.question} -> expected {item.sources}")


if __name__ == "__main__":
    main()
