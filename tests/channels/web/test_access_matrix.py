"""Every route of the web app for four callers: anonymous, alice (signed in, without the `hr` scope),
bob (with it) and an admin. Each cell is the expected status; bodies for callers without `hr` must
not contain its text. A route missing from the matrix fails the test, so a new route has to say who
may call it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bot.channels.web.app import create_app
from knowledge.ingest import doc_id_for
from tests.channels.web.helpers import SECRET, add_people, sign_in, web_runtime
from tests.fakes import FakeLearning

CALLERS = ("anon", "alice", "bob", "admin")
HTML = {"Accept": "text/html"}
# Routes tested elsewhere (they change who is signed in): tests/channels/web/test_signin.py
EXEMPT = {("POST", "/login"), ("POST", "/logout")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from knowledge.store import Store

    tmp = tmp_path_factory.mktemp("matrix")
    store = Store(f"sqlite:///{tmp / 'kbot.db'}")
    rt = web_runtime(tmp, store)
    add_people(store)
    for source, title, scope in (("/d/vpn.md", "VPN", "default"), ("/d/hr/salary-bands.md", "Salary bands", "hr")):
        store.upsert_document(id=doc_id_for(source), source=source, title=title, scope=scope, chunk_count=1)
    hr_answer = store.log_answer(question="What are the salary bands?", answer=f"They are {SECRET} [1]",
                                 scopes=["hr"], platform="slack",
                                 citations=[{"source": "/d/hr/salary-bands.md", "title": "Salary bands",
                                             "text": f"Salary bands are {SECRET}"}])
    vpn_answer = store.log_answer(question="VPN?", answer="vpn.acme.example [1]", scopes=["default"])
    fid = store.record_feedback(vpn_answer, "U1", vote=-1, correction="vpn2.acme.example", platform="slack").id
    app = create_app(rt, learning=FakeLearning(store))
    clients = {"anon": TestClient(app)}
    for caller, name in (("alice", "alice"), ("bob", "bob"), ("admin", "root")):
        clients[caller] = sign_in(TestClient(app), name)
    return dict(app=app, clients=clients, hr=hr_answer, vpn=vpn_answer, fid=fid, store=store)


def statuses(anon, alice, bob, admin):
    return dict(zip(CALLERS, (anon, alice, bob, admin), strict=True))


PAGE = statuses(303, 403, 403, 200)  # console pages
ACTION = statuses(401, 403, 403, None)  # console form posts; the admin's status is given per route
ASK = {"question": "What are the salary bands?"}


def matrix(w):
    """(method, route, concrete path, request kwargs, expected statuses, callers whose body must not
    contain SECRET)."""
    no_hr = {"anon", "alice"}
    upload = {"files": {"file": ("notes.md", b"# Notes\n\nThe canteen opens at 8.", "text/markdown")},
              "data": {"scope": "default"}}
    pages = [("GET", f"/console/{a}", None, {"headers": HTML}, PAGE, no_hr)
             for a in ("documents", "reviews", "feedback", "adapters", "scopes", "users", "settings", "audit")]
    return [
        ("GET", "/healthz", None, {}, statuses(200, 200, 200, 200), set()),
        # counts and timings only, for Prometheus (KBOT_METRICS_TOKEN can require a bearer token)
        ("GET", "/metrics", None, {}, statuses(200, 200, 200, 200), CALLERS),
        ("GET", "/", None, {"headers": HTML}, statuses(303, 200, 200, 200), set()),
        ("GET", "/login", None, {"headers": HTML}, statuses(200, 303, 303, 303), set()),
        ("GET", "/api/me", None, {}, statuses(401, 200, 200, 200), set()),
        ("GET", "/api/openapi.json", None, {}, statuses(401, 200, 200, 200), set()),
        ("GET", "/api/reference", None, {"headers": HTML}, statuses(401, 200, 200, 200), set()),
        ("POST", "/api/ask", None, {"json": ASK}, statuses(401, 200, 200, 200), no_hr),
        ("POST", "/api/ask/stream", None, {"json": ASK}, statuses(401, 200, 200, 200), no_hr),
        ("POST", "/api/feedback", None, {"json": {"answer_id": w["hr"], "vote": 1}}, statuses(401, 404, 200, 200),
         no_hr),
        ("GET", "/api/docs", None, {}, statuses(401, 200, 200, 200), no_hr),
        ("GET", "/answers/{answer_id}", f"/answers/{w['hr']}", {"headers": HTML}, statuses(303, 404, 200, 200),
         no_hr),
        ("GET", "/console", None, {"headers": HTML}, statuses(303, 403, 403, 303), no_hr),
        *pages,
        ("POST", "/console/documents/upload", None, upload, {**ACTION, "admin": 303}, set()),
        ("POST", "/console/documents/url", None, {"data": {"url": "http://127.0.0.1:9/x.md", "scope": "default"}},
         {**ACTION, "admin": 303}, set()),
        ("POST", "/console/documents/{doc_id}/reingest", "/console/documents/nope/reingest", {},
         {**ACTION, "admin": 404}, set()),
        ("POST", "/console/documents/{doc_id}/scope", "/console/documents/nope/scope", {"data": {"scope": "hr"}},
         {**ACTION, "admin": 404}, set()),
        ("POST", "/console/documents/{doc_id}/forget", "/console/documents/nope/forget", {},
         {**ACTION, "admin": 404}, set()),
        ("POST", "/console/reviews/{feedback_id}/approve", "/console/reviews/999/approve", {"data": {"text": ""}},
         {**ACTION, "admin": 404}, set()),
        ("POST", "/console/reviews/{feedback_id}/reject", "/console/reviews/999/reject", {},
         {**ACTION, "admin": 404}, set()),
        ("POST", "/console/adapters/train", None, {}, {**ACTION, "admin": 303}, set()),
        ("POST", "/console/adapters/rollback", None, {}, {**ACTION, "admin": 303}, set()),
        ("POST", "/console/adapters/{version}/promote", "/console/adapters/v9/promote", {},
         {**ACTION, "admin": 303}, set()),
        ("POST", "/console/scopes", None, {"data": {"platform": "slack", "place": "C1", "scopes": "hr"}},
         {**ACTION, "admin": 303}, set()),
        ("POST", "/console/scopes/delete", None, {"data": {"platform": "slack", "place": "C404"}},
         {**ACTION, "admin": 404}, set()),
        ("POST", "/console/users", None, {"data": {"username": "carol", "password": "a long password"}},
         {**ACTION, "admin": 303}, set()),
        ("POST", "/console/users/{user_id}", "/console/users/nobody", {"data": {"role": "user"}},
         {**ACTION, "admin": 404}, set()),
        ("POST", "/console/users/{user_id}/tokens", "/console/users/nobody/tokens", {"data": {"name": "x"}},
         {**ACTION, "admin": 404}, set()),
        ("POST", "/console/users/tokens/{token_id}/revoke", "/console/users/tokens/nope/revoke", {},
         {**ACTION, "admin": 404}, set()),
    ]


def app_routes(routes, prefix: str = ""):
    """(method, path) of every route, also inside included routers (FastAPI keeps those nested)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from app_routes(route.original_router.routes, prefix + route.include_context.prefix)
        for method in (getattr(route, "methods", None) or set()) - {"HEAD"}:
            yield method, prefix + route.path


