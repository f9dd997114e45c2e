"""Users and roles: local accounts, people who signed in through the IdP, their role and granted
scopes, and API tokens (shown once when created)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request

from bot.channels import shared
from bot.channels.web.access import Caller, audit, csrf_protect, require_admin
from bot.channels.web.console.context import ConsoleContext
from bot.channels.web.pages import back, flash, render
from bot.core.errors import InputError, StoreError

PAGE = "/console/users"


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter(prefix="/users")
    accounts = ctx.accounts

    def scopes_of(text: str) -> list[str]:
        return shared.parse_scopes(text) if text.strip() else []

    @r.get("")
    def page(request: Request, caller: Caller = Depends(require_admin)) -> Any:
        users = accounts.list()
        names = {u.id: u.username for u in users}
        return render(request, "console/users.html", caller, nav="users", users=users, tokens=accounts.tokens(),
                      names=names, mode=ctx.services.settings.auth_mode)

    @r.post("", dependencies=[Depends(csrf_protect)])
    def add(request: Request, username: str = Form(..., max_length=255), password: str = Form(..., max_length=1024),
            role: str = Form("user"), scopes: str = Form("", max_length=1000),
            caller: Caller = Depends(require_admin)) -> Any:
        try:
            user = accounts.add_local(username, password, role=role, scopes=scopes_of(scopes))
        except InputError as exc:
            flash(request, str(exc), "error")
            return back(PAGE)
        audit(request, caller, "user.add", user.username, f"role={user.role} scopes={','.join(user.scopes)}")
        flash(request, f"Added {user.username}.")
        return back(PAGE)

    @r.post("/{user_id}", dependencies=[Depends(csrf_protect)])
    def update(request: Request, user_id: str, role: str = Form(...), scopes: str = Form("", max_length=1000),
               disabled: str = Form(""), caller: Caller = Depends(require_admin)) -> Any:
        if user_id == caller.user_id and (role != "admin" or disabled):
            flash(request, "You cannot remove your own admin role or disable yourself.", "error")
            return back(PAGE)
        try:
            user = accounts.update(user_id, role=role, scopes=scopes_of(scopes), disabled=bool(disabled))
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from exc
        except InputError as exc:
            flash(request, str(exc), "error")
            return back(PAGE)
        audit(request, caller, "user.update", user.username,
              f"role={user.role} scopes={','.join(user.scopes)} disabled={user.disabled}")
        flash(request, f"Saved {user.username}.")
        return back(PAGE)

    @r.post("/{user_id}/tokens", dependencies=[Depends(csrf_protect)])
    def create_token(request: Request, user_id: str, name: str = Form("script", max_length=128),
                     caller: Caller = Depends(require_admin)) -> Any:
        try:
            row, plain = accounts.create_token(user_id, name)
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from exc
        audit(request, caller, "token.create", f"{user_id}:{row.id}", name)
        flash(request, f"New API token {name!r} (copy it now; it is not shown again): {plain}")
        return back(PAGE)

    @r.post("/tokens/{token_id}/revoke", dependencies=[Depends(csrf_protect)])
    def revoke(request: Request, token_id: str, caller: Caller = Depends(require_admin)) -> Any:
        try:
            row = accounts.revoke_token(token_id)
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from exc
        audit(request, caller, "token.revoke", f"{row.user_id}:{row.id}", row.name)
        flash(request, f"Revoked token {row.name!r}.")
        return back(PAGE)

    return r
