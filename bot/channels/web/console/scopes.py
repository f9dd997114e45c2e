"""Scopes: which knowledge scopes each Slack channel and Discord channel or server searches (the
mappings `/kbot scope` makes), the documents per scope, and the mappings fixed in settings."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request

from bot.channels import shared
from bot.channels.web.access import Caller, audit, csrf_protect, require_admin
from bot.channels.web.console.context import ConsoleContext
from bot.channels.web.pages import back, flash, render
from bot.core.errors import InvalidScope

PAGE = "/console/scopes"
PLATFORMS = ("slack", "discord")


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter(prefix="/scopes")
    store = ctx.services.store
    settings = ctx.services.settings

    @r.get("")
    def page(request: Request, caller: Caller = Depends(require_admin)) -> Any:
        per_scope = Counter(d.scope for d in store.list_documents())
        configured = [("slack", k, v) for k, v in settings.slack_channel_scopes.items()]
        configured += [("discord", k, v) for k, v in settings.discord_channel_scopes.items()]
        return render(request, "console/scopes.html", caller, nav="scopes", mappings=store.list_channel_scopes(),
                      configured=configured, per_scope=sorted(per_scope.items()),
                      guild_scopes=settings.discord_guild_scopes, web_scopes=settings.web_scopes,
                      shared_scopes=settings.shared_scopes)

    @r.post("", dependencies=[Depends(csrf_protect)])
    def set_mapping(request: Request, platform: str = Form(...), place: str = Form(..., max_length=128),
                    scopes: str = Form(..., max_length=1000), caller: Caller = Depends(require_admin)) -> Any:
        if platform not in PLATFORMS:
            raise HTTPException(422, "Choose slack or discord.")
        place = place.strip()
        if not place or not all(c.isalnum() or c in ":-_" for c in place):
            raise HTTPException(422, "Give a channel id (e.g. C0123ABC), or guild:<server id> for a Discord server.")
        try:
            names = shared.parse_scopes(scopes)
        except InvalidScope as exc:
            flash(request, str(exc), "error")
            return back(PAGE)
        store.set_channel_scopes(platform, place, names)
        audit(request, caller, "scope.map", f"{platform}:{place}", ",".join(names))
        flash(request, f"{platform} {place} now searches: {', '.join(names)}.")
        return back(PAGE)

    @r.post("/delete", dependencies=[Depends(csrf_protect)])
    def delete(request: Request, platform: str = Form(...), place: str = Form(...),
               caller: Caller = Depends(require_admin)) -> Any:
        if not store.delete_channel_scopes(platform, place):
            raise HTTPException(404, "No such mapping.")
        audit(request, caller, "scope.unmap", f"{platform}:{place}")
        flash(request, f"{platform} {place} is back to its default scopes.")
        return back(PAGE)

    return r
