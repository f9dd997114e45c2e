"""URLs with credentials: read them the way people write them, show them without their secrets.

- `encode_userinfo`: a password written with a raw '@' (`postgresql://kbot:p@ss@word@db/kbot`) is
  percent-encoded, as RFC 3986 wants, taking the last '@' of the authority as the end of the
  credentials (what urllib reads too). SQLAlchemy's parser would otherwise take the first '@', connect
  to a host called `ss@word@db`, and show `ss@word` as if it were not secret.
- `mask_url`: the user part rendered by SQLAlchemy's URL parser (`render_as_string(hide_password=True)`,
  the same code that reads KBOT_DATABASE_URL, so what is shown is what kbot understood); a user with no
  password (`https://TOKEN@host`) and query parameters that name a secret (token, key, password, ...)
  are masked too, for any scheme.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
_SECRET_PARAM = re.compile(r"(?i)(token|key|secret|passw|pwd|sig|auth|credential)")
_AUTHORITY_END = re.compile(r"[/?#]")


def _split(url: str) -> tuple[str, str | None, str, str] | None:
    """(scheme://, userinfo or None, host[:port], rest) or None when `url` has no authority."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start():]) if end else (rest, "")
    userinfo, at, host = authority.rpartition("@")
    return f"{scheme}://", (userinfo if at else None), host, tail


def encode_userinfo(url: str) -> str:
    """`url` with reserved characters in its user name and password percent-encoded (already encoded
    parts stay as they are)."""
    parts = _split(url)
    if parts is None or parts[1] is None:
        return url
    prefix, userinfo, host, tail = parts
    user, colon, password = userinfo.partition(":")
    encoded = quote(unquote(user), safe="") + (colon + quote(unquote(password), safe="") if colon else "")
    return f"{prefix}{encoded}@{host}{tail}"


def mask_url(url: str) -> str:
    """`url` without its secrets: the password, a password-less user, secret-looking query values."""
    parts = _split(url)
    if parts is None:
        return url
    prefix, userinfo, host, tail = parts
    path, qmark, query = tail.partition("?")
    if userinfo is not None and ":" not in userinfo:
        shown = f"{prefix}{MASK}@{host}{path}"  # https://TOKEN@host: the user is the secret
    else:
        base = encode_userinfo(f"{prefix}{userinfo + '@' if userinfo is not None else ''}{host}{path}")
        try:
            shown = make_url(base).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):  # not a URL SQLAlchemy reads: hide the credentials whole
            shown = f"{prefix}{MASK + '@' if userinfo is not None else ''}{host}{path}"
    if not qmark:
        return shown
    pairs = [(k, MASK if _SECRET_PARAM.search(k) else v) for k, v in parse_qsl(query, keep_blank_values=True)]
    return f"{shown}?{urlencode(pairs, safe='*')}"
