"""Socket Mode end to end: slack_sdk's SocketModeClient asks the (fake) Web API for a WebSocket URL with
the app token, connects to a local WebSocket server, receives an events_api envelope, acks it at
once and answers through the Web API."""

from __future__ import annotations

import pytest

from bot.channels.slack.app import start_socket_mode
from bot.core.errors import ChannelNotConfigured
from tests.channels.slack.fake_api import (
    APP_TOKEN,
    BOT_USER_ID,
    FakeSlackAPI,
    FakeSocketModeServer,
    SlackHarness,
    event_callback,
    mention_event,
)


def test_socket_mode_acks_the_envelope_and_answers(tmp_path):
    with FakeSlackAPI() as api, FakeSocketModeServer() as ws:
        api.socket_url = ws.url
        harness = SlackHarness(tmp_path, api, delay=0.1, SLACK_APP_TOKEN=APP_TOKEN)
        harness.bot.close()  # start_socket_mode builds its own bot from the runtime, like `kbot serve`
        connection = start_socket_mode(harness.runtime)
        try:
            [opened] = api.of("apps.connections.open")
            assert opened.headers["authorization"] == f"Bearer {APP_TOKEN}"
            msg = api.user_message(
                "C1", f"<@{BOT_USER_ID}> what is the VPN server address?", channel_type="channel"
            )
            ws.send_events_api("env-1", event_callback(mention_event(msg)))
            ws.wait_ack("env-1")
            assert api.of("chat.update") == []  # acked before the ~1 s answer was generated
            api.wait_for("chat.postMessage")
            assert connection.bot.wait_idle(15)
            ws.send_events_api("env-2", event_callback(mention_event(msg)))  # a redelivery of the same post
            ws.wait_ack("env-2")
            assert connection.bot.wait_idle(15)
        finally:
            connection.close()
    [placeholder] = api.of("chat.postMessage")
    assert placeholder.args["thread_ts"] == msg["ts"]
    final = api.of("chat.update")[-1].args
    assert "vpn.example.com" in final["text"] and final["ts"] == api.thread("C1", msg["ts"])[-1]["ts"]
    assert harness.store.count_answers() == 1
    assert all(set(a) == {"envelope_id", "_received_at"} for a in ws.acks)  # a plain ack, no payload


def test_socket_mode_needs_an_app_token(tmp_path):
    with FakeSlackAPI() as api:
        harness = SlackHarness(tmp_path, api)
        harness.close()
        with pytest.raises(ChannelNotConfigured, match="SLACK_APP_TOKEN"):
            start_socket_mode(harness.runtime)
        assert api.of("apps.connections.open") == []  # refused before trying to connect
