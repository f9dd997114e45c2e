"""What the language model is shown: the system prompt, the numbered sources and the question, and how a
reply that abstains reads. The exact messages are logged with every answer, so training sees what
serving saw."""

from __future__ import annotations

import re

from bot.core.ports import Message
from bot.engine.grounding import Evidence

SYSTEM_PROMPT = (
    "You are a helpful company knowledge assistant. Answer the question in one or two short "
    "sentences using only the numbered sources. Cite the source number like [1]. If the sources "
    "do not contain the answer, say: I don't know."
)
DECLINED_TEXT = "I couldn't find this in the knowledge base. The closest sources I found are listed below."
_DONT_KNOW = re.compile(r"\b(i don'?t know|not (?:mentioned|provided|specified|available)|no information)\b", re.I)


def says_dont_know(reply: str) -> bool:
    """Whether a model's reply abstains ("I don't know", "not mentioned", ...)."""
    return bool(_DONT_KNOW.search(reply))


def build_messages(query: str, sources: list[list[Evidence]]) -> list[Message]:
    """The exact chat given to the LM (also logged, so training sees what serving saw)."""
    lines = []
    for i, group in enumerate(sources, 1):
        title = group[0].chunk.title or group[0].chunk.source
        lines.append(f"[{i}] ({title}) " + " ".join(e.sentence for e in group))
    user = "Sources:\n" + "\n".join(lines) + f"\n\nQuestion: {query}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def number_sources(evidence: list[Evidence]) -> list[list[Evidence]]:
    """Group evidence sentences by chunk, in order of each chunk's best sentence."""
    groups: dict[str, list[Evidence]] = {}
    for e in evidence:
        groups.setdefault(e.chunk.id, []).append(e)
    return list(groups.values())
