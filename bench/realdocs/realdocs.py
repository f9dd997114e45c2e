"""The real-docs eval set (Apache HTTP Server manual): its fixed dev/test split and a loader.

    python bench/realdocs/realdocs.py --split dev --out /tmp/realdocs-dev.jsonl
    kbot eval /tmp/realdocs-dev.jsonl --json

`split_of(question)` is fixed: sha256 of SALT + the question text (UTF-8); an even first byte means
dev, odd means test. SALT was chosen once so that both halves get a fair share of every kind
(see README.md); never change it or the question texts, or items move between the halves.
Tune on dev only; report test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "questions.jsonl"
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / ".cache/realdocs/apache-manual"
SALT = "realdocs-v1:"
Split = Literal["dev", "test"]


def split_of(question: str) -> Split:
    """'dev' or 'test' for a question, by a fixed salted hash of its exact text."""
    return "dev" if hashlib.sha256((SALT + question).encode("utf-8")).digest()[0] % 2 == 0 else "test"


def load(split: str | None = None, path: Path = QUESTIONS) -> list[dict]:
    """The items of questions.jsonl, all of them or those of one split ('dev' or 'test')."""
    if split not in (None, "dev", "test"):
        raise ValueError(f"split must be 'dev', 'test' or None, not {split!r}")
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [it for it in items if split is None or split_of(it["question"]) == split]


_BLOCK = {
    "p",
    "div",
    "br",
    "td",
    "th",
    "tr",
    "li",
    "dt",
    "dd",
    "ul",
    "ol",
    "dl",
    "table",
    "pre",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "title",
}


class _Text(HTMLParser):
    """Text of a page outside <head>, <script> and <style>; block elements separate words, inline ones do not."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def page_text(path: Path) -> str:
    """Visible text of an HTML page, lower case, whitespace collapsed (what facts are checked against)."""
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return normalize("".join(parser.parts))


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ")).strip().lower()


def main() -> int:
    parser = argparse.ArgumentParser(description="Write one split of the real-docs questions as JSONL.")
    parser.add_argument("--split", choices=("dev", "test"), required=True)
    parser.add_argument("--out", type=Path, help="output file (default: stdout)")
    args = parser.parse_args()
    lines = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in load(args.split))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(lines, encoding="utf-8")
        print(f"{lines.count(chr(10))} {args.split} items -> {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
