"""Sign-in and the web app's outer layers: the password form, sessions, API tokens, the demo mode,
the Host check, request-size limits, the question rate, and `kbot serve`'s refusal to run without
sign-in on a public address."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bot.channels.web.app import create_app
from bot.core.errors import ConfigError
from bot.serve import check_exposure
from knowledge.accounts import Accounts
from tests.channels.web.helpers import PASSWORD, add_people, form_token, sign_in, web_runtime, web_settings


@pytest.fixture
def app(tmp_path, store):
    add_people(store)
    return create_app(web_runtime(tmp_path, store))


def login(client: TestClient, username: str, password: str) -> object:
    token = form_token(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                       "next": "/console/users"}, follow_redirects=False)


def test_password_sign_in_sets_a_hardened_cookie_and_signs_out(app):
    client = TestClient(app)
    wrong = login(client, "alice", "not her password")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert login(client, "nobody", PASSWORD).text.count("Wrong user name or password") == 1  # same answer
    before = client.cookies.get("kbot_session")
    ok = login(client, "alice", PASSWORD)
    assert ok.status_code == 303 and ok.headers["location"] == "/console/users"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.cookies.get("kbot_session") != before  # a fresh session at sign-in (no fixation)
    assert client.get("/api/me").json()["user"] == "alice"
    token = client.get("/api/me").json()["csrf_token"]
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.get("/api/me").status_code == 401


def test_secure_cookie_behind_tls_and_no_open_redirect(tmp_path, store):
    add_people(store)
    app = create_app(web_runtime(tmp_path, store, public_url="https://kbot.example.com",
                                 trusted_hosts=["testserver"]))
    client = TestClient(app, base_url="https://testserver")
    token = form_token(client.get("/login").text)
    resp = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token,
                                       "next": "//evil.example/phish"}, follow_redirects=False)
    assert resp.status_code == 303 and "secure" in resp.headers["set-cookie"].lower()
    assert resp.headers["location"] == "/"


def test_login_form_needs_its_token_and_attempts_are_rate_limited(tmp_path, store):
    add_people(store)
    client = TestClient(create_app(web_runtime(tmp_path, store, sign_in_rate="3/minute")))
    client.get("/login")
    no_token = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert no_token.status_code == 403
    for _ in range(3):
        assert login(client, "alice", "guess").status_code == 401
    limited = login(client, "alice", PASSWORD)
    assert limited.status_code == 429 and "Too many attempts" in limited.text


def test_disabled_accounts_and_changed_scopes_apply_at_once(app, store):
    client = sign_in(TestClient(app), "alice")
    accounts = Accounts(store)
    alice = accounts.by_username("alice")
    accounts.update(alice.id, scopes=["hr"])
    assert client.get("/api/me").json()["scopes"] == ["default", "hr"]
    accounts.update(alice.id, disabled=True)
    assert client.get("/api/me").status_code == 401


def test_api_tokens_work_without_a_cookie_or_csrf_token_until_revoked(app, store):
    accounts = Accounts(store)
    row, plain = accounts.create_token(accounts.by_username("bob").id, "ci")
    client = TestClient(app)
    auth = {"Authorization": f"Bearer {plain}"}
    assert client.get("/api/me", headers=auth).json()["via"] == "token"
    resp = client.post("/api/ask", json={"question": "What is the VPN gateway?"}, headers=auth)
    assert resp.status_code == 200 and resp.json()["mode"] == "generated"
    assert client.get("/api/me", headers={"Authorization": "Bearer kbot_made-up"}).status_code == 401
    accounts.revoke_token(row.id)
    assert client.get("/api/me", headers=auth).status_code == 401
    assert store.list_answers()[-1].user_id == accounts.by_username("bob").id


def test_demo_mode_needs_no_sign_in_but_its_votes_are_unverified(tmp_path, store):
    client = TestClient(create_app(web_runtime(tmp_path, store, web_auth="none")))
    me = client.get("/api/me").json()
    assert me["admin"] and me["via"] == "none"
    client.headers["X-CSRF-Token"] = me["csrf_token"]
    aid = client.post("/api/ask", json={"question": "What is the VPN gateway?"}).json()["answer_id"]
    assert client.post("/api/feedback", json={"answer_id": aid, "vote": 1}).status_code == 200
    assert store.list_feedback()[0].verified is False
    assert client.get("/console/documents").status_code == 200


def test_serve_refuses_the_demo_mode_off_loopback(tmp_path):
    demo = web_settings(tmp_path, web_auth="none")
    check_exposure(demo, "127.0.0.1")
    with pytest.raises(ConfigError, match="only allowed on 127.0.0.1, not 0.0.0.0"):
        check_exposure(demo, "0.0.0.0")
    with pytest.raises(ConfigError, match="KBOT_OIDC_ISSUER"):
        check_exposure(web_settings(tmp_path, web_auth="oidc"), "0.0.0.0")
    check_exposure(web_settings(tmp_path), "0.0.0.0")  # local accounts: fine anywhere
    assert web_settings(tmp_path, oidc_issuer="https://idp.example").auth_mode == "oidc"


def test_unknown_hosts_are_refused(app):
    assert TestClient(app, base_url="http://evil.example").get("/healthz").status_code == 400
    assert TestClient(app).get("/healthz").status_code == 200


def test_pages_carry_security_headers(app):
    resp = TestClient(app).get("/login")
    assert resp.headers["x-frame-options"] == "DENY" and resp.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    assert "access-control-allow-origin" not in TestClient(app).options(
        "/api/ask", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}).headers


def test_request_bodies_and_history_are_capped(app):
    client = sign_in(TestClient(app), "alice")
    history = ["x" * 1000] * 5000  # a 5 MB history
    resp = client.post("/api/ask", json={"question": "VPN?", "history": history})
    assert resp.status_code == 413 and "larger than 256 KB" in resp.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"question": "VPN?", "history": ["'
        for _ in range(400):
            yield b"y" * 1000
        yield b'"]}'

    streamed = client.post("/api/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    too_many = client.post("/api/ask", json={"question": "VPN?", "history": ["a"] * 51})
    assert too_many.status_code == 422


def test_questions_over_the_rate_get_429_with_retry_after(tmp_path, store):
    add_people(store)
    client = sign_in(TestClient(create_app(web_runtime(tmp_path, store, question_rate="2/minute"))), "alice")
    for _ in range(2):
        assert client.post("/api/ask", json={"question": "What is the VPN gateway?"}).status_code == 200
    limited = client.post("/api/ask/stream", json={"question": "What is the VPN gateway?"})
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert "Please wait about" in limited.json()["detail"]
    other = sign_in(TestClient(client.app), "bob")  # the limit is per person
    assert other.post("/api/ask", json={"question": "What is the VPN gateway?"}).status_code == 200


def test_serve_purges_what_the_retention_settings_say(tmp_path, store):
    from datetime import timedelta

    from bot.serve import purge_expired
    from knowledge.store import utcnow

    old = store.log_answer(question="old", created_at=utcnow() - timedelta(days=40))
    keep = web_runtime(tmp_path, store, answer_retention_days=0)  # 0 keeps everything
    assert purge_expired(keep)["answers"] == 0 and store.get_answer(old) is not None
    month = web_runtime(tmp_path, store, answer_retention_days=30)
    assert purge_expired(month)["answers"] == 1 and store.get_answer(old) is None
