"""`kbot train --dry-run/--if-needed`, `kbot adapters ...` and `kbot feedback review` on a runtime
whose index and ingestor are fakes (the commands themselves are real typer commands)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from bot.cli.training import register
from bot.core.types import Question
from bot.engine.conversation import ConversationEngine, EngineConfig
from bot.wiring import Runtime
from tests.conftest import make_settings
from tests.fakes import VPN_CHUNK, FakeEmbedder, FakeGenerator, FakeIngestor, FakeRetriever
from training.registry import AdapterRegistry

VPN = VPN_CHUNK


@pytest.fixture
def rt(tmp_path) -> Runtime:
    return Runtime(make_settings(tmp_path), index=FakeRetriever([VPN]), embedder=FakeEmbedder(),
                   ingestor=FakeIngestor(), generator=FakeGenerator())


def cli_for(rt: Runtime):
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app, lambda: rt)
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(app, list(args), **kw)


@pytest.fixture
def kbot(rt):
    return cli_for(rt)


def answered(rt: Runtime, reply: str, question: str = "What is the VPN portal address?") -> str:
    engine = ConversationEngine(
        rt.index, FakeGenerator(reply), rt.store, rt.embedder, EngineConfig(min_score=0.1)
    )
    return engine.answer(Question(question)).answer_id


def test_review_approves_by_id_and_ingests_the_correction(rt, kbot):
    fb = rt.store.record_feedback(
        answered(rt, "The VPN portal address is vpn.acme.example [1]."),
        "u1",
        vote=-1,
        correction="Use vpn.acme.example as the portal address.",
    )
    result = kbot("feedback", "review", "--approve", str(fb.id))
    assert result.exit_code == 0, result.output
    assert f"#{fb.id} approved" in result.output
    assert rt.store.list_feedback()[0].correction_status == "approved"
    assert rt.ingestor.files[0][3] == f"correction:{fb.id}"


def test_review_of_an_unknown_id_is_a_clear_error(kbot):
    result = kbot("feedback", "review", "--reject", "999")
    assert result.exit_code == 2 and "no correction with feedback id 999" in result.output


def test_interactive_review_walks_through_pending_corrections(rt, kbot):
    a = rt.store.record_feedback(answered(rt, "vpn.acme.example [1]."), "u1", correction="First fix.")
    b = rt.store.record_feedback(answered(rt, "vpn.acme.example [1]."), "u2", correction="Second fix.")
    result = kbot("feedback", "review", input="r\na\n")
    assert result.exit_code == 0, result.output
    assert "First fix." in result.output and "Second fix." in result.output
    statuses = {row.id: row.correction_status for row in rt.store.list_feedback()}
    assert statuses == {a.id: "rejected", b.id: "approved"}
    assert "No pending corrections." in kbot("feedback", "review").output


def test_train_dry_run_shows_counts_and_samples_without_loading_a_model(tmp_path):
    # No generator is given, and the configured model does not exist: loading it would fail the run.
    rt = Runtime(make_settings(tmp_path, lm_path=str(tmp_path / "missing.gguf")), index=FakeRetriever([VPN]),
                 embedder=FakeEmbedder(), ingestor=FakeIngestor())
    answer_id = answered(rt, "The VPN portal address is vpn.acme.example [1].")
    for voter in ("U1", "U2"):  # two verified voters agree (KBOT_MIN_UPVOTES=2)
        rt.store.record_feedback(answer_id, voter, vote=1, platform="slack", verified=True)
    result = cli_for(rt)("train", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "1 SFT examples" in result.output and "upvoted" in result.output
    assert "vpn.acme.example" in result.output
    assert "generator" not in vars(rt)  # the lazy generator was never built


def test_train_if_needed_skips_without_new_feedback(kbot):
    result = kbot("train", "--if-needed")
    assert result.exit_code == 0 and "not training" in result.output


def test_adapters_list_promote_and_rollback(rt, kbot):
    registry = AdapterRegistry(rt.store, rt.settings.adapters_root)
    for _ in range(2):
        with registry.staging() as stage:
            (stage / "adapter_config.json").write_text("{}")
            registry.commit(
                stage, registry.next_version(), {"base_model": "smol", "metrics": {"candidate": {"f1": 0.5}}}
            )
    assert kbot("adapters", "promote", "v1").exit_code == 0
    result = kbot("adapters", "promote", "v2")
    assert result.exit_code == 0 and "v2 is now active" in result.output
    listing = kbot("adapters", "list").output
    assert "v1" in listing and "active" in listing and "0.500" in listing
    assert "Now serving v1" in kbot("adapters", "rollback").output
    assert "Now serving the base model" in kbot("adapters", "rollback").output
    result = kbot("adapters", "rollback")
    assert result.exit_code == 2 and "nothing to roll back" in result.output
    result = kbot("adapters", "promote", "v9")
    assert result.exit_code == 2 and "unknown adapter version" in result.output
