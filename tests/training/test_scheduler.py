"""When `kbot serve` trains by itself: after N new feedback items or on a cron-like schedule, in a
separate process (the runner is replaced by a recorder here; the process entry point is real)."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta

import pytest

from bot.core.errors import ConfigError
from bot.wiring import Runtime
from tests.conftest import make_settings
from training.scheduler import CronSchedule, TrainingScheduler


def test_cron_lists_ranges_steps_and_names():
    s = CronSchedule.parse("*/15 2,14 * * 1-5")
    monday = datetime(2025, 3, 3, 14, 30)
    assert s.matches(monday) and not s.matches(monday + timedelta(days=5))  # Saturday
    assert not s.matches(monday.replace(minute=31))
    names = CronSchedule.parse("30 3 * * MON-FRI")
    assert names.matches(datetime(2025, 3, 7, 3, 30)) and not names.matches(datetime(2025, 3, 8, 3, 30))
    assert CronSchedule.parse("0 3 * * 7").next_after(datetime(2025, 3, 3)) == datetime(2025, 3, 9, 3)  # Sunday


def test_next_fire_time():
    nightly = CronSchedule.parse("30 3 * * *")
    assert nightly.next_after(datetime(2025, 3, 3, 3, 30)) == datetime(2025, 3, 4, 3, 30)
    assert nightly.next_after(datetime(2025, 3, 3, 1, 0)) == datetime(2025, 3, 3, 3, 30)
    new_year = CronSchedule.parse("0 0 1 1 *")
    assert new_year.next_after(datetime(2025, 3, 3)) == datetime(2026, 1, 1)
    sundays = CronSchedule.parse("0 12 * * 0")
    assert sundays.next_after(datetime(2025, 3, 3)).isoweekday() == 7


def test_day_of_month_or_day_of_week_like_cron():
    # Both restricted: cron fires when EITHER matches. The 1st of June 2026 is far too late; Monday
    # 5 January 2026 is the next firing (1 January 2026 is a Thursday).
    either = CronSchedule.parse("0 3 1 * 1")
    assert either.next_after(datetime(2026, 1, 2)) == datetime(2026, 1, 5, 3)
    assert either.next_after(datetime(2026, 1, 5, 3)) == datetime(2026, 1, 12, 3)
    assert either.next_after(datetime(2026, 1, 26, 3)) == datetime(2026, 2, 1, 3)  # the 1st, a Sunday
    assert CronSchedule.parse("0 3 1 * MON").next_after(datetime(2026, 1, 2)) == datetime(2026, 1, 5, 3)


def test_nicknames():
    assert CronSchedule.parse("@daily").next_after(datetime(2026, 1, 2, 13, 5)) == datetime(2026, 1, 3)
    assert CronSchedule.parse("@hourly").next_after(datetime(2026, 1, 2, 13, 5)) == datetime(2026, 1, 2, 14)
    assert CronSchedule.parse("@weekly").next_after(datetime(2026, 1, 2)) == datetime(2026, 1, 4)  # Sunday 00:00


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "a * * * *", "*/0 * * * *", "0 3 * * FUNDAY",
                                 "@sometimes", "* * * * * *"])
def test_bad_schedules_are_one_clear_config_error(bad):
    with pytest.raises(ConfigError, match="KBOT_TRAIN_SCHEDULE"):
        CronSchedule.parse(bad)


def scheduler(tmp_path, **settings) -> tuple[TrainingScheduler, list, Runtime]:
    runs: list = []
    rt = Runtime(make_settings(tmp_path, **settings))
    sched = TrainingScheduler(rt.settings, rt.store, runner=lambda: runs.append(rt.settings) or 0, poll_s=0.01)
    return sched, runs, rt


def feedback(rt: Runtime, n: int) -> None:
    for i in range(n):
        answer_id = rt.store.log_answer(question=f"q{i}", answer="a", mode="generated")
        rt.store.record_feedback(answer_id, "u1", vote=1)


def test_off_when_neither_trigger_is_set(tmp_path):
    sched, runs, rt = scheduler(tmp_path)
    assert not sched.enabled and sched.start() is False
    feedback(rt, 3)
    assert sched.tick() is False and runs == []


def test_trains_after_n_new_feedback_items(tmp_path):
    sched, runs, rt = scheduler(tmp_path, train_after_feedback=3)
    feedback(rt, 2)
    assert sched.tick() is False
    feedback(rt, 1)
    assert sched.due() == "3 new feedback items"
    assert sched.tick() is True and runs == [rt.settings]
    assert sched.tick() is False  # counted again from the last run


def test_trains_on_schedule(tmp_path):
    sched, runs, rt = scheduler(tmp_path, train_schedule="0 3 * * *")
    fire = sched.next_fire
    assert fire.hour == 3 and fire.minute == 0
    assert sched.tick(fire - timedelta(minutes=1)) is False
    assert sched.tick(fire) is True and len(runs) == 1
    assert sched.next_fire == fire + timedelta(days=1)


def test_background_thread_runs_when_due(tmp_path):
    import time

    sched, runs, rt = scheduler(tmp_path, train_after_feedback=1)
    assert sched.start() is True
    try:
        feedback(rt, 1)
        deadline = time.monotonic() + 5
        while not runs and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sched.stop()
    assert len(runs) == 1


def test_settings_reach_the_training_process(tmp_path):
    # The spawned process receives the server's settings by pickling (secrets included, never logged).
    settings = make_settings(
        tmp_path, train_after_feedback=5, slack_bot_token="xoxb-1", private_scopes=["hr"]
    )
    copy = pickle.loads(pickle.dumps(settings))
    assert copy.data_dir == tmp_path and copy.private_scopes == ["hr"] and copy.db_url == settings.db_url
    assert copy.slack_bot_token.get_secret_value() == "xoxb-1"
