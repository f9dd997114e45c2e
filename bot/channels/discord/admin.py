"""/kbot ingest | status | scope: administration from Discord, for admins only.

Admins are explicit (the shared rule): user ids in KBOT_DISCORD_ADMIN_USERS (every server), and per
server the user ids and role ids ('role:<id>') in KBOT_DISCORD_GUILD_ADMINS. Manage Server, a role
*name*, or owning a server the bot was invited to make nobody an admin: anyone can create a server
and invite the bot. Each server may map and ingest into only the scopes KBOT_DISCORD_GUILD_SCOPES
gives it (none when it is not listed); the operator-wide admins may ingest into any scope.
The group is visible to everyone (Discord's own command permissions cannot express "this user
list"), so `interaction_check` decides; server admins may hide it further under Server Settings >
Integrations.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from bot.channels import shared
from bot.channels.discord.places import PLATFORM, Place, guild_key, place_of, resolve_scopes
from bot.channels.discord.views import MESSAGE_LIMIT, clip
from bot.core.errors import DownloadError, InvalidScope
from bot.core.settings import Settings

log = logging.getLogger(__name__)


class NotAdmin(app_commands.CheckFailure):
    """The caller is not a kbot admin (answered by `cog_app_command_error`)."""


def is_admin(interaction: discord.Interaction, settings: Settings) -> bool:
    user = interaction.user
    listed = list(settings.discord_admin_users)
    roles: list[int] = []
    if interaction.guild_id is not None:
        listed += settings.discord_guild_admins.get(str(interaction.guild_id), [])
        roles = [r.id for r in user.roles] if isinstance(user, discord.Member) else []
    return shared.is_admin(str(user.id), listed, roles)


def allowed_scopes(interaction: discord.Interaction, settings: Settings, *, ingest: bool) -> list[str] | None:
    """The scopes this admin may use here (None: any). A server's scopes cap everyone in it; the
    operator-wide admins may ingest into any scope."""
    if ingest and shared.is_admin(str(interaction.user.id), settings.discord_admin_users):
        return None
    if interaction.guild_id is None:
        return None if ingest else []
    return list(settings.discord_guild_scopes.get(str(interaction.guild_id), []))


class AdminCog(commands.GroupCog, group_name="kbot", group_description="kbot administration (admins only)"):
    def __init__(self, services: shared.Services):
        self.services = services
        self.settings = services.settings
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The one admin check of every /kbot command."""
        if not is_admin(interaction, self.settings):
            raise NotAdmin()
        return True

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        """The one error handler: a refusal for non-admins, an apology for anything else."""
        if isinstance(error, NotAdmin):
            text = ("Only kbot admins can use `/kbot`: the operator lists them by user or role id "
                    "(KBOT_DISCORD_ADMIN_USERS, KBOT_DISCORD_GUILD_ADMINS).")
        else:
            log.error("/kbot %s failed", getattr(interaction.command, "name", "?"), exc_info=error)
            text = "Sorry, something went wrong on my side. Please try again later."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            pass

    # --- /kbot status ----------------------------------------------------------------------------
    @app_commands.command(name="status", description="Documents, answers, feedback and the active adapter.")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        place = place_of(interaction.channel, interaction.guild_id)
        text = await asyncio.to_thread(self._status_text, place)
        await interaction.followup.send(text, ephemeral=True)

    def _status_text(self, place: Place) -> str:
        store = self.services.store
        scopes, origin = resolve_scopes(store, self.settings, place)
        return "\n".join(shared.status(store, scopes, origin).lines("**"))

    # --- /kbot scope -----------------------------------------------------------------------------
    @app_commands.command(name="scope", description="Limit which knowledge scopes this channel searches.")
    @app_commands.describe(scopes="Comma-separated scopes, e.g. 'hr, it'",
                           server_wide="Apply to the whole server")
    async def scope(self, interaction: discord.Interaction, scopes: str, server_wide: bool = False) -> None:
        try:
            names = shared.parse_scopes(scopes)
            if interaction.guild_id is not None:
                shared.check_mappable(names, allowed_scopes(interaction, self.settings, ingest=False), "This server")
        except InvalidScope as exc:
            log.info("discord admin %s refused scopes in guild %s", interaction.user.id, interaction.guild_id)
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        if interaction.guild_id is None:
            await interaction.response.send_message(
                "Scopes are set per server channel; use this in a server.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        place = place_of(interaction.channel, interaction.guild_id)
        key = guild_key(interaction.guild_id) if server_wide else (place.thread_id or place.channel_id)
        await asyncio.to_thread(self.services.store.set_channel_scopes, PLATFORM, key, names)
        where = "this server" if server_wide else f"<#{key}>"
        await interaction.followup.send(f"Questions in {where} now search: {', '.join(names)}.",
                                        ephemeral=True)

    # --- /kbot ingest ----------------------------------------------------------------------------
    @app_commands.command(name="ingest", description="Add or update a document from a file or a URL.")
    @app_commands.describe(file="The document to ingest", url="An http(s) URL to ingest",
                           scope="Knowledge scope (default: the default scope)")
    async def ingest(
        self, interaction: discord.Interaction, file: discord.Attachment | None = None,
        url: str | None = None, scope: str | None = None,
    ) -> None:
        max_bytes = int(self.settings.max_file_mb * 1_000_000)
        problem = None
        try:
            target_scope = shared.check_scope(scope.strip()) if scope else self.settings.default_scope
            shared.check_mappable([target_scope], allowed_scopes(interaction, self.settings, ingest=True),
                                  "This server")
            if url:
                shared.check_url(url)
        except (InvalidScope, DownloadError) as exc:
            problem = str(exc)
        if (file is None) == (not url):
            problem = "Give either a file or a URL (one at a time)."
        elif file is not None and file.size > max_bytes:
            problem = f"`{clip(file.filename, 80)}` is larger than {self.settings.max_file_mb:g} MB."
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        log.info("discord ingest by %s into scope %s", interaction.user.id, target_scope)
        if file is not None:
            try:
                data = await file.read()
            except discord.HTTPException as exc:
                await interaction.followup.send(f"Could not download it: HTTP {exc.status}.", ephemeral=True)
                return
            text = await asyncio.to_thread(self._ingest, target_scope, f"discord:{file.filename}",
                                           data=data, name=shared.safe_filename(file.filename))
        else:
            text = await asyncio.to_thread(self._ingest, target_scope, url or "", url=url, max_bytes=max_bytes)
        await interaction.followup.send(clip(text, MESSAGE_LIMIT), ephemeral=True)

    def _ingest(self, scope: str, source: str, *, data: bytes | None = None, name: str = "",
                url: str | None = None, max_bytes: int = 0) -> str:
        """Write the upload (or download the URL) into a temporary folder and ingest it. Blocking."""
        with tempfile.TemporaryDirectory(prefix="kbot-discord-") as tmp:
            try:
                if url:
                    path = shared.fetch_to(url, Path(tmp), max_bytes=max_bytes,
                                           policy=shared.fetch_policy(self.settings))
                else:
                    path = Path(tmp) / name
                    path.write_bytes(data or b"")
                name = path.name
                report = self.services.ingestor.ingest_file(path, scope, source=source)
            except DownloadError as exc:
                return f"Could not download it: {exc}"
            except Exception as exc:  # the readers raise one clear error per bad file
                log.warning("discord ingest of %s failed: %s", source, type(exc).__name__)
                return f"Could not ingest `{clip(name, 80)}`: {exc}"
        lines = [f"`{clip(name, 80)}` into scope `{scope}`: {report.summary()}"]
        lines += [f"- failed {clip(src, 80)}: {clip(str(reason), 300)}" for src, reason in report.failed[:5]]
        return "\n".join(lines)
