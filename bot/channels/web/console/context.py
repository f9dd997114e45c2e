"""What every console area gets: the running kbot, the learning-loop actions, the accounts."""

from __future__ import annotations

from dataclasses import dataclass

from bot.channels import shared
from knowledge.accounts import Accounts


@dataclass
class ConsoleContext:
    services: shared.Services
    learning: shared.LearningActions | None
    accounts: Accounts
