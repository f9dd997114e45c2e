"""/kbot ingest | status | scope: administration from Discord, for admins only.

An admin is a user listed in KBOT_DISCORD_ADMIN_USERS, a member with the role named (or with the id)
KBOT_DISCORD_ADMIN_ROLE, or a member with Manage Server in that server. The group is visible to
everyone (Discord's own command permissions cannot express "this role or that user list"), so the
check happens here; server admins may hide it further under Server Settings > Integrations.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_places import PLATFORM, Place, guild_key, parse_scopes, place_of, resolve_scopes
from bot.discord_views import MESSAGE_LIMIT, clip
from bot.settings import Settings
from bot.wiring import Runtime

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60
# File type from Content-Type, for URLs whose path has no extension (https://example.com/handbook).
_SUFFIXES = {
    "text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt", "text/markdown": ".md",
    "text/csv": ".csv", "application/pdf": ".pdf", "application/json": ".json",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}


class DownloadError(Exception):
    """A URL or attachment could not be fetched; the message is shown to the admin."""


def is_admin(interaction: discord.Interaction, settings: Settings) -> bool:
    user = interaction.user
    if str(user.id) in settings.discord_admin_users:
        return True
    role = settings.discord_admin_role
    if isinstance(user, discord.Member) and role and any(role in (r.name, str(r.id)) for r in user.roles):
        return True
    perms = interaction.permissions
    return interaction.guild_id is not None and (perms.manage_guild or perms.administrator)


def safe_filename(name: str, fallback: str = "document") -> str:
    """A file name that cannot escape the temporary folder or confuse the readers."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return base[:120] or fallback


async def download(url: str, max_bytes: int) -> tuple[bytes, str]:
    """The body of `url` (at most `max_bytes`) and a file name with a suffix the readers know."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise DownloadError("Give an http(s) URL.")
    timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            if resp.status != 200:
                raise DownloadError(f"The URL answered HTTP {resp.status}.")
            body = bytearray()
            async for block in resp.content.iter_chunked(64 * 1024):
                body += block
                if len(body) > max_bytes:
                    raise DownloadError(f"The file is larger than {max_bytes // 1_000_000} MB.")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DownloadError(f"Could not fetch the URL ({type(exc).__name__}).") from exc
    name = safe_filename(unquote(PurePosixPath(parsed.path).name), fallback="page")
    if not Path(name).suffix and content_type in _SUFFIXES:
        name += _SUFFIXES[content_type]
    return bytes(body), name


class AdminCog(commands.GroupCog, group_name="kbot", group_description="kbot administration (admins only)"):
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.settings = runtime.settings
        super().__init__()

    async def _admin_only(self, interaction: discord.Interaction) -> bool:
        if is_admin(interaction, self.settings):
            return True
        await interaction.response.send_message(
            f"Only kbot admins can use `/kbot` (the `{self.settings.discord_admin_role}` role, "
            "Manage Server, or KBOT_DISCORD_ADMIN_USERS).", ephemeral=True,
        )
        return False

    # --- /kbot status ----------------------------------------------------------------------------
    @app_commands.command(name="status", description="Documents, answers, feedback and the active adapter.")
    async def status(self, interaction: discord.Interaction) -> None:
        if not await self._admin_only(interaction):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        place = place_of(interaction.channel, interaction.guild_id)
        text = await asyncio.to_thread(self._status_text, place)
        await interaction.followup.send(text, ephemeral=True)

    def _status_text(self, place: Place) -> str:
        store = self.runtime.store
        docs = store.list_documents()
        failed = sum(1 for d in docs if d.status != "ok")
        adapter = store.active_adapter()
        scopes, origin = resolve_scopes(store, self.settings, place)
        pending = len(store.list_feedback(correction_status="pending"))
        lines = [
            "**kbot status**",
            f"Documents: {len(docs)} ({sum(d.chunk_count for d in docs)} chunks, {failed} failed)",
            f"Answers: {store.count_answers()} · feedback: {store.count_feedback()} · "
            f"corrections to review: {pending}",
            f"Model adapter: {adapter.version if adapter else 'base model'}",
            f"Scopes here: {', '.join(scopes)} ({origin})",
        ]
        return "\n".join(lines)

    # --- /kbot scope -----------------------------------------------------------------------------
    @app_commands.command(name="scope", description="Limit which knowledge scopes this channel searches.")
    @app_commands.describe(scopes="Comma-separated scopes, e.g. 'hr, it'",
                           server_wide="Apply to the whole server")
    async def scope(self, interaction: discord.Interaction, scopes: str, server_wide: bool = False) -> None:
        if not await self._admin_only(interaction):
            return
        try:
            names = parse_scopes(scopes)
        except ValueError as exc:
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
        await asyncio.to_thread(self.runtime.store.set_channel_scopes, PLATFORM, key, names)
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
        if not await self._admin_only(interaction):
            return
        max_bytes = int(self.settings.max_file_mb * 1_000_000)
        problem = None
        try:
            target_scope = parse_scopes(scope)[0] if scope else self.settings.default_scope
        except ValueError as exc:
            problem = str(exc)
        if (file is None) == (not url):
            problem = "Give either a file or a URL (one at a time)."
        elif file is not None and file.size > max_bytes:
            problem = f"`{clip(file.filename, 80)}` is larger than {self.settings.max_file_mb:g} MB."
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            if file is not None:
                data, name = await file.read(), safe_filename(file.filename)
                source = f"discord:{file.filename}"
            else:
                data, name = await download(url or "", max_bytes)
                source = url or ""
        except (DownloadError, discord.HTTPException) as exc:
            await interaction.followup.send(f"Could not download it: {exc}", ephemeral=True)
            return
        log.info("discord ingest by %s: %d bytes into scope %s", interaction.user.id, len(data), target_scope)
        text = await asyncio.to_thread(self._ingest_bytes, data, name, target_scope, source)
        await interaction.followup.send(clip(text, MESSAGE_LIMIT), ephemeral=True)

    def _ingest_bytes(self, data: bytes, name: str, scope: str, source: str) -> str:
        with tempfile.TemporaryDirectory(prefix="kbot-discord-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            try:
                report = self.runtime.ingestor.ingest_file(path, scope, source=source)
            except Exception as exc:  # the readers raise one clear error per bad file
                log.warning("discord ingest of %s failed: %s", source, type(exc).__name__)
                return f"Could not ingest `{clip(name, 80)}`: {exc}"
        lines = [f"`{clip(name, 80)}` into scope `{scope}`: {report.summary()}"]
        lines += [f"- failed {clip(src, 80)}: {clip(str(reason), 300)}" for src, reason in report.failed[:5]]
        return "\n".join(lines)
