"""The console's actions through HTTP (the browser walk-through covers the main path with the real
parts): documents (upload limits, URLs through the safe fetcher, change of scope, forget), reviews,
users and tokens, the feedback overview, and secrets masked on the settings page."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from bot.channels.web.app import create_app
from knowledge.accounts import Accounts
from knowledge.fetch import UNREACHABLE
from knowledge.ingest import doc_id_for
from tests.channels.web.helpers import add_people, sign_in, web_runtime
from tests.fakes import FakeLearning


@pytest.fixture
def console(tmp_path, store):
    add_people(store)
    rt = web_runtime(tmp_path, store, max_file_mb=0.01, slack_bot_token="xoxb-very-secret",
                     oidc_client_secret="oidc-very-secret")
    learning = FakeLearning(store)
    client = sign_in(TestClient(create_app(rt, learning=learning)), "root")
    return client, rt, learning


def flashes(resp) -> str:
    return " ".join(re.findall(r'<div class="flash \w+">([^<]*)</div>', resp.text))


def post(client, path, **data):
    return client.post(path, data={"csrf_token": client.headers["X-CSRF-Token"], **data})


def test_upload_change_scope_and_forget(console, tmp_path):
    client, rt, _ = console
    resp = client.post("/console/documents/upload", data={"scope": "hr"},
                       files={"file": ("../../etc/Team Handbook.md", b"# Handbook\n\nHello.", "text/markdown")})
    assert "Team_Handbook.md into scope hr: 1 added" in flashes(resp)
    kept = tmp_path / "uploads" / "web" / "Team_Handbook.md"
    assert kept.read_bytes().startswith(b"# Handbook")
    assert rt.ingestor.files[-1][2:] == ("hr", "upload:Team_Handbook.md")
    doc_id = doc_id_for("upload:Team_Handbook.md")
    rt.store.upsert_document(id=doc_id, source="upload:Team_Handbook.md", title="Handbook", scope="hr")
    moved = post(client, f"/console/documents/{doc_id}/scope", scope="default")
    assert "into scope default" in flashes(moved) and rt.ingestor.files[-1][2] == "default"
    gone = post(client, f"/console/documents/{doc_id}/forget")
    assert "Forgot Handbook" in flashes(gone) and rt.ingestor.forgotten == ["upload:Team_Handbook.md"]
    assert not kept.exists()
    audit = client.get("/console/audit").text
    assert "document.upload" in audit and "document.scope" in audit and "document.forget" in audit


def test_upload_and_url_problems_are_clear(console):
    client, rt, _ = console
    big = client.post("/console/documents/upload", data={"scope": "default"},
                      files={"file": ("big.md", b"x" * 20_000, "text/markdown")})
    assert "big.md is larger than 0.01 MB" in flashes(big)
    bad_scope = client.post("/console/documents/upload", data={"scope": "../etc"},
                            files={"file": ("a.md", b"# A", "text/markdown")})
    assert bad_scope.status_code == 422
    internal = post(client, "/console/documents/url", url="http://169.254.169.254/latest/meta-data/",
                    scope="default")
    assert UNREACHABLE in flashes(internal).replace("&#39;", "'")
    assert rt.ingestor.files == []
    rt.store.upsert_document(id="d1", source="slack:notes.md", title="Notes", scope="default")
    lost = post(client, "/console/documents/d1/reingest")
    assert "is not kept on the server" in flashes(lost)


def test_review_approve_with_an_edit_and_reject(console):
    client, rt, learning = console
    store = rt.store
    aid = store.log_answer(question="Where do visitors park?", answer="In P3 [1]", scopes=["default"],
                           citations=[{"title": "Parking", "text": "Visitors park in P3."}])
    first = store.record_feedback(aid, "U1", correction="In P5.", platform="slack").id
    second = store.record_feedback(aid, "U2", correction="Nonsense", platform="slack").id
    page = client.get("/console/reviews").text
    assert "Where do visitors park?" in page and "Visitors park in P3." in page and "In P5." in page
    post(client, f"/console/reviews/{first}/approve", text="Since March: garage P5.")
    post(client, f"/console/reviews/{second}/reject")
    assert learning.calls == [("approve", first, "Since March: garage P5."), ("reject", second)]
    rows = {f.id: f for f in store.list_feedback()}
    assert rows[first].correction == "Since March: garage P5." and rows[first].correction_status == "approved"
    assert rows[second].correction_status == "rejected"


def test_users_roles_and_tokens(console, store):
    client, _, _ = console
    added = post(client, "/console/users", username="dora", password="long enough pw", role="user", scopes="hr")
    assert "Added dora" in flashes(added)
    dora = Accounts(store).by_username("dora")
    assert dora.scopes == ["hr"] and dora.role == "user"
    short = post(client, "/console/users", username="eve", password="short")
    assert "at least 10 characters" in flashes(short)
    made = post(client, f"/console/users/{dora.id}/tokens", name="nightly")
    token = re.search(r"(kbot_[\w-]+)", flashes(made)).group(1)
    assert TestClient(client.app).get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["user"] == "dora"
    assert token not in client.get("/console/users").text  # shown once, never listed
    [row] = Accounts(store).tokens(dora.id)
    post(client, f"/console/users/tokens/{row.id}/revoke")
    assert TestClient(client.app).get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    root = Accounts(store).by_username("root")
    selfish = post(client, f"/console/users/{root.id}", role="user")
    assert "cannot remove your own admin role" in flashes(selfish) and Accounts(store).get(root.id).role == "admin"
    post(client, f"/console/users/{dora.id}", role="admin", scopes="", disabled="1")
    assert Accounts(store).get(dora.id).disabled and Accounts(store).get(dora.id).role == "admin"


def test_feedback_overview_and_masked_settings(console, store):
    client, _, _ = console
    declined = store.log_answer(question="What is the canteen menu?", answer="", mode="declined")
    bad = store.log_answer(question="VPN address?", answer="vpn-old.acme.example [1]")
    for user in ("U1", "U2"):
        store.record_feedback(bad, user, vote=-1, platform="slack", verified=True)
    store.record_feedback(declined, "U3", vote=1, platform="slack", verified=True)
    page = client.get("/console/feedback").text
    assert "What is the canteen menu?" in page and "vpn-old.acme.example" in page and "<svg" in page
    assert "3 votes · satisfaction 33%" in page
    settings = client.get("/console/settings").text
    assert "very-secret" not in settings and "slack_bot_token" in settings and "***" in settings
