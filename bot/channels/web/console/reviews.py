"""The correction review queue: the question, the answer and its sources beside each pending
correction; approve (optionally after editing) or reject. The actions are the learning loop's
(training.corrections through shared.LearningActions), the same ones `kbot feedback review` runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request

from bot.channels.web.access import Caller, audit, csrf_protect, require_admin
from bot.channels.web.console.context import ConsoleContext
from bot.channels.web.pages import back, flash, render
from bot.core.errors import KbotError

PAGE = "/console/reviews"


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter(prefix="/reviews")
    store = ctx.services.store

    def learning() -> Any:
        if ctx.learning is None:
            raise HTTPException(503, "Reviews need the learning loop, which this server did not start.")
        return ctx.learning

    @r.get("")
    def page(request: Request, caller: Caller = Depends(require_admin)) -> Any:
        pending = [(f, store.get_answer(f.answer_id)) for f in store.list_feedback(correction_status="pending")]
        done = [f for f in store.list_feedback() if f.correction_status in ("approved", "rejected")][-20:]
        names = {u.id: u.username for u in ctx.accounts.list()}  # web feedback is stored by account id
        return render(request, "console/reviews.html", caller, nav="reviews", pending=pending, names=names,
                      done=list(reversed(done)), available=ctx.learning is not None)

    @r.post("/{feedback_id}/approve", dependencies=[Depends(csrf_protect)])
    def approve(request: Request, feedback_id: int, text: str = Form("", max_length=8000),
                caller: Caller = Depends(require_admin)) -> Any:
        actions = learning()
        row = next((f for f in store.list_feedback(correction_status="pending") if f.id == feedback_id), None)
        if row is None:
            raise HTTPException(404, "No pending correction with that id.")
        edited = text.strip() if text.strip() and text.strip() != (row.correction or "").strip() else None
        try:
            summary = actions.approve(feedback_id, edited)
        except KbotError as exc:
            flash(request, f"#{feedback_id}: {exc}", "error")
            return back(PAGE)
        audit(request, caller, "correction.approve", f"feedback:{feedback_id}", "edited" if edited else "")
        flash(request, f"Correction #{feedback_id} approved{' (edited)' if edited else ''}: {summary}")
        return back(PAGE)

    @r.post("/{feedback_id}/reject", dependencies=[Depends(csrf_protect)])
    def reject(request: Request, feedback_id: int, caller: Caller = Depends(require_admin)) -> Any:
        try:
            learning().reject(feedback_id)
        except KbotError as exc:
            raise HTTPException(404, str(exc)) from exc
        audit(request, caller, "correction.reject", f"feedback:{feedback_id}")
        flash(request, f"Correction #{feedback_id} rejected.")
        return back(PAGE)

    return r
