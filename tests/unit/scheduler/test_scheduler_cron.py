"""Cron expressions on a schedule's wall clock: presets, next_run, and the DST rules
(a fixed time in the spring-forward gap runs once at the gap's end, a repeated fixed time
runs once at its first occurrence; wildcard schedules follow elapsed time)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from vault.config.types import CRON_PRESETS
from vault.errors import ConfigError
from vault.planning.schedule_due import InvalidSchedule, cron_expression, next_run


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(tz: str, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """An aware UTC datetime from a local wall-clock reading."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def runs(cron: str, tz: str, after: datetime, until: datetime) -> list[datetime]:
    """Every due time in (after, until], by calling next_run repeatedly."""
    found: list[datetime] = []
    moment = next_run(cron, tz, after)
    while moment <= until:
        found.append(moment)
        moment = next_run(cron, tz, moment)
    return found


# --- expressions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hourly", "0 * * * *"),
        ("daily", "0 0 * * *"),
        ("weekly", "0 0 * * 0"),
        ("monthly", "0 0 1 * *"),
        ("@Daily", "0 0 * * *"),
        ("  */15   *  * * * ", "*/15 * * * *"),
        ("0 2 * * mon-fri", "0 2 * * mon-fri"),
        ("30 3 L * *", "30 3 L * *"),
    ],
)
def test_cron_expression(text: str, expected: str) -> None:
    assert cron_expression(text) == expected


def test_presets_are_those_of_the_config() -> None:
    assert {name: cron_expression(name) for name in CRON_PRESETS} == CRON_PRESETS


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yearly",
        "* * * *",
        "0 0 * * * *",  # seconds are not part of vault's cron
        "61 * * * *",
        "0 0 31 2 *",  # valid syntax, never matches
        "R R * * *",  # croniter's random fields would differ between workers
        "H 2 * * *",
    ],
)
def test_invalid_expressions(text: str) -> None:
    with pytest.raises(InvalidSchedule) as raised:
        cron_expression(text)
    assert isinstance(raised.value, ConfigError)
    assert raised.value.exit_code == 2


def test_unknown_time_zone() -> None:
    with pytest.raises(InvalidSchedule, match="Mars/Olympus"):
        next_run("daily", "Mars/Olympus", utc(2026, 1, 1))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_run("daily", "UTC", datetime(2026, 1, 1))


# --- next_run without DST ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "tz", "after", "expected"),
    [
        ("hourly", "UTC", utc(2026, 5, 1, 10, 0), utc(2026, 5, 1, 11, 0)),  # strictly after
        ("hourly", "UTC", utc(2026, 5, 1, 10, 0, 1), utc(2026, 5, 1, 11, 0)),
        ("daily", "UTC", utc(2026, 5, 1, 10), utc(2026, 5, 2)),
        ("weekly", "UTC", utc(2026, 5, 1), utc(2026, 5, 3)),  # Sunday
        ("monthly", "UTC", utc(2026, 5, 1), utc(2026, 6, 1)),
        ("*/15 * * * *", "UTC", utc(2026, 5, 1, 10, 7), utc(2026, 5, 1, 10, 15)),
        ("0 2 * * *", "Europe/Berlin", utc(2026, 1, 10), utc(2026, 1, 10, 1)),
        ("0 2 * * *", "Europe/Berlin", utc(2026, 7, 9, 12), utc(2026, 7, 10, 0)),
        ("0 2 * * *", "America/New_York", utc(2026, 1, 10), utc(2026, 1, 10, 7)),
        ("0 2 * * *", "Asia/Kolkata", utc(2026, 1, 10), utc(2026, 1, 10, 20, 30)),
        ("0 9 * * 1-5", "UTC", utc(2026, 5, 1, 10), utc(2026, 5, 4, 9)),  # Fri -> Mon
    ],
)
def test_next_run(cron: str, tz: str, after: datetime, expected: datetime) -> None:
    result = next_run(cron, tz, after)
    assert result == expected
    assert result.tzinfo is UTC


def test_next_run_accepts_any_aware_after() -> None:
    after = datetime(2026, 5, 1, 12, tzinfo=ZoneInfo("Asia/Tokyo"))  # 03:00 UTC
    assert next_run("hourly", "UTC", after) == utc(2026, 5, 1, 4)


def test_every_15_minutes_for_a_day() -> None:
    times = runs("*/15 * * * *", "UTC", utc(2026, 5, 1), utc(2026, 5, 2))
    assert len(times) == 96
    assert {b - a for a, b in pairwise(times)} == {timedelta(minutes=15)}


