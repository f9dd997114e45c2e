"""Sentence-level evidence and the support check that keep a small model honest.

The default LM (135M parameters) invents facts when handed whole chunks. So the engine gives it
only the sentences that answer the question, checks the generated answer against them, and
quotes the best sentence instead when the answer is not supported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.ports import Embedder
from bot.core.text import CITATION, content_words, has_digit, lexical_overlap, split_sentences, stems, tokens
from bot.core.types import Chunk

# Words that frame an answer ("According to the source, the answer is ...") rather than claim a fact.
FRAMING = frozenset("answer source sources according question based context provided document yes".split())


def is_evidence(sentence: str) -> bool:
    """Headings and fragments are context, not evidence: a quote must be able to stand alone. A short
    line with no closing punctuation, no number and no 'key: value' is a heading (PDFs lose the '#')."""
    words = sentence.split()
    if len(words) < 4:
        return False
    heading_like = len(words) < 8 and sentence[-1] not in ".!?)" and ":" not in sentence
    return not (heading_like and not any(ch.isdigit() for ch in sentence))


@dataclass(frozen=True)
class Evidence:
    sentence: str
    chunk: Chunk
    score: float  # combined: embedding similarity + lexical overlap with the question
    similarity: float  # cosine similarity with the question alone


def select_evidence(
    query: str, chunks: Sequence[Chunk], embedder: Embedder, n: int, lexical_weight: float = 0.5,
    rank_weight: float = 0.4,
) -> list[Evidence]:
    """The n sentences of `chunks` that best answer `query`, best first. A sentence's score is its
    similarity to the query, plus its word overlap with it, plus a prior for its chunk's retrieval
    rank (a terse table row in the best chunk beats a fluent sentence from the fifth)."""
    prior = {c.id: rank_weight * (1 - i / len(chunks)) for i, c in enumerate(chunks)}
    pairs = [(s, c) for c in chunks for s in split_sentences(c.text) if is_evidence(s)]
    if not pairs:
        return []
    vectors = embedder.embed([query] + [s for s, _ in pairs])
    qv, svs = vectors[0], vectors[1:]
    scored = []
    seen: set[str] = set()
    for (sentence, chunk), sv in zip(pairs, svs, strict=True):
        key = " ".join(tokens(sentence))
        if key in seen:  # the same sentence in overlapping chunks counts once
            continue
        seen.add(key)
        sim = _dot(qv, sv)
        score = sim + lexical_weight * lexical_overlap(query, sentence) + prior[chunk.id]
        scored.append(Evidence(sentence, chunk, score, sim))
    scored.sort(key=lambda e: e.score, reverse=True)
    return scored[:n]


def says_something(answer: str, best_sentence: str = "") -> bool:
    """Two content words, one of them not a value: "14 characters" stands, while a bare "2 [1]" or
    "11:30 14:00" reads worse than the quoted sentence (and cannot be checked against one). A single
    word ("Red.") stands when `best_sentence`, the evidence that answers the question best, states
    it: the word names the answer on its own, and where it comes from is checkable."""
    words = content_words(answer)
    if len(words) == 1:
        word = next(iter(words))
        return not has_digit(word) and word in content_words(best_sentence)
    return len(words) >= 2 and not all(has_digit(w) for w in words)


def support(answer: str, evidence: Sequence[str]) -> float:
    """Share of the answer's content words found in the evidence (0 when it adds an unseen number)."""
    words = stems(answer, FRAMING)
    if not words:
        return 0.0
    source = stems(" ".join(evidence))
    numbers = {w for w in words if has_digit(w)}
    if numbers - source:
        return 0.0
    return len(words & source) / len(words)


def misplaced_number(answer: str, evidence: Sequence[str]) -> str | None:
    """A number the answer took from the wrong sentence, else None.

    `support` checks words against all the evidence at once, so "28 days per week" passes when one
    source says "2 days per week" and another "28 days of annual leave": every word is there. A small
    model does this often. The sentence that best matches the answer's other words is the one it is
    paraphrasing; when that sentence states numbers and the answer's number is not among them (nor in
    any equally good match), the number came from elsewhere."""
    words = stems(answer, FRAMING)
    numbers = {w for w in words if has_digit(w)}
    others = words - numbers
    if not numbers or len(others) < 2:
        return None
    sentences = [stems(s) for s in evidence]
    overlaps = [len(others & s) for s in sentences]
    best = max(overlaps, default=0)
    if best < 2:  # nothing paraphrased closely enough to judge
        return None
    matches = [s for s, n in zip(sentences, overlaps, strict=True) if n == best]
    for number in sorted(numbers):
        if any(number in s for s in matches):
            continue
        if all(any(has_digit(w) for w in s) for s in matches):
            return number
    return None


def cited_numbers(answer: str) -> list[int]:
    return [int(m) for m in CITATION.findall(answer)]


def tidy(generated: str) -> str:
    """The answer part of a small model's output: no 'Answer:' prefix, one paragraph, and a copied
    '[2] (Title) ...' source line turned into '... [2]'."""
    text = generated.strip()
    text = re.sub(r"^((the )?answer( is)?|a)\s*:\s*", "", text, flags=re.I)
    text = re.split(r"\n\s*\n|\nQuestion\b|\n\[", text)[0].strip()
    copied = re.match(r"^\[(\d{1,2})\]\s*(\([^)]*\)\s*)?(.+)$", text, flags=re.S)
    if copied:
        text = f"{copied.group(3).strip()} [{copied.group(1)}]"
    return text


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))

