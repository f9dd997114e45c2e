"""GET /metrics after questions, votes and an ingest: kbot's counters and histograms moved, the HTTP
metrics are there, the store-derived gauges are right, it never carries text, and the optional token."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bot.channels.web.app import create_app
from bot.wiring import Runtime
from tests.channels.web.helpers import demo_client, demo_settings
from tests.conftest import EXAMPLES, make_settings
from tests.engine.test_evaluation import CHUNKS
from tests.fakes import FakeEmbedder, FakeGenerator, FakeRetriever

QUESTION = "What is the VPN gateway for the Zanzibar office?"


def scrape(client: TestClient, **headers: str) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def app(tmp_path, store):
    rt = Runtime(demo_settings(tmp_path, min_score=0.2), store=store, index=FakeRetriever(CHUNKS),
                 generator=FakeGenerator("The VPN gateway is vpn.acme.example [1]"), embedder=FakeEmbedder())
    return rt, demo_client(create_app(rt))


def test_metrics_move_after_questions_votes_and_an_ingest(app, tmp_path, embedder):
    rt, client = app
    before = scrape(client)
    ids = [client.post("/api/ask", json={"question": QUESTION}).json()["answer_id"] for _ in range(2)]
    streamed = client.post("/api/ask/stream", json={"question": QUESTION})
    assert streamed.status_code == 200
    client.post("/api/feedback", json={"answer_id": ids[0], "vote": 1, "user_id": "u1"})
    client.post("/api/feedback", json={"answer_id": ids[1], "vote": -1, "user_id": "u1",
                                       "correction": "It is vpn2.acme.example"})
    # An ingest through the real ingestor (real embedder and Chroma) in the same process.
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "wifi.md").write_text((EXAMPLES / "docs" / "it" / "wifi.md").read_text())
    report = Runtime(make_settings(tmp_path / "kb"), embedder=embedder).ingestor.ingest_paths([folder])
    assert report.ok and report.chunks_embedded > 0

    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("kbot_questions_total", platform="web") == 3
    assert moved("kbot_answers_total", platform="web", mode="generated") == 3
    for histogram in ("kbot_answer_retrieve_seconds_count", "kbot_answer_first_token_seconds_count"):
        assert moved(histogram, platform="web") == 3, histogram
    assert moved("kbot_answer_seconds_count", platform="web", mode="generated") == 3
    assert moved("kbot_answer_seconds_sum", platform="web", mode="generated") > 0
    assert moved("kbot_feedback_total", platform="web", vote="up") == 1
    assert moved("kbot_feedback_total", platform="web", vote="down") == 1
    assert moved("kbot_feedback_total", platform="web", vote="correction") == 1
    assert moved("kbot_ingest_jobs_total", result="ok") == 1
    assert moved("kbot_ingest_files_total", outcome="added") == 1
    assert moved("kbot_ingest_chunks_total") == report.chunks_embedded
    assert moved("kbot_ingest_seconds_count") == 1
    assert value(after, "kbot_generations_in_flight") == 0
    assert value(after, "kbot_adapter_serving", version="base") == 1
    # read from this app's store at scrape time
    assert value(after, "kbot_corrections_pending") == 1
    assert value(after, "kbot_store_up") == 1
    # HTTP metrics by route template
    assert moved("http_requests_total", handler="/api/ask", method="POST", status="2xx") == 2
    assert moved("http_requests_total", handler="/api/feedback", method="POST", status="2xx") == 2
    assert value(after, "http_request_duration_seconds_count", handler="/api/ask", method="POST") >= 2


def test_metrics_carry_no_text(app):
    _, client = app
    aid = client.post("/api/ask", json={"question": QUESTION}).json()["answer_id"]
    client.post("/api/feedback", json={"answer_id": aid, "vote": -1, "correction": "Zanzibar is wrong"})
    body = client.get("/metrics").text
    for text in ("Zanzibar", "vpn.acme.example", aid):
        assert text not in body


def test_store_gauges_count_documents_and_adapter_versions(app, store):
    _, client = app
    store.upsert_document(id="d1", source="/a.md", title="A", scope="default", status="ok", chunk_count=4)
    store.upsert_document(id="d2", source="/b.pdf", title="B", scope="default", status="failed", chunk_count=0)
    store.add_adapter(version="v1", path="/x/v1", status="rejected")
    store.add_adapter(version="v2", path="/x/v2", status="candidate")
    samples = scrape(client)
    assert value(samples, "kbot_documents", status="ok") == 1 and value(samples, "kbot_documents", status="failed") == 1
    assert value(samples, "kbot_chunks_indexed", status="ok") == 4
    assert value(samples, "kbot_adapter_versions", status="rejected") == 1
    assert value(samples, "kbot_adapter_versions", status="candidate") == 1


def test_metrics_token(tmp_path, store):
    rt = Runtime(demo_settings(tmp_path, metrics_token="s3cret-scrape"), store=store)
    client = TestClient(create_app(rt))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"}).status_code == 200
    assert client.get("/healthz").status_code == 200  # the health check stays open


def test_no_session_needed_and_a_broken_store_does_not_fail_the_scrape(app, monkeypatch):
    rt, client = app

    def down():
        raise ConnectionError("database is down")

    monkeypatch.setattr(rt.store, "operational_counts", down)
    samples = scrape(client)
    assert value(samples, "kbot_store_up") == 0


def test_grafana_dashboard_uses_only_metric_names_kbot_exports(app):
    import json
    import re

    _, client = app
    client.post("/api/ask", json={"question": QUESTION})
    exported = {family.name for family in text_string_to_metric_families(client.get("/metrics").text)}
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {name for e in exprs for name in re.findall(r"\b((?:kbot|http)_[a-z_]+)", e)}
    suffixes = ("_bucket", "_count", "_sum", "_total", "_created")
    unknown = {n for n in used if n not in exported and not any(n.endswith(s) and n[: -len(s)] in exported
                                                                for s in suffixes)}
    assert not unknown, unknown
    # every metric family kbot defines has a panel
    base = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in used}
    ours = {n for n in exported if n.startswith("kbot_") and not n.endswith("_created")}
    assert ours <= base, ours - base
