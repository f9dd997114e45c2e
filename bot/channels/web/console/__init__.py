"""The admin console: server-rendered pages for people with the admin role, one router per area.

Each area module has `router(ctx) -> APIRouter`; its routes depend on `require_admin`, its forms on
`csrf_protect`, and each change it makes writes one audit-log row. A new area (e.g. ingest jobs and
connectors) adds a module here, a line in AREAS, and its entry in pages.CONSOLE_NAV.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from bot.channels import shared
from bot.channels.web.access import Caller, require_admin
from bot.channels.web.console import adapters, documents, feedback, reviews, scopes, system, users
from bot.channels.web.console.context import ConsoleContext
from bot.channels.web.pages import back
from knowledge.accounts import Accounts


def console_router(services: shared.Services, learning: shared.LearningActions | None) -> APIRouter:
    ctx = ConsoleContext(services, learning, Accounts(services.store))
    router = APIRouter(prefix="/console")

    @router.get("", include_in_schema=False)
    def home(caller: Caller = Depends(require_admin)) -> object:
        return back("/console/documents")

    for area in (documents, reviews, feedback, adapters, scopes, users, system):
        router.include_router(area.router(ctx))
    return router
