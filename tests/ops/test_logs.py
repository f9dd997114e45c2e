"""Logs an operator can ship: JSON lines with logger, level, answer id and platform; access lines without
query strings; and never the text of a question or an answer at INFO, on the web, Slack or Discord."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.channels.web.app import create_app
from bot.core.logs import configure_logging
from bot.wiring import Runtime
from tests.channels.discord.fake_api import ask as discord_ask
from tests.channels.discord.fake_api import start_harness
from tests.channels.slack.fake_api import BOT_USER_ID, FakeSlackAPI, SlackHarness, mention_event
from tests.channels.web.helpers import demo_client, demo_settings
from tests.engine.test_evaluation import CHUNKS
from tests.fakes import FakeEmbedder, FakeGenerator, FakeRetriever

SECRET_QUESTION = "What is the VPN server address for the Quetzalcoatl project?"
WEB_REPLY = "The VPN gateway is vpn.acme.example [1]"
SECRET_CORRECTION = "Actually it is Xylophone-gateway"


@pytest.fixture
def json_logs():
    buffer = io.StringIO()
    configure_logging(fmt="json", stream=buffer)
    yield buffer
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_kbot", False)]:
        root.removeHandler(handler)


def records(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


async def test_no_question_or_answer_text_in_logs(json_logs, tmp_path, store):
    # the web chat: JSON and streamed answers, a vote and a correction, a request with a query string
    rt = Runtime(demo_settings(tmp_path / "web", min_score=0.2), store=store, index=FakeRetriever(CHUNKS),
                 generator=FakeGenerator(WEB_REPLY), embedder=FakeEmbedder())
    web = demo_client(create_app(rt))
    answer_id = web.post("/api/ask", json={"question": SECRET_QUESTION}).json()["answer_id"]
    web.post("/api/ask/stream", json={"question": SECRET_QUESTION})
    web.post("/api/feedback", json={"answer_id": answer_id, "vote": -1, "correction": SECRET_CORRECTION})
    web.get("/api/docs", params={"scope": "Quetzalcoatl"})

    # Slack: a mention answered in a thread
    with FakeSlackAPI() as api:
        slack = SlackHarness(tmp_path / "slack", api)
        try:
            msg = api.user_message("C1", f"<@{BOT_USER_ID}> {SECRET_QUESTION}", channel_type="channel")
            assert slack.send_event(mention_event(msg)).status_code == 200
            slack.settle()
        finally:
            slack.close()

    # Discord: /ask answered as a follow-up
    discord = await start_harness(tmp_path / "discord")
    try:
        await discord.interact(discord_ask(SECRET_QUESTION))
    finally:
        await discord.close()

    lines = records(json_logs)
    text = json_logs.getvalue()
    for secret in ("Quetzalcoatl", "vpn.acme.example", "vpn.example.com", "Xylophone"):
        assert secret not in text, secret
    answered = {r["platform"] for r in lines if r.get("answer_id") and r["logger"] == "bot.engine.conversation"}
    assert answered == {"web", "slack", "discord"}
    for r in lines:
        assert {"time", "level", "logger", "message"} <= set(r)
    access = [r for r in lines if r["logger"] == "bot.access"]
    assert {(r["http_method"], r["http_path"], r["http_status"]) for r in access} >= {
        ("POST", "/api/ask", 200), ("POST", "/api/feedback", 200), ("GET", "/api/docs", 200)}
    assert all("?" not in r["message"] for r in access)


def test_rich_at_a_terminal_and_json_elsewhere():
    from bot.core.logs import use_json

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_json("auto", io.StringIO()) and not use_json("auto", Tty())
    assert use_json("json", Tty()) and not use_json("rich", io.StringIO())
    with pytest.raises(ValueError, match="auto, json or rich"):
        use_json("xml", io.StringIO())


def test_json_lines_carry_context_and_tracebacks(json_logs):
    log = logging.getLogger("bot.test")
    log.info("answer %s shown", "a1", extra={"answer_id": "a1", "platform": "slack"})
    try:
        raise KeyError("boom")
    except KeyError:
        log.exception("failed")
    first, second = records(json_logs)[-2:]
    assert first == {**first, "level": "INFO", "logger": "bot.test", "message": "answer a1 shown",
                     "answer_id": "a1", "platform": "slack"}
    assert second["level"] == "ERROR" and "KeyError: 'boom'" in second["exc"]
