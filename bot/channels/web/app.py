"""The web chat, its JSON API and the admin console (FastAPI). Slack's HTTP endpoint is mounted next
to it by bot/serve.py. The rules it shares with Slack and Discord (question limits, retry,
de-duplication, feedback outcomes, the question rate) come from bot.channels.shared.

Every route but /healthz, /metrics and the sign-in pages needs a signed-in caller (access.py), and
answers, documents and feedback are limited to the caller's scopes: what they may not see is a 404.

What the browser gets never contains a path on the server: a citation carries its title, location,
a link that opens (the document's URL, else the source on the answer's page `/answers/{id}`) and its
snippet as safe HTML (bot/channels/markdown.py); the answer comes as text and as safe HTML too."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from bot.channels import shared
from bot.channels.markdown import is_web_link, to_html
from bot.channels.web import security
from bot.channels.web.access import Caller, csrf_protect, require_user
from bot.channels.web.console import console_router
from bot.channels.web.metrics import add_operations
from bot.channels.web.signin import signin_router
from bot.core import telemetry
from bot.core.errors import AnswerFailed, InvalidScope, QuestionRejected
from bot.core.settings import secret
from bot.core.types import Answer, Feedback, Question, Turn

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
PLATFORM = "web"
APOLOGY = "Sorry, something went wrong while answering. Please retry."


class AskRequest(BaseModel):
    question: str = Field("", description="The question (empty when `retry_of` names a failed answer).")
    history: list[str] = Field(default_factory=list, max_length=50,
                               description="Earlier questions in this chat, oldest first (the last few count).")
    session_id: str = Field("", max_length=128)
    retry_of: str | None = Field(None, max_length=64, description="Ask the question of this failed answer again.")


class FeedbackRequest(BaseModel):
    answer_id: str = Field(min_length=1, max_length=64)
    vote: int = Field(0, ge=-1, le=1)
    correction: str | None = Field(None, max_length=8000)


def web_answer(answer: Answer) -> dict:
    """The JSON of an answer for the browser: `Answer.to_dict()` without server paths, plus rendered
    HTML for the answer and each snippet, and each source's link."""
    data = answer.to_dict()
    data["answer_html"] = to_html(answer.text)
    for number, (shown, cite) in enumerate(zip(data["citations"], answer.citations, strict=True), 1):
        shown.pop("source", None)  # a file path on the server, or the URL (kept in `url`)
        shown["location"] = cite.location
        shown["link"] = cite.url if is_web_link(cite.url) else source_anchor(answer.answer_id, number)
        shown["snippet_html"] = to_html(cite.text)
    return data


def source_anchor(answer_id: str, number: int) -> str:
    return f"/answers/{answer_id}#source-{number}"


