"""The Discord bot: a discord.py `commands.Bot` with the conversation cog (conversation.py: /ask,
mentions, threads, DMs, feedback) and the admin cog (admin.py: /kbot ingest | status | scope). Each
cog has one `cog_app_command_error`; the tree's `on_error` only logs.

Entry points: `build_discord_bot(runtime)`, `run_discord(runtime)` (blocking, `kbot discord`) and
`start_discord_in_thread(runtime)` (`kbot serve` when DISCORD_TOKEN is set).
"""

from __future__ import annotations

import asyncio
import logging
import threading

import discord
from discord import app_commands
from discord.ext import commands

from bot.channels.discord.admin import AdminCog
from bot.channels.discord.conversation import KbotCog
from bot.channels.discord.views import DYNAMIC_ITEMS, NO_MENTIONS
from bot.channels.shared import Services
from bot.core.errors import ChannelNotConfigured
from bot.core.settings import secret

log = logging.getLogger(__name__)


class KbotCommandTree(app_commands.CommandTree):
    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        # The cogs' cog_app_command_error has told the person; a refused admin check is not an error.
        if not isinstance(error, app_commands.CheckFailure):
            log.error("command %s failed", getattr(interaction.command, "qualified_name", "?"), exc_info=error)


class KbotBot(commands.Bot):
    def __init__(self, runtime: Services, *, message_content: bool = True):
        intents = discord.Intents.default()
        intents.message_content = message_content  # privileged: follow-ups in threads without a mention
        intents.typing = False
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents, allowed_mentions=NO_MENTIONS,
            help_command=None, tree_cls=KbotCommandTree,
        )
        self.runtime = runtime

    async def setup_hook(self) -> None:
        await self.add_cog(KbotCog(self, self.runtime))
        await self.add_cog(AdminCog(self.runtime))
        self.add_dynamic_items(*DYNAMIC_ITEMS)  # buttons on messages posted before this start
        await self.sync_commands()

    async def sync_commands(self) -> list[app_commands.AppCommand]:
        """Register the slash commands: to one server (instant) when KBOT_DISCORD_GUILD_ID is set,
        globally otherwise (may take a while to show up everywhere)."""
        guild_id = self.runtime.settings.discord_guild_id
        guild = discord.Object(id=guild_id) if guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.HTTPException as exc:  # mentions and DMs still work without commands
            log.error("could not sync slash commands (%s %s); was the bot invited with the "
                      "applications.commands scope?", exc.status, exc.code)
            return []
        log.info("synced %d slash commands %s", len(synced), f"to guild {guild_id}" if guild else "globally")
        return synced

    async def on_message(self, message: discord.Message) -> None:
        """No prefix commands: the cog's listener handles messages."""


def build_discord_bot(runtime: Services, *, message_content: bool = True) -> KbotBot:
    """The bot, pointed at KBOT_DISCORD_API_URL. Its cogs are added and its commands synced in
    `setup_hook`, i.e. on `login()` / `start()` (discord.py's add_cog is a coroutine)."""
    discord.http.Route.BASE = runtime.settings.discord_api_url.rstrip("/")
    return KbotBot(runtime, message_content=message_content)


async def serve_discord(runtime: Services) -> None:
    token = secret(runtime.settings.discord_token)
    if not token:
        raise ChannelNotConfigured("DISCORD_TOKEN is not set (see docs/discord.md)")
    for message_content in (True, False):
        bot = build_discord_bot(runtime, message_content=message_content)
        try:
            async with bot:
                await bot.start(token)
            return
        except discord.LoginFailure as exc:  # a wrong or revoked token: one line, not a traceback
            raise ChannelNotConfigured(f"Discord refused DISCORD_TOKEN ({exc})") from None
        except discord.PrivilegedIntentsRequired:
            if not message_content:
                raise
            log.warning("the Message Content intent is not enabled for this bot; continuing without it "
                        "(slash commands, mentions and DMs work; thread follow-ups need a mention)")


def run_discord(runtime: Services) -> None:
    """Run the bot until interrupted (`kbot discord`)."""
    asyncio.run(serve_discord(runtime))


def start_discord_in_thread(runtime: Services) -> threading.Thread:
    """Run the bot on its own event loop in a daemon thread (`kbot serve` with DISCORD_TOKEN set)."""

    def main() -> None:
        try:
            run_discord(runtime)
        except Exception:
            log.exception("the Discord bot stopped")

    thread = threading.Thread(target=main, name="kbot-discord", daemon=True)
    thread.start()
    return thread
