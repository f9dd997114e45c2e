"""Validate questions.jsonl against the installed Apache manual; exit 1 on any problem.

    python bench/realdocs/check.py [--corpus DIR] [--questions FILE]

Checks: every line is a JSON object of the right shape; questions are unique; every answerable
item names sources that exist in the corpus, and its `fact` occurs in the visible text of each
source (lower case, whitespace collapsed) and, under kbot's answer normalisation, in its own
reference `answer` (so a perfect answer scores) but not in the question (so echoing the question
does not); follow-ups carry a one-question `history`;
unanswerable items have no answer, sources or fact. Then it prints counts per kind and split.
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdocs import DEFAULT_CORPUS, QUESTIONS, page_text, split_of  # noqa: E402

KINDS = {"default", "number", "range", "which", "yes-no", "behaviour", "paraphrase", "follow-up"}
MAX_FACT_WORDS = 4

# Same normalisation as bot/metrics.py (copied so this script runs without kbot installed).
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation if c not in "@.-/:%"})


def kbot_normalize(text: str) -> str:
    text = re.sub(r"\[\d{1,2}\]", " ", text.lower())
    text = _ARTICLES.sub(" ", text.translate(_PUNCT))
    return " ".join(w.strip(".:/-") for w in text.split() if w.strip(".:/-"))


def kbot_contains(answer: str, fact: str) -> bool:
    f = kbot_normalize(fact)
    return bool(f) and f" {f} " in f" {kbot_normalize(answer)} "


def check_item(n: int, it: object, corpus: Path, texts: dict[str, str]) -> list[str]:
    where = f"line {n}"
    if not isinstance(it, dict):
        return [f"{where}: not a JSON object"]
    errs = []
    q = it.get("question")
    if not isinstance(q, str) or not q.strip():
        return [f"{where}: missing or empty question"]
    where = f"line {n} ({q[:60]!r})"
    answerable = it.get("answerable")
    if not isinstance(answerable, bool):
        errs.append(f"{where}: 'answerable' must be true or false")
    elif not answerable:
        if it.get("kind") != "unanswerable":
            errs.append(f"{where}: unanswerable items have kind 'unanswerable'")
        if it.get("answer") != "" or it.get("sources") != [] or "fact" in it or "history" in it:
            errs.append(f"{where}: unanswerable items have answer '', sources [] and no fact or history")
    else:
        kind, fact, answer, sources = it.get("kind"), it.get("fact"), it.get("answer"), it.get("sources")
        if kind not in KINDS:
            errs.append(f"{where}: kind {kind!r} is not one of {sorted(KINDS)}")
        if not isinstance(answer, str) or not answer.strip():
            errs.append(f"{where}: empty answer")
        if not isinstance(fact, str) or not fact.strip() or len(fact.split()) > MAX_FACT_WORDS:
            errs.append(f"{where}: fact must be a short non-empty string")
            fact = None
        if not (isinstance(sources, list) and sources and all(isinstance(s, str) for s in sources)):
            errs.append(f"{where}: sources must be a non-empty list of paths")
            sources = []
        for src in sources:
            if src not in texts:
                path = corpus / src
                texts[src] = page_text(path) if path.is_file() else ""
            if not texts[src]:
                errs.append(f"{where}: source {src} is not in the corpus")
        if fact:
            norm = " ".join(fact.lower().split())
            for src in sources:
                if texts.get(src) and norm not in texts[src]:
                    errs.append(f"{where}: fact {fact!r} not found in {src}")
            if isinstance(answer, str) and not kbot_contains(answer, fact):
                errs.append(f"{where}: the reference answer does not contain the fact {fact!r}")
            if kbot_contains(q + " " + " ".join(it.get("history") or []), fact):
                errs.append(f"{where}: the fact {fact!r} is already in the question, so echoing it would score")
        history = it.get("history")
        if kind == "follow-up":
            if not (isinstance(history, list) and len(history) == 1 and isinstance(history[0], str)):
                errs.append(f"{where}: follow-ups need a history of one earlier question")
        elif history is not None:
            errs.append(f"{where}: only follow-ups carry a history")
    return errs


def main() -> int:
    parser = argparse.ArgumentParser(description="Validate the real-docs question file.")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"error: corpus {args.corpus} not found; run install.py first (or pass --corpus)")
        return 1

    errors: list[str] = []
    items: list[dict] = []
    seen: dict[str, int] = {}
    texts: dict[str, str] = {}
    for n, line in enumerate(args.questions.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            it = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {n}: not JSON ({exc})")
            continue
        errs = check_item(n, it, args.corpus, texts)
        errors += errs
        if isinstance(it, dict) and isinstance(it.get("question"), str):
            key = " ".join(it["question"].lower().split())
            if key in seen:
                errors.append(f"line {n}: duplicate of the question on line {seen[key]}")
            seen.setdefault(key, n)
            items.append(it)

    table: Counter = Counter()
    for it in items:
        table[(it.get("kind"), split_of(it["question"]))] += 1
    kinds = sorted({k for k, _ in table}, key=lambda k: (k == "unanswerable", str(k)))
    print(f"{'kind':<14}{'dev':>6}{'test':>6}{'all':>6}")
    for k in kinds:
        d, t = table[(k, "dev")], table[(k, "test")]
        print(f"{k:<14}{d:>6}{t:>6}{d + t:>6}")
    dev = sum(v for (k, s), v in table.items() if s == "dev")
    ans = sum(1 for it in items if it.get("answerable") is True)
    print(f"{'total':<14}{dev:>6}{len(items) - dev:>6}{len(items):>6}")
    pages = len({s for it in items for s in it.get("sources", [])})
    print(f"{ans} answerable, {len(items) - ans} unanswerable, {pages} distinct source pages")
    print(f"split: dev {dev} / test {len(items) - dev}")
    for e in errors:
        print("ERROR", e)
    print(f"{len(errors)} problem(s)" if errors else "OK")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
