"""Idempotent ingestion: read -> chunk -> embed -> upsert, with deletes that propagate.

Each file becomes one document whose id derives from its source. Its content hash (bytes, scope
and chunking settings) is kept in the relational store, which plays the docstore's role for
de-duplication: an unchanged file is skipped before anything is parsed or embedded, and the hash
table is shared by every worker when the store is PostgreSQL. Chunking and embedding run as a
LlamaIndex IngestionPipeline over a batch of files, so the embedder sees full batches.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from llama_index.core import Document
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter
from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship, RelatedNodeInfo
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot.core import telemetry
from bot.core.errors import ReaderError, UnsupportedType
from bot.core.settings import Settings
from knowledge.index import KnowledgeIndex
from knowledge.readers import SUPPORTED_EXTENSIONS, ArchiveLimits, read_bytes, read_file
from knowledge.store import Store

log = logging.getLogger(__name__)
EMBED_KEYS = ("title", "heading")  # the only metadata the embedder reads along with the text
BATCH_CHUNKS = 512
READ_AHEAD = 8  # files parsed ahead of the embedder
_DONE = object()


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.updated)} updated", f"{len(self.unchanged)} unchanged",
                 f"{len(self.skipped)} skipped", f"{len(self.failed)} failed"]
        if self.removed:
            parts.append(f"{len(self.removed)} removed")
        return ", ".join(parts) + f" ({self.chunks_embedded} chunks embedded in {self.seconds:.1f}s)"


@dataclass
class _Prepared:
    path: Path
    source: str
    doc_id: str
    title: str
    scope: str
    content_hash: str
    size: int
    existed: bool
    nodes: list[BaseNode]


def doc_id_for(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def discover(paths: Iterable[Path]) -> Iterator[Path]:
    """Files under `paths` (directories walked recursively, hidden files skipped), sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*")
                              if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            yield path


