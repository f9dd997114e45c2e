"""Text utilities shared by the engine and the knowledge layer: tokens, content words, stems,
sentences. Pure Python, no model: the same rules decide what a question asks, what a chunk says and
whether an answer is supported."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be been being
    do does did doing have has had having i me my we our you your he she it its they them their this that
    these those there here what which who whom whose when where why how can could should would will shall
    may might must not no nor so than too very just about into over under again further once all any both
    each few more most other some such only own same also up down out off per via s t don doesn isn aren
    please tell know let get got need needs use used using make made one us am""".split()
)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%@:/+-]*[A-Za-z0-9%]|[A-Za-z0-9]")
CITATION = re.compile(r"\[(\d{1,2})\]")
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def tokens(text: str) -> list[str]:
    return [t.lower().rstrip(".:") for t in _TOKEN.findall(text)]


def content_words(text: str) -> set[str]:
    """Lower-cased words that carry meaning (stopwords and citation markers removed)."""
    return {t for t in tokens(CITATION.sub(" ", text)) if t not in STOPWORDS and (len(t) > 1 or t.isdigit())}


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


def lexical_overlap(query: str, text: str) -> float:
    """Share of the query's content words (stemmed) that appear in `text`."""
    q = stems(query)
    if not q:
        return 0.0
    t = stems(text)
    return len(q & t) / len(q)


def has_digit(word: str) -> bool:
    return any(ch.isdigit() for ch in word)


def strip_citations(answer: str) -> str:
    return re.sub(r"\s*\[\d{1,2}\]", "", answer).strip()


