"""The one safe fetcher for documents named by URL (chat admin commands, platform files, the console,
connectors).

- http(s) only, no credentials in the URL.
- Every hop (the URL and each redirect) is resolved first and refused when any address is loopback,
  private, link-local (cloud metadata services live there), multicast, reserved or otherwise not
  public, unless its host (and port) is on the allowlist (KBOT_FETCH_ALLOW_HOSTS) for intranet wikis.
  The connection then goes to the address that was checked, so a DNS answer that changes between the
  check and the connection (rebinding) cannot reach anything else.
- Redirects are followed by hand, at most `max_redirects`; a bearer token is only ever sent to the
  first origin (scheme, host and port).
- Size, total time and content-type limits; no half-written file is left behind.
- Errors are one uniform line that does not tell what is listening where (no "connection refused"
  versus "timed out"); the precise reason goes to the log at DEBUG.
"""

from __future__ import annotations

import ipaddress
import logging
import mimetypes
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import httpx

from bot.core.errors import DownloadError

log = logging.getLogger(__name__)
TIMEOUT_S = 30
UNREACHABLE = "Could not fetch that URL: it is not reachable from kbot or not allowed."
# File type from Content-Type, for URLs whose path has no extension (https://example.com/handbook).
SUFFIXES = {
    "text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt", "text/markdown": ".md",
    "text/x-markdown": ".md", "text/csv": ".csv", "application/pdf": ".pdf", "application/json": ".txt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}
# Types that say nothing about the content: the file name's suffix decides.
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream", "application/download",
                 "application/force-download", "application/x-download"}
DOCUMENT_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".rst", ".html", ".htm", ".pdf", ".docx", ".csv"}
# Metadata endpoints that are not covered by the address classes below (all others are link-local).
METADATA_ADDRESSES = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}


