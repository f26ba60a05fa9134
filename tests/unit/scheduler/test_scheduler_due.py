"""due_runs: what one tick of the scheduler does for one schedule. On time, missed, catch-up
(one run for a whole gap, never a burst), paused, and idempotent when the plan's
`last_due` is stored as `last_run_at`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vault.config.model import Schedule
from vault.planning.schedule_due import (
    DEFAULT_GRACE,
    MISSED_LIMIT,
    DuePlan,
    InvalidSchedule,
    ScheduleState,
    due_runs,
    next_run,
    run_key,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


LAST_RUN = utc(2026, 6, 1, 2)
CREATED = utc(2026, 1, 1)


def state(
    cron: str = "0 2 * * *",
    *,
    timezone: str = "UTC",
    last_run_at: datetime | None = LAST_RUN,
    created_at: datetime = CREATED,
    paused: bool = False,
    catch_up: bool = True,
) -> ScheduleState:
    return ScheduleState(
        name="nightly",
        cron=cron,
        timezone=timezone,
        paused=paused,
        catch_up=catch_up,
        last_run_at=last_run_at,
        created_at=created_at,
    )


def days(*numbers: int) -> list[datetime]:
    """02:00 UTC on these days of June 2026."""
    return [utc(2026, 6, day, 2) for day in numbers]


# --- the table --------------------------------------------------------------------------------

CASES = [
    # (id, schedule, now, expected plan fields)
    ("nothing due yet", state(), utc(2026, 6, 1, 23), {}),
    ("due now", state(), utc(2026, 6, 2, 2), {"run_at": days(2)[0]}),
    ("due, noticed 4 min late", state(), utc(2026, 6, 2, 2, 4), {"run_at": days(2)[0]}),
    ("exactly at the grace", state(), utc(2026, 6, 2, 2, 5), {"run_at": days(2)[0]}),
    (
        "one stale, catch-up",
        state(),
        utc(2026, 6, 2, 2, 5, 1),
        {"run_at": days(2)[0], "catch_up": True, "missed": days(2)},
    ),
    (
        "one stale, no catch-up",
        state(catch_up=False),
        utc(2026, 6, 2, 9),
        {"missed": days(2), "run_at": None},
    ),
    (
        "down 3 days, newest within grace",
        state(),
        utc(2026, 6, 4, 2, 3),
        {"run_at": days(4)[0], "missed": days(2, 3)},
    ),
    (
        "down 3 days, newest stale, catch-up",
        state(),
        utc(2026, 6, 4, 9),
        {"run_at": days(4)[0], "catch_up": True, "missed": days(2, 3, 4)},
    ),
    (
        "down 3 days, newest stale, no catch-up",
        state(catch_up=False),
        utc(2026, 6, 4, 9),
        {"run_at": None, "missed": days(2, 3, 4)},
    ),
    (
        "down 3 days, newest within grace, no catch-up",
        state(catch_up=False),
        utc(2026, 6, 4, 2, 1),
        {"run_at": days(4)[0], "missed": days(2, 3)},
    ),
    ("paused", state(paused=True), utc(2026, 6, 4, 9), {"skipped_paused": 3}),
    ("paused, nothing due", state(paused=True), utc(2026, 6, 1, 9), {}),
    (
        "never run: counted from created_at",
        state(last_run_at=None, created_at=utc(2026, 6, 2, 1, 59)),
        utc(2026, 6, 2, 2, 1),
        {"run_at": days(2)[0]},
    ),
    (
        "created after today's time",
        state(last_run_at=None, created_at=utc(2026, 6, 2, 2, 0, 1)),
        utc(2026, 6, 2, 2, 1),
        {},
    ),
    (
        "created mid-interval, hourly",
        state("hourly", last_run_at=None, created_at=utc(2026, 6, 2, 13, 20)),
        utc(2026, 6, 2, 14, 2),
        {"run_at": utc(2026, 6, 2, 14)},
    ),
    (
        "last_run_at ahead of now (another worker's clock)",
        state(last_run_at=utc(2026, 6, 2, 2)),
        utc(2026, 6, 2, 1, 59),
        {"next_run": utc(2026, 6, 3, 2)},
    ),
    (
        "every 15 minutes, down 50 minutes",
        state("*/15 * * * *", last_run_at=utc(2026, 6, 2, 10)),
        utc(2026, 6, 2, 10, 50),
        {
            "run_at": utc(2026, 6, 2, 10, 45),
            "missed": [utc(2026, 6, 2, 10, 15), utc(2026, 6, 2, 10, 30)],
        },
    ),
]


PARAMS = pytest.mark.parametrize(
    ("schedule", "now", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)


@PARAMS
def test_due_runs(schedule: ScheduleState, now: datetime, expected: dict[str, Any]) -> None:
    plan = due_runs(schedule, now)
    after = max(now, schedule.last_run_at or schedule.created_at)
    fields: dict[str, Any] = {
        "next_run": next_run(schedule.cron, schedule.timezone, after),
        "missed": [],
        **expected,
    }
    fields["missed_count"] = len(fields["missed"])
    assert plan == DuePlan(name="nightly", last_due=plan.last_due, **fields)
    # last_due is the newest due time accounted for, whatever happened to it
    handled = [*plan.missed, *([plan.run_at] if plan.run_at else [])]
    if plan.skipped_paused:
        assert plan.last_due == utc(2026, 6, 4, 2)
    else:
        assert plan.last_due == (max(handled) if handled else None)


@PARAMS
def test_storing_last_due_makes_the_plan_idempotent(
    schedule: ScheduleState, now: datetime, expected: dict[str, Any]
) -> None:
    plan = due_runs(schedule, now)
    if plan.last_due is None:
        return
    again = due_runs(replace(schedule, last_run_at=plan.last_due), now)
    assert again == DuePlan(name="nightly", next_run=plan.next_run)


def test_after_a_run_the_next_interval_gives_exactly_one() -> None:
    plan = due_runs(state(), utc(2026, 6, 2, 2, 1))
    assert plan.run_at == utc(2026, 6, 2, 2)
    updated = state(last_run_at=plan.run_at)
    assert due_runs(updated, utc(2026, 6, 2, 2, 3)).run_at is None
    assert due_runs(updated, utc(2026, 6, 3, 2, 0, 30)).run_at == utc(2026, 6, 3, 2)


def test_catch_up_is_one_run_however_long_the_gap() -> None:
    plan = due_runs(state("hourly", last_run_at=utc(2026, 6, 1)), utc(2026, 6, 11, 0, 30))
    assert plan.catch_up
    assert plan.run_at == utc(2026, 6, 11)
    assert plan.missed_count == 240


def test_workers_at_slightly_different_times_plan_the_same_run() -> None:
    """One notices the 02:00 run on time, the other a little late: the key is the same,
    so the journal lets only one of them enqueue it."""
    on_time = due_runs(state(), utc(2026, 6, 2, 2, 4))
    late = due_runs(state(), utc(2026, 6, 2, 2, 7))
    assert (on_time.catch_up, late.catch_up) == (False, True)
    assert on_time.key == late.key == run_key("nightly", utc(2026, 6, 2, 2))
    assert due_runs(state(), utc(2026, 6, 2, 1)).key is None


def test_grace_is_a_parameter() -> None:
    now = utc(2026, 6, 2, 3)
    assert due_runs(state(), now).catch_up
    assert not due_runs(state(), now, grace=timedelta(hours=1)).catch_up
    assert due_runs(state(), utc(2026, 6, 2, 2), grace=timedelta(0)).run_at == utc(2026, 6, 2, 2)
    assert timedelta(minutes=5) == DEFAULT_GRACE


def test_paused_then_resumed() -> None:
    paused = state(paused=True)
    plan = due_runs(paused, utc(2026, 6, 4, 9))
    assert (plan.run_at, plan.missed, plan.skipped_paused) == (None, [], 3)
    resumed = replace(paused, paused=False, last_run_at=plan.last_due)
    assert due_runs(resumed, utc(2026, 6, 4, 9)).missed_count == 0
    assert due_runs(resumed, utc(2026, 6, 5, 2, 1)).run_at == utc(2026, 6, 5, 2)


def test_due_times_in_a_time_zone_across_dst() -> None:
    """A Berlin 02:30 schedule down from Saturday to Monday over the spring-forward night:
    the Sunday run was at 03:00 CEST (01:00 UTC), the Monday one at 02:30 CEST."""
    berlin = ZoneInfo("Europe/Berlin")
    schedule = state("30 2 * * *", timezone="Europe/Berlin", last_run_at=utc(2026, 3, 28, 1, 30))
    plan = due_runs(schedule, datetime(2026, 3, 30, 2, 31, tzinfo=berlin))
    assert plan.missed == [utc(2026, 3, 29, 1)]
    assert plan.run_at == utc(2026, 3, 30, 0, 30)
    assert plan.next_run == utc(2026, 3, 31, 0, 30)


def test_fall_back_night_runs_once() -> None:
    schedule = state("30 2 * * *", timezone="Europe/Berlin", last_run_at=utc(2026, 10, 24, 0, 30))
    first = due_runs(schedule, utc(2026, 10, 25, 0, 31))
    assert first.run_at == utc(2026, 10, 25, 0, 30)
    # An hour later the wall clock reads 02:31 again: nothing more is due
    second = due_runs(replace(schedule, last_run_at=first.last_due), utc(2026, 10, 25, 1, 31))
    assert second.run_at is None and second.missed_count == 0
    assert second.next_run == utc(2026, 10, 26, 1, 30)


# --- bounded work ---------------------------------------------------------------------------


def test_a_year_down_on_a_minutely_schedule_is_capped() -> None:
    schedule = state("* * * * *", last_run_at=utc(2025, 1, 1))
    plan = due_runs(schedule, utc(2026, 1, 1))
    assert len(plan.missed) == MISSED_LIMIT == 1000
    assert plan.missed[0] == utc(2025, 1, 1, 0, 1)
    assert plan.missed[-1] == utc(2025, 1, 1, 16, 40)
    assert plan.missed_count == 365 * 24 * 60 - 1
    assert plan.run_at == plan.last_due == utc(2026, 1, 1)
    assert not plan.catch_up


def test_a_year_down_in_berlin_counts_by_elapsed_time_and_by_local_day() -> None:
    since, now = utc(2025, 12, 31, 23), utc(2026, 12, 31, 23)  # a local year
    minutely = due_runs(state("* * * * *", timezone="Europe/Berlin", last_run_at=since), now)
    assert minutely.missed_count == 365 * 24 * 60 - 1
    nightly = due_runs(state("30 2 * * *", timezone="Europe/Berlin", last_run_at=since), now)
    assert nightly.missed_count == 365 and nightly.catch_up


@pytest.mark.parametrize(
    ("cron", "tz"),
    [
        ("*/15 * * * *", "Europe/Berlin"),
        ("hourly", "Australia/Lord_Howe"),
        ("30 2 * * *", "Europe/Berlin"),
        ("30 1 * * *", "America/New_York"),
        ("*/10 2 * * *", "America/New_York"),
        ("15 2 * * *", "Australia/Lord_Howe"),
        ("45 1 * * 0", "Australia/Lord_Howe"),
        ("0 0 31 * *", "Pacific/Auckland"),
        ("0 12 1,15 * 1", "UTC"),
        ("0 6 * * mon#2", "Europe/Berlin"),
        ("30 3 L * *", "Europe/Berlin"),
        ("0 0 * * *", "America/Santiago"),  # changes its clocks at midnight
        ("0 0 * * *", "America/Havana"),
    ],
)
@pytest.mark.parametrize(
    ("since", "now"),
    [
        (utc(2026, 1, 1, 0, 7), utc(2026, 12, 30, 17, 3)),
        (utc(2026, 3, 7, 12), utc(2026, 3, 31, 12)),
        (utc(2026, 9, 30, 12), utc(2026, 11, 3, 12)),
    ],
)
def test_counting_agrees_with_listing(cron: str, tz: str, since: datetime, now: datetime) -> None:
    """With limit=0 the count comes from whole days and the cron fields; with a large limit
    every due time is listed. They must agree, DST days and all."""
    schedule = state(cron, timezone=tz, last_run_at=since)
    counted = due_runs(schedule, now, limit=0)
    listed = due_runs(schedule, now, limit=10**6)
    assert counted.missed == []
    assert counted.missed_count == listed.missed_count == len(listed.missed)
    assert counted.run_at == listed.run_at and counted.last_due == listed.last_due


# --- inputs ---------------------------------------------------------------------------------


def test_from_schedule_uses_the_config_model() -> None:
    schedule = Schedule(name="nightly", cron="daily", timezone="Europe/Berlin", catch_up=False)
    built = ScheduleState.from_schedule(schedule, created_at=utc(2026, 6, 1))
    assert built == ScheduleState(
        name="nightly",
        cron="0 0 * * *",
        timezone="Europe/Berlin",
        paused=False,
        catch_up=False,
        last_run_at=None,
        created_at=utc(2026, 6, 1),
    )
    assert due_runs(built, utc(2026, 6, 1, 22, 1)).run_at == utc(2026, 6, 1, 22)


@pytest.mark.parametrize("naive", ["now", "created_at", "last_run_at"])
def test_naive_datetimes_are_refused(naive: str) -> None:
    moment = datetime(2026, 6, 2)
    schedule = state(
        created_at=moment if naive == "created_at" else CREATED,
        last_run_at=moment if naive == "last_run_at" else LAST_RUN,
    )
    with pytest.raises(ValueError, match=f"{naive} must be an aware datetime"):
        due_runs(schedule, moment if naive == "now" else utc(2026, 6, 2))


def test_negative_grace_is_refused() -> None:
    with pytest.raises(ValueError):
        due_runs(state(), utc(2026, 6, 2), grace=timedelta(minutes=-1))


def test_a_bad_schedule_is_a_config_error() -> None:
    with pytest.raises(InvalidSchedule):
        due_runs(state("0 0 30 2 *"), utc(2026, 6, 2))
