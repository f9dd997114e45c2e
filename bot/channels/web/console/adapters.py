"""Adapters of the learning loop: versions with their gate reports, train now, promote, roll back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from bot.channels.web.access import Caller, audit, csrf_protect, require_admin
from bot.channels.web.console.context import ConsoleContext
from bot.channels.web.pages import back, flash, render
from bot.core.errors import KbotError

PAGE = "/console/adapters"


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter(prefix="/adapters")
    store = ctx.services.store

    def learning() -> Any:
        if ctx.learning is None:
            raise HTTPException(503, "The learning loop is not running in this server.")
        return ctx.learning

    @r.get("")
    def page(request: Request, caller: Caller = Depends(require_admin)) -> Any:
        rows = list(reversed(store.list_adapters()))
        return render(request, "console/adapters.html", caller, nav="adapters", adapters=rows,
                      available=ctx.learning is not None)

    @r.post("/train", dependencies=[Depends(csrf_protect)])
    def train(request: Request, caller: Caller = Depends(require_admin)) -> Any:
        message = learning().train_now()
        audit(request, caller, "adapter.train")
        flash(request, message)
        return back(PAGE)

    @r.post("/rollback", dependencies=[Depends(csrf_protect)])
    def rollback(request: Request, caller: Caller = Depends(require_admin)) -> Any:
        try:
            now = learning().rollback()
        except KbotError as exc:
            flash(request, str(exc), "error")
            return back(PAGE)
        audit(request, caller, "adapter.rollback", now or "base")
        flash(request, f"Rolled back: now serving {now or 'the base model'}.")
        return back(PAGE)

    @r.post("/{version}/promote", dependencies=[Depends(csrf_protect)])
    def promote(request: Request, version: str, caller: Caller = Depends(require_admin)) -> Any:
        try:
            learning().promote(version)
        except KbotError as exc:
            flash(request, str(exc), "error")
            return back(PAGE)
        audit(request, caller, "adapter.promote", version)
        flash(request, f"{version} is now served.")
        return back(PAGE)

    return r