def test_the_31st_only_in_months_that_have_it() -> None:
    times = runs("0 0 31 * *", "UTC", utc(2026, 1, 1), utc(2027, 1, 1))
    assert [t.month for t in times] == [1, 3, 5, 7, 8, 10, 12]
    assert {t.day for t in times} == {31}


def test_weekly_in_a_time_zone_is_sunday_local() -> None:
    times = runs("weekly", "Pacific/Auckland", utc(2026, 1, 1), utc(2026, 3, 1))
    zone = ZoneInfo("Pacific/Auckland")
    assert {t.astimezone(zone).strftime("%a %H:%M") for t in times} == {"Sun 00:00"}
    assert {t.strftime("%a") for t in times} == {"Sat"}  # still Saturday in UTC
    assert len(times) == 9  # Jan 4 ... Mar 1, local


def test_feb_29_runs_in_leap_years_only() -> None:
    times = runs("0 0 29 2 *", "UTC", utc(2026, 1, 1), utc(2033, 1, 1))
    assert times == [utc(2028, 2, 29), utc(2032, 2, 29)]


# --- DST -------------------------------------------------------------------------------------

# (zone, the spring-forward day, the fall-back day) in 2026
TRANSITIONS = [
    ("Europe/Berlin", date(2026, 3, 29), date(2026, 10, 25)),  # 02:00 -> 03:00, 03:00 -> 02:00
    ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),  # 02:00 -> 03:00, 02:00 -> 01:00
    ("Australia/Lord_Howe", date(2026, 10, 4), date(2026, 4, 5)),  # 02:00 -> 02:30, 02:00 -> 01:30
]


