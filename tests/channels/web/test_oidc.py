"""OpenID Connect sign-in against a local IdP (tests/channels/web/fake_idp.py, on port 0): discovery,
the authorization-code flow with PKCE, ID-token signature checks against the JWKS, and scopes and
the admin role that follow the person's IdP groups."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from bot.channels.web.app import create_app
from knowledge.accounts import Accounts
from tests.channels.web.fake_idp import CLIENT_ID, CLIENT_SECRET, FakeIdP
from tests.channels.web.helpers import SECRET, web_runtime


@pytest.fixture
def idp():
    with FakeIdP() as server:
        yield server


@pytest.fixture
def app(tmp_path, store, idp):
    rt = web_runtime(tmp_path, store, oidc_issuer=idp.issuer, oidc_client_id=CLIENT_ID,
                     oidc_client_secret=CLIENT_SECRET, oidc_group_scopes={"hr-team": ["hr"]},
                     oidc_admin_groups=["kbot-admins"])
    assert rt.settings.auth_mode == "oidc"
    return create_app(rt)


def sign_in_with_idp(client: TestClient, next_path: str = "/") -> httpx.Response:
    """The browser's dance: kbot -> IdP authorize -> back to kbot's callback with a code."""
    start = client.get(f"/auth/oidc/login?next={next_path}", follow_redirects=False)
    assert start.status_code == 302, start.text
    at_idp = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_idp.status_code == 302
    callback = httpx.URL(at_idp.headers["location"])
    assert callback.path == "/auth/oidc/callback"
    return client.get(f"{callback.path}?{callback.query.decode()}", follow_redirects=False)


def test_code_flow_signs_in_with_scopes_from_groups(app, idp, store):
    idp.next_user = {**idp.next_user, "groups": ["hr-team"]}
    client = TestClient(app)
    assert client.get("/login").text.count("Sign in with your company account") == 1
    done = sign_in_with_idp(client, "/api/docs")
    assert done.status_code == 303 and done.headers["location"] == "/api/docs"
    me = client.get("/api/me").json()
    assert me["user"] == "ann" and me["scopes"] == ["default", "hr"] and not me["admin"]
    assert {"/.well-known/openid-configuration", "/authorize", "/token", "/jwks"} <= set(idp.requests)
    user = Accounts(store).by_username("ann")
    assert user.provider == "oidc" and user.subject == "u-1" and user.email == "ann@acme.example"
    assert client.get("/console/users", headers={"Accept": "text/html"}).status_code == 403


def test_admin_group_and_group_changes_apply_at_the_next_sign_in(app, idp, store):
    idp.next_user = {**idp.next_user, "groups": ["kbot-admins", "hr-team"]}
    client = TestClient(app)
    sign_in_with_idp(client)
    assert client.get("/api/me").json()["admin"] is True
    assert client.get("/console/users").status_code == 200
    idp.next_user = {**idp.next_user, "groups": []}  # left both groups at the IdP
    again = TestClient(app)
    sign_in_with_idp(again)
    assert again.get("/api/me").json() == {**again.get("/api/me").json(), "admin": False, "scopes": ["default"]}
    assert len(Accounts(store).list()) == 1  # the same person (by `sub`), not a new account


def test_a_forged_id_token_is_refused(app, idp, store):
    idp.forge_signature = True
    client = TestClient(app)
    resp = sign_in_with_idp(client)
    assert resp.status_code == 400 and "failed" in resp.text
    assert client.get("/api/me").status_code == 401
    assert Accounts(store).list() == []


def test_a_callback_without_the_matching_state_is_refused(app, idp):
    client = TestClient(app)
    start = client.get("/auth/oidc/login", follow_redirects=False)
    at_idp = httpx.get(start.headers["location"], follow_redirects=False)
    code = httpx.URL(at_idp.headers["location"]).params["code"]
    stranger = TestClient(app)  # another browser (no state in its session) replays the code
    resp = stranger.get(f"/auth/oidc/callback?code={code}&state=forged", follow_redirects=False)
    assert resp.status_code == 400 and stranger.get("/api/me").status_code == 401


def test_restricted_text_follows_the_groups(app, idp, store):
    answer = store.log_answer(question="Salary bands?", answer=f"{SECRET} [1]", scopes=["hr"])
    client = TestClient(app)
    sign_in_with_idp(client)
    assert client.get(f"/answers/{answer}").status_code == 404
    idp.next_user = {**idp.next_user, "groups": ["hr-team"]}
    sign_in_with_idp(client)
    assert SECRET in client.get(f"/answers/{answer}").text
