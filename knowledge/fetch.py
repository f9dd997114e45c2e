"""The one downloader for documents named by URL (chat admin commands, platform files, connectors).

It streams into a file with a size limit, names the file with a suffix the readers know (from the
URL, else from the Content-Type), leaves no half-written file behind, and raises DownloadError with
a message fit to show the person who asked.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import httpx

from bot.core.errors import DownloadError

TIMEOUT_S = 30
# File type from Content-Type, for URLs whose path has no extension (https://example.com/handbook).
SUFFIXES = {
    "text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt", "text/markdown": ".md",
    "text/csv": ".csv", "application/pdf": ".pdf", "application/json": ".json",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}


def safe_filename(name: str, fallback: str = "document") -> str:
    """A file name that cannot escape its folder or confuse the readers (no path, no odd characters)."""
    base = PurePosixPath(unquote(name).replace("\\", "/").replace("\x00", "")).name
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return base[:150] or fallback


def check_url(url: str) -> str:
    """The URL if it is http(s) with a host; DownloadError otherwise."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DownloadError("Give an http(s) URL.")
    return url


def fetch_to(url: str, folder: Path, *, max_bytes: int, name: str | None = None,
             token: str | None = None) -> Path:
    """Download `url` into `folder` (created) as `name` (default: the URL's file name) and return the
    path. The suffix comes from the name, else from the Content-Type."""
    check_url(url)
    name = safe_filename(name or urlparse(url).path.rsplit("/", 1)[-1], fallback="page")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / name
    written = 0
    try:
        with httpx.stream("GET", url, headers=headers, timeout=TIMEOUT_S, follow_redirects=True) as resp:
            if resp.status_code != 200:
                raise DownloadError(f"The server answered HTTP {resp.status_code}.")
            if not dest.suffix:
                ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                dest = dest.with_name(dest.name + (SUFFIXES.get(ctype) or mimetypes.guess_extension(ctype)
                                                   or ".txt"))
            with dest.open("wb") as out:
                for block in resp.iter_bytes():
                    written += len(block)
                    if written > max_bytes:
                        raise DownloadError(f"The file is larger than {max_bytes // 1_000_000} MB.")
                    out.write(block)
    except (DownloadError, httpx.HTTPError, OSError) as exc:
        dest.unlink(missing_ok=True)  # no half-written file is left to be ingested later
        if isinstance(exc, DownloadError):
            raise
        raise DownloadError(f"Could not download it ({type(exc).__name__}).") from exc
    return dest
