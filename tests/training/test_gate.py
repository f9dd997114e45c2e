"""The promotion gate and adapter evaluation: the real engine and metrics over the fakes, with a
generator whose reply depends on the adapter (a better and a worse 'adapter')."""

from __future__ import annotations

import pytest

from bot.engine.scoring import EvalItem, normalize
from bot.wiring import Runtime
from tests.conftest import make_settings
from tests.fakes import GUEST_WIFI_CHUNK, VPN_CHUNK, FakeEmbedder, FakeGenerator, FakeRetriever
from training.evaluate import evaluate_adapter, filter_heldout, gate

CHUNKS = [
    VPN_CHUNK,
    GUEST_WIFI_CHUNK,
]
ITEMS = [
    EvalItem("What is the VPN portal address?", "vpn.acme.example", fact="vpn.acme.example"),
    EvalItem("How long are guest Wi-Fi vouchers valid?", "24 hours", fact="24 hours"),
    EvalItem("What is the guest Wi-Fi network called?", "AcmeGuest"),
    EvalItem("What is the VPN budget for the Wi-Fi guest network in Japan?", "", answerable=False),
]


def runtime_with(tmp_path, generator) -> Runtime:
    return Runtime(make_settings(tmp_path, min_score=0.1), index=FakeRetriever(CHUNKS), embedder=FakeEmbedder(),
                   generator=generator)


@pytest.fixture
def generator() -> FakeGenerator:
    # base: rambles past its sources (fails grounding -> quoted extractively)
    # v1: short and grounded; v2: invents (fails grounding) and never abstains
    gen = FakeGenerator(
        replies={
            None: "I think the answer depends on your department and the current policy of the company.",
            "v1": "The VPN portal address is vpn.acme.example [1].",
            "v2": "Probably 48 hours on network AcmeCorp.",
        }
    )
    gen.load_adapter("v1", "/adapters/v1")
    gen.load_adapter("v2", "/adapters/v2")
    return gen


def test_scores_the_requested_adapter_without_touching_serving_or_the_answer_log(tmp_path, generator):
    rt = runtime_with(tmp_path, generator)
    generator.set_adapter("v2")  # what the server is serving right now
    before = rt.store.count_answers()
    metrics = evaluate_adapter(rt.generator, rt.engine_for, "v1", ITEMS, details=True)
    assert generator.active_adapter == "v2" and set(generator.used) == {"v1"}
    assert rt.store.count_answers() == before  # evaluation is not user traffic
    assert metrics["questions"] == 4 and metrics["answerable"] == 3 and metrics["unanswerable"] == 1
    assert metrics["grounded"] == pytest.approx(1 / 3)  # only the VPN reply is supported by its sources
    assert metrics["items"][0]["answer"].startswith("The VPN portal address is vpn.acme.example")
    base = evaluate_adapter(rt.generator, rt.engine_for, None, ITEMS)
    assert generator.used[-1] is None and base["grounded"] == 0.0


def test_gate_promotes_a_better_adapter_and_rejects_a_worse_one(tmp_path, generator):
    rt = runtime_with(tmp_path, generator)
    base, better, worse = (evaluate_adapter(rt.generator, rt.engine_for, v, ITEMS) for v in (None, "v1", "v2"))
    assert better["f1"] > base["f1"] >= worse["f1"]  # an unsupported reply falls back to a quote
    passed, reasons = gate(better, base, tolerance=0.02)
    assert passed, reasons
    assert reasons[0].startswith("f1") and "better" in reasons[0]
    passed, reasons = gate(worse, better, tolerance=0.02)
    assert not passed
    assert any("f1" in r and "not better" in r for r in reasons)
    assert any(r.startswith("grounded 0.333 -> 0.000") for r in reasons)


def test_gate_tolerance_on_the_guarded_metrics():
    active = {"f1": 0.40, "grounded": 0.50, "abstention": 0.80, "fact_rate": 0.5, "heldout_loss": 2.0}
    slightly = {**active, "f1": 0.45, "abstention": 0.79, "heldout_loss": 2.03}
    assert gate(slightly, active, 0.02)[0]
    forgets = {**active, "f1": 0.45, "abstention": 0.70}
    ok, reasons = gate(forgets, active, 0.02)
    assert not ok and any(r.startswith("abstention") and "worse beyond" in r for r in reasons)
    loss_up = {**active, "f1": 0.45, "heldout_loss": 2.2}
    assert not gate(loss_up, active, 0.02)[0]
    same = {**active}
    assert not gate(same, active, 0.02)[0]  # equal is not better
    assert gate({**active, "f1": 0.5, "abstention": None}, active, 0.02)[
        0
    ]  # unmeasured: reported, not blocking
    assert gate({"f1": None}, active, 0.02) == (False, ["f1: no answerable held-out questions to compare on"])
    # one question's worth (1/40 = 0.025) is noise, two are not
    sized = {**active, "answerable": 40, "unanswerable": 10}
    assert gate({**sized, "f1": 0.45, "fact_rate": 0.475}, sized, 0.02)[0]
    ok, reasons = gate({**sized, "f1": 0.45, "fact_rate": 0.45}, sized, 0.02)
    assert not ok and any(r.startswith("fact_rate") and "worse beyond" in r for r in reasons)


def test_items_trained_on_are_not_used_to_judge_the_adapter():
    trained = {normalize("what is the VPN portal address")}
    kept = filter_heldout(ITEMS, trained)
    assert [i.question for i in kept] == [i.question for i in ITEMS[1:]]
