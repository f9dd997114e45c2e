"""The admin console driven in a real headless browser (Debian's chromium through Playwright) against
a real server (uvicorn, the real embedder, Chroma, ingestor, store, adapter registry and correction
review; only the language model is a fake, so answers are quoted from the evidence): sign in, upload a
document and ask about it, correct the answer and approve the correction and see it answered,
promote and roll back an adapter, map a scope. A screenshot of each page is saved; set
KBOT_SCREENSHOTS=docs/console to refresh the ones in the docs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from bot.serve import build_server_app
from bot.wiring import Runtime
from knowledge.accounts import Accounts
from tests.channels.web.helpers import PASSWORD
from tests.conftest import make_settings
from tests.fakes import FakeGenerator

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PARKING = b"# Parking\n\nVisitors park in garage P3 on level 2. The barrier opens with the code on the visitor badge.\n"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (make setup)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def site(tmp_path, embedder):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path / "data", public_url=base, trusted_hosts=["127.0.0.1"],
                             min_score=0.2, min_score_unknown_terms=0.2)
    rt = Runtime(settings, embedder=embedder, generator=FakeGenerator("I am not sure about that."))
    Accounts(rt.store).add_local("root", PASSWORD, role="admin")
    for version in ("v1", "v2"):  # two trained versions waiting in the registry
        folder = settings.adapters_root / version
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(json.dumps({"r": 8}))
        rt.store.add_adapter(version=version, path=str(folder), base_model="SmolLM2-135M", status="candidate",
                             metrics={"candidate": {"f1": 0.41 + 0.02 * int(version[1]), "grounded": 0.9},
                                      "baseline": {"f1": 0.40, "grounded": 0.88},
                                      "gate": {"passed": True, "reasons": ["f1 +0.03"]}},
                             manifest={"data": {"counts": {"sft_train": 12}}})
    server = uvicorn.Server(uvicorn.Config(build_server_app(rt), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield base, rt
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 760})
        yield context.new_page()
        browser.close()


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("KBOT_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def ask(page, base: str, question: str) -> str:
    page.goto(base + "/")
    page.fill("#q", question)
    page.press("#q", "Enter")
    page.wait_for_selector("#log .fb button", timeout=30_000)  # feedback buttons: the answer is complete
    return page.inner_text("#log .a")


def test_console_walk_through(site, page, tmp_path):
    base, rt = site
    out = shots(tmp_path)
    page.on("dialog", lambda d: d.accept("Since March visitors park in garage P5 on level 1."))

    # sign in (the chat sends people without a session to the sign-in page)
    page.goto(base + "/")
    assert page.url.startswith(base + "/login")
    page.screenshot(path=out / "login.png")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.box button")
    page.wait_for_url(base + "/")

    # upload a document, then ask about it
    page.goto(base + "/console/documents")
    page.set_input_files("input[type=file]", files=[{"name": "parking.md", "mimeType": "text/markdown",
                                                     "buffer": PARKING}])
    page.click("#upload")
    page.wait_for_selector(".flash.ok")
    assert "parking.md into scope default: 1 added" in page.inner_text(".flash.ok")
    assert "parking.md" in page.inner_text("table")
    page.screenshot(path=out / "documents.png", full_page=True)
    answer = ask(page, base, "Where do visitors park?")
    assert "garage P3" in answer
    page.screenshot(path=out / "chat.png")

    # correct the answer, approve the correction in the review queue, and see it answered
    page.click("text=Suggest a correction")
    page.wait_for_selector("text=Thanks, feedback saved.")
    page.goto(base + "/console/reviews")
    assert "garage P5" in page.input_value("textarea[name=text]")
    assert "Where do visitors park?" in page.inner_text(".card")
    page.screenshot(path=out / "reviews.png", full_page=True)
    page.click(".card button:has-text('Approve')")
    page.wait_for_selector(".flash.ok")
    assert "approved" in page.inner_text(".flash.ok")
    assert rt.store.list_feedback()[0].correction_status == "approved"
    answer = ask(page, base, "Where do visitors park since March?")
    assert "garage P5" in answer

    # promote and roll back an adapter
    page.goto(base + "/console/adapters")
    page.click("#adapter-v1 button:has-text('Promote')")
    page.wait_for_selector(".flash.ok")
    page.click("#adapter-v2 button:has-text('Promote')")
    page.wait_for_selector(".flash.ok")
    assert "v2 is now served" in page.inner_text(".flash.ok") and rt.store.active_adapter().version == "v2"
    page.click("button:has-text('Roll back')")
    page.wait_for_selector(".flash.ok")
    assert "now serving v1" in page.inner_text(".flash.ok") and rt.store.active_adapter().version == "v1"
    page.screenshot(path=out / "adapters.png", full_page=True)

    # map a Slack channel to scopes
    page.goto(base + "/console/scopes")
    page.fill("input[name=place]", "C0123ABC")
    page.fill("input[name=scopes]", "hr, default")
    page.click("form.box button:has-text('Save')")
    page.wait_for_selector(".flash.ok")
    assert rt.store.channel_scopes("slack", "C0123ABC") == ["hr", "default"]
    page.screenshot(path=out / "scopes.png", full_page=True)

    # the remaining pages render, and every action above is in the audit log
    for name in ("feedback", "users", "settings", "audit"):
        page.goto(f"{base}/console/{name}")
        assert page.locator("h1").count() == 1
        page.screenshot(path=out / f"{name}.png", full_page=name != "settings")
    audit = page.inner_text("table")
    for action in ("document.upload", "correction.approve", "adapter.promote", "adapter.rollback", "scope.map"):
        assert action in audit
