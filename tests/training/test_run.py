"""A tiny real training run (TRL + peft on the bundled SmolLM2-135M): the adapter is registered with
its manifest, loads into the generator, changes its outputs, and hot-swaps into a running engine;
an interrupted run leaves the registry as it was. Retrieval is faked; the model is real."""

from __future__ import annotations

import json
import os

import pytest

from bot.core.types import Question
from bot.engine.conversation import ConversationEngine, EngineConfig
from bot.engine.scoring import EvalItem
from bot.serve import loop_parts
from bot.wiring import Runtime
from tests.conftest import make_settings
from tests.fakes import GUEST_WIFI_CHUNK, VPN_CHUNK, FakeEmbedder, FakeGenerator, FakeRetriever
from training.refresh import TrainConfig, run_refresh
from training.registry import AdapterRegistry, AdapterWatcher

pytestmark = pytest.mark.slow

CHUNKS = [
    VPN_CHUNK,
    GUEST_WIFI_CHUNK,
]
FEEDBACK = [  # question, logged reply, vote, approved correction
    ("What is the VPN portal address?", "The VPN portal address is vpn.acme.example [1].", 1, None),
    ("Which VPN client version is needed?", "The client needs version 6.2.1 [1].", 1, None),
    ("How long are guest vouchers valid?", "Guest vouchers are valid for 24 hours [1].", -1, "24 hours."),
    ("What is the guest Wi-Fi network?", "The guest Wi-Fi network is AcmeGuest [1].", -1, "AcmeGuest."),
    ("What is the Wi-Fi network for guests?", "The guest network is called AcmeGuest [1].", -1, None),
]


@pytest.fixture
def runtime(tmp_path, lm_dir):
    from knowledge.generator import LocalGenerator

    rt = Runtime(make_settings(tmp_path, lm_path=str(lm_dir), min_score=0.1, min_upvotes=1),
                 index=FakeRetriever(CHUNKS), embedder=FakeEmbedder(),
                 generator=LocalGenerator(lm_dir, max_new_tokens=16))
    users = ConversationEngine(rt.index, FakeGenerator(), rt.store, rt.embedder, EngineConfig(min_score=0.1))
    for question, reply, vote, correction in FEEDBACK:
        users.generator.reply = reply
        answer = users.answer(Question(question))
        row = rt.store.record_feedback(answer.answer_id, "u1", vote=vote, correction=correction, platform="slack",
                                       verified=True)
        if correction:
            rt.store.set_correction_status(row.id, "approved")
    return rt


def tiny(lm_dir) -> TrainConfig:
    # a few steps at a high learning rate, so that a handful of examples visibly moves the model
    return TrainConfig(
        base_model=str(lm_dir),
        max_steps=2,
        batch_size=2,
        max_length=256,
        learning_rate=5e-3,
        kto_min_examples=4,
        kto_max_steps=1,
        kto_learning_rate=1e-4,
        dpo_min_pairs=1,
        dpo_max_steps=1,
        dpo_learning_rate=1e-4,
        threads=os.cpu_count(),
        niceness=0,
    )  # never nice the test process: it would stay niced for the whole session


def noise_recorder():
    """A trainer callback recording the NEFTune noise alpha on the input embeddings at each step."""
    from transformers import TrainerCallback

    class NoiseRecorder(TrainerCallback):
        def __init__(self):
            self.seen: list[float | None] = []

        def on_step_begin(self, args, state, control, model=None, **kwargs):
            embeddings = model.base_model.model.get_input_embeddings()
            self.seen.append(getattr(embeddings, "neftune_noise_alpha", None))

    return NoiseRecorder()


