"""The safe fetcher against local servers on 127.0.0.1: loopback is refused unless allowlisted (host
and port), every redirect hop is checked again (other loopback ports, localhost, [::1], a decimal IP,
169.254.169.254), and failures read the same whatever is listening."""

from __future__ import annotations

import ipaddress
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.core.errors import DownloadError
from knowledge.fetch import UNREACHABLE, FetchPolicy, check_url, fetch_to, is_public


class Site:
    """A stdlib HTTP server on 127.0.0.1:0 serving `routes` (path -> (status, headers, body)) and
    recording every request it receives."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]] | None = None):
        self.routes = routes or {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                site.seen.append((self.path, dict(self.headers)))
                status, headers, body = site.routes.get(self.path, (404, {}, b"not found"))
                if headers.get("X-Sleep"):
                    time.sleep(float(headers["X-Sleep"]))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def redirect(to: str) -> tuple[int, dict[str, str], bytes]:
    return 302, {"Location": to}, b""


@pytest.fixture
def inner():
    """An internal service the attacker wants to reach (another loopback port)."""
    site = Site({"/secret": (200, {"Content-Type": "text/plain"}, b"internal secret")})
    yield site
    site.close()


@pytest.fixture
def outer(inner):
    """The allowlisted intranet host, whose pages redirect elsewhere."""
    p = inner.port
    site = Site({
        "/doc.md": (200, {"Content-Type": "text/markdown"}, b"# Handbook\n\nThe office opens at nine."),
        "/handbook": (200, {"Content-Type": "text/html; charset=utf-8"}, b"<html><body>Hi</body></html>"),
        "/to-other-port": redirect(f"http://127.0.0.1:{p}/secret"),
        "/to-localhost": redirect(f"http://localhost:{p}/secret"),
        "/to-ipv6-loopback": redirect(f"http://[::1]:{p}/secret"),
        "/to-decimal-ip": redirect(f"http://2130706433:{p}/secret"),
        "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        "/to-file": redirect("file:///etc/passwd"),
        "/loop": redirect("/loop"),
        "/big.txt": (200, {"Content-Type": "text/plain"}, b"x" * 5000),
        "/logo": (200, {"Content-Type": "image/png"}, b"\x89PNG...."),
        "/blob": (200, {"Content-Type": "application/octet-stream"}, b"data"),
        "/slow.md": (200, {"Content-Type": "text/markdown", "X-Sleep": "3"}, b"# Late"),
        "/back-home": redirect("/doc.md"),
    })
    yield site
    site.close()


def allow(site: Site, **kwargs) -> FetchPolicy:
    return FetchPolicy(frozenset({f"127.0.0.1:{site.port}"}), **kwargs)


def refused(url: str, tmp_path, policy: FetchPolicy) -> str:
    with pytest.raises(DownloadError) as exc:
        fetch_to(url, tmp_path / "dl", max_bytes=1000, policy=policy)
    assert not list((tmp_path / "dl").glob("*")), "a partial file was left behind"
    return str(exc.value)


def test_loopback_is_refused_unless_its_host_and_port_are_allowlisted(outer, tmp_path):
    assert refused(f"{outer.url}/doc.md", tmp_path, FetchPolicy()) == UNREACHABLE
    assert outer.seen == []  # refused before connecting
    path = fetch_to(f"{outer.url}/doc.md", tmp_path / "ok", max_bytes=1000, policy=allow(outer))
    assert path.name == "doc.md" and b"office opens" in path.read_bytes()
    redirected = fetch_to(f"{outer.url}/back-home", tmp_path / "ok2", max_bytes=1000, policy=allow(outer))
    assert redirected.read_bytes().startswith(b"# Handbook")


@pytest.mark.parametrize("hop", ["/to-other-port", "/to-localhost", "/to-ipv6-loopback", "/to-decimal-ip",
                                 "/to-metadata", "/loop"])
def test_no_redirect_reaches_beyond_the_allowlist(outer, inner, tmp_path, hop):
    assert refused(f"{outer.url}{hop}", tmp_path, allow(outer)) == UNREACHABLE
    assert inner.seen == [], f"the internal service was reached through {hop}"
    assert [p for p, _ in outer.seen].count(hop) >= 1


def test_errors_do_not_tell_what_is_listening(outer, tmp_path):
    closed = Site()
    closed_port = closed.port
    closed.close()  # nothing listens there any more
    policy = FetchPolicy(frozenset({f"127.0.0.1:{outer.port}", f"127.0.0.1:{closed_port}"}), timeout_s=1)
    messages = {
        "blocked": refused("http://10.1.2.3/wiki", tmp_path, policy),
        "metadata": refused("http://169.254.169.254/latest/meta-data/", tmp_path, policy),
        "closed port": refused(f"http://127.0.0.1:{closed_port}/x.md", tmp_path, policy),
        "too slow": refused(f"{outer.url}/slow.md", tmp_path, policy),
        "no such host": refused("http://no-such-host.invalid/x.md", tmp_path, policy),
    }
    assert messages == dict.fromkeys(messages, UNREACHABLE)


def test_size_type_and_scheme_limits(outer, tmp_path):
    policy = allow(outer)
    assert "larger than" in refused(f"{outer.url}/big.txt", tmp_path, policy)
    assert refused(f"{outer.url}/logo", tmp_path, policy) == "kbot does not read image/png files (.png)."
    assert "did not say what kind of file" in refused(f"{outer.url}/blob", tmp_path, policy)
    assert refused(f"{outer.url}/to-file", tmp_path, policy) == "Give an http(s) URL."
    page = fetch_to(f"{outer.url}/handbook", tmp_path / "h", max_bytes=1000, policy=policy)
    assert page.name == "handbook.html"
    with pytest.raises(DownloadError, match="without a user name or password"):
        check_url("http://admin:pw@intranet.example/x")
    for bad in ("file:///etc/passwd", "gopher://x/", "http:///nohost", "http://x:99999/"):
        with pytest.raises(DownloadError, match="http"):
            check_url(bad)


def test_the_token_is_only_sent_to_the_first_origin(outer, inner, tmp_path):
    both = FetchPolicy(frozenset({f"127.0.0.1:{outer.port}", f"127.0.0.1:{inner.port}"}))
    fetch_to(f"{outer.url}/to-other-port", tmp_path / "t", max_bytes=1000, token="xoxb-secret", policy=both)
    assert outer.seen[-1][1].get("Authorization") == "Bearer xoxb-secret"
    assert inner.seen and "Authorization" not in inner.seen[-1][1]  # same host, another port
    fetch_to(f"{outer.url}/to-localhost", tmp_path / "t2", max_bytes=1000, token="xoxb-secret",
             policy=FetchPolicy(frozenset({f"127.0.0.1:{outer.port}", f"localhost:{inner.port}"})))
    assert "Authorization" not in inner.seen[-1][1]


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("10.0.0.1", False),
    ("172.16.5.4", False), ("192.168.1.1", False), ("169.254.169.254", False), ("100.100.100.200", False),
    ("100.64.0.1", False), ("0.0.0.0", False), ("::1", False), ("fe80::1", False), ("fd00:ec2::254", False),
    ("::ffff:127.0.0.1", False), ("224.0.0.1", False),
])
def test_address_classes(address, public):
    assert is_public(ipaddress.ip_address(address)) is public
