"""The local web chat and its JSON API (FastAPI). Slack's HTTP endpoint is mounted here too."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field

from bot.engine import AnswerFailed
from bot.types import Answer, Feedback, Question, Turn
from bot.wiring import Runtime
from knowledge.store import UnknownAnswer

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")


class AskRequest(BaseModel):
    question: str = Field(min_length=1)
    history: list[str] = Field(default_factory=list, description="Earlier questions in this chat, oldest first.")
    user_id: str = Field("web", max_length=128)
    session_id: str = Field("", max_length=128)


class FeedbackRequest(BaseModel):
    answer_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field("web", min_length=1, max_length=128)
    vote: int = Field(0, ge=-1, le=1)
    correction: str | None = Field(None, max_length=8000)


def answer_dict(answer: Answer) -> dict:
    from bot.cli import answer_json

    return answer_json(answer)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="kbot", description="Knowledge assistant: web chat and JSON API.")
    settings = runtime.settings

    def to_question(req: AskRequest) -> Question:
        text = req.question.strip()
        if not text:
            raise HTTPException(422, "The question is empty.")
        if len(text) > settings.max_question_chars:
            raise HTTPException(413, f"The question is {len(text)} characters long; the limit is "
                                     f"{settings.max_question_chars}. Please shorten it.")
        history = tuple(Turn("user", h) for h in req.history[-settings.history_turns:])
        return Question(text, user_id=req.user_id, platform="web", channel_id="web", thread_id=req.session_id,
                        scopes=tuple(settings.web_scopes), history=history)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.post("/api/ask")
    def ask(req: AskRequest) -> dict:
        try:
            return answer_dict(runtime.engine.answer(to_question(req)))
        except AnswerFailed as exc:
            raise HTTPException(503, {"message": "Sorry, something went wrong while answering. Please retry.",
                                      "answer_id": exc.answer_id}) from exc

    @app.post("/api/ask/stream")
    def ask_stream(req: AskRequest) -> StreamingResponse:
        question = to_question(req)

        def events() -> Iterator[str]:
            try:
                for item in runtime.engine.stream(question):
                    if isinstance(item, Answer):
                        yield json.dumps({"type": "answer", **answer_dict(item)}) + "\n"
                    else:
                        yield json.dumps({"type": "token", "text": item}) + "\n"
            except AnswerFailed as exc:
                yield json.dumps({"type": "error", "answer_id": exc.answer_id,
                                  "message": "Sorry, something went wrong while answering. Please retry."}) + "\n"

        return StreamingResponse(events(), media_type="application/x-ndjson")

    @app.post("/api/feedback")
    def feedback(req: FeedbackRequest) -> dict:
        if not req.vote and not (req.correction and req.correction.strip()):
            raise HTTPException(422, "Give a vote (+1 or -1) or a correction.")
        try:
            runtime.engine.record_feedback(Feedback(req.answer_id, req.user_id, req.vote, req.correction, "web"))
        except UnknownAnswer as exc:
            raise HTTPException(404, f"Unknown answer id {req.answer_id!r}.") from exc
        return {"ok": True}

    @app.get("/api/docs")
    def documents() -> list[dict]:
        return [{"source": d.source, "title": d.title, "scope": d.scope, "chunks": d.chunk_count,
                 "status": d.status, "error": d.error} for d in runtime.store.list_documents()]

    @app.get("/answers/{answer_id}", response_class=HTMLResponse)
    def full_answer(answer_id: str) -> str:
        row = runtime.store.get_answer(answer_id)
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
