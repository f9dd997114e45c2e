"""Metrics on hand-checked cases, and `kbot eval` (report and CI gate) on a tiny corpus."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli import main as cli
from bot.core.types import Chunk
from bot.engine.evaluation import ItemResult, evaluate, summarize
from bot.engine.scoring import EvalItem, contains_fact, first_hit_rank, load_eval_file, token_f1
from bot.wiring import Runtime
from tests.conftest import make_settings
from tests.fakes import FakeEmbedder, FakeGenerator, FakeRetriever


def test_token_f1_by_hand():
    # pred tokens: vpn acme example is gateway (5); ref: gateway is vpn acme example (5): all common
    assert token_f1("The gateway is vpn.acme.example [1]", "gateway is vpn.acme.example") == 1.0
    # pred: 28 days (2); ref: 28 working days (3); common 2 -> P=1, R=2/3, F1=0.8
    assert token_f1("28 days", "28 working days") == pytest.approx(0.8)
    assert token_f1("", "something") == 0.0
    assert token_f1("nothing in common", "totally different words") == 0.0


def test_fact_and_rank_by_hand():
    assert contains_fact("Laptops are replaced every 36 months. [1]", "36 months")
    assert not contains_fact("Laptops are replaced every 3 years.", "36 months")
    assert first_hit_rank(["/a/x.md", "/a/x.md", "/b/vpn.md"], ["vpn.md"]) == 2  # distinct docs
    assert first_hit_rank(["/a/x.md"], ["vpn.md"]) is None


def test_summary_by_hand():
    items = [EvalItem("q1", "a", ["a.md"]), EvalItem("q2", "b", ["b.md"]), EvalItem("q3", answerable=False),
             EvalItem("q4", answerable=False)]
    results = [
        ItemResult("q1", True, "generated", "a", rank=1, f1=1.0, fact=True, latency_ms=100),
        ItemResult("q2", True, "declined", "", rank=4, f1=0.0, fact=False, latency_ms=300),
        ItemResult("q3", False, "declined", "", rank=None, f1=None, fact=None, latency_ms=200),
        ItemResult("q4", False, "extractive", "x", rank=None, f1=None, fact=None, latency_ms=400),
    ]
    s = summarize(results, items, k=5)
    assert s["hit@1"] == 0.5 and s["hit@3"] == 0.5 and s["hit@k"] == 1.0
    assert s["mrr"] == pytest.approx((1 + 1 / 4) / 2)
    assert s["f1"] == 0.5 and s["fact_rate"] == 0.5
    assert s["abstention_precision"] == 0.5  # 2 declined, 1 of them unanswerable
    assert s["abstention_recall"] == 0.5  # 2 unanswerable, 1 declined
    assert s["modes"]["declined"]["share"] == 0.5 and s["modes"]["generated"]["fact_rate"] == 1.0
    assert s["latency_p50_ms"] in (200, 300)


CHUNKS = [
    Chunk(id="v", source="/d/vpn.md", title="VPN", score=1, text="The VPN gateway is vpn.acme.example today."),
    Chunk(id="w", source="/d/wifi.md", title="Wi-Fi", score=1, text="The guest network is AcmeGuest for visitors."),
]


@pytest.fixture
def tiny(tmp_path, store):
    rt = Runtime(make_settings(tmp_path, min_score=0.2), store=store, index=FakeRetriever(CHUNKS),
                 generator=FakeGenerator("The VPN gateway is vpn.acme.example [1]"), embedder=FakeEmbedder())
    lines = [{"question": "What is the VPN gateway?", "answer": "vpn.acme.example", "sources": ["vpn.md"]},
             {"question": "What is the guest network called?", "answer": "AcmeGuest", "sources": ["wifi.md"],
              "fact": "AcmeGuest"},
             {"question": "What is the dental deductible?", "answer": "", "answerable": False}]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    return rt, path


def test_evaluate_runs_the_engine(tiny):
    rt, path = tiny
    report = evaluate(rt.engine, load_eval_file(path), k=5)
    s = report["summary"]
    assert s["hit@1"] == 1.0 and s["abstention_recall"] == 1.0 and s["abstention_precision"] == 1.0
    modes = [r["mode"] for r in report["items"]]
    # the scripted reply supports the VPN answer only; the Wi-Fi one falls back to a quote
    assert modes == ["generated", "extractive", "declined"]
    assert report["items"][1]["fact"] is True


def test_cli_gate_fails_below_threshold(tiny, monkeypatch):
    rt, path = tiny
    monkeypatch.setattr(cli, "_runtime", rt)
    runner = CliRunner()
    ok = runner.invoke(cli.app, ["eval", str(path), "--json", "--min-hit-at-k", "0.9"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["summary"]["hit@k"] == 1.0
    low = runner.invoke(cli.app, ["eval", str(path), "--min-f1", "0.99"])
    assert low.exit_code == 1 and "Below threshold" in low.output


def test_bad_eval_file_is_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok"}\n{not json}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_eval_file(bad)
