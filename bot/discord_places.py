"""Where a Discord question was asked, and which knowledge scopes that place may search.

Scopes limit retrieval the same way as in Slack: the most specific mapping wins (thread, then its
parent channel, then the server), a mapping made at runtime with `/kbot scope` (stored) beats one
from settings (KBOT_DISCORD_CHANNEL_SCOPES), and anything unmapped searches the default scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

from bot.settings import Settings
from knowledge.store import Store

PLATFORM = "discord"
MAX_SCOPES = 10
_SCOPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Place:
    """A question's location: a thread is recorded under its parent channel, as in Slack."""

    channel_id: str
    thread_id: str = ""
    guild_id: str = ""

    @property
    def scope_keys(self) -> list[str]:
        """Keys looked up for scopes, most specific first. Servers use 'guild:<id>' in the store
        (an old server's first channel can share the server's id); settings may use either form."""
        keys = [k for k in (self.thread_id, self.channel_id) if k]
        if self.guild_id:
            keys += [guild_key(self.guild_id), self.guild_id]
        return keys


def guild_key(guild_id: int | str) -> str:
    return f"guild:{guild_id}"


def place_of(channel: object, guild_id: int | None) -> Place:
    """The Place of a channel object (Thread, TextChannel, DMChannel, PartialMessageable...)."""
    gid = str(guild_id) if guild_id else ""
    if isinstance(channel, discord.Thread):
        return Place(str(channel.parent_id), str(channel.id), gid)
    return Place(str(getattr(channel, "id", "") or ""), "", gid)


def resolve_scopes(store: Store, settings: Settings, place: Place) -> tuple[tuple[str, ...], str]:
    """The scopes to search at `place` and where they came from (for /kbot status). Blocking (SQL)."""
    for key in place.scope_keys:
        stored = store.channel_scopes(PLATFORM, key)
        if stored:
            return tuple(stored), f"set with /kbot scope for {key}"
        configured = settings.discord_channel_scopes.get(key)
        if configured:
            return tuple(configured), f"KBOT_DISCORD_CHANNEL_SCOPES[{key}]"
    return (settings.default_scope,), "default scope"


def parse_scopes(text: str) -> list[str]:
    """'hr, it' -> ['hr', 'it']; raises ValueError with a message fit to show the admin."""
    scopes = list(dict.fromkeys(s.strip() for s in re.split(r"[,\s]+", text) if s.strip()))
    if not scopes:
        raise ValueError("Give at least one scope, e.g. `hr, it`.")
    if len(scopes) > MAX_SCOPES:
        raise ValueError(f"At most {MAX_SCOPES} scopes per channel.")
    bad = [s for s in scopes if not _SCOPE_NAME.fullmatch(s)]
    if bad:
        raise ValueError(
            f"Invalid scope name {bad[0][:40]!r}: use letters, digits, '.', '_' or '-' "
            "(at most 128 characters)."
        )
    return scopes