class Ingestor:
    def __init__(self, index: KnowledgeIndex, store: Store, settings: Settings):
        self.index = index
        self.store = store
        self.settings = settings
        # A copy: chunking runs on the reader thread while the embedder uses its own tokenizer, and a
        # Rust tokenizer shared across threads fails with "Already borrowed".
        tokenizer = copy.deepcopy(index.embedder.tokenizer)
        tokenizer.model_max_length = 1 << 30  # it only counts tokens here: no "longer than 256" warnings
        # disable_cache: the pipeline's cache would keep every chunk in memory and hide re-embeds.
        self.parse = IngestionPipeline(disable_cache=True, transformations=[
            MarkdownNodeParser(),
            SentenceSplitter(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                             tokenizer=lambda text: tokenizer.encode(text, add_special_tokens=False)),
        ])
        self.embed = IngestionPipeline(transformations=[index.embedder.llama], disable_cache=True)
        self._settings_key = f"{settings.chunk_size}/{settings.chunk_overlap}/{index.embedder.model_dir.name}"
        self.archive = ArchiveLimits(int(settings.max_unzipped_mb * 1024 * 1024), settings.max_zip_ratio)

    # --- public --------------------------------------------------------------------------------
    def ingest_paths(
        self, paths: list[Path], scope: str | None = None, prune: bool = False, progress: bool = False
    ) -> IngestReport:
        """Ingest files and folders. With prune, documents under a given folder whose file is gone
        are forgotten."""
        scope = scope or self.settings.default_scope
        report = IngestReport()
        started = time.perf_counter()
        files = []
        for p in discover(Path(p) for p in paths):
            if not p.exists():
                report.failed.append((str(p), "no such file or directory"))
            else:
                files.append(p)
        with _progress(progress, len(files)) as bar:
            task = bar.add_task("ingesting", total=len(files))
            batch: list[_Prepared] = []
            for prepared in self._read_ahead(files, scope, report, lambda: bar.advance(task)):
                batch.append(prepared)
                if sum(len(p.nodes) for p in batch) >= BATCH_CHUNKS:
                    self._write(batch, report, bar, task, started)
                    batch = []
            self._write(batch, report, bar, task, started)
        if prune:
            for folder in (Path(p).resolve() for p in paths if Path(p).is_dir()):
                for doc in self.store.list_documents():
                    if doc.source.startswith(str(folder) + "/") and not Path(doc.source).exists():
                        self.forget(doc.source)
                        report.removed.append(doc.source)
        report.seconds = time.perf_counter() - started
        telemetry.record_ingest(report)
        log.info("ingest: %s", report.summary())
        return report

    def ingest_file(self, path: Path, scope: str | None = None, source: str | None = None,
                    title: str | None = None) -> IngestReport:
        """Ingest one file, optionally under another source name (a URL, an upload's name). This is the
        path of files from people (chat uploads, the console, URLs): PDFs and DOCX files are parsed in
        a child process with a memory cap (KBOT_PARSE_MEMORY_MB)."""
        report = IngestReport()
        started = time.perf_counter()
        prepared = self._prepare(Path(path), scope or self.settings.default_scope, source, report, title,
                                 isolated=self.settings.parse_memory_mb > 0)
        if prepared is not None:
            self._write([prepared], report, None, None, started)
        report.seconds = time.perf_counter() - started
        telemetry.record_ingest(report)
        return report

    def forget(self, source: str) -> int:
        """Remove a document and its chunks; returns the number of chunks removed (-1: unknown)."""
        doc = self.store.find_document(source) or self.store.find_document(str(Path(source).resolve()))
        if doc is None:
            return -1
        removed = self.index.delete(doc.id)
        self.store.delete_document(doc.id)
        return removed

    # --- steps ---------------------------------------------------------------------------------
    def _read_ahead(self, files: list[Path], scope: str, report: IngestReport,
                    on_skip: Callable[[], None]) -> Iterator[_Prepared]:
        """The files that need embedding, read and chunked on a worker thread: parsing is Python work
        that runs in the gaps the embedder (torch, which releases the GIL) leaves on the CPU."""
        ready: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
        stop = threading.Event()

        def read() -> None:
            try:
                for path in files:
                    if stop.is_set():
                        return
                    prepared = self._prepare(path, scope, None, report)
                    if prepared is None:
                        on_skip()
                    else:
                        ready.put(prepared)
            except BaseException as exc:  # handed to the caller's thread and raised there
                ready.put(exc)
            finally:
                ready.put(_DONE)

        reader = threading.Thread(target=read, name="kbot-ingest-reader", daemon=True)
        reader.start()
        try:
            while (item := ready.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:  # on an error or an interrupt in the caller: stop the reader, unblock its put()
            stop.set()
            while reader.is_alive():
                try:
                    ready.get(timeout=0.1)
                except queue.Empty:
                    pass

    def _prepare(self, path: Path, scope: str, source: str | None, report: IngestReport,
                 title: str | None = None, isolated: bool = False) -> _Prepared | None:
        source = source or str(path.resolve())
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            report.skipped.append((source, f"unsupported file type {path.suffix or '(none)'}"))
            return None
        doc_id = doc_id_for(source)
        previous = self.store.get_document(doc_id)
        max_bytes = int(self.settings.max_file_mb * 1024 * 1024)
        try:
            if path.stat().st_size > max_bytes:
                read_file(path, max_bytes=max_bytes)  # raises the reader's clear size message unread
            data = path.read_bytes()
            digest = hashlib.sha256(data + f"|{scope}|{self._settings_key}".encode()).hexdigest()
            if previous is not None and previous.content_hash == digest and previous.status == "ok":
                report.unchanged.append(source)
                return None
            result = self._parse(data, path.name, max_bytes, isolated)
            nodes = self._chunk(result, source, doc_id, title or result.title, scope, digest)
            if not nodes:
                raise ReaderError("no text to index")
        except UnsupportedType as exc:
            report.skipped.append((source, str(exc)))
            return None
        except (ReaderError, OSError) as exc:
            reason = str(exc) if isinstance(exc, ReaderError) else f"cannot read file: {exc.strerror or exc}"
            report.failed.append((source, reason))
            if previous is None:
                self.store.upsert_document(id=doc_id, source=source, title=path.name, scope=scope,
                                           status="failed", error=reason, size_bytes=0)
            else:  # the old version stays retrievable; the listing says the new one failed
                self.store.upsert_document(id=doc_id, status="stale", error=reason)
            log.warning("failed: %s: %s", path.name, reason)
            return None
        return _Prepared(path, source, doc_id, title or result.title, scope, digest, len(data),
                         previous is not None and previous.status != "failed", nodes)

    def _parse(self, data: bytes, name: str, max_bytes: int, isolated: bool):  # noqa: ANN202 (a ReadResult)
        from knowledge.sandbox import ISOLATED_SUFFIXES, read_isolated

        if isolated and name.lower().endswith(ISOLATED_SUFFIXES):
            return read_isolated(data, name, max_bytes=max_bytes, archive=self.archive,
                                 memory_mb=self.settings.parse_memory_mb)
        return read_bytes(data, name, max_bytes=max_bytes, archive=self.archive)

    def _chunk(self, result, source: str, doc_id: str, title: str, scope: str, digest: str) -> list[BaseNode]:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        url = source if source.startswith(("http://", "https://")) else ""
        docs = []
        for section in result.sections:
            meta = {"source": source, "title": title, "scope": scope, "content_hash": digest,
                    "ingested_at": now, "url": url, "page": section.page if section.page is not None else -1}
            # Sections need ids of their own (LlamaIndex merges metadata of same-id documents). The
            # splitter reserves room for the metadata the embedder and LM see; excluding the rest
            # keeps chunk boundaries independent of the file's path, scope and ingest time.
            docs.append(Document(id_=f"{doc_id}:{len(docs)}", text=section.text, metadata=meta,
                                 excluded_embed_metadata_keys=[k for k in meta if k not in EMBED_KEYS],
                                 excluded_llm_metadata_keys=list(meta)))
        nodes = self.parse.run(documents=docs)
        for position, node in enumerate(nodes):
            # ref_doc_id (LlamaIndex's "doc_id" in Chroma metadata) names the file, not the section.
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
            header = str(node.metadata.pop("header_path", "") or "").strip("/")
            first = node.get_content().lstrip().splitlines()[0] if node.get_content().strip() else ""
            own = first.lstrip("#").strip() if first.startswith("#") else ""
            node.metadata["heading"] = " > ".join(p for p in [*header.split("/"), own] if p)[:300]
            node.metadata["position"] = position
            # The content hash in the id makes a new version's chunks distinct from the old ones,
            # so the index can add the new version before it deletes the old.
            node.id_ = f"{doc_id}-{digest[:8]}-{position:05d}"
            node.excluded_embed_metadata_keys = [k for k in node.metadata if k not in EMBED_KEYS]
            node.excluded_llm_metadata_keys = list(node.metadata)
        return [n for n in nodes if n.get_content().strip()]

    def _write(self, batch: list[_Prepared], report: IngestReport, bar, task, started: float) -> None:
        if not batch:
            return
        # Sorted by length, each embedder batch holds texts of similar size, so little compute goes
        # to padding (sentence-transformers only sorts within one call of embed_batch_size texts).
        nodes = sorted((n for p in batch for n in p.nodes), key=lambda n: len(n.get_content(MetadataMode.EMBED)))
        embedded = {n.node_id: n for n in self.embed.run(nodes=nodes)}
        report.chunks_embedded += len(nodes)
        self.index.replace_many({p.doc_id: [embedded[n.node_id] for n in p.nodes] for p in batch}, bump=False)
        for p in batch:
            self.store.upsert_document(
                id=p.doc_id, source=p.source, title=p.title, scope=p.scope, content_hash=p.content_hash,
                chunk_count=len(p.nodes), size_bytes=p.size, status="ok", error=None,
                ingested_at=datetime.now(UTC).replace(tzinfo=None),
            )
            (report.updated if p.existed else report.added).append(p.source)
            if bar is not None:
                bar.advance(task)
        self.index.bump()
        if bar is not None:
            rate = report.chunks_embedded / max(time.perf_counter() - started, 1e-6)
            bar.update(task, description=f"ingesting ({report.chunks_embedded} chunks, {rate:.1f} chunks/s)")


def _progress(enabled: bool, total: int) -> Progress:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
               TimeElapsedColumn()]
    return Progress(*columns, disable=not enabled, transient=False)
