"""The local web chat and its JSON API (FastAPI). Slack's HTTP endpoint is mounted next to it by
bot/serve.py. The rules it shares with Slack and Discord (question limits, retry, de-duplication,
feedback outcomes) come from bot.channels.shared."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field

from bot.channels import shared
from bot.channels.web.metrics import add_operations
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
    history: list[str] = Field(default_factory=list, description="Earlier questions in this chat, oldest first.")
    user_id: str = Field("web", max_length=128)
    session_id: str = Field("", max_length=128)
    retry_of: str | None = Field(None, max_length=64, description="Ask the question of this failed answer again.")


class FeedbackRequest(BaseModel):
    answer_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field("web", min_length=1, max_length=128)
    vote: int = Field(0, ge=-1, le=1)
    correction: str | None = Field(None, max_length=8000)


def create_app(services: shared.Services) -> FastAPI:
    app = FastAPI(title="kbot", description="Knowledge assistant: web chat and JSON API.")
    settings = services.settings
    add_operations(app, services.store, secret(settings.metrics_token))  # /metrics and the access log

    def to_question(req: AskRequest, idempotency_key: str | None) -> Question:
        if idempotency_key and not shared.first_delivery(
                services.store, shared.delivery_key(PLATFORM, "request", idempotency_key[:128])):
            raise HTTPException(409, "This request (Idempotency-Key) was already handled.")
        text, history = req.question, tuple(Turn("user", h) for h in req.history[-settings.history_turns:])
        if req.retry_of:
            row = services.store.get_answer(req.retry_of)
            if row is None:
                raise HTTPException(404, shared.RETRY_GONE_TEXT)
            text, history = shared.retry_text(row), ()
        try:
            text = shared.check_question(text, settings)
        except QuestionRejected as exc:
            raise HTTPException(422 if not text.strip() else 413, str(exc)) from exc
        return Question(text, user_id=req.user_id, platform=PLATFORM, channel_id="web",
                        thread_id=req.session_id, scopes=tuple(settings.web_scopes), history=history)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.post("/api/ask")
    def ask(req: AskRequest, idempotency_key: str | None = Header(None)) -> dict:
        question = to_question(req, idempotency_key)
        trace = telemetry.AnswerTrace(PLATFORM)
        try:
            answer = services.engine.answer(question, trace)
            with trace.step("kbot.post"):
                return answer.to_dict()
        except AnswerFailed as exc:
            raise HTTPException(503, {"message": APOLOGY, "answer_id": exc.answer_id}) from exc
        finally:
            trace.end()

    @app.post("/api/ask/stream")
    def ask_stream(req: AskRequest, idempotency_key: str | None = Header(None)) -> StreamingResponse:
        question = to_question(req, idempotency_key)

        def events() -> Iterator[str]:
            trace = telemetry.AnswerTrace(PLATFORM)
            try:
                for item in services.engine.stream(question, trace):
                    if isinstance(item, Answer):
                        with trace.step("kbot.post"):
                            yield json.dumps({"type": "answer", **item.to_dict()}) + "\n"
                    else:
                        yield json.dumps({"type": "token", "text": item}) + "\n"
            except AnswerFailed as exc:
                yield json.dumps({"type": "error", "answer_id": exc.answer_id, "message": APOLOGY}) + "\n"
            finally:
                trace.end()

        return StreamingResponse(events(), media_type="application/x-ndjson")

    @app.post("/api/feedback")
    def feedback(req: FeedbackRequest) -> dict:
        if not req.vote and not (req.correction and req.correction.strip()):
            raise HTTPException(422, "Give a vote (+1 or -1) or a correction.")
        given = Feedback(req.answer_id, req.user_id, req.vote, req.correction, PLATFORM)
        outcome = shared.record_feedback(services.engine, given)
        message = shared.feedback_message(outcome, given)
        if outcome is shared.FeedbackOutcome.UNKNOWN_ANSWER:
            raise HTTPException(404, message)
        if outcome is shared.FeedbackOutcome.FAILED:
            raise HTTPException(503, message)
        return {"ok": True, "message": message}

    @app.get("/api/docs")
    def documents(scope: str | None = None) -> list[dict]:
        """Ingested documents, optionally of one scope."""
        if scope is not None:
            try:
                shared.check_scope(scope)
            except InvalidScope as exc:
                raise HTTPException(422, str(exc)) from exc
        return [{"source": d.source, "title": d.title, "scope": d.scope, "chunks": d.chunk_count,
                 "status": d.status, "error": d.error} for d in services.store.list_documents()
                if scope is None or d.scope == scope]

    @app.get("/answers/{answer_id}", response_class=HTMLResponse)
    def full_answer(answer_id: str) -> str:
        row = services.store.get_answer(answer_id)
        if row is None:
            raise HTTPException(404, f"Unknown answer id {answer_id!r}.")
        sources = "".join(
            f"<li><b>{html.escape(c.get('title', ''))}</b> {html.escape(str(c.get('page') or c.get('heading') or ''))}"
            f"<br><small>{html.escape(c.get('source', ''))}</small><blockquote>{html.escape(c.get('text', ''))}"
            "</blockquote></li>" for c in row.citations or [])
        return (f"<!doctype html><meta charset=utf-8><title>kbot answer</title><body style='font-family:sans-serif;"
                f"max-width:48rem;margin:2rem auto'><h2>{html.escape(row.question)}</h2>"
                f"<p style='white-space:pre-wrap'>{html.escape(row.answer)}</p><ol>{sources}</ol></body>")

    return app