def next_token_logits(gen, messages):
    """The serving model's next-token logits for a chat, with whatever adapter it serves now."""
    import torch

    ids = gen.tokenizer(gen.prompt_text(messages), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        if gen.active_adapter is None and gen.loaded_adapters:
            with gen.model.disable_adapter():
                return gen.model(input_ids=ids).logits[0, -1].float()
        return gen.model(input_ids=ids).logits[0, -1].float()


def test_tiny_run_registers_an_adapter_that_changes_outputs_and_hot_swaps(runtime, lm_dir):
    from knowledge.generator import LocalGenerator

    items = [
        EvalItem("Where do I point the VPN client?", "vpn.acme.example"),
        EvalItem("What is the parking fee in Japan?", "", answerable=False),
    ]
    noise = noise_recorder()
    report = run_refresh(loop_parts(runtime), eval_items=items, config=tiny(lm_dir), progress=False, callbacks=[noise])
    assert report.status in ("promoted", "rejected"), report.message
    # SFT, then DPO on the corrections paired with the answers they corrected, then KTO on the thumbs
    assert report.train["sft_steps"] == 2 and report.train["dpo_steps"] == 1 and report.train["kto_steps"] >= 1
    # NEFTune's noisy embeddings during the SFT steps only (the preference stages compare log-probs)
    assert noise.seen == [5.0, 5.0, None] + [None] * report.train["kto_steps"]
    assert report.candidate["questions"] >= 2 and report.baseline["adapter"] == "base"
    registry = AdapterRegistry(runtime.store, runtime.settings.adapters_root)
    (row,) = registry.list()
    folder = registry.path(row.version)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["base_model"] == str(lm_dir) and manifest["parent"] is None
    assert manifest["data"]["counts"]["sft_train"] >= 3 and len(manifest["data"]["hash"]) == 16
    assert manifest["config"]["lora_rank"] == 8 and manifest["metrics"]["gate"]["reasons"]
    names = {p.name for p in folder.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "data", "manifest.json"} <= names
    assert "ref" not in names and "_trainer" not in names  # not KTO's frozen reference copy, no checkpoints

    # A running engine on a fresh generator: promotion and rollback switch it with no restart.
    gen = LocalGenerator(lm_dir, max_new_tokens=16)
    engine = ConversationEngine(
        FakeRetriever(CHUNKS), gen, runtime.store, FakeEmbedder(), EngineConfig(min_score=0.1)
    )
    watcher = AdapterWatcher(runtime.store, gen)
    messages = [
        {
            "role": "user",
            "content": "Sources:\n[1] (VPN) The VPN portal address is vpn.acme.example.\n\n"
            "Question: Where do I point the VPN client?",
        }
    ]
    base_logits = next_token_logits(gen, messages)
    if report.status != "promoted":
        registry.promote(row.version)
    assert watcher.check() == row.version and gen.loaded_adapters == [row.version]
    tuned_logits = next_token_logits(gen, messages)
    assert (tuned_logits - base_logits).abs().max() > 1e-2  # the adapter changes what the model says
    assert engine.answer(Question("What is the VPN portal address?")).adapter_version == row.version
    registry.rollback()
    assert watcher.check() == "base"
    assert (next_token_logits(gen, messages) - base_logits).abs().max() < 1e-4
    assert engine.answer(Question("What is the VPN portal address?")).adapter_version is None
    assert gen.loaded_adapters == [row.version]  # still loaded: promoting it again is instant


def test_an_interrupted_run_leaves_the_registry_unchanged(runtime, lm_dir):
    from transformers import TrainerCallback

    class CtrlC(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise KeyboardInterrupt

    registry = AdapterRegistry(runtime.store, runtime.settings.adapters_root)
    with pytest.raises(KeyboardInterrupt):
        run_refresh(loop_parts(runtime), eval_items=[], config=tiny(lm_dir), progress=False, callbacks=[CtrlC()])
    assert registry.list() == [] and runtime.store.active_adapter() is None
    assert [p.name for p in registry.root.iterdir() if not p.name.startswith(".train.lock")] == []
    assert runtime.generator.loaded_adapters == []
