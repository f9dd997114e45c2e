"""Sign-in and sign-out: local accounts (password form) and OpenID Connect (authlib's Starlette
client: discovery, the authorization-code flow, ID-token checks against the IdP's JWKS). Password
attempts are rate-limited per address and per account name; a session starts fresh at each sign-in
(no fixation)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from bot.channels import shared
from bot.channels.web.access import (
    Caller,
    check_csrf,
    client_address,
    csrf_protect,
    csrf_token,
    find_caller,
    require_user,
)
from bot.channels.web.pages import back, render, safe_next
from bot.core.settings import Settings, secret
from knowledge.accounts import Accounts

log = logging.getLogger(__name__)
BAD_LOGIN = "Wrong user name or password."


def start_session(request: Request, user_id: str, mode: str) -> None:
    request.session.clear()
    request.session.update({"uid": user_id, "mode": mode})
    csrf_token(request)


def signin_router(settings: Settings, accounts: Accounts) -> APIRouter:
    router = APIRouter()
    limiter = shared.RateLimit(settings.sign_in_rate, settings.rate_limit_storage, namespace="sign-in")
    oauth = oidc_client(settings) if settings.auth_mode == "oidc" else None

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> Any:
        if find_caller(request) is not None:
            return back(safe_next(next))
        return render(request, "login.html", None, next=safe_next(next), oidc=oauth is not None)

    @router.post("/login", dependencies=[Depends(check_csrf)])
    def login(request: Request, username: str = Form(..., max_length=255), password: str = Form(..., max_length=1024),
              next: str = Form("/")) -> Any:
        wait = (limiter.retry_after("address", client_address(request))
                or limiter.retry_after("account", username.strip().lower()))
        if wait:
            return render(request, "login.html", None, next=safe_next(next), oidc=oauth is not None,
                          error=f"Too many attempts. Try again in {wait} seconds.", status_code=429)
        user = accounts.authenticate(username, password)
        if user is None:
            log.info("sign-in refused from %s", client_address(request))
            return render(request, "login.html", None, next=safe_next(next), oidc=oauth is not None,
                          error=BAD_LOGIN, status_code=401)
        start_session(request, user.id, settings.auth_mode)
        log.info("user %s signed in (password)", user.id)
        return back(safe_next(next))

    @router.post("/logout", dependencies=[Depends(csrf_protect)])
    def logout(request: Request) -> RedirectResponse:
        request.session.clear()
        return back("/login")

    @router.get("/api/me")
    def me(request: Request, caller: Caller = Depends(require_user)) -> dict:
        """Who is signed in, what they may read, and the token their browser sends with changes."""
        return {"user": caller.username, "name": caller.display_name, "admin": caller.admin,
                "scopes": list(caller.scopes), "via": caller.via, "csrf_token": csrf_token(request)}

    if oauth is not None:
        add_oidc_routes(router, settings, accounts, oauth)
    return router


# --- OpenID Connect ----------------------------------------------------------------------------------
def oidc_client(settings: Settings) -> Any:
    from authlib.integrations.starlette_client import OAuth

    if not (settings.oidc_issuer and settings.oidc_client_id):
        from bot.core.errors import ConfigError

        raise ConfigError("KBOT_WEB_AUTH=oidc needs KBOT_OIDC_ISSUER and KBOT_OIDC_CLIENT_ID (see README, Production).")
    oauth = OAuth()
    oauth.register(
        "idp", client_id=settings.oidc_client_id, client_secret=secret(settings.oidc_client_secret),
        server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
    )
    return oauth.idp


def groups_of(claims: dict[str, Any], claim: str) -> list[str]:
    value = claims.get(claim) or []
    return [value] if isinstance(value, str) else [str(v) for v in value if isinstance(v, str | int)]


def add_oidc_routes(router: APIRouter, settings: Settings, accounts: Accounts, idp: Any) -> None:
    callback_url = settings.public_url.rstrip("/") + "/auth/oidc/callback"

    @router.get("/auth/oidc/login")
    async def oidc_login(request: Request, next: str = "/") -> Any:
        request.session["next"] = safe_next(next)
        try:
            return await idp.authorize_redirect(request, callback_url)
        except Exception as exc:  # the IdP's discovery document could not be read
            log.warning("OIDC discovery failed: %s", type(exc).__name__)
            raise HTTPException(503, "The sign-in service cannot be reached; try again later.") from exc

    @router.get("/auth/oidc/callback")
    async def oidc_callback(request: Request) -> Any:
        try:
            token = await idp.authorize_access_token(request)
        except Exception as exc:  # OAuthError, a bad ID-token signature or claim, the IdP unreachable
            log.info("OIDC sign-in refused: %s %s", type(exc).__name__, getattr(exc, "error", ""))
            return render(request, "login.html", None, next="/", oidc=True, status_code=400,
                          error="Sign-in with your company account failed; please try again.")
        claims = dict(token.get("userinfo") or {})
        if settings.oidc_groups_claim not in claims:  # some IdPs put groups only in /userinfo
            try:
                claims.update(await idp.userinfo(token=token))
            except Exception:
                log.info("OIDC userinfo unavailable; signing in without groups")
        groups = groups_of(claims, settings.oidc_groups_claim)
        scopes = [s for g in groups for s in settings.oidc_group_scopes.get(g, [])]
        user = accounts.upsert_oidc(
            str(claims["sub"]), username=str(claims.get("preferred_username") or claims.get("email") or claims["sub"]),
            email=str(claims.get("email") or ""), display_name=str(claims.get("name") or ""),
            idp_scopes=list(dict.fromkeys(scopes)), idp_admin=bool(set(groups) & set(settings.oidc_admin_groups)))
        if user.disabled:
            return render(request, "login.html", None, next="/", oidc=True, status_code=403,
                          error="This account is disabled in kbot.")
        target = request.session.get("next", "/")
        start_session(request, user.id, "oidc")
        log.info("user %s signed in (OIDC)", user.id)
        return back(safe_next(target))
