"""Who is calling the web app, and what they may see.

Every route except /healthz, the sign-in pages and Slack's signature-checked /slack/events depends
on `require_user` (or `require_admin`). A caller is found, in order, from an API token
(`Authorization: Bearer kbot_...`), the signed session cookie, or, only with KBOT_WEB_AUTH=none
(the local demo on 127.0.0.1), as the local admin. Their identity is read from the store on every
request, so disabling an account or changing its scopes takes effect at once.

Scopes follow the person: everyone signed in reads `web_scopes`; a user also reads the scopes an
admin granted and those their IdP groups map to (KBOT_OIDC_GROUP_SCOPES); admins read every scope.
Anything outside a caller's scopes is answered 404, exactly like something that does not exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fastapi import HTTPException, Request

from bot.core.settings import Settings
from knowledge.accounts import Accounts, UserRow

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
LOCAL_DEMO_USER = "local-demo"


@dataclass(frozen=True)
class Caller:
    """The person behind a request."""

    user_id: str
    username: str
    display_name: str
    admin: bool
    scopes: tuple[str, ...]  # what they may read (admins: every scope; see `can_read`)
    via: str  # token | session | none
    verified: bool  # the identity was checked (false only for the local demo without sign-in)

    def can_read(self, scopes: Iterable[str]) -> bool:
        """True when every one of `scopes` is theirs (an answer made from several scopes needs all)."""
        return self.admin or set(scopes) <= set(self.scopes)

    def question_scopes(self, known: Sequence[str] = ()) -> tuple[str, ...]:
        """The scopes their questions search: their own, or for an admin every known scope."""
        if self.admin:
            return tuple(dict.fromkeys([*self.scopes, *known]))
        return self.scopes


class SignInRequired(Exception):
    """No valid identity on a request that needs one (HTML: redirect to /login; API: 401)."""


def user_scopes(user: UserRow, settings: Settings) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*settings.web_scopes, *(user.scopes or []), *(user.idp_scopes or [])]))


def caller_of(user: UserRow, settings: Settings, via: str) -> Caller:
    return Caller(user.id, user.username, user.display_name or user.username, user.is_admin,
                  user_scopes(user, settings), via, True)


def find_caller(request: Request) -> Caller | None:
    """The caller of this request, or None (anonymous). Cached on the request."""
    if hasattr(request.state, "caller"):
        return request.state.caller
    settings: Settings = request.app.state.settings
    accounts: Accounts = request.app.state.accounts
    caller = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = accounts.user_for_token(auth[7:].strip())
        caller = caller_of(user, settings, "token") if user else None
    elif settings.auth_mode == "none":
        caller = Caller(LOCAL_DEMO_USER, "local", "Local demo", True, tuple(settings.web_scopes), "none", False)
    elif (user_id := request.session.get("uid")) and request.session.get("mode") == settings.auth_mode:
        user = accounts.get(user_id)
        if user is not None and not user.disabled:
            caller = caller_of(user, settings, "session")
    request.state.caller = caller
    return caller


def require_user(request: Request) -> Caller:
    """FastAPI dependency: the signed-in caller (SignInRequired otherwise)."""
    caller = find_caller(request)
    if caller is None:
        raise SignInRequired()
    return caller


def require_admin(request: Request) -> Caller:
    """FastAPI dependency: a signed-in admin (403 for other signed-in people)."""
    caller = require_user(request)
    if not caller.admin:
        raise HTTPException(403, "This page is for kbot admins.")
    return caller


# --- CSRF: a per-session token, sent back as a form field or the X-CSRF-Token header ---------------------
def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """403 unless a state-changing request carries the session's CSRF token (form field or the
    X-CSRF-Token header). API-token calls carry no ambient credential, so they need none."""
    if request.method not in UNSAFE or request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not secrets.compare_digest(expected, sent):
        raise HTTPException(403, "Missing or stale form token: reload the page and try again.")


async def csrf_protect(request: Request) -> None:
    """FastAPI dependency of every state-changing route for signed-in people: first who (401 / the
    sign-in page), then the CSRF token (403)."""
    require_user(request)
    await check_csrf(request)


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def audit(request: Request, caller: Caller, action: str, target: str = "", detail: str = "") -> None:
    """One row of the audit log: who did what to what, from where."""
    request.app.state.accounts.audit(caller.username, action, target, detail, client_address(request))
