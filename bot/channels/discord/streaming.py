"""Streaming an answer into a Discord message, as Slack streams into its placeholder.

The engine is synchronous, so it runs in a worker thread (`asyncio.to_thread`) and hands its text
pieces to the event loop through a queue. The loop shows the text so far at most once every
UPDATE_INTERVAL_S: the first update creates the message (the interaction's follow-up, or a reply
to the mention), later ones edit it, and the finished answer replaces it with sources and buttons.

Rate limits: one request at a time per answer (an edit is awaited before the next is considered, so
edits never queue up behind a slow or rate-limited one), at most one a second, and discord.py's own
HTTP client waits out any 429 per route bucket before retrying.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import discord

from bot.channels.discord.views import MESSAGE_LIMIT, NO_MENTIONS, clip
from bot.core.types import Answer

log = logging.getLogger(__name__)
UPDATE_INTERVAL_S = 1.0
WRITING = " …"  # shown after the partial text while the answer is still being written
_DONE = object()


@dataclass
class _Raised:
    error: BaseException


class LiveMessage:
    """The message an answer is streamed into: created by the first partial update, edited by the next
    ones and by the final answer. `create(**kwargs)` posts it; `usable()` says whether it may still be
    posted or edited (an interaction token expires after 15 minutes)."""

    def __init__(self, create: Callable[..., Awaitable[Any]], usable: Callable[[], bool] = lambda: True):
        self.create = create
        self.usable = usable
        self.message: Any = None  # discord.Message or discord.WebhookMessage once posted
        self.broken = False
        self.updates = 0

    async def partial(self, text: str) -> None:
        if self.broken or not self.usable() or not text.strip():
            return
        content = clip(text.strip(), MESSAGE_LIMIT - len(WRITING)) + WRITING
        try:
            if self.message is None:
                self.message = await self.create(content=content, allowed_mentions=NO_MENTIONS)
            else:
                await self.message.edit(content=content, allowed_mentions=NO_MENTIONS)
            self.updates += 1
        except discord.HTTPException as exc:  # keep answering; the final answer is posted anyway
            log.warning("could not show the partial answer (%s %s); waiting for the final one", exc.status, exc.code)
            self.broken = True

    async def finish(self, content: str, embeds: list[discord.Embed], view: discord.ui.View | None,
                     fallback: Callable[[], Awaitable[None]]) -> None:
        """Replace the streamed message with the final answer; `fallback` posts it when there is no
        streamed message (a fast answer) or it cannot be edited any more."""
        if self.message is not None and not self.broken and self.usable():
            try:
                await self.message.edit(content=content, embeds=embeds, view=view, allowed_mentions=NO_MENTIONS)
                return
            except discord.HTTPException as exc:
                log.warning("could not finish the streamed answer in place (%s %s); posting it", exc.status, exc.code)
        await fallback()


async def stream(work: Callable[[], Iterator[str | Answer]], live: LiveMessage | None) -> Answer:
    """Run `work()` (the engine's stream) in a worker thread; show its text in `live` as it grows;
    return the final Answer (or raise what the engine raised)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def hand(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop closed (the bot is shutting down)
            pass

    def produce() -> None:
        try:
            for item in work():
                hand(item)
        except BaseException as exc:
            hand(_Raised(exc))
        finally:
            hand(_DONE)

    worker = asyncio.ensure_future(asyncio.to_thread(produce))
    pieces: list[str] = []
    final: Answer | None = None
    error: BaseException | None = None
    last = loop.time()
    while (item := await queue.get()) is not _DONE:
        if isinstance(item, Answer):
            final = item
        elif isinstance(item, _Raised):
            error = item.error
        else:
            pieces.append(item)
            if live is not None and loop.time() - last >= UPDATE_INTERVAL_S:
                await live.partial("".join(pieces))
                last = loop.time()
    await worker
    if error is not None:
        raise error
    if final is None:
        raise RuntimeError("the engine's stream ended without an Answer")
    return final