@dataclass(frozen=True)
class FetchPolicy:
    """What the fetcher may reach: `allow` holds 'host' (ports 80 and 443) or 'host:port' entries
    that may resolve to private addresses (intranet hosts named by the operator)."""

    allow: frozenset[str] = field(default_factory=frozenset)
    timeout_s: float = TIMEOUT_S
    max_redirects: int = 5

    @classmethod
    def from_settings(cls, settings: Any, extra_hosts: Iterable[str] = ()) -> FetchPolicy:
        return cls(frozenset(h.lower() for h in [*settings.fetch_allow_hosts, *extra_hosts]),
                   settings.fetch_timeout_s, settings.fetch_max_redirects)

    def allows(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return f"{host}:{port}" in self.allow or (port in (80, 443) and host in self.allow)


def host_port(url: str) -> str:
    """'host:port' of a URL (for FetchPolicy.allow)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{(parsed.hostname or '').lower()}:{port}"


def safe_filename(name: str, fallback: str = "document") -> str:
    """A file name that cannot escape its folder or confuse the readers (no path, no odd characters)."""
    base = PurePosixPath(unquote(name).replace("\\", "/").replace("\x00", "")).name
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return base[:150] or fallback


def check_url(url: str) -> str:
    """The URL if it is http(s) with a host and no credentials; DownloadError otherwise."""
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise DownloadError("Give an http(s) URL.") from exc
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DownloadError("Give an http(s) URL.")
    if parsed.username or parsed.password:
        raise DownloadError("Give the URL without a user name or password in it.")
    return url


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for globally routable unicast addresses; False for loopback, private, link-local
    (169.254.169.254 and friends), shared (100.64/10), multicast, reserved and unspecified ones."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast and address not in METADATA_ADDRESSES


class _Refused(Exception):
    """A hop that may not be fetched (the reason is logged, never shown)."""


def resolve(host: str, port: int, policy: FetchPolicy) -> str:
    """The address to connect to for host:port, after checking every address it resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _Refused(f"cannot resolve {host}") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise _Refused(f"no address for {host}")
    if not policy.allows(host, port):
        blocked = [str(a) for a in addresses if not is_public(a)]
        if blocked:
            raise _Refused(f"{host}:{port} resolves to non-public {', '.join(blocked)}")
    return str(addresses[0])


def fetch_to(url: str, folder: Path, *, max_bytes: int, name: str | None = None, token: str | None = None,
             policy: FetchPolicy | None = None) -> Path:
    """Download `url` into `folder` (created) as `name` (default: the URL's file name) and return the
    path. The suffix comes from the name, else from the Content-Type. DownloadError on any failure."""
    check_url(url)
    policy = policy or FetchPolicy()
    deadline = time.monotonic() + policy.timeout_s
    first_host = urlparse(url).hostname
    first_origin = _origin(url)
    folder.mkdir(parents=True, exist_ok=True)
    dest: Path | None = None
    try:
        with httpx.Client(timeout=min(policy.timeout_s, TIMEOUT_S), follow_redirects=False, trust_env=False) as client:
            current = url
            for _hop in range(policy.max_redirects + 1):
                with _open(client, current, token if _origin(current) == first_origin else None,
                           policy) as resp:
                    if resp.is_redirect and resp.headers.get("location"):
                        current = check_url(urljoin(current, resp.headers["location"]))
                        continue
                    if resp.status_code != 200:
                        raise DownloadError(f"The server answered HTTP {resp.status_code}.")
                    dest = folder / _file_name(name or urlparse(current).path.rsplit("/", 1)[-1], resp)
                    _save(resp, dest, max_bytes, deadline)
                    return dest
            raise _Refused(f"more than {policy.max_redirects} redirects")
    except DownloadError:
        if dest is not None:
            dest.unlink(missing_ok=True)
        raise
    except (_Refused, httpx.HTTPError, OSError, ValueError) as exc:
        if dest is not None:
            dest.unlink(missing_ok=True)  # no half-written file is left to be ingested later
        log.debug("fetch of a URL on %s refused or failed: %s", first_host, exc)
        raise DownloadError(UNREACHABLE) from exc


def _origin(url: str) -> tuple[str, str, int]:
    parsed = urlparse(url)
    return parsed.scheme, (parsed.hostname or "").lower(), parsed.port or (443 if parsed.scheme == "https" else 80)


def _open(client: httpx.Client, url: str, token: str | None, policy: FetchPolicy) -> Any:
    """Send the request to the checked address of the URL's host (Host header and TLS name kept)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.hostname or ""
    address = resolve(host, port, policy)
    pinned = httpx.URL(url).copy_with(host=address)
    headers = {"Host": parsed.netloc.rsplit("@", 1)[-1], "Accept": "*/*", "User-Agent": "kbot-fetch"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = client.build_request("GET", pinned, headers=headers, extensions={"sni_hostname": host})
    return _Streamed(client, request)


class _Streamed:
    def __init__(self, client: httpx.Client, request: httpx.Request):
        self.client, self.request, self.response = client, request, None

    def __enter__(self) -> httpx.Response:
        self.response = self.client.send(self.request, stream=True)
        return self.response

    def __exit__(self, *exc: object) -> None:
        if self.response is not None:
            self.response.close()


def _file_name(name: str, resp: httpx.Response) -> str:
    """A safe name with a suffix the readers know; DownloadError for a type kbot does not read."""
    base = safe_filename(name, fallback="page")
    suffix = PurePosixPath(base).suffix.lower()
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in GENERIC_TYPES:
        if suffix in DOCUMENT_SUFFIXES:
            return base
        raise DownloadError("The server did not say what kind of file this is, and its name has no "
                            "document extension.")
    known = SUFFIXES.get(ctype) or (".txt" if ctype.startswith("text/") else None)
    if known is None:
        guessed = mimetypes.guess_extension(ctype) or ""
        raise DownloadError(f"kbot does not read {ctype} files{f' ({guessed})' if guessed else ''}.")
    if suffix in DOCUMENT_SUFFIXES:
        return base
    return base + known


def _save(resp: httpx.Response, dest: Path, max_bytes: int, deadline: float) -> None:
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise DownloadError(f"The file is larger than {max_bytes / 1_000_000:.3g} MB.")
    written = 0
    with dest.open("wb") as out:
        for block in resp.iter_bytes():
            written += len(block)
            if written > max_bytes:
                raise DownloadError(f"The file is larger than {max_bytes / 1_000_000:.3g} MB.")
            if time.monotonic() > deadline:
                raise DownloadError("The download took too long.")
            out.write(block)
