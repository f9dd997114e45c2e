"""Sentence-level evidence and the support check that keep a small model honest.

The default LM (135M parameters) invents facts when handed whole chunks. So the engine gives it
only the sentences that answer the question, checks the generated answer against them, and
quotes the best sentence instead when the answer is not supported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.ports import Embedder
from bot.types import Chunk

STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be been being
    do does did doing have has had having i me my we our you your he she it its they them their this that
    these those there here what which who whom whose when where why how can could should would will shall
    may might must not no nor so than too very just about into over under again further once all any both
    each few more most other some such only own same also up down out off per via s t don doesn isn aren
    please tell know let get got need needs use used using make made one us am""".split()
)
# Words that frame an answer ("According to the source, the answer is ...") rather than claim a fact.
FRAMING = frozenset("answer source sources according question based context provided document yes".split())
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%@:/+-]*[A-Za-z0-9%]|[A-Za-z0-9]")
_CITE = re.compile(r"\[(\d{1,2})\]")
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def tokens(text: str) -> list[str]:
    return [t.lower().rstrip(".:") for t in _TOKEN.findall(text)]


def content_words(text: str) -> set[str]:
    """Lower-cased words that carry meaning (stopwords and citation markers removed)."""
    return {t for t in tokens(_CITE.sub(" ", text)) if t not in STOPWORDS and (len(t) > 1 or t.isdigit())}


def stems(text: str, drop: frozenset[str] = frozenset()) -> set[str]:
    """Stemmed content words of `text`, without those in `drop`."""
    return {_stem(w) for w in content_words(text) - drop}


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


_HEADING = re.compile(r"^\s*#{1,6}\s+")
_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s+")
_EMPHASIS = re.compile(r"(\*\*|__|`)")
_RECORD = re.compile(r"^[^:;]{1,60}: [^;]*;\s*[^:;]{1,60}: ")  # a CSV row rendered as "Key: value; Key: value"


def _table_rows(rows: list[str]) -> list[str]:
    """Markdown table rows as 'Header: value; Header: value' lines (the header row is context)."""
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    cells = [c for c in cells if not all(set(x) <= set("-: ") for x in c)]
    if len(cells) < 2:
        return ["; ".join(c) for c in cells]
    header = cells[0]
    return ["; ".join(f"{h}: {v}" if h else v for h, v in zip(header, row, strict=False) if v) for row in cells[1:]]


def _units(text: str) -> list[str]:
    """Paragraphs (wrapped lines joined), list items (with their continuation lines), headings and
    table rows, in order."""
    units: list[str] = []
    current: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if current:
            units.append(" ".join(current))
            current.clear()
        if table:
            units.extend(_table_rows(table))
            table.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            flush()
        elif stripped.startswith("|"):
            if current:
                flush()
            table.append(stripped)
        elif _HEADING.match(line):
            flush()
            units.append(_HEADING.sub("", line))
        elif _ITEM.match(line):
            flush()
            current.append(_ITEM.sub("", line).strip())
        elif _RECORD.match(stripped):
            flush()
            units.append(stripped)
        else:
            # A short previous line without closing punctuation is a heading or a table row of
            # plain text (PDFs), not a wrapped paragraph line: keep it a unit of its own.
            if table or (current and (len(current[-1]) < 60 or current[-1][-1] in ".!?:")):
                flush()
            current.append(stripped)
    flush()
    return units


def split_sentences(text: str) -> list[str]:
    """Sentences of a chunk; headings, list items and table rows count as sentences of their own.
    Markdown emphasis is dropped so quotes read cleanly."""
    out: list[str] = []
    for unit in _units(text):
        unit = _EMPHASIS.sub("", unit).strip().lstrip(">").strip()
        out.extend(s.strip() for s in _SENT_END.split(unit) if len(s.strip()) > 2)
    return out


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


def lexical_overlap(query: str, text: str) -> float:
    """Share of the query's content words (stemmed) that appear in `text`."""
    q = stems(query)
    if not q:
        return 0.0
    t = stems(text)
    return len(q & t) / len(q)


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


def has_digit(word: str) -> bool:
    return any(ch.isdigit() for ch in word)


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
    return [int(m) for m in _CITE.findall(answer)]


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


def strip_citations(answer: str) -> str:
    return re.sub(r"\s*\[\d{1,2}\]", "", answer).strip()


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def normalise(vec: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]
