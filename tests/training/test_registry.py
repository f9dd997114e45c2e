"""Adapter registry and hot swap: atomic commit, promotion, rollback, and a running engine that
switches adapters with no restart (fake generator; the real peft swap is in test_training_run.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.core.errors import RegistryError
from bot.core.types import Question
from bot.engine.conversation import ConversationEngine, EngineConfig
from knowledge.store import Store
from tests.fakes import VPN_CHUNK, FakeEmbedder, FakeGenerator, FakeRetriever
from training.registry import AdapterRegistry, AdapterWatcher

VPN = VPN_CHUNK


def staged_adapter(registry: AdapterRegistry, version: str | None = None, **manifest) -> str:
    version = version or registry.next_version()
    with registry.staging() as stage:
        (stage / "adapter_config.json").write_text("{}")
        (stage / "adapter_model.safetensors").write_bytes(b"weights")
        registry.commit(stage, version, {"base_model": "smol", **manifest})
    return version


@pytest.fixture
def registry(store: Store, tmp_path: Path) -> AdapterRegistry:
    return AdapterRegistry(store, tmp_path / "adapters")


def test_commit_writes_folder_manifest_and_row(registry, store):
    v1 = staged_adapter(registry, parent=None, data={"hash": "abc"})
    v2 = staged_adapter(registry, parent=v1)
    assert (v1, v2) == ("v1", "v2") and registry.next_version() == "v3"
    manifest = json.loads((registry.path(v2) / "manifest.json").read_text())
    assert manifest["version"] == "v2" and manifest["parent"] == "v1" and manifest["base_model"] == "smol"
    rows = {a.version: a for a in registry.list()}
    assert (
        rows["v2"].parent == "v1" and rows["v1"].status == "candidate" and rows["v1"].manifest["data"]["hash"]
    )
    assert [p.name for p in registry.root.iterdir() if p.name.startswith(".staging")] == []
    with pytest.raises(RegistryError):
        staged_adapter(registry, "v1")


def test_a_failed_run_leaves_no_folder_and_no_row(registry, store):
    with pytest.raises(KeyboardInterrupt), registry.staging() as stage:
        (stage / "adapter_config.json").write_text("{}")
        raise KeyboardInterrupt  # Ctrl-C half way through writing
    assert list(registry.root.iterdir()) == [] and store.list_adapters() == []
    (registry.root / ".staging-dead").mkdir()  # a SIGKILLed run skips `finally`
    assert registry.clean_staging() == 1 and list(registry.root.iterdir()) == []


def test_promote_and_rollback_walk_back_through_promotions(registry, store):
    v1, v2, v3 = (staged_adapter(registry) for _ in range(3))
    for v in (v1, v2, v3):
        registry.promote(v)
    assert store.active_adapter().version == v3
    assert (registry.root / "current").resolve() == registry.path(v3).resolve()
    assert registry.rollback() == v2
    assert store.get_adapter(v3).status == "rejected" and store.active_adapter().version == v2
    assert registry.rollback() == v1
    assert registry.rollback() is None and store.active_adapter() is None  # back to the base model
    assert not (registry.root / "current").exists()
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    with pytest.raises(RegistryError, match="unknown adapter version"):
        registry.promote("v99")


def test_promoting_a_version_whose_files_are_gone_is_refused(registry, store):
    v1 = staged_adapter(registry)
    (registry.path(v1) / "adapter_config.json").unlink()
    with pytest.raises(RegistryError, match="no files"):
        registry.promote(v1)
    assert store.active_adapter() is None


def test_a_running_engine_switches_adapter_on_promotion_and_rollback(registry, store):
    gen = FakeGenerator(
        replies={
            None: "The portal is vpn.acme.example [1].",
            "v1": "The VPN portal is vpn.acme.example [1].",
            "v2": "Enter vpn.acme.example as the VPN portal [1].",
        }
    )
    engine = ConversationEngine(FakeRetriever([VPN]), gen, store, FakeEmbedder(), EngineConfig(min_score=0.1))
    watcher = AdapterWatcher(store, gen, interval_s=0.01)
    ask = lambda: engine.answer(Question("What is the VPN portal address?"))  # noqa: E731

    assert watcher.check() is None and ask().adapter_version is None
    v1, v2 = staged_adapter(registry), staged_adapter(registry)
    registry.promote(v1)
    assert watcher.check() == v1
    answer = ask()
    assert answer.adapter_version == v1 and answer.text == "The VPN portal is vpn.acme.example [1]."
    assert store.get_answer(answer.answer_id).adapter_version == v1  # each answer records its adapter
    registry.promote(v2)
    assert watcher.check() == v2 and ask().text == "Enter vpn.acme.example as the VPN portal [1]."
    assert gen.loaded_adapters == [v1, v2]  # the previous one stays loaded for an instant rollback
    registry.rollback()
    assert watcher.check() == v1 and ask().adapter_version == v1
    registry.rollback()
    assert watcher.check() == "base" and ask().adapter_version is None
    assert gen.used[-1] is None


def test_watcher_thread_picks_up_a_promotion_and_bounds_loaded_adapters(registry, store):
    import time

    gen = FakeGenerator("x")
    watcher = AdapterWatcher(store, gen, interval_s=0.01, keep_loaded=2)
    watcher.start()
    try:
        for _ in range(3):
            version = staged_adapter(registry)
            registry.promote(version)
            deadline = time.monotonic() + 5
            while gen.active_adapter != version and time.monotonic() < deadline:
                time.sleep(0.01)
            assert gen.active_adapter == version
    finally:
        watcher.stop()
    assert gen.loaded_adapters == ["v2", "v3"]


def test_watcher_keeps_serving_when_the_promoted_files_are_broken(registry, store, caplog):
    gen = FakeGenerator("x")
    v1 = staged_adapter(registry)
    registry.promote(v1)
    AdapterWatcher(store, gen).check()

    def refuse(name, path):
        raise FileNotFoundError(f"not a peft adapter folder: {path}")

    gen.load_adapter = refuse
    v2 = staged_adapter(registry)
    registry.promote(v2)
    with pytest.raises(FileNotFoundError):
        AdapterWatcher(store, gen).check()
    assert gen.active_adapter == v1  # still answering with the last good adapter
