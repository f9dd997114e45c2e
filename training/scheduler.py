"""`kbot serve` runs the learning loop itself: after N new feedback items
(settings.train_after_feedback) or on a cron-like schedule (settings.train_schedule,
"minute hour day-of-month month day-of-week"). Off when both are unset.

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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from knowledge.store import Store, utcnow

if TYPE_CHECKING:
    from bot.core.settings import Settings

log = logging.getLogger(__name__)
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 6))


@dataclass(frozen=True)
class CronSchedule:
    """The five classic cron fields with *, lists (1,5), ranges (1-5) and steps (*/15, 0-30/10).
    Weekday 0 (or 7) is Sunday. Times are UTC, like everything the store records."""

    minute: frozenset[int]
    hour: frozenset[int]
    day: frozenset[int]
    month: frozenset[int]
    weekday: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"schedule {text!r} needs 5 fields: minute hour day-of-month month day-of-week")
        values = {}
        for part, (name, low, high) in zip(parts, _FIELDS, strict=True):
            values[name] = _parse_field(part, name, low, high + (1 if name == "weekday" else 0))
        values["weekday"] = frozenset(d % 7 for d in values["weekday"])
        return cls(**values)

    def matches(self, when: datetime) -> bool:
        return (
            when.minute in self.minute
            and when.hour in self.hour
            and when.day in self.day
            and when.month in self.month
            and (when.isoweekday() % 7) in self.weekday
        )

    def next_after(self, when: datetime) -> datetime:
        """The first matching minute strictly after `when` (searched up to ~4 years ahead)."""
        t = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(4 * 366 * 24 * 60):
            if t.month not in self.month:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if t.day not in self.day or (t.isoweekday() % 7) not in self.weekday:
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hour:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute in self.minute:
                return t
            t += timedelta(minutes=1)
        raise ValueError("schedule never fires")


def _parse_field(part: str, name: str, low: int, high: int) -> frozenset[int]:
    out: set[int] = set()
    for item in part.split(","):
        body, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                start, end = (int(x) for x in body.split("-", 1))
            else:
                start = end = int(body)
        except ValueError:
            raise ValueError(f"bad {name} field {part!r} in schedule") from None
        if step < 1 or start < low or end > high or start > end:
            raise ValueError(f"{name} field {part!r} is outside {low}-{high}")
        out.update(range(start, end + 1, step))
    return frozenset(out)


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
