"""The web chat's JSON API with the fakes (signed in as alice): answers, streaming, feedback and
clear 4xx errors."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from bot.channels.web.app import create_app
from bot.wiring import Runtime
from knowledge.accounts import Accounts
from tests.channels.web.helpers import PASSWORD, demo_client, demo_settings, sign_in
from tests.conftest import make_settings
from tests.engine.test_evaluation import CHUNKS
from tests.fakes import FakeEmbedder, FakeGenerator, FakeRetriever


@pytest.fixture
def client(tmp_path, store):
    rt = Runtime(make_settings(tmp_path, max_question_chars=200, min_score=0.2, trusted_hosts=["testserver"]),
                 store=store, index=FakeRetriever(CHUNKS),
                 generator=FakeGenerator("The VPN gateway is vpn.acme.example [1]"), embedder=FakeEmbedder())
    Accounts(store).add_local("alice", PASSWORD)
    return sign_in(TestClient(create_app(rt)), "alice"), store


def test_page_and_ask(client):
    c, store = client
    assert "kbot" in c.get("/").text
    data = c.post("/api/ask", json={"question": "What is the VPN gateway?"}).json()
    [cite] = data["citations"]
    assert data["mode"] == "generated" and cite["title"] == "VPN"
    assert store.get_answer(data["answer_id"]).platform == "web"
    # no server path goes to the browser: the source links to its place on the answer's page
    assert "/d/vpn.md" not in json.dumps(data) and cite["link"] == f"/answers/{data['answer_id']}#source-1"
    assert cite["snippet_html"] == "<p>The VPN gateway is vpn.acme.example today.</p>\n"
    page = c.get(f"/answers/{data['answer_id']}")
    assert page.status_code == 200 and "vpn.acme.example" in page.text
    assert 'id="source-1"' in page.text and "/d/vpn.md" not in page.text


def test_stream_sends_tokens_then_the_answer(client):
    c, _ = client
    lines = c.post("/api/ask/stream", json={"question": "What is the VPN gateway?"}).text.splitlines()
    events = [json.loads(line) for line in lines]
    assert events[0]["type"] == "token" and events[-1]["type"] == "answer"
    assert "".join(e["text"] for e in events if e["type"] == "token") == "The VPN gateway is vpn.acme.example [1]"


def test_feedback_is_stored_and_bad_input_is_a_4xx(client):
    c, store = client
    aid = c.post("/api/ask", json={"question": "What is the VPN gateway?"}).json()["answer_id"]
    assert c.post("/api/feedback", json={"answer_id": aid, "vote": 1}).status_code == 200
    # a user id in the body is ignored: the vote is the signed-in person's
    assert c.post("/api/feedback", json={"answer_id": aid, "vote": -1, "user_id": "someone-else",
                                         "correction": "vpn2"}).status_code == 200
    rows = store.list_feedback()
    assert len(rows) == 1 and rows[0].vote == -1 and rows[0].correction_status == "pending"
    assert rows[0].user_id == Accounts(store).by_username("alice").id and rows[0].verified
    missing = c.post("/api/feedback", json={"answer_id": "nope", "vote": 1})
    assert missing.status_code == 404 and "can't find that answer" in missing.json()["detail"]
    assert c.post("/api/feedback", json={"answer_id": aid, "vote": 5}).status_code == 422
    assert c.post("/api/feedback", json={"answer_id": aid}).status_code == 422
    huge = c.post("/api/ask", json={"question": "x" * 500})
    assert huge.status_code == 413 and "limit is 200" in huge.json()["detail"]
    assert c.post("/api/ask", json={"question": "   "}).status_code == 422
    assert c.get("/answers/nope").status_code == 404


def test_serve_mounts_slack_http_mode_only_when_configured(tmp_path, store):
    from bot.serve import build_server_app

    plain = Runtime(make_settings(tmp_path, trusted_hosts=["testserver"]), store=store)
    assert TestClient(build_server_app(plain)).post("/slack/events", content=b"{}").status_code == 404
    slack = Runtime(make_settings(tmp_path, slack_bot_token="xoxb-test", slack_signing_secret="s3cret",
                                  slack_api_url="http://127.0.0.1:9/api/", trusted_hosts=["testserver"]), store=store)
    closers: list = []
    app = build_server_app(slack, closers)
    forged = TestClient(app).post("/slack/events", content=b"{}", headers={
        "X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=forged"})
    assert forged.status_code == 401
    assert len(closers) == 1
    for item in closers:
        item.close()


def test_slack_events_stay_open_to_signed_requests_only(tmp_path, store):
    """Sign-in guards everything else; /slack/events is checked by Slack's signature instead."""
    import json

    from bot.serve import build_server_app
    from tests.channels.slack.fake_api import SIGNING_SECRET, signed_headers

    slack = Runtime(make_settings(tmp_path, slack_bot_token="xoxb-test", slack_signing_secret=SIGNING_SECRET,
                                  slack_api_url="http://127.0.0.1:9/api/", trusted_hosts=["testserver"]), store=store)
    closers: list = []
    client = TestClient(build_server_app(slack, closers))
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "legacy"})
    ok = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert ok.status_code == 200 and ok.json() == {"challenge": "c-123"}
    assert client.post("/api/ask", json={"question": "VPN?"}).status_code == 401  # the rest needs sign-in
    for item in closers:
        item.close()


def test_snippets_and_answers_are_safe_html_and_web_sources_link_out(tmp_path, store):
    from bot.core.types import Chunk

    chunk = Chunk(id="r", source="/srv/kb/it/requirements.md", title="Requirements", score=1, heading="VPN",
                  url="https://wiki.acme.example/vpn",
                  text="## Requirements\n\n- A company-managed laptop\n- **version 6.2.1 or later** of the VPN "
                       "client <script>alert(1)</script> [x](javascript:alert(2))")
    rt = Runtime(demo_settings(tmp_path, min_score=0.0), store=store, index=FakeRetriever([chunk]),
                 generator=FakeGenerator("You need **version 6.2.1 or later** of the VPN client [1]"),
                 embedder=FakeEmbedder())
    c = demo_client(create_app(rt))
    data = c.post("/api/ask", json={"question": "What VPN client version do I need on the laptop?"}).json()
    [cite] = data["citations"]
    assert cite["link"] == "https://wiki.acme.example/vpn" and cite["location"] == "VPN"
    assert cite["snippet_html"] == ("<p>version 6.2.1 or later of the VPN client &lt;script&gt;alert(1)&lt;/script&gt;"
                                    " [x](javascript:alert(2))</p>\n")  # raw HTML escaped, the unsafe link not a link
    assert data["answer_html"] == "<p>You need <strong>version 6.2.1 or later</strong> of the VPN client [1]</p>\n"
    page = c.get(f"/answers/{data['answer_id']}").text
    assert '<a href="https://wiki.acme.example/vpn"' in page and "/srv/kb" not in page and "<script>" not in page
