"""The web chat in a real headless browser (Debian's chromium driven by Playwright): ask a question,
watch the answer stream in, see clean snippets (Markdown rendered, no server path), vote, open the
answer's page. `make setup` installs chromium; set KBOT_SCREENSHOT=path to keep a screenshot."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from bot.channels.web.app import create_app
from bot.core.types import Chunk
from bot.wiring import Runtime
from tests.conftest import make_settings
from tests.fakes import FakeEmbedder, FakeGenerator, FakeRetriever

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SERVER_PATH = "/srv/kb/it/vpn-requirements.md"
CHUNK = Chunk(id="vpn-req", source=SERVER_PATH, title="VPN requirements", score=0.9, heading="Requirements",
              text="## Requirements\n\n- A company-managed laptop\n- The GlobalProtect client, "
                   "**version 6.2.1 or later**\n\nConnect to `vpn.acme.example` with your SSO account.")
REPLY = ("You need a company-managed laptop and the GlobalProtect client, **version 6.2.1 or later**, "
         "then connect to vpn.acme.example with your SSO account [1].")


def serve(app) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists() or not shutil.which("chromedriver"):
        pytest.fail("chromium is not installed: run `make setup` (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def site(tmp_path, store):
    # A model that writes one word every 0.08 s, so the streamed answer can be watched as it grows.
    rt = Runtime(make_settings(tmp_path, min_score=0.0, web_auth="none"), store=store, index=FakeRetriever([CHUNK]),
                 generator=FakeGenerator(REPLY, delay=0.08), embedder=FakeEmbedder())
    server = serve(create_app(rt))
    yield rt, next(server)
    next(server, None)


def test_ask_watch_it_stream_read_clean_sources_and_vote(site, browser, tmp_path):
    rt, url = site
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(url)
    page.fill("#q", "Which VPN client version does my laptop need?")
    page.keyboard.press("Enter")

    # streamed: part of the answer is on the page before it is finished (no sources yet)
    page.wait_for_function("() => { const a = document.querySelector('#log .a.streaming');"
                           " return a && a.textContent.startsWith('You need') }", timeout=15000)
    assert page.locator("ol.sources").count() == 0
    page.wait_for_selector("ol.sources li", timeout=20000)

    answer = page.locator("#log .a")
    assert answer.locator("strong").inner_text() == "version 6.2.1 or later"  # Markdown rendered
    source = page.locator("ol.sources li").first
    snippet = source.locator(".snippet")
    assert snippet.locator("p").count() >= 1 and "version 6.2.1 or later" in snippet.inner_text()
    for raw in ("##", "**", "`", "<p>"):
        assert raw not in source.inner_text(), raw
    link = source.locator("a").first
    assert link.inner_text() == "VPN requirements"
    href = link.get_attribute("href")
    assert href.startswith("/answers/") and href.endswith("#source-1")
    assert SERVER_PATH not in page.content() and "/srv/kb" not in page.content()

    # the feedback buttons say what they do in words, next to their icons
    helpful = page.get_by_role("button", name="Helpful", exact=True)
    assert helpful.locator("svg").count() == 1
    assert page.get_by_role("button", name="Not helpful").is_visible()
    helpful.click()
    page.wait_for_function("() => document.querySelector('.fb .done').textContent.includes('saved')")
    if os.environ.get("KBOT_SCREENSHOT"):  # docs/web-chat.png is made this way
        page.set_viewport_size({"width": 1000, "height": 300})
        page.screenshot(path=os.environ["KBOT_SCREENSHOT"], full_page=True)
    [vote] = rt.store.list_feedback()
    assert vote.vote == 1 and vote.platform == "web"

    # the source link opens the answer's page at that source: a title, rendered snippet, no path
    with page.context.expect_page() as opened:
        link.click()
    shown = opened.value
    shown.wait_for_load_state()
    assert shown.url.endswith("#source-1")
    assert shown.locator("#source-1 b").inner_text() == "VPN requirements"
    assert "version 6.2.1 or later" in shown.locator("#source-1 blockquote").inner_text()
    assert shown.locator("h1").inner_text() == "Which VPN client version does my laptop need?"
    assert "/srv/kb" not in shown.content()


def test_closest_sources_of_a_declined_answer_show_rendered_markdown(tmp_path, store, browser):
    # Declined answers list the closest chunks as they are written: Markdown that must not show raw.
    rt = Runtime(make_settings(tmp_path, min_score=0.99, web_auth="none"), store=store, index=FakeRetriever([CHUNK]),
                 generator=FakeGenerator(REPLY), embedder=FakeEmbedder())
    server = serve(create_app(rt))
    url = next(server)
    try:
        page = browser.new_page()
        page.goto(url)
        page.fill("#q", "Which VPN client version does the laptop need for the canteen menu?")
        page.keyboard.press("Enter")
        page.wait_for_selector("ol.sources li", timeout=20000)
        assert page.locator(".mode").inner_text() == "not covered"
        snippet = page.locator("ol.sources li .snippet")
        assert snippet.locator("h2").inner_text() == "Requirements"
        assert snippet.locator("li").all_inner_texts() == [
            "A company-managed laptop", "The GlobalProtect client, version 6.2.1 or later"]
        assert snippet.locator("strong").inner_text() == "version 6.2.1 or later"
        assert snippet.locator("code").inner_text() == "vpn.acme.example"
        assert "##" not in snippet.inner_text() and "**" not in snippet.inner_text()
        assert "/srv/kb" not in page.content()
    finally:
        next(server, None)
