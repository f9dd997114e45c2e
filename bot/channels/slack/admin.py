"""Admin work for the Slack app: fetching shared files and URLs, ingesting them, /kbot status and
/kbot scope. Platform calls go through the Bolt app's WebClient; nothing here touches Bolt itself."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channels import shared
from bot.channels.slack.context import PLATFORM, SlackContext
from bot.channels.slack.render import escape, link
from bot.core.errors import DownloadError, InvalidScope

log = logging.getLogger(__name__)

_CHANNEL_REF = re.compile(r"^<#(C[A-Z0-9]+|G[A-Z0-9]+)(?:\|[^>]*)?>$")
_SLACK_FILE_HOSTS = ("slack.com", "slack-edge.com", "slack-files.com")
HELP = (
    "*kbot commands*\n"
    "• `/ask <question>` — ask the knowledge base (only you see the answer until you share it)\n"
    "• `/kbot status` — documents, last ingest, adapter version (admins)\n"
    "• `/kbot ingest <url> [scope]` — add a document from a URL (admins); or share a file with me in a DM\n"
    "• `/kbot scope [#channel] [scope ...]` — show or set the knowledge scopes of a channel (admins)"
)


def parse_url_argument(text: str) -> str:
    """A URL as Slack escapes it in command text (`<https://x|label>`) or as typed."""
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].split("|", 1)[0]
    return text


def token_allowed_for(url: str, api_base: str) -> bool:
    """The bot token is only ever sent to Slack's own hosts or the configured API host."""
    host = (urlparse(url).hostname or "").lower()
    api_host = (urlparse(api_base).hostname or "").lower()
    return bool(host) and (
        host == api_host or any(host == h or host.endswith("." + h) for h in _SLACK_FILE_HOSTS)
    )


def download_slack_file(client: WebClient, file_id: str, dest_dir: Path, max_bytes: int,
                        policy: shared.FetchPolicy | None = None) -> tuple[Path, str]:
    """files.info then url_private with the bot token. Returns (local path, file name)."""
    info: dict[str, Any] = client.files_info(file=file_id)["file"]
    name = shared.safe_filename(info.get("name") or info.get("title") or file_id)
    if int(info.get("size") or 0) > max_bytes:
        raise DownloadError(f"{name} is larger than {max_bytes // 1_000_000} MB")
    url = info.get("url_private_download") or info.get("url_private")
    if not url:
        raise DownloadError(f"Slack gave no download link for {name}")
    if not token_allowed_for(url, client.base_url):
        raise DownloadError(f"refusing to send the bot token to {urlparse(url).hostname}")
    path = shared.fetch_to(url, dest_dir / file_id, name=name, max_bytes=max_bytes, token=client.token,
                           policy=policy)
    if path.suffix.lower() not in (".html", ".htm") and path.read_bytes()[:200].lstrip().lower().startswith(
        (b"<!doctype html", b"<html")
    ):  # Slack answers a token without files:read with its login page
        path.unlink(missing_ok=True)
        raise DownloadError("Slack returned a web page instead of the file (does the app have files:read?)")
    return path, name


def download_url(client: WebClient, url: str, dest_dir: Path, max_bytes: int,
                 policy: shared.FetchPolicy | None = None) -> Path:
    """A document URL; Slack file links get the bot token, other hosts never do."""
    token = client.token if token_allowed_for(url, client.base_url) else None
    return shared.fetch_to(url, dest_dir / uuid.uuid4().hex[:12], max_bytes=max_bytes, token=token, policy=policy)


def fetch_policy(ctx: SlackContext) -> shared.FetchPolicy:
    """The safe fetcher's policy, plus the Slack API host the operator configured (Slack's file links
    live there; in tests it is a local fake)."""
    return shared.fetch_policy(ctx.settings, shared.host_port(ctx.client.base_url))


def ingest_reply(name: str, scope: str, report: Any) -> str:
    """One line for the admin, plus one per failed or skipped file."""
    lines = [
        f"{'Ingested' if report.ok else 'Could not fully ingest'} *{escape(name)}* into scope "
        f"`{escape(scope)}`: {escape(report.summary())}"
    ]
    for source, reason in [*report.failed, *report.skipped]:
        lines.append(f"• {escape(str(source))}: {escape(str(reason))}")
    return "\n".join(lines)


def parse_scope_command(args: str, current_channel: str) -> tuple[str, list[str]]:
    """`[<#C123|name>] scope [scope ...]` (spaces or commas) -> (channel id, scopes).
    Raises InvalidScope with a message for the admin."""
    words = [w for w in re.split(r"[\s,]+", args.strip()) if w]
    channel = current_channel
    if words and (m := _CHANNEL_REF.match(words[0])):
        channel = m.group(1)
        words = words[1:]
    return channel, shared.parse_scopes(" ".join(words)) if words else []


