"""What Slack handlers depend on: the running kbot, the Web API client and a way to run slow work after
the ack. Handlers get a `SlackContext`, never the app that registers them (bolt-python's listener /
middleware split), so each handler module can be read and tested on its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

from bot.channels import shared
from bot.core.settings import Settings

PLATFORM = "slack"


@dataclass
class SlackContext:
    services: shared.Services
    client: WebClient
    submit: Callable[..., None]  # run fn(*args) on the work pool, after the ack

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def store(self) -> Any:
        return self.services.store

    def is_admin(self, user_id: str) -> bool:
        return shared.is_admin(user_id, self.settings.slack_admins)

    def scopes_for(self, channel_id: str, user_id: str, is_dm: bool) -> tuple[str, ...]:
        """In a DM, the default scope plus the scopes granted to that user; in a channel, what an admin
        mapped (the store, then settings), else the default scope."""
        return self.scopes_with_origin(channel_id, user_id, is_dm)[0]

    def scopes_with_origin(self, channel_id: str, user_id: str, is_dm: bool) -> tuple[tuple[str, ...], str]:
        default = self.settings.default_scope
        if is_dm:
            granted = self.settings.slack_user_scopes.get(user_id, [])
            return tuple(dict.fromkeys([default, *granted])), "direct message"
        return shared.resolve_scopes(self.store, PLATFORM, [channel_id], self.settings.slack_channel_scopes, default)

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None,
             thread_ts: str | None = None) -> str:
        """chat.postMessage without link previews; returns the new message's ts."""
        resp = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts,
                                            unfurl_links=False, unfurl_media=False)
        return resp["ts"]
