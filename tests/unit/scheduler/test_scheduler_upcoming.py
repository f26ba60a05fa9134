"""upcoming (for `vault schedule list` and status) and run_key (the idempotency key that
lets exactly one worker enqueue a due run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from vault.planning.schedule_due import ScheduleState, UpcomingRun, run_key, upcoming


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def schedule(
    name: str,
    cron: str,
    timezone: str = "UTC",
    *,
    paused: bool = False,
    last_run_at: datetime | None = None,
) -> ScheduleState:
    return ScheduleState(
        name=name,
        cron=cron,
        timezone=timezone,
        paused=paused,
        catch_up=True,
        last_run_at=last_run_at,
        created_at=utc(2026, 1, 1),
    )


NOW = utc(2026, 6, 1, 10, 20)


def test_upcoming_merges_schedules_in_time_order() -> None:
    schedules = [
        schedule("nightly", "30 2 * * *", "Europe/Berlin"),  # 00:30 UTC in summer
        schedule("half-hourly", "*/30 * * * *"),
        schedule("weekly", "weekly"),
    ]
    assert upcoming(schedules, NOW, n=4) == [
        UpcomingRun("half-hourly", utc(2026, 6, 1, 10, 30)),
        UpcomingRun("half-hourly", utc(2026, 6, 1, 11)),
        UpcomingRun("half-hourly", utc(2026, 6, 1, 11, 30)),
        UpcomingRun("half-hourly", utc(2026, 6, 1, 12)),
    ]
    later = upcoming(schedules, utc(2026, 6, 1, 23, 50), n=3)
    assert later == [
        UpcomingRun("half-hourly", utc(2026, 6, 2, 0, 0)),
        UpcomingRun("half-hourly", utc(2026, 6, 2, 0, 30)),
        UpcomingRun("nightly", utc(2026, 6, 2, 0, 30)),  # a tie: by name
    ]


def test_upcoming_defaults_to_five() -> None:
    runs = upcoming([schedule("a", "hourly"), schedule("b", "daily")], NOW)
    assert len(runs) == 5
    assert [run.at for run in runs] == [utc(2026, 6, 1, hour) for hour in range(11, 16)]


def test_upcoming_leaves_out_paused_schedules() -> None:
    runs = upcoming([schedule("a", "hourly", paused=True), schedule("b", "daily")], NOW, n=2)
    assert runs == [UpcomingRun("b", utc(2026, 6, 2)), UpcomingRun("b", utc(2026, 6, 3))]
    assert upcoming([schedule("a", "hourly", paused=True)], NOW) == []
    assert upcoming([], NOW) == []


def test_upcoming_starts_after_a_run_already_enqueued() -> None:
    """If another worker (with a faster clock) already enqueued 11:00, it is not upcoming."""
    ahead = schedule("a", "hourly", last_run_at=utc(2026, 6, 1, 11))
    assert upcoming([ahead], NOW, n=1) == [UpcomingRun("a", utc(2026, 6, 1, 12))]


def test_upcoming_results_are_utc() -> None:
    runs = upcoming([schedule("a", "0 9 * * *", "Asia/Tokyo")], NOW, n=2)
    assert [run.at for run in runs] == [utc(2026, 6, 2, 0), utc(2026, 6, 3, 0)]
    assert all(run.at.tzinfo is UTC for run in runs)


# --- run keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (utc(2026, 3, 29, 1), "nightly@2026-03-29T01:00:00Z"),
        (
            datetime(2026, 3, 29, 3, tzinfo=ZoneInfo("Europe/Berlin")),
            "nightly@2026-03-29T01:00:00Z",
        ),
        (
            datetime(2026, 3, 29, 10, tzinfo=timezone(timedelta(hours=9))),
            "nightly@2026-03-29T01:00:00Z",
        ),
        (utc(2026, 12, 31, 23, 59), "nightly@2026-12-31T23:59:00Z"),
    ],
)
def test_run_key_is_the_name_and_the_utc_due_time(due: datetime, expected: str) -> None:
    assert run_key("nightly", due) == expected


def test_run_keys_differ_between_the_two_passes_of_a_repeated_hour() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 10, 25, 2, 30, tzinfo=berlin, fold=0)
    second = datetime(2026, 10, 25, 2, 30, tzinfo=berlin, fold=1)
    assert run_key("x", first) == "x@2026-10-25T00:30:00Z"
    assert run_key("x", second) == "x@2026-10-25T01:30:00Z"


def test_run_key_is_stable_and_distinct() -> None:
    due = utc(2026, 6, 1, 2)
    assert run_key("nightly", due) == run_key("nightly", due)
    assert run_key("nightly", due) != run_key("hourly", due)
    assert run_key("nightly", due) != run_key("nightly", due + timedelta(minutes=1))


def test_run_key_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        run_key("nightly", datetime(2026, 6, 1, 2))