def create_app(services: shared.Services, learning: shared.LearningActions | None = None) -> FastAPI:
    # The API description is served to signed-in callers only (/api/openapi.json, /api/reference).
    app = FastAPI(title="kbot", description="Knowledge assistant: web chat and JSON API.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    settings = services.settings
    add_operations(app, services.store, secret(settings.metrics_token))  # /metrics and the access log
    from knowledge.accounts import Accounts

    app.state.settings, app.state.accounts = settings, Accounts(services.store)
    security.install(app, settings)
    app.include_router(signin_router(settings, app.state.accounts))
    app.include_router(console_router(services, learning))
    questions = shared.RateLimit.questions(settings)

    def visible_answer(answer_id: str, caller: Caller, missing: str) -> object:
        """The stored answer when the caller may read every scope it was made from; else 404."""
        row = services.store.get_answer(answer_id)
        if row is None or not caller.can_read(row.scopes or [settings.default_scope]):
            raise HTTPException(404, missing)
        return row

    def known_scopes() -> list[str]:
        return sorted({d.scope for d in services.store.list_documents()})

    def to_question(req: AskRequest, idempotency_key: str | None, caller: Caller) -> Question:
        wait = questions.retry_after(PLATFORM, caller.user_id)
        if wait:
            raise HTTPException(429, shared.slow_down_text(wait), headers={"Retry-After": str(wait)})
        if idempotency_key and not shared.first_delivery(
                services.store, shared.delivery_key(PLATFORM, "request", idempotency_key[:128])):
            raise HTTPException(409, "This request (Idempotency-Key) was already handled.")
        history = tuple(Turn("user", h[:settings.max_question_chars]) for h in req.history[-settings.history_turns:])
        text = req.question
        if req.retry_of:
            row = visible_answer(req.retry_of, caller, shared.RETRY_GONE_TEXT)
            text, history = shared.retry_text(row), ()
        try:
            text = shared.check_question(text, settings)
        except QuestionRejected as exc:
            raise HTTPException(422 if not text.strip() else 413, str(exc)) from exc
        scopes = caller.question_scopes(known_scopes() if caller.admin else ())
        return Question(text, user_id=caller.user_id, platform=PLATFORM, channel_id="web",
                        thread_id=req.session_id, scopes=scopes, history=history)

    @app.get("/", response_class=HTMLResponse)
    def index(caller: Caller = Depends(require_user)) -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(caller: Caller = Depends(require_user)) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/reference", include_in_schema=False)
    def reference(caller: Caller = Depends(require_user)) -> HTMLResponse:
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/api/openapi.json", title="kbot API")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.post("/api/ask", dependencies=[Depends(csrf_protect)])
    def ask(req: AskRequest, idempotency_key: str | None = Header(None),
            caller: Caller = Depends(require_user)) -> dict:
        question = to_question(req, idempotency_key, caller)
        trace = telemetry.AnswerTrace(PLATFORM)
        try:
            answer = services.engine.answer(question, trace)
            with trace.step("kbot.post"):
                return web_answer(answer)
        except AnswerFailed as exc:
            raise HTTPException(503, {"message": APOLOGY, "answer_id": exc.answer_id}) from exc
        finally:
            trace.end()

    @app.post("/api/ask/stream", dependencies=[Depends(csrf_protect)])
    def ask_stream(req: AskRequest, idempotency_key: str | None = Header(None),
                   caller: Caller = Depends(require_user)) -> StreamingResponse:
        question = to_question(req, idempotency_key, caller)

        def events() -> Iterator[str]:
            trace = telemetry.AnswerTrace(PLATFORM)
            try:
                for item in services.engine.stream(question, trace):
                    if isinstance(item, Answer):
                        with trace.step("kbot.post"):
                            yield json.dumps({"type": "answer", **web_answer(item)}) + "\n"
                    else:
                        yield json.dumps({"type": "token", "text": item}) + "\n"
            except AnswerFailed as exc:
                yield json.dumps({"type": "error", "answer_id": exc.answer_id, "message": APOLOGY}) + "\n"
            finally:
                trace.end()

        return StreamingResponse(events(), media_type="application/x-ndjson")

    @app.post("/api/feedback", dependencies=[Depends(csrf_protect)])
    def feedback(req: FeedbackRequest, caller: Caller = Depends(require_user)) -> dict:
        if not req.vote and not (req.correction and req.correction.strip()):
            raise HTTPException(422, "Give a vote (+1 or -1) or a correction.")
        visible_answer(req.answer_id, caller, shared.UNKNOWN_ANSWER_TEXT)
        # Recorded under the signed-in identity, never an id the client chose.
        given = Feedback(req.answer_id, caller.user_id, req.vote, req.correction, PLATFORM, verified=caller.verified)
        outcome = shared.record_feedback(services.engine, given)
        message = shared.feedback_message(outcome, given)
        if outcome is shared.FeedbackOutcome.UNKNOWN_ANSWER:
            raise HTTPException(404, message)
        if outcome is shared.FeedbackOutcome.FAILED:
            raise HTTPException(503, message)
        return {"ok": True, "message": message}

    @app.get("/api/docs")
    def documents(scope: str | None = None, caller: Caller = Depends(require_user)) -> list[dict]:
        """Ingested documents the caller may read, optionally of one scope."""
        if scope is not None:
            try:
                shared.check_scope(scope)
            except InvalidScope as exc:
                raise HTTPException(422, str(exc)) from exc
        return [{"source": d.source, "title": d.title, "scope": d.scope, "chunks": d.chunk_count,
                 "status": d.status, "error": d.error} for d in services.store.list_documents()
                if (scope is None or d.scope == scope) and caller.can_read([d.scope])]

    @app.get("/answers/{answer_id}", response_class=HTMLResponse)
    def full_answer(answer_id: str, caller: Caller = Depends(require_user)) -> str:
        """One answer as a page: the question, the answer and its sources (title, location, snippet,
        and a link to the original when it has a web address). Source links from Slack, Discord and
        the chat point here (#source-N) for documents without one."""
        return answer_page(visible_answer(answer_id, caller, f"Unknown answer id {answer_id[:64]!r}."))

    return app


_PAGE_STYLE = ("body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#222}"
               "li{margin-bottom:1rem}li:target{background:#fff8d6}blockquote{margin:.3rem 0 0 0;padding-left:.8rem;"
               "border-left:3px solid #ccc;color:#444}.where{color:#666;font-size:.9rem}")


def answer_page(row: object) -> str:
    """The HTML of a stored answer (no server paths; every piece of text escaped or rendered safely)."""
    items = []
    for number, c in enumerate(getattr(row, "citations", None) or [], 1):
        title = html.escape(str(c.get("title") or "Source"))
        url = c.get("url")
        heading = html.escape(f"page {c['page']}" if c.get("page") is not None else str(c.get("heading") or ""))
        link = (f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer nofollow">'
                f"{title}</a>" if is_web_link(url) else f"<b>{title}</b>")
        where = f' <span class="where">{heading}</span>' if heading else ""
        items.append(f'<li id="source-{number}">{link}{where}<blockquote>{to_html(str(c.get("text") or ""))}'
                     "</blockquote></li>")
    question = html.escape(getattr(row, "question", "") or "")
    return (f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width,"
            f"initial-scale=1'><title>kbot: {question[:80]}</title><style>{_PAGE_STYLE}</style><body>"
            f"<h1>{question}</h1>{to_html(getattr(row, 'answer', '') or '')}"
            f"<h2>Sources</h2><ol>{''.join(items)}</ol></body></html>")

