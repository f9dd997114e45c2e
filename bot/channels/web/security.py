"""The web app's outer layers: Host check, signed session cookies, request-size limits, security
headers, optional CORS, and the sign-in error handling. `install(app, settings)` adds them all."""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.channels.web.access import SignInRequired
from bot.core.settings import Settings, secret

log = logging.getLogger(__name__)
SESSION_COOKIE = "kbot_session"
UPLOAD_PATHS = ("/console/documents/upload",)  # routes that take files: KBOT_MAX_FILE_MB, not max_request_kb
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; frame-ancestors 'none'; form-action 'self' {idp}; base-uri 'none'")


def session_key(settings: Settings) -> str:
    """KBOT_SESSION_SECRET, else a key generated once into <data_dir>/session.key (mode 0600)."""
    configured = secret(settings.session_secret)
    if configured:
        return configured
    path = Path(settings.data_dir) / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class BodyLimit:
    """Refuse request bodies over a limit with 413, whether or not they declare a Content-Length
    (chunked bodies are counted as they arrive; whatever the app answers is replaced by the 413)."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int):
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"].startswith(UPLOAD_PATHS) else self.limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = 0
        too_large = False
        started = False

        async def counted() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if too_large:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, limit)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not too_large:
                raise
            if not started:
                await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        body = json.dumps({"detail": f"The request is larger than {limit // 1024:,} KB."}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """nosniff, no framing, same-origin referrers, and a CSP on pages."""

    def __init__(self, app: ASGIApp, idp_origin: str = ""):
        self.app = app
        self.csp = CSP.format(idp=idp_origin).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        swagger = scope["path"] == "/api/reference"  # Swagger UI loads its script from a CDN

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                            (b"referrer-policy", b"same-origin")]
                if not swagger:
                    headers.append((b"content-security-policy", self.csp))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def wants_html(request: Request) -> bool:
    """A browser asking for a page (sent to the sign-in page) rather than an API client (answered 401)."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def install(app: FastAPI, settings: Settings) -> None:
    """Add the outer layers (the last added runs first: Host check, then size, then session)."""
    from urllib.parse import urlparse

    https = settings.public_url.lower().startswith("https://")
    app.add_middleware(SessionMiddleware, secret_key=session_key(settings), session_cookie=SESSION_COOKIE,
                       max_age=int(settings.session_hours * 3600), same_site="lax", https_only=https)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    idp = urlparse(settings.oidc_issuer or "")
    app.add_middleware(SecurityHeaders, idp_origin=f"{idp.scheme}://{idp.netloc}" if idp.netloc else "")
    app.add_middleware(BodyLimit, limit=settings.max_request_kb * 1024,
                       upload_limit=int(settings.max_file_mb * 1024 * 1024) + 64 * 1024)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, exc: SignInRequired) -> Any:
        if wants_html(request) and request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            from urllib.parse import quote

            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return JSONResponse({"detail": "Sign in first (a session cookie or an API token: "
                             "Authorization: Bearer kbot_...)."}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
