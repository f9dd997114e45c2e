"""Documents: upload files, add a URL, list and search with scope and status, forget, change scope,
re-ingest. Uploads are kept under <data_dir>/uploads/web so that a change of scope or a re-ingest
can read them again; a URL is fetched again through the safe fetcher."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile

from bot.channels import shared
from bot.channels.web.access import Caller, audit, csrf_protect, require_admin
from bot.channels.web.console.context import ConsoleContext
from bot.channels.web.pages import back, flash, render
from bot.core.errors import DownloadError, InvalidScope, KbotError

log = logging.getLogger(__name__)
UPLOAD_PREFIX = "upload:"
PAGE = "/console/documents"


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter(prefix="/documents")
    services = ctx.services
    settings = services.settings
    uploads = Path(settings.data_dir) / "uploads" / "web"
    max_bytes = int(settings.max_file_mb * 1024 * 1024)

    def report_line(name: str, scope: str, report: Any) -> tuple[str, str]:
        if report.failed:
            return "error", f"{name}: {report.failed[0][1]}"
        if report.skipped:
            return "error", f"{name}: {report.skipped[0][1]}"
        return "ok", f"{name} into scope {scope}: {report.summary()}"

    def ingest(request: Request, path: Path, scope: str, source: str, label: str) -> None:
        """Ingest under `source` (the document keeps the title its reader finds) and say how it went."""
        try:
            report = services.ingestor.ingest_file(path, scope, source=source)
        except KbotError as exc:
            flash(request, f"{label}: {exc}", "error")
            return
        kind, text = report_line(label, scope, report)
        flash(request, text, kind)

    def scope_of(value: str) -> str:
        try:
            return shared.check_scope(value.strip() or settings.default_scope)
        except InvalidScope as exc:
            raise HTTPException(422, str(exc)) from exc

    @r.get("")
    def page(request: Request, q: str = "", scope: str = "", caller: Caller = Depends(require_admin)) -> Any:
        docs = services.store.list_documents()
        scopes = sorted({d.scope for d in docs} | {settings.default_scope})
        needle = q.strip().lower()
        shown = [d for d in docs if (not scope or d.scope == scope)
                 and (not needle or needle in (d.title or "").lower() or needle in d.source.lower())]
        return render(request, "console/documents.html", caller, nav="documents", docs=shown, total=len(docs),
                      scopes=scopes, q=q, scope=scope, max_mb=settings.max_file_mb)

    @r.post("/upload", dependencies=[Depends(csrf_protect)])
    async def upload(request: Request, file: UploadFile = File(...), scope: str = Form(""),
                     caller: Caller = Depends(require_admin)) -> Any:
        target = scope_of(scope)
        name = shared.safe_filename(file.filename or "upload")
        data = await file.read(max_bytes + 1)
        if len(data) > max_bytes:
            flash(request, f"{name} is larger than {settings.max_file_mb:g} MB.", "error")
            return back(PAGE)
        uploads.mkdir(parents=True, exist_ok=True)
        path = uploads / name
        path.write_bytes(data)
        audit(request, caller, "document.upload", UPLOAD_PREFIX + name, f"scope={target} bytes={len(data)}")
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(ingest, request, path, target, UPLOAD_PREFIX + name, name)
        return back(PAGE)

    @r.post("/url", dependencies=[Depends(csrf_protect)])
    def add_url(request: Request, url: str = Form(..., max_length=2048), scope: str = Form(""),
                caller: Caller = Depends(require_admin)) -> Any:
        target = scope_of(scope)
        audit(request, caller, "document.url", url, f"scope={target}")
        fetch_and_ingest(request, url.strip(), target)
        return back(PAGE)

    def fetch_and_ingest(request: Request, url: str, scope: str) -> None:
        with tempfile.TemporaryDirectory(prefix="kbot-web-") as tmp:
            try:
                path = shared.fetch_to(url, Path(tmp), max_bytes=max_bytes, policy=shared.fetch_policy(settings))
            except DownloadError as exc:
                flash(request, f"{url[:200]}: {exc}", "error")
                return
            ingest(request, path, scope, url, url[:200])

    def document(doc_id: str) -> Any:
        doc = services.store.get_document(doc_id)
        if doc is None:
            raise HTTPException(404, "No such document.")
        return doc

    def reingest(request: Request, doc: Any, scope: str) -> None:
        source = doc.source
        if source.startswith(UPLOAD_PREFIX) and (uploads / source[len(UPLOAD_PREFIX):]).exists():
            ingest(request, uploads / source[len(UPLOAD_PREFIX):], scope, source, doc.title or source)
        elif source.startswith(("http://", "https://")):
            fetch_and_ingest(request, source, scope)
        elif Path(source).is_file():
            ingest(request, Path(source), scope, source, doc.title or source)
        else:
            flash(request, f"The original of {doc.title or source} is not kept on the server; upload it again.",
                  "error")

    @r.post("/{doc_id}/reingest", dependencies=[Depends(csrf_protect)])
    def reingest_document(request: Request, doc_id: str, caller: Caller = Depends(require_admin)) -> Any:
        doc = document(doc_id)
        audit(request, caller, "document.reingest", doc.source)
        reingest(request, doc, doc.scope)
        return back(PAGE)

    @r.post("/{doc_id}/scope", dependencies=[Depends(csrf_protect)])
    def change_scope(request: Request, doc_id: str, scope: str = Form(...),
                     caller: Caller = Depends(require_admin)) -> Any:
        doc = document(doc_id)
        target = scope_of(scope)
        audit(request, caller, "document.scope", doc.source, f"{doc.scope} -> {target}")
        reingest(request, doc, target)
        return back(PAGE)

    @r.post("/{doc_id}/forget", dependencies=[Depends(csrf_protect)])
    def forget(request: Request, doc_id: str, caller: Caller = Depends(require_admin)) -> Any:
        doc = document(doc_id)
        removed = services.ingestor.forget(doc.source)
        if doc.source.startswith(UPLOAD_PREFIX):
            (uploads / shared.safe_filename(doc.source[len(UPLOAD_PREFIX):])).unlink(missing_ok=True)
        audit(request, caller, "document.forget", doc.source, f"chunks={removed}")
        flash(request, f"Forgot {doc.title or doc.source} ({max(removed, 0)} chunks).")
        return back(PAGE)

    return r
