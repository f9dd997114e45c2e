"""Where a Discord question was asked, and which knowledge scopes that place may search.

Scopes limit retrieval the same way as in Slack: the most specific mapping wins (thread, then its
parent channel, then the server), a mapping made at runtime with `/kbot scope` (stored) beats one
from settings (KBOT_DISCORD_CHANNEL_SCOPES), and anything unmapped searches the default scope.
"""

from __future__ import annotations

from dataclasses import dataclass

import discord

from bot.channels import shared
from bot.core.settings import Settings
from knowledge.store import Store

PLATFORM = "discord"


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
    return shared.resolve_scopes(store, PLATFORM, place.scope_keys, settings.discord_channel_scopes,
                                 settings.default_scope)
