"""Answer and retrieval metrics shared by `kbot eval` and the adapter gate (SQuAD-style)."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation if c not in "@.-/:%"})


def normalize(text: str) -> str:
    """Lower case, citation markers, articles and most punctuation removed, whitespace collapsed."""
    text = re.sub(r"\[\d{1,2}\]", " ", text.lower())
    text = _ARTICLES.sub(" ", text.translate(_PUNCT))
    return " ".join(w.strip(".:/-") for w in text.split() if w.strip(".:/-"))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall between prediction and reference."""
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def contains_fact(answer: str, fact: str) -> bool:
    """Whether the key fact appears in the answer (normalised, so '4,000' matches '4 000' no; exact words)."""
    f = normalize(fact)
    return bool(f) and f" {f} " in f" {normalize(answer)} "


def source_matches(retrieved: str, expected: str) -> bool:
    """A retrieved source matches an expected one when it is the same URL or has the same file name."""
    if retrieved == expected:
        return True
    return PurePosixPath(retrieved.replace("\\", "/")).name == PurePosixPath(expected).name


def first_hit_rank(retrieved: Sequence[str], expected: Sequence[str]) -> int | None:
    """1-based rank of the first retrieved source that matches any expected source (distinct sources)."""
    distinct = list(dict.fromkeys(retrieved))
    for rank, src in enumerate(distinct, 1):
        if any(source_matches(src, e) for e in expected):
            return rank
    return None


@dataclass
class EvalItem:
    question: str
    answer: str = ""
    sources: list[str] = field(default_factory=list)
    answerable: bool = True
    fact: str | None = None
    history: list[str] = field(default_factory=list)

    @property
    def key_fact(self) -> str:
        return self.fact or self.answer


def load_eval_file(path: Path) -> list[EvalItem]:
    """Read a JSONL eval file; a bad line raises ValueError naming the line."""
    items = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            items.append(EvalItem(question=raw["question"], answer=raw.get("answer", ""),
                                  sources=list(raw.get("sources", [])), answerable=raw.get("answerable", True),
                                  fact=raw.get("fact"), history=list(raw.get("history", []))))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a valid eval line ({exc})") from exc
    return items
