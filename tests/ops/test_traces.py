"""One answer is one trace: kbot.ask with kbot.retrieve, kbot.generate and kbot.post under it, for the
web (JSON and streamed) and Slack; the engine traces answers nobody posts (the CLI) on its own."""

from __future__ import annotations

import pytest

from bot.channels.web.app import create_app
from bot.core.types import Question
from bot.wiring import Runtime
from tests.channels.slack.fake_api import BOT_USER_ID, FakeSlackAPI, SlackHarness, mention_event
from tests.channels.web.helpers import demo_client, demo_settings
from tests.engine.test_evaluation import CHUNKS
from tests.fakes import FakeEmbedder, FakeGenerator, FakeRetriever

QUESTION = "What is the VPN gateway?"


@pytest.fixture
def rt(tmp_path, store):
    return Runtime(demo_settings(tmp_path, min_score=0.2), store=store, index=FakeRetriever(CHUNKS),
                   generator=FakeGenerator("The VPN gateway is vpn.acme.example [1]"), embedder=FakeEmbedder())


def tree(spans) -> dict[str, list[str]]:
    """{kbot.ask: sorted child names} for each finished answer span, checking one trace per answer
    (the web framework's own request spans, if any, are left out)."""
    roots = [s for s in spans if s.name == "kbot.ask"]
    out = {}
    for root in roots:
        children = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
        assert all(c.context.trace_id == root.context.trace_id for c in children)
        out[root.name] = sorted(c.name for c in children)
    return out


@pytest.mark.parametrize("path", ["/api/ask", "/api/ask/stream"])
def test_web_answer_span_tree(rt, spans, path):
    response = demo_client(create_app(rt)).post(path, json={"question": QUESTION})
    assert response.status_code == 200
    finished = spans.get_finished_spans()
    assert tree(finished) == {"kbot.ask": ["kbot.generate", "kbot.post", "kbot.retrieve"]}
    ask = next(s for s in finished if s.name == "kbot.ask")
    answer_id = rt.store.list_answers()[-1].id
    assert ask.attributes["kbot.platform"] == "web" and ask.attributes["kbot.answer_id"] == answer_id
    generate = next(s for s in finished if s.name == "kbot.generate")
    assert generate.attributes["kbot.first_token_ms"] >= 0 and generate.attributes["kbot.pieces"] > 0
    retrieve = next(s for s in finished if s.name == "kbot.retrieve")
    assert retrieve.attributes["kbot.chunks"] >= 1
    # ordered steps: retrieve ends before generate starts; post comes last
    post = next(s for s in finished if s.name == "kbot.post")
    assert retrieve.end_time <= generate.start_time <= generate.end_time <= post.start_time <= ask.end_time
    # spans carry ids and counts, never the question or the answer
    for span in finished:
        assert all("VPN" not in str(v) for v in span.attributes.values())


def test_slack_answer_span_tree(tmp_path, spans):
    with FakeSlackAPI() as api:
        slack = SlackHarness(tmp_path, api)
        try:
            msg = api.user_message("C1", f"<@{BOT_USER_ID}> what is the VPN server address?", channel_type="channel")
            assert slack.send_event(mention_event(msg)).status_code == 200
            slack.settle()
        finally:
            slack.close()
    finished = spans.get_finished_spans()
    assert tree(finished) == {"kbot.ask": ["kbot.generate", "kbot.post", "kbot.retrieve"]}
    assert next(s for s in finished if s.name == "kbot.ask").attributes["kbot.platform"] == "slack"


def test_engine_traces_an_answer_on_its_own_and_marks_failures(rt, spans):
    rt.engine.answer(Question(QUESTION))
    assert tree(spans.get_finished_spans()) == {"kbot.ask": ["kbot.generate", "kbot.retrieve"]}
    spans.clear()
    rt.index.error = RuntimeError("index down")
    with pytest.raises(Exception, match="index down"):
        rt.engine.answer(Question(QUESTION))
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert not finished["kbot.ask"].status.is_ok and not finished["kbot.retrieve"].status.is_ok


def test_tracing_is_off_without_an_endpoint():
    from bot.serve import configure_tracing

    assert configure_tracing("kbot-test", environ={}) is False


async def test_discord_answer_span_tree(tmp_path, spans):
    from tests.channels.discord.fake_api import VPN_QUESTION, start_harness
    from tests.channels.discord.fake_api import ask as discord_ask

    harness = await start_harness(tmp_path)
    try:
        await harness.interact(discord_ask(VPN_QUESTION))
    finally:
        await harness.close()
    finished = [s for s in spans.get_finished_spans() if s.name.startswith("kbot.")]
    assert tree(finished) == {"kbot.ask": ["kbot.generate", "kbot.post", "kbot.retrieve"]}
    assert next(s for s in finished if s.name == "kbot.ask").attributes["kbot.platform"] == "discord"
