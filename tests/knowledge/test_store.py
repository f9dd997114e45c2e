"""The relational store on SQLite and PostgreSQL: schema via Alembic, feedback upserts, de-dup."""

from __future__ import annotations

import threading

import pytest

from bot.core.errors import StoreError, UnknownAnswer
from knowledge.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'kbot.db'}")
    return Store(request.getfixturevalue("pg_url"))


def test_answer_and_feedback_round_trip(any_store):
    aid = any_store.log_answer(question="Where is the VPN?", answer="vpn.acme.example [1]", mode="generated",
                               citations=[{"source": "vpn.md"}], retrieved=[{"id": "c1", "score": 0.8}])
    row = any_store.get_answer(aid)
    assert row.question == "Where is the VPN?" and row.citations == [{"source": "vpn.md"}]
    any_store.record_feedback(aid, "u1", vote=1)
    any_store.record_feedback(aid, "u1", vote=-1)  # a second click changes the vote
    any_store.record_feedback(aid, "u2", vote=1, correction="It is vpn2.acme.example")
    rows = any_store.list_feedback()
    assert [(r.user_id, r.vote) for r in rows] == [("u1", -1), ("u2", 1)]
    assert any_store.list_feedback(correction_status="pending")[0].correction == "It is vpn2.acme.example"


def test_unknown_answer_id_is_refused(any_store):
    with pytest.raises(UnknownAnswer, match="unknown answer id"):
        any_store.record_feedback("nope", "u1", vote=1)
    assert any_store.list_feedback() == []


def test_claim_event_is_exactly_once(any_store):
    assert any_store.claim_event("slack:Ev1") is True
    assert any_store.claim_event("slack:Ev1") is False
    assert any_store.claim_event("slack:Ev2") is True


def test_concurrent_feedback_loses_no_row(any_store):
    aids = [any_store.log_answer(question=f"q{i}") for i in range(4)]
    errors = []

    def vote(user: str) -> None:
        try:
            for aid in aids:
                any_store.record_feedback(aid, user, vote=1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=vote, args=(f"u{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(any_store.list_feedback()) == 4 * 8


def test_concurrent_claims_have_one_winner(any_store):
    wins = []
    threads = [threading.Thread(target=lambda: wins.append(any_store.claim_event("dup"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1


def test_adapter_activation_is_exclusive(any_store):
    for v in ("v1", "v2"):
        any_store.add_adapter(version=v, path=f"/tmp/{v}")
    any_store.set_active_adapter("v1")
    any_store.set_active_adapter("v2")
    assert any_store.active_adapter().version == "v2"
    assert any_store.get_adapter("v1").status == "retired"
    with pytest.raises(StoreError):
        any_store.set_active_adapter("v9")
    assert any_store.active_adapter().version == "v2"


def test_channel_scopes_and_documents(any_store):
    any_store.set_channel_scopes("slack", "C1", ["hr"])
    any_store.set_channel_scopes("slack", "C1", ["hr", "it"])
    assert any_store.channel_scopes("slack", "C1") == ["hr", "it"]
    assert any_store.channel_scopes("slack", "C2") is None
    any_store.upsert_document(id="d1", source="/docs/a.md", title="A", chunk_count=3)
    any_store.upsert_document(id="d1", chunk_count=5)
    assert any_store.find_document("/docs/a.md").chunk_count == 5
    assert any_store.delete_document("d1") and any_store.list_documents() == []


def test_reopening_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'kbot.db'}"
    aid = Store(url).log_answer(question="q")
    assert Store(url).get_answer(aid).question == "q"


def test_retention_purges_old_answers_and_delivery_ids_but_not_pending_corrections(any_store):
    from datetime import timedelta

    from knowledge.store import AnswerRow, ProcessedEventRow, utcnow

    old = utcnow() - timedelta(days=400)
    stale = any_store.log_answer(question="old", created_at=old)
    pending = any_store.log_answer(question="old, correction pending", created_at=old)
    fresh = any_store.log_answer(question="new")
    any_store.record_feedback(stale, "u1", vote=1)
    any_store.record_feedback(pending, "u2", correction="fix me")
    any_store.claim_event("slack:old")
    any_store.claim_event("slack:new")
    with any_store.session() as s:
        s.get(ProcessedEventRow, "slack:old").created_at = old
    from knowledge.retention import purge

    counts = purge(any_store, answers_before=utcnow() - timedelta(days=365),
                   events_before=utcnow() - timedelta(days=14))
    assert counts == {"answers": 1, "feedback": 1, "events": 1}
    with any_store.session() as s:
        assert {a.id for a in s.query(AnswerRow)} == {pending, fresh}
    assert any_store.claim_event("slack:old") is True and any_store.claim_event("slack:new") is False
    assert [f.correction for f in any_store.list_feedback()] == ["fix me"]


def test_migrations_match_the_models(any_store):
    """Alembic's head schema and the SQLAlchemy models (store.py, accounts.py) describe the same tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import knowledge.accounts  # noqa: F401  (its tables join Base.metadata)
    from knowledge.store import Base

    with any_store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_operational_counts_group_in_the_database(any_store):
    any_store.upsert_document(id="d1", source="/a.md", title="A", scope="default", status="ok", chunk_count=4)
    any_store.upsert_document(id="d2", source="/b.md", title="B", scope="default", status="ok", chunk_count=3)
    any_store.upsert_document(id="d3", source="/c.pdf", title="C", scope="default", status="failed")
    aid = any_store.log_answer(question="q", answer="a", mode="generated")
    any_store.record_feedback(aid, "u1", vote=1)
    any_store.record_feedback(aid, "u2", vote=-1, correction="fix")
    any_store.add_adapter(version="v1", path="/x/v1", status="rejected")
    assert any_store.operational_counts() == {
        "documents": {"ok": 2, "failed": 1},
        "chunks": {"ok": 7, "failed": 0},
        "corrections": {"pending": 1},
        "adapters": {"rejected": 1},
    }


def test_a_raw_at_sign_in_the_password_is_the_password(pg_url):
    # postgres has trust auth here, so any password connects: what matters is the host kbot dials
    user_url = pg_url.replace("://postgres@", "://postgres:p@ss@word@")
    store = Store(user_url)
    assert store.engine.url.host == "127.0.0.1" and store.engine.url.password == "p@ss@word"
    assert store.count_answers() == 0