@pytest.mark.parametrize(
    ("cron", "tz", "after", "expected"),
    [
        # 02:00 does not exist on the spring-forward day: the first instant after the gap
        (
            "0 2 * * *",
            "Europe/Berlin",
            utc(2026, 3, 28, 12),
            local("Europe/Berlin", 2026, 3, 29, 3),
        ),
        ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1)),
        ("59 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1)),
        ("0 3 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1)),
        (
            "0 2 * * *",
            "Europe/Berlin",
            utc(2026, 3, 29, 1),
            utc(2026, 3, 30, 0),
        ),  # then 02:00 again
        # 02:30 happens twice on the fall-back day: the first occurrence (CEST) only
        ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30)),
        ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),
        ("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12), utc(2026, 3, 8, 7)),  # 03:00 EDT
        ("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), utc(2026, 11, 1, 5, 30)),
        ("30 1 * * *", "America/New_York", utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)),
        # Lord Howe moves by 30 minutes: 02:15 does not exist, 02:30 is the gap's end
        ("15 2 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 3), utc(2026, 10, 3, 15, 30)),
        ("30 2 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 3), utc(2026, 10, 3, 15, 30)),
        ("45 1 * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 3), utc(2026, 4, 4, 14, 45)),
        ("45 1 * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 15, 15)),
    ],
)
def test_dst_fixed_times(cron: str, tz: str, after: datetime, expected: datetime) -> None:
    assert next_run(cron, tz, after) == expected


@pytest.mark.parametrize(
    "cron", ["0 2 * * *", "30 2 * * *", "30 1 * * *", "15 2 * * *", "45 1 * * *"]
)
@pytest.mark.parametrize(("tz", "spring", "autumn"), TRANSITIONS)
def test_fixed_times_run_once_per_local_day(cron: str, tz: str, spring: date, autumn: date) -> None:
    zone = ZoneInfo(tz)
    for day in (spring, autumn):
        start = datetime.combine(day - timedelta(days=3), datetime.min.time(), zone)
        times = runs(cron, tz, start.astimezone(UTC), (start + timedelta(days=7)).astimezone(UTC))
        per_day = Counter(t.astimezone(zone).date() for t in times)
        assert len(times) == 7
        assert set(per_day.values()) == {1}, per_day
        assert day in per_day


@pytest.mark.parametrize(
    ("cron", "tz", "day", "count", "step"),
    [
        ("*/15 * * * *", "Europe/Berlin", date(2026, 3, 29), 92, timedelta(minutes=15)),
        ("*/15 * * * *", "Europe/Berlin", date(2026, 10, 25), 100, timedelta(minutes=15)),
        ("hourly", "Europe/Berlin", date(2026, 3, 29), 23, timedelta(hours=1)),
        ("hourly", "Europe/Berlin", date(2026, 10, 25), 25, timedelta(hours=1)),
        ("*/15 * * * *", "America/New_York", date(2026, 3, 8), 92, timedelta(minutes=15)),
        ("*/15 * * * *", "America/New_York", date(2026, 11, 1), 100, timedelta(minutes=15)),
        ("hourly", "America/New_York", date(2026, 3, 8), 23, timedelta(hours=1)),
        ("hourly", "America/New_York", date(2026, 11, 1), 25, timedelta(hours=1)),
        ("*/15 * * * *", "Australia/Lord_Howe", date(2026, 10, 4), 94, timedelta(minutes=15)),
        ("*/15 * * * *", "Australia/Lord_Howe", date(2026, 4, 5), 98, timedelta(minutes=15)),
        # a 30-minute shift cannot keep an hourly rhythm: 02:00 is skipped, 01:xx not repeated
        ("hourly", "Australia/Lord_Howe", date(2026, 10, 4), 23, None),
        ("hourly", "Australia/Lord_Howe", date(2026, 4, 5), 24, None),
    ],
)
def test_wildcard_schedules_follow_elapsed_time(
    cron: str, tz: str, day: date, count: int, step: timedelta | None
) -> None:
    """Across a transition the gaps between runs stay equal, so a short day has fewer runs
    and a long day more."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    times = runs(cron, tz, start - timedelta(microseconds=1), end - timedelta(microseconds=1))
    assert len(times) == len(set(times)) == count
    if step is not None:
        assert {b - a for a, b in pairwise(times)} == {step}


def test_berlin_fall_back_hourly_runs_in_both_passes() -> None:
    times = runs("hourly", "Europe/Berlin", utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))
    zone = ZoneInfo("Europe/Berlin")
    assert [t.astimezone(zone).strftime("%H:%M%z") for t in times] == [
        "02:00+0200",
        "02:00+0100",
        "03:00+0100",
        "04:00+0100",
    ]


def test_two_fixed_times_in_one_gap_run_once() -> None:
    """02:00 and 02:30 both fall in Berlin's gap and map to 03:00, as does 03:00 itself."""
    times = runs("0,30 2,3 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    zone = ZoneInfo("Europe/Berlin")
    assert [t.astimezone(zone).strftime("%H:%M") for t in times] == ["03:00", "03:30"]


# --- an oracle, minute by minute -------------------------------------------------------------


def _fields(expr: str) -> tuple[set[int], set[int]]:
    minutes, hours = croniter(expr).expanded[:2]
    return (
        set(range(60)) if "*" in minutes else {int(m) for m in minutes},
        set(range(24)) if "*" in hours else {int(h) for h in hours},
    )


def expected_by_minute(cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """The rules stated independently: walk UTC minute by minute and read the local clock."""
    expr, zone = cron_expression(cron), ZoneInfo(tz)
    minute, hour, *days = expr.split()
    assert days == ["*", "*", "*"], "the oracle reads minutes and hours only"
    wildcard = minute.startswith("*") or hour.startswith("*")
    minutes, hours = _fields(expr)

    def match(wall: datetime) -> bool:
        return wall.minute in minutes and wall.hour in hours

    found: list[datetime] = []
    moment = start + timedelta(minutes=1)
    while moment <= end:
        wall = moment.astimezone(zone)
        previous = (moment - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
        skipped = []  # wall times the clock jumped over on its way to this minute
        probe = previous + timedelta(minutes=1)
        while probe < wall.replace(tzinfo=None):
            skipped.append(probe)
            probe += timedelta(minutes=1)
        first_time = wildcard or wall.fold == 0
        matches = match(wall) and first_time
        if matches or (not wildcard and any(match(w) for w in skipped)):
            found.append(moment)
        moment += timedelta(minutes=1)
    return found


@pytest.mark.parametrize(
    "cron",
    ["0 2 * * *", "30 2 * * *", "*/20 * * * *", "0 * * * *", "*/10 1-3 * * *", "45 1,2 * * *"],
)
@pytest.mark.parametrize(
    ("tz", "day"),
    [(tz, day) for tz, spring, autumn in TRANSITIONS for day in (spring, autumn)],
)
def test_next_run_agrees_with_a_minute_by_minute_oracle(cron: str, tz: str, day: date) -> None:
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), UTC)
    end = start + timedelta(days=3)
    assert runs(cron, tz, start, end) == expected_by_minute(cron, tz, start, end)
