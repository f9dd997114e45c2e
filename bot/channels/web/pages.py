"""Server-rendered pages (Jinja2): one base template with the console's navigation, a CSRF token in
every form, and one-shot messages ("flashes") carried in the session across a redirect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from bot.channels.web.access import Caller, csrf_token

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
# The console's areas, in menu order; a new area adds its router and one entry here.
CONSOLE_NAV: list[tuple[str, str]] = [
    ("documents", "Documents"), ("reviews", "Reviews"), ("feedback", "Feedback"), ("adapters", "Adapters"),
    ("scopes", "Scopes"), ("users", "Users"), ("settings", "Settings"), ("audit", "Audit log"),
]


def flash(request: Request, text: str, kind: str = "ok") -> None:
    request.session.setdefault("flashes", []).append([kind, text[:2000]])


def render(request: Request, template: str, caller: Caller | None, *, nav: str = "", status_code: int = 200,
           **context: Any) -> HTMLResponse:
    flashes = request.session.pop("flashes", [])
    return TEMPLATES.TemplateResponse(request, template, {
        "caller": caller, "csrf": csrf_token(request), "nav": nav, "console_nav": CONSOLE_NAV,
        "flashes": flashes, **context}, status_code=status_code)


def back(url: str) -> RedirectResponse:
    """After a form post: see the page again (303, so a reload does not post twice)."""
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None) -> str:
    """A local path to return to after sign-in (never another site: no scheme, no '//' host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
