"""Building a web app over fakes, and signing people in the way a browser does (the sign-in form
with its CSRF token, then the session cookie)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from bot.core.types import Chunk
from bot.wiring import Runtime
from knowledge.accounts import Accounts
from tests.conftest import make_settings
from tests.fakes import FakeEmbedder, FakeGenerator, FakeIngestor, FakeRetriever

PASSWORD = "correct horse battery"
SECRET = "SALARY-BAND-SECRET"  # text of the restricted scope: must never reach someone without it
VPN = Chunk(id="vpn", source="/d/vpn.md", title="VPN", scope="default", score=0.9,
            text="The VPN gateway is vpn.acme.example. Use the client version 6.2.1 or later.")
SALARY = Chunk(id="sal", source="/d/hr/salary-bands.md", title="Salary bands", scope="hr", score=0.9,
               text=f"Salary bands for engineers are {SECRET} level A to level F.")


def web_settings(tmp_path, **overrides):
    values = dict(max_question_chars=200, min_score=0.2, trusted_hosts=["testserver"],
                  public_url="http://testserver")
    values.update(overrides)
    return make_settings(tmp_path, **values)


def web_runtime(tmp_path, store, *, reply: str = "The VPN gateway is vpn.acme.example [1]", **overrides) -> Runtime:
    return Runtime(web_settings(tmp_path, **overrides), store=store, index=FakeRetriever([VPN, SALARY]),
                   generator=FakeGenerator(reply), embedder=FakeEmbedder(), ingestor=FakeIngestor())


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> TestClient:
    """Sign in through the form; afterwards JSON calls carry the CSRF header like the chat page."""
    page = client.get("/login")
    resp = client.post("/login", data={"username": username, "password": password, "next": "/",
                                       "csrf_token": form_token(page.text)}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    client.headers["X-CSRF-Token"] = client.get("/api/me").json()["csrf_token"]
    return client


def add_people(store) -> dict[str, str]:
    """alice reads the default scope, bob also hr (granted by an admin), root is an admin."""
    accounts = Accounts(store)
    ids = {}
    for name, role, scopes in (("alice", "user", []), ("bob", "user", ["hr"]), ("root", "admin", [])):
        ids[name] = accounts.add_local(name, PASSWORD, role=role, scopes=scopes).id
    return ids


def demo_settings(tmp_path, **overrides):
    """The local demo's settings (KBOT_WEB_AUTH=none: everyone is the local admin; CSRF still applies)."""
    return web_settings(tmp_path, web_auth="none", **overrides)


def demo_client(app) -> TestClient:
    """A client of an app in demo mode that sends the session's CSRF header like the chat page does."""
    client = TestClient(app)
    client.headers["X-CSRF-Token"] = client.get("/api/me").json()["csrf_token"]
    return client
