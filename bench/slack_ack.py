"""Slack ack latency while the generator is busy.

Serves the real Bolt app through the real /slack/events router with uvicorn on a local port, points it
at a fake Slack Web API (tests/slack_fakes.py), starts one answer so the generator is busy, then sends
N signed app_mention events at once and measures how long each HTTP ack takes. The generator is
tests.fakes.FakeGenerator with a per-word delay (a stand-in for a busy model, not the real LM).

    .venv/bin/python bench/slack_ack.py [--events 20] [--delay 0.04]

Prints a markdown table row: events, generator, ack p50 / p99 / max, answers posted, wall time.
Target: ack p99 < 300 ms and exactly one answer per event.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from bot.channels.slack.app import slack_router  # noqa: E402
from tests.channels.slack.fake_api import (  # noqa: E402
    BOT_USER_ID,
    FakeSlackAPI,
    SlackHarness,
    event_callback,
    mention_event,
    signed_headers,
)

REPLY = "The VPN server address is vpn.example.com [1]"  # 7 words


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def serve(app: FastAPI) -> tuple[uvicorn.Server, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.04, help="FakeGenerator seconds per word")
    args = parser.parse_args()
    started = time.perf_counter()
    with FakeSlackAPI() as api, tempfile.TemporaryDirectory() as tmp:
        harness = SlackHarness(Path(tmp), api, delay=args.delay, reply=REPLY)
        web = FastAPI()
        web.include_router(slack_router(harness.runtime, bot=harness.bot))
        server, url = serve(web)
        client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=args.events + 1))

        def deliver(text: str) -> float:
            msg = api.user_message("C1", f"<@{BOT_USER_ID}> {text}", channel_type="channel")
            body = event_callback(mention_event(msg))
            t0 = time.perf_counter()
            resp = client.post(url, content=body.encode(), headers=signed_headers(body))
            elapsed = time.perf_counter() - t0
            assert resp.status_code == 200, resp.status_code
            return elapsed

        deliver("warm-up: what is the VPN server address?")  # the generator is busy from here on
        api.wait_for("chat.postMessage", 1)
        barrier = threading.Barrier(args.events)

        def one(i: int) -> float:
            barrier.wait()
            return deliver(f"question {i}: what is the VPN server address?")

        with ThreadPoolExecutor(args.events) as pool:
            acks = list(pool.map(one, range(args.events)))
        busy_during_burst = len(finals(api)) < 1 + args.events
        assert harness.bot.wait_idle(55), "answers did not finish"
        posted = len(finals(api)) - 1  # minus the warm-up answer
        placeholders = len(api.of("chat.postMessage")) - 1
        harness.close()
        server.should_exit = True
        client.close()
    wall = time.perf_counter() - started
    ms = [a * 1000 for a in acks]
    print(
        f"generator: FakeGenerator({REPLY.count(' ') + 1} words, {args.delay}s/word; busy during the burst: "
        f"{busy_during_burst}); one answer at a time, like the real model"
    )
    print("| events | generator | ack p50 | ack p99 | ack max | answers posted | placeholders | wall |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.events} concurrent | fake, {args.delay}s/word | {statistics.median(ms):.0f} ms | "
        f"{percentile(ms, 0.99):.0f} ms | {max(ms):.0f} ms | {posted} | {placeholders} | {wall:.1f} s |"
    )
    print(f"command: .venv/bin/python bench/slack_ack.py --events {args.events} --delay {args.delay}")
    ok = percentile(ms, 0.99) < 300 and posted == args.events and placeholders == args.events
    print("result:", "PASS" if ok else "FAIL", "(target: p99 < 300 ms, exactly one answer per event)")
    return 0 if ok else 1


def finals(api: FakeSlackAPI) -> list[dict]:
    return [
        c for c in api.of("chat.update") if any(b["type"] == "actions" for b in c.args.get("blocks") or [])
    ]


if __name__ == "__main__":
    raise SystemExit(main())
