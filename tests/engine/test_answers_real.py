"""The main path with the real parts: the sample corpus ingested into a real Chroma store, the real
embedder and BM25, the real SmolLM2 generator, and the engine's grounding. Slow: one model load."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli import main as cli
from bot.core.types import Question
from bot.engine.scoring import contains_fact, load_eval_file, source_matches
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow
SMOKE = load_eval_file(EXAMPLES / "questions_smoke.jsonl")


def test_most_answers_cite_the_right_file_and_contain_the_fact(sample_runtime):
    """A quality floor on the smoke questions: the 135M model and extractive fallback do not get every
    one right (docs/benchmarks.md has the full eval), but at least 4 of the 6 must be exactly right."""
    right = []
    for item in (i for i in SMOKE if i.answerable):
        answer = sample_runtime.engine.answer(Question(item.question))
        row = sample_runtime.store.get_answer(answer.answer_id)
        assert row.mode == answer.mode and row.retrieved  # every answer is logged with its retrieval
        cited = any(source_matches(c.source, item.sources[0]) for c in answer.citations)
        if answer.answered and cited and contains_fact(answer.text, item.key_fact):
            right.append(item.sources[0])
    assert len(right) >= 4, right


@pytest.mark.parametrize("item", [i for i in SMOKE if not i.answerable], ids=lambda i: i.question[:30])
def test_uncovered_questions_are_declined(sample_runtime, item):
    answer = sample_runtime.engine.answer(Question(item.question))
    assert answer.mode == "declined" and not answer.answered


def test_restricted_canary_never_reaches_other_scopes(sample_runtime):
    question = "What is the Project Nightjar acquisition budget?"
    default = sample_runtime.engine.answer(Question(question))
    assert "42 million" not in default.text
    assert all("restricted" not in c.source for c in default.citations)
    allowed = sample_runtime.engine.answer(Question(question, scopes=("default", "leadership")))
    assert "42 million" in allowed.text


def test_kbot_ask_json(sample_runtime, monkeypatch):
    monkeypatch.setattr(cli, "_runtime", sample_runtime)
    result = CliRunner().invoke(cli.app, ["ask", "--json", "What is the minimum password length?"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data) >= {"answer", "citations", "answered", "mode", "answer_id", "latency_ms"}
    assert data["answered"] and "14" in data["answer"]
    assert data["citations"][0]["source"].endswith("password-policy.md")
    assert set(data["citations"][0]) >= {"source", "title", "page", "text", "score"}


def test_streaming_yields_real_tokens(sample_runtime):
    items = list(sample_runtime.engine.stream(Question("How often are laptops replaced?")))
    *pieces, answer = items
    assert answer.mode in ("generated", "extractive")
    assert len([p for p in pieces if p]) >= 2 and all(isinstance(p, str) for p in pieces)  # several pieces
    # the model's own text, streamed as it came (the final text may be the quote instead)
    assert len("".join(pieces).split()) >= 3