class AdminCommands:
    """/kbot and files shared in a DM. Admins are the Slack user ids in settings.slack_admins."""

    def __init__(self, ctx: SlackContext):
        self.bot = ctx

    def accept_files(self, event: dict[str, Any], user: str, channel: str) -> None:
        bot, reply_thread = self.bot, event.get("thread_ts")
        if not bot.is_admin(user):
            bot.post(
                channel,
                "Thanks, but only kbot admins can add documents. I'm happy to answer questions, "
                "though: just ask.",
                thread_ts=reply_thread,
            )
            return
        files = [f for f in event.get("files") or [] if f.get("id")]
        words = re.findall(r"scope[=:]\s*(\S+)", event.get("text") or "")
        try:
            scope = shared.check_scope(words[0]) if words else bot.settings.default_scope
        except InvalidScope as exc:
            bot.post(channel, escape(str(exc)), thread_ts=reply_thread)
            return
        bot.post(
            channel, f"Adding {len(files)} file(s) to scope `{escape(scope)}`...", thread_ts=reply_thread
        )
        bot.submit(self.ingest_files, files, scope, channel, reply_thread)

    def ingest_files(
        self, files: list[dict[str, Any]], scope: str, channel: str, thread_ts: str | None
    ) -> None:
        bot = self.bot
        dest = bot.settings.data_dir / "uploads" / "slack"
        max_bytes = int(bot.settings.max_file_mb * 1_000_000)
        for f in files:
            name = shared.safe_filename(f.get("name") or f["id"])
            try:
                path, name = download_slack_file(bot.client, f["id"], dest, max_bytes, fetch_policy(bot))
                report = bot.services.ingestor.ingest_file(path, scope, source=f"slack:{name}", title=name)
                reply = ingest_reply(name, scope, report)
            except (DownloadError, SlackApiError) as exc:
                reason = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc)
                reply = f"Could not ingest *{escape(name)}*: {escape(str(reason))}"
            log.info("slack admin ingest of file %s into %s finished", f["id"], scope)
            bot.post(channel, reply, thread_ts=thread_ts)

    def on_kbot(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        bot = self.bot
        sub, _, rest = (command.get("text") or "").strip().partition(" ")
        sub = sub.lower()
        user, channel = command.get("user_id", ""), command.get("channel_id", "")
        if sub in ("", "help"):
            ack(response_type="ephemeral", text=HELP)
            return
        if sub not in ("status", "ingest", "scope"):
            ack(response_type="ephemeral", text=f"I don't know `/kbot {escape(sub[:40])}`.\n{HELP}")
            return
        if not bot.is_admin(user):
            ack(
                response_type="ephemeral",
                text=f"Sorry, `/kbot {sub}` is for kbot admins; an admin can add your Slack user id to "
                "KBOT_SLACK_ADMINS. You can still ask questions with `/ask`.",
            )
            return
        if sub == "status":
            is_dm = channel.startswith("D") or command.get("channel_name") == "directmessage"
            facts = shared.status(bot.store, *bot.scopes_with_origin(channel, user, is_dm))
            ack(response_type="ephemeral", text="\n".join(escape(line) for line in facts.lines("*")))
        elif sub == "scope":
            self.scope(ack, rest, channel, user)
        else:
            url_text, _, scope = rest.strip().partition(" ")
            url, scope = parse_url_argument(url_text), scope.strip() or bot.settings.default_scope
            if not url.lower().startswith(("http://", "https://")) or not shared.SCOPE_NAME.fullmatch(scope):
                ack(
                    response_type="ephemeral",
                    text="Usage: `/kbot ingest <url> [scope]`, or share a file with me in a DM.",
                )
                return
            ack(
                response_type="ephemeral",
                text=f"Fetching {link(url, url[:200])} into scope `{escape(scope)}` ...",
            )
            bot.submit(self.ingest_url, url, scope, respond)

    def scope(self, ack: Any, args: str, channel: str, user: str) -> None:
        try:
            target, scopes = parse_scope_command(args, channel)
        except InvalidScope as exc:
            ack(response_type="ephemeral", text=f"Sorry: {escape(str(exc))}")
            return
        if scopes:
            self.bot.store.set_channel_scopes(PLATFORM, target, scopes)
            log.info("slack admin %s set the scopes of channel %s", user, target)
        shown = ", ".join(f"`{escape(s)}`" for s in self.bot.scopes_for(target, user, False))
        ack(
            response_type="ephemeral",
            text=f"{'Now answering' if scopes else 'Answering'} in <#{target}> from: {shown}",
        )

    def ingest_url(self, url: str, scope: str, respond: Any) -> None:
        bot = self.bot
        dest = bot.settings.data_dir / "uploads" / "urls"
        try:
            path = download_url(bot.client, url, dest, int(bot.settings.max_file_mb * 1_000_000), fetch_policy(bot))
            text = ingest_reply(url, scope, bot.services.ingestor.ingest_file(path, scope, source=url))
        except DownloadError as exc:
            text = f"Could not ingest {escape(url[:200])}: {escape(str(exc))}"
        log.info("slack admin ingest of a URL into %s finished", scope)
        respond(text=text, response_type="ephemeral", replace_original=False)