def test_every_route_is_in_the_matrix(world):
    covered = {(m, route) for m, route, *_ in matrix(world)} | EXEMPT
    declared = set(app_routes(world["app"].routes))
    assert declared - covered == set(), "routes without an access expectation"
    assert covered - declared == set(), "matrix rows for routes that do not exist"


@pytest.mark.parametrize("caller", CALLERS)
def test_route_by_caller(world, caller):
    client = world["clients"][caller]
    failures = []
    for method, route, path, kwargs, expected, no_secret in matrix(world):
        path = path or route
        resp = client.request(method, path, follow_redirects=False, **kwargs)
        if resp.status_code != expected[caller]:
            failures.append(f"{method} {path}: {resp.status_code} (expected {expected[caller]}) {resp.text[:120]}")
        if caller in no_secret and (SECRET in resp.text or "salary-bands" in resp.text.lower()):
            failures.append(f"{method} {path}: restricted text in the body for {caller}")
    assert not failures, "\n".join(failures)


def test_restricted_things_are_404_not_403(world):
    alice = world["clients"]["alice"]
    for path in (f"/answers/{world['hr']}", "/answers/does-not-exist"):
        resp = alice.get(path)
        assert resp.status_code == 404 and SECRET not in resp.text
    retry = alice.post("/api/ask", json={"retry_of": world["hr"]})
    assert retry.status_code == 404 and SECRET not in retry.text
    assert [d["title"] for d in alice.get("/api/docs").json()] == ["VPN"]
    assert alice.get("/api/docs", params={"scope": "hr"}).json() == []
    assert {d["title"] for d in world["clients"]["bob"].get("/api/docs").json()} == {"VPN", "Salary bands"}


def test_questions_search_only_the_askers_scopes(world):
    alice, bob = world["clients"]["alice"], world["clients"]["bob"]
    declined = alice.post("/api/ask", json=ASK).json()
    assert SECRET not in str(declined)
    answered = bob.post("/api/ask", json=ASK).json()
    assert any(c["title"] == "Salary bands" for c in answered["citations"])
    store = world["store"]
    assert store.get_answer(declined["answer_id"]).scopes == ["default"]
    assert store.get_answer(answered["answer_id"]).scopes == ["default", "hr"]


def test_console_posts_need_the_form_token(world):
    admin = world["clients"]["admin"]
    token = admin.headers.pop("X-CSRF-Token")
    try:
        resp = admin.post("/console/scopes", data={"platform": "slack", "place": "C9", "scopes": "hr"},
                          follow_redirects=False)
        assert resp.status_code == 403 and "form token" in resp.json()["detail"]
        assert world["store"].channel_scopes("slack", "C9") is None
        ok = admin.post("/console/scopes", data={"platform": "slack", "place": "C9", "scopes": "hr",
                                                 "csrf_token": token}, follow_redirects=False)
        assert ok.status_code == 303 and world["store"].channel_scopes("slack", "C9") == ["hr"]
    finally:
        admin.headers["X-CSRF-Token"] = token
