"""The effective settings (secrets masked) and the audit log."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request

from bot.channels.web.access import Caller, require_admin
from bot.channels.web.console.context import ConsoleContext
from bot.channels.web.pages import render
from knowledge.urls import mask_url


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter()
    settings = ctx.services.settings

    @r.get("/settings")
    def settings_page(request: Request, caller: Caller = Depends(require_admin)) -> Any:
        rows = [(k, v if isinstance(v, str) else json.dumps(v, default=str))
                for k, v in settings.masked(mask_url).items()]
        return render(request, "console/settings.html", caller, nav="settings", rows=rows,
                      mode=settings.auth_mode)

    @r.get("/audit")
    def audit_page(request: Request, caller: Caller = Depends(require_admin)) -> Any:
        return render(request, "console/audit.html", caller, nav="audit", rows=ctx.accounts.audit_log(500))

    return r
