"""A zip bomb uploaded through the console of a real `kbot serve` process (demo sign-in on
127.0.0.1, the real embedder and Chroma; generation pointed at an unused address, as no answer is
asked for): refused with a clear message while the serving process's peak RSS grows by < 100 MB."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.knowledge.zip_bombs import docx_bomb

KBOT = Path(sys.executable).with_name("kbot")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "KBOT_DATA_DIR": str(tmp_path / "data"), "KBOT_WEB_AUTH": "none",
           "KBOT_OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([str(KBOT), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("kbot serve did not start:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        time.sleep(0.5)
    yield proc, base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_zip_bomb_upload_is_refused_without_growing_the_server(server, tmp_path):
    proc, base = server
    bomb = docx_bomb(tmp_path / "quarterly-report.docx", 1024)  # 1 GB inflated, ~1 MB on the wire
    with httpx.Client(base_url=base, timeout=120, follow_redirects=True) as client:
        page = client.get("/console/documents")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        before = status_kb(proc.pid, "VmRSS")
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        resp = client.post("/console/documents/upload", data={"csrf_token": token, "scope": "default"},
                           files={"file": (bomb.name, bomb.read_bytes(), "application/octet-stream")})
        peak = status_kb(proc.pid, "VmHWM")
        assert resp.status_code == 200  # the redirect back to the documents page, followed
        assert "quarterly-report.docx: archive would inflate to 1,024 MB, over the 200 MB limit (a zip bomb?)" \
            in resp.text.replace("&#39;", "'")
        assert "failed" in resp.text
    grown_mb = (peak - before) / 1024
    print(f"kbot serve RSS {before / 1024:.0f} MB before, peak {peak / 1024:.0f} MB during the upload "
          f"(+{grown_mb:.1f} MB)")
    assert grown_mb < 100
