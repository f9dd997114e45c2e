"""`kbot serve` runs the learning loop itself: after N new feedback items
(settings.train_after_feedback) or on a cron schedule (settings.train_schedule, read by croniter:
"minute hour day-of-month month day-of-week", names and @daily-style nicknames). Off when both are unset.

Training runs in a separate, niced process (multiprocessing "spawn", see `run_in_process`; the
child's entry point is `bot.serve.train_in_child`), never in the server's own threads: the bot keeps
its cores and its memory, and a crash in training cannot take it down. A promoted adapter reaches the
server through `training.registry.AdapterWatcher`.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from croniter import croniter

from bot.core.errors import ConfigError
from knowledge.store import Store, utcnow

if TYPE_CHECKING:
    from bot.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression as croniter reads it: five fields with names (`MON-FRI`, `JAN`), lists,
    ranges and steps, or a nickname (`@daily`, `@weekly`, `@hourly`). When both day-of-month and
    day-of-week are restricted, either one matching fires (classic cron). Times are UTC, like
    everything the store records."""

    expression: str

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        text = " ".join(text.split())
        if not text.startswith("@") and len(text.split()) != 5:
            raise ConfigError(f"KBOT_TRAIN_SCHEDULE {text!r} needs 5 fields: minute hour day-of-month month "
                              "day-of-week (e.g. '30 3 * * MON-FRI'), or @hourly / @daily / @weekly / @monthly")
        if not croniter.is_valid(text):
            raise ConfigError(f"KBOT_TRAIN_SCHEDULE {text!r} is not a valid cron expression (a field is out of "
                              "range or misspelt)")
        return cls(text)

    def matches(self, when: datetime) -> bool:
        return croniter.match(self.expression, when.replace(second=0, microsecond=0))

    def next_after(self, when: datetime) -> datetime:
        """The first matching minute strictly after `when`."""
        return croniter(self.expression, when).get_next(datetime)


def run_in_process(target: Callable[[Settings], None], settings: Settings) -> int:
    """Run `target(settings)` (one loop turn) in a spawned process and wait; returns its exit code."""
    process = multiprocessing.get_context("spawn").Process(
        target=target, args=(settings,), name="kbot-train", daemon=False
    )
    process.start()
    process.join()
    return process.exitcode or 0


class TrainingScheduler:
    """Polls the store every `poll_s` and starts a training run when one is due."""

    def __init__(self, settings: Settings, store: Store, runner: Callable[[], int], poll_s: float = 30.0):
        self.settings = settings
        self.store = store
        self.poll_s = poll_s
        self.runner = runner  # one loop turn; returns an exit code
        s = settings
        self.after_feedback = s.train_after_feedback
        self.schedule = CronSchedule.parse(s.train_schedule) if s.train_schedule else None
        self.last_run = utcnow()
        self.next_fire = self.schedule.next_after(self.last_run) if self.schedule else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.after_feedback > 0 or self.schedule is not None

    def due(self, now: datetime | None = None) -> str | None:
        """Why a run is due now (None: not due)."""
        now = now or utcnow()
        if self.next_fire is not None and now >= self.next_fire:
            return f"schedule {self.settings.train_schedule!r}"
        if self.after_feedback > 0:
            new = self.store.count_feedback(since=self.last_run)
            if new >= self.after_feedback:
                return f"{new} new feedback items"
        return None

    def tick(self, now: datetime | None = None) -> bool:
        """Run the loop once if due; True when it ran."""
        now = now or utcnow()
        reason = self.due(now)
        if reason is None:
            return False
        log.info("learning loop: training (%s)", reason)
        self.last_run = now
        if self.schedule is not None:
            self.next_fire = self.schedule.next_after(now)
        code = self.runner()
        if code:
            log.warning("learning loop: the training process exited with %s", code)
        return True

    def start(self) -> bool:
        """Start polling in a daemon thread; False (and nothing started) when the loop is off."""
        if not self.enabled:
            log.info("learning loop: off (set KBOT_TRAIN_AFTER_FEEDBACK or KBOT_TRAIN_SCHEDULE)")
            return False
        self._thread = threading.Thread(target=self._run, name="kbot-train-scheduler", daemon=True)
        self._thread.start()
        log.info(
            "learning loop: on (after %s feedback items, schedule %s)",
            self.after_feedback or "-",
            self.settings.train_schedule or "-",
        )
        return True

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.tick()
            except Exception:  # the server must keep serving whatever training does
                log.exception("learning loop: scheduled run failed")
