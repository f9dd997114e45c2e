"""Ingestion into a real Chroma store with the real embedder: idempotence, change and delete
propagation, bad files, metadata and scope filtering."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.wiring import Runtime
from tests.conftest import EXAMPLES, make_settings


@pytest.fixture
def rt(tmp_path, embedder) -> Runtime:
    runtime = Runtime(make_settings(tmp_path / "data"), embedder=embedder)
    return runtime


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in ("it/vpn.md", "it/wifi.md", "finance/expense-policy.pdf", "hr/remote-work-policy.docx",
                 "it/helpdesk.html", "facilities/office-directory.csv", "finance/payroll.txt"):
        shutil.copy(EXAMPLES / "docs" / name, folder / Path(name).name)
    return folder


def texts(rt: Runtime, query: str, scopes=("default",)) -> str:
    return "\n".join(c.text for c in rt.index.retrieve(query, list(scopes), 5))


def test_second_ingest_embeds_nothing(rt, corpus):
    first = rt.ingestor.ingest_paths([corpus])
    assert first.ok and len(first.added) == 7 and first.chunks_embedded > 7
    count = rt.index.count()
    second = rt.ingestor.ingest_paths([corpus])
    assert second.chunks_embedded == 0 and len(second.unchanged) == 7 and not second.added
    assert rt.index.count() == count


def test_chunks_carry_metadata_and_fit_the_embedder(rt, corpus):
    rt.ingestor.ingest_paths([corpus], scope="default")
    got = rt.index.collections.get_all(["documents", "metadatas"])
    metas = got["metadatas"]
    for key in ("source", "title", "heading", "page", "scope", "content_hash", "ingested_at", "position"):
        assert all(key in m for m in metas), key
    pdf_pages = {m["page"] for m in metas if m["source"].endswith("expense-policy.pdf")}
    assert {1, 2} <= pdf_pages
    assert any(m["heading"] for m in metas if m["source"].endswith("vpn.md"))
    tok = rt.embedder.tokenizer
    longest = max(len(tok.encode(d, add_special_tokens=False)) for d in got["documents"])
    assert longest <= rt.embedder.max_seq_length - 20  # leaves room for the title/heading prefix
    docs = {d.source: d for d in rt.store.list_documents()}
    assert all(d.chunk_count > 0 and d.status == "ok" for d in docs.values())


def test_changed_file_replaces_its_chunks(rt, corpus):
    rt.ingestor.ingest_paths([corpus])
    vpn = corpus / "vpn.md"
    old = vpn.read_text()
    assert "vpn.acme.example" in old  # the fact this test replaces
    vpn.write_text(old.replace("vpn.acme.example", "gateway7.acme.example"))
    report = rt.ingestor.ingest_paths([corpus])
    assert report.updated == [str(vpn.resolve())] and len(report.unchanged) == 6
    found = texts(rt, "VPN gateway address")
    assert "gateway7.acme.example" in found and "vpn.acme.example" not in found
    assert rt.store.find_document(str(vpn.resolve())).chunk_count == len(rt.index.chunk_ids(
        rt.store.find_document(str(vpn.resolve())).id))


def test_failed_new_version_keeps_the_old_one(rt, corpus):
    rt.ingestor.ingest_paths([corpus])
    vpn = corpus / "vpn.md"
    vpn.write_bytes(b"\x00\x01\x02binary" * 100)
    report = rt.ingestor.ingest_paths([vpn])
    assert not report.ok and "binary" in report.failed[0][1]
    assert "vpn.acme.example" in texts(rt, "VPN gateway address")
    doc = rt.store.find_document(str(vpn.resolve()))
    assert doc.status == "stale" and "binary" in doc.error


def test_forget_and_prune_remove_chunks(rt, corpus):
    rt.ingestor.ingest_paths([corpus])
    wifi = str((corpus / "wifi.md").resolve())
    assert rt.ingestor.forget(wifi) > 0
    assert rt.store.find_document(wifi) is None
    assert all(c.source != wifi for c in rt.index.retrieve("guest wifi network", ["default"], 5))
    assert rt.ingestor.forget("/no/such/doc.md") == -1
    payroll = rt.store.find_document(str((corpus / "payroll.txt").resolve()))
    assert rt.index.chunk_ids(payroll.id)
    (corpus / "payroll.txt").unlink()
    report = rt.ingestor.ingest_paths([corpus], prune=True)
    assert report.removed == [payroll.source]
    assert rt.index.chunk_ids(payroll.id) == []
    assert all("payroll" not in c.source for c in rt.index.retrieve("payroll pay day salary", ["default"], 5))


def test_bad_files_each_get_one_clear_line_and_the_batch_goes_on(rt, tmp_path):
    import pypdf

    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(EXAMPLES / "docs" / "it" / "vpn.md", folder / "good.md")
    writer = pypdf.PdfWriter(clone_from=EXAMPLES / "docs" / "finance" / "expense-policy.pdf")
    writer.encrypt("s3cret")
    writer.write(folder / "encrypted.pdf")
    pdf = (EXAMPLES / "docs" / "finance" / "expense-policy.pdf").read_bytes()
    (folder / "corrupt.pdf").write_bytes(pdf[: len(pdf) // 3])
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (folder / "empty.md").write_text("")
    # Mostly UTF-8 with a few stray bytes: no encoding reads it as text.
    (folder / "mixed.txt").write_bytes("Grüße ".encode() * 20 + b"\xff\xfe\xfa" + "Grüße".encode() * 20)
    (folder / "huge.md").write_text("word " * 400_000)
    (folder / "image.png").write_bytes(b"\x89PNG\r\n")
    rt.settings.max_file_mb = 1.0
    report = rt.ingestor.ingest_paths([folder])
    reasons = {Path(s).name: r for s, r in report.failed}
    assert report.added == [str((folder / "good.md").resolve())]
    assert "encrypted" in reasons["encrypted.pdf"]
    assert "corrupt" in reasons["corrupt.pdf"]
    assert "binary" in reasons["binary.txt"]
    assert "empty" in reasons["empty.md"]
    assert "UTF-8" in reasons["mixed.txt"]
    assert "limit" in reasons["huge.md"]
    assert [Path(s).name for s, _ in report.skipped] == ["image.png"]
    assert not report.ok


def test_scope_filter_runs_in_both_searches(rt, corpus):
    rt.ingestor.ingest_paths([corpus])
    rt.ingestor.ingest_paths([EXAMPLES / "docs-restricted"], scope="leadership")
    question = "Project Nightjar acquisition budget"
    for search in (rt.index.vector_search, rt.index.keyword_search):
        assert all(c.scope == "default" for c in search(question, ["default"], 10))
        assert any(c.scope == "leadership" for c in search(question, ["default", "leadership"], 10))
    assert "Nightjar" not in texts(rt, question)


def test_keyword_index_follows_adds_updates_and_deletes(rt, corpus):
    def in_sync() -> bool:
        rt.index._sync_keywords()
        return set(rt.index.keywords.ids) == set(rt.index.collections.get_all([])["ids"])

    rt.ingestor.ingest_paths([corpus])
    assert in_sync()
    vpn = corpus / "vpn.md"
    vpn.write_text(vpn.read_text().replace("vpn.acme.example", "zebragate.acme.example"))
    rt.ingestor.ingest_paths([corpus])
    assert in_sync()
    assert any("zebragate" in c.text for c in rt.index.keyword_search("zebragate", ["default"], 3))
    rt.ingestor.forget(str(vpn.resolve()))
    assert in_sync()
    assert rt.index.keyword_search("zebragate", ["default"], 3) == []


def test_keyword_only_and_short_queries_work(rt, corpus):
    rt.ingestor.ingest_paths([corpus])
    for query in ("VPN", "wifi", "payroll"):
        hits = rt.index.retrieve(query, ["default"], 3)
        assert hits and (query.lower() in hits[0].source.lower() or query.lower() in hits[0].text.lower())


def test_rescoping_a_document_moves_its_chunks_between_scope_collections(rt, corpus):
    rt.ingestor.ingest_paths([corpus])
    vpn = rt.store.find_document(str((corpus / "vpn.md").resolve()))
    assert rt.index.chunk_ids(vpn.id)
    rt.ingestor.ingest_paths([corpus / "vpn.md"], scope="leadership")
    default, leadership = rt.index.collections.get("default"), rt.index.collections.get("leadership")
    assert default.get(where={"doc_id": vpn.id}, include=[])["ids"] == []
    moved = leadership.get(where={"doc_id": vpn.id}, include=[])["ids"]
    assert moved and sorted(moved) == sorted(rt.index.chunk_ids(vpn.id))
    assert rt.store.find_document(vpn.source).chunk_count == len(moved)
    assert all("vpn.md" not in c.source for c in rt.index.retrieve("VPN client setup", ["default"], 5))
    assert any("vpn.md" in c.source for c in rt.index.retrieve("VPN client setup", ["leadership"], 5))


def test_chunks_in_the_old_single_collection_layout_are_moved_once(tmp_path, embedder):
    from knowledge.chroma import chroma_client
    from knowledge.index import KnowledgeIndex

    client = chroma_client(None, tmp_path / "chroma")
    legacy = client.get_or_create_collection("kbase", metadata={"hnsw:space": "cosine"})
    texts = ["The VPN gateway is vpn.acme.example.", "The acquisition budget is 40 million."]
    legacy.add(ids=["a-1", "b-1"], embeddings=embedder.embed(texts), documents=texts,
               metadatas=[{"scope": "default", "doc_id": "a", "position": 0, "source": "/a.md"},
                          {"scope": "leadership", "doc_id": "b", "position": 0, "source": "/b.md"}])
    index = KnowledgeIndex(client, "kbase", embedder, make_settings(tmp_path / "data"))
    assert index.collections.meta.count() == 0 and index.count() == 2
    assert [c.id for c in index.vector_search("acquisition budget", ["default"], 5)] == ["a-1"]
    assert [c.id for c in index.vector_search("acquisition budget", ["leadership"], 5)] == ["b-1"]


def test_reader_thread_errors_reach_the_caller_and_an_interrupted_ingest_stops_the_reader(rt, corpus, monkeypatch):
    import threading

    def readers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "kbot-ingest-reader"]

    def broken_prepare(*args, **kwargs):
        raise RuntimeError("disk vanished")

    with monkeypatch.context() as m:
        m.setattr(rt.ingestor, "_prepare", broken_prepare)
        with pytest.raises(RuntimeError, match="disk vanished"):
            rt.ingestor.ingest_paths([corpus])
    assert not readers()

    def interrupted_write(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("knowledge.ingest.BATCH_CHUNKS", 1)  # write after the first file
    monkeypatch.setattr("knowledge.ingest.READ_AHEAD", 1)  # the reader would block on a full queue
    monkeypatch.setattr(rt.ingestor, "_write", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        rt.ingestor.ingest_paths([corpus])
    assert not readers()


def test_chunk_boundaries_do_not_depend_on_the_files_path_or_scope(rt, tmp_path):
    short = tmp_path / "a"
    deep = tmp_path / ("a-much-longer-folder-name-" * 6) / "nested"
    for folder in (short, deep):
        folder.mkdir(parents=True)
        shutil.copy(EXAMPLES / "docs" / "it" / "vpn.md", folder / "vpn.md")
    rt.ingestor.ingest_paths([short])
    rt.ingestor.ingest_paths([deep], scope="a-scope-with-a-long-name")
    by_source: dict[str, list[str]] = {}
    for chunk in sorted(rt.index.all_chunks(), key=lambda c: c.position):
        by_source.setdefault(chunk.source, []).append(chunk.text)
    first, second = by_source.values()
    assert first == second


def test_a_cp1252_file_is_ingested_with_its_characters(rt, tmp_path):
    folder = tmp_path / "windows"
    folder.mkdir()
    text = ("# Reisekosten\n\nDie Pauschale für Übernachtungen beträgt 25 € pro Nacht. „Quittungen“ sind "
            "nötig – bitte an die Buchhaltung.\n")
    (folder / "reisekosten.md").write_bytes(text.encode("cp1252"))
    report = rt.ingestor.ingest_paths([folder])
    assert report.ok and len(report.added) == 1, report.failed
    found = texts(rt, "Pauschale Übernachtungen")
    assert "25 € pro Nacht" in found and "„Quittungen“" in found and "nötig – bitte" in found
