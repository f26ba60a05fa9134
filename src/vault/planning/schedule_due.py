"""When schedules are due: pure planning from a cron expression, a time zone and a clock
reading. Nothing here reads the clock or does I/O; `now` is always a parameter, and the
jobs layer records what a plan says. docs/schedules.md is the user-facing description.

A schedule's cron expression is read on the wall clock of its time zone, so "0 2 * * *"
in Europe/Berlin is 02:00 local every day, whatever the UTC offset. Where DST makes a
wall-clock time not exist or exist twice, the rule is that of ISC/Vixie cron (croniter's
own time-zone mode runs a fixed time twice on the fall-back day, so it is not used):

* fixed-time schedules (neither the minute nor the hour field starts with `*`): a time in
  the spring-forward gap runs once, at the first instant after the gap (02:30 -> 03:00);
  a time that happens twice runs once, at its first occurrence;
* wildcard schedules (`*/15 * * * *`, hourly): they follow elapsed time, so times inside
  the gap are skipped and times in the repeated hour run at both occurrences.

Either way an instant is never due twice, which together with `run_key` makes a run
happen exactly once however many workers plan it.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice, takewhile
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from vault.config.model import Schedule
from vault.config.types import CRON_PRESETS
from vault.errors import ConfigError

__all__ = [
    "DEFAULT_GRACE",
    "MISSED_LIMIT",
    "DuePlan",
    "InvalidSchedule",
    "ScheduleState",
    "UpcomingRun",
    "cron_expression",
    "due_runs",
    "next_run",
    "run_key",
    "upcoming",
]

#: How late a due time may be noticed and still count as run on time rather than missed.
DEFAULT_GRACE = timedelta(minutes=5)
#: At most this many missed due times are listed in a plan; `missed_count` has them all.
MISSED_LIMIT = 1000

_EPOCH = datetime(2000, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
# croniter's random (R) and hashed (H) fields would make the plan differ between workers.
_NONDETERMINISTIC = re.compile(r"(?<![a-z])[hr](?![a-z])", re.IGNORECASE)


class InvalidSchedule(ConfigError):
    """invalid schedule: {detail}"""


# --- the data planned over -----------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleState:
    """A schedule as the planner sees it. `last_run_at` is the newest due time already
    handled (enqueued, reported missed or skipped while paused): a plan's `last_due`."""

    name: str
    cron: str
    timezone: str
    paused: bool
    catch_up: bool
    last_run_at: datetime | None
    created_at: datetime

    @classmethod
    def from_schedule(
        cls, schedule: Schedule, *, created_at: datetime, last_run_at: datetime | None = None
    ) -> ScheduleState:
        return cls(
            name=schedule.name,
            cron=schedule.cron,
            timezone=schedule.timezone,
            paused=schedule.paused,
            catch_up=schedule.catch_up,
            last_run_at=last_run_at,
            created_at=created_at,
        )


@dataclass(frozen=True)
class DuePlan:
    """What to do for one schedule at one clock reading.

    `run_at` is the due time of the run to enqueue (None: enqueue nothing); with `catch_up`
    it is stale and the run, started now, stands for the whole gap. `missed` lists the
    oldest missed due times (at most `limit`), `missed_count` counts them all.
    `last_due` is the newest due time this plan accounts for: store it as the schedule's
    `last_run_at` and the next plan starts after it (it equals `run_at` when one is set)."""

    name: str
    next_run: datetime
    run_at: datetime | None = None
    catch_up: bool = False
    missed: list[datetime] = field(default_factory=list)
    missed_count: int = 0
    skipped_paused: int = 0
    last_due: datetime | None = None

    @property
    def key(self) -> str | None:
        """The run's idempotency key (see `run_key`), or None when nothing runs."""
        return None if self.run_at is None else run_key(self.name, self.run_at)


class UpcomingRun(NamedTuple):
    name: str
    at: datetime


@dataclass(frozen=True)
class _Spec:
    expr: str
    zone: ZoneInfo
    wildcard: bool  # minute or hour starts with '*': runs follow elapsed time across DST
    runs_per_day: int  # on a day the expression matches, when the day has no DST change
    day_expr: str  # matches midnight of every day the expression matches


# --- the public functions ------------------------------------------------------------------


def cron_expression(schedule_cron: str) -> str:
    """The 5-field expression for a schedule's `cron` (a preset name such as "daily" or
    "@daily", or 5 fields). Raises InvalidSchedule for anything that is not a
    deterministic 5-field expression matching at least once."""
    text = schedule_cron.strip()
    fields = CRON_PRESETS.get(text.lower().lstrip("@"), text).split()
    expr = " ".join(fields)
    if len(fields) != 5 or _NONDETERMINISTIC.search(expr) or not croniter.is_valid(expr):
        raise InvalidSchedule(
            f"not a cron expression: {schedule_cron!r} (5 fields: minute hour day-of-month"
            f" month day-of-week, or one of {', '.join(CRON_PRESETS)})"
        )
    try:
        croniter(expr, _EPOCH).get_next(datetime)
    except CroniterError:
        raise InvalidSchedule(f"the cron expression {expr!r} never matches") from None
    return expr


def next_run(cron: str, tz: str, after: datetime) -> datetime:
    """The first due time strictly after `after`, as an aware UTC datetime."""
    _require_aware(after=after)
    return _first(_spec(cron, tz), after)


def due_runs(
    schedule: ScheduleState,
    now: datetime,
    *,
    grace: timedelta = DEFAULT_GRACE,
    limit: int = MISSED_LIMIT,
) -> DuePlan:
    """The plan for the due times in (last_run_at or created_at, now].

    The newest runs if it is at most `grace` old; every older one is missed, and so is the
    newest when it is stale, in which case `catch_up` schedules one run for the whole gap.
    A paused schedule runs nothing and its due times are `skipped_paused`, not missed."""
    _require_aware(now=now, created_at=schedule.created_at, last_run_at=schedule.last_run_at)
    if grace < timedelta(0) or limit < 0:
        raise ValueError("grace and limit must not be negative")
    spec = _spec(schedule.cron, schedule.timezone)
    since = schedule.last_run_at or schedule.created_at
    following = _first(spec, max(since, now))
    oldest, count, newest = _tally(spec, since, now, limit)
    if newest is None:
        return DuePlan(schedule.name, following)
    if schedule.paused:
        return DuePlan(schedule.name, following, skipped_paused=count, last_due=newest)
    on_time = now - newest <= grace
    missed_count = count - 1 if on_time else count
    return DuePlan(
        schedule.name,
        following,
        run_at=newest if on_time or schedule.catch_up else None,
        catch_up=not on_time and schedule.catch_up,
        missed=oldest[: min(limit, missed_count)],
        missed_count=missed_count,
        last_due=newest,
    )


def upcoming(schedules: Iterable[ScheduleState], now: datetime, n: int = 5) -> list[UpcomingRun]:
    """The next `n` runs across the schedules that are not paused, soonest first."""
    _require_aware(now=now)
    runs = [_runs_of(state, now) for state in schedules if not state.paused]
    return list(islice(heapq.merge(*runs, key=lambda run: (run.at, run.name)), n))


def run_key(schedule_name: str, due_time: datetime) -> str:
    """A stable key for one due run, e.g. "nightly@2026-03-29T01:00:00Z": every worker that
    plans the run derives the same key, so the journal lets exactly one of them enqueue it
    (stream `schedule-run-<key>` appended at expected_version=0)."""
    _require_aware(due_time=due_time)
    return f"{schedule_name}@{due_time.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


# --- due times as instants -----------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _spec(cron: str, tz: str) -> _Spec:
    expr = cron_expression(cron)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSchedule(f"unknown time zone {tz!r} (use an IANA name)") from None
    minute, hour, day, month, weekday = expr.split()
    minutes, hours = croniter(expr, _EPOCH).expanded[:2]
    return _Spec(
        expr=expr,
        zone=zone,
        wildcard=minute.startswith("*") or hour.startswith("*"),
        runs_per_day=_size(minutes, 60) * _size(hours, 24),
        day_expr=f"0 0 {day} {month} {weekday}",
    )


def _size(values: Sequence[object], full: int) -> int:
    return full if "*" in values else len(values)


def _runs_of(state: ScheduleState, now: datetime) -> Iterator[UpcomingRun]:
    since = max(now, state.last_run_at or state.created_at)
    for at in _instants(_spec(state.cron, state.timezone), since):
        yield UpcomingRun(state.name, at)


def _first(spec: _Spec, after: datetime) -> datetime:
    for instant in _instants(spec, after):
        return instant
    raise InvalidSchedule(f"the cron expression {spec.expr!r} has no due time after {after}")


def _instants(spec: _Spec, after: datetime) -> Iterator[datetime]:
    """Every due instant strictly after `after`, ascending, each once (aware, UTC)."""
    start = _wall(after, spec.zone) - _lookback(spec.zone, after)
    last = after
    repeated: list[datetime] = []  # second occurrences in a fall-back hour, held back
    for wall in _walls(spec.expr, start):
        found = _occurrences(spec, wall)
        if len(found) == 2:
            repeated.append(found[1])
            found = found[:1]
        elif repeated:
            found, repeated = (*repeated, *found), []
        for instant in found:
            if instant > last:  # also drops a gap's end already yielded (exactly once)
                last = instant
                yield instant


def _between(spec: _Spec, after: datetime, until: datetime) -> Iterator[datetime]:
    """The due instants in (after, until]."""
    return takewhile(lambda instant: instant <= until, _instants(spec, after))


def _walls(expr: str, start: datetime) -> Iterator[datetime]:
    """The wall-clock (naive) times matching `expr` after `start`."""
    times = croniter(expr, start)
    while True:
        try:
            yield times.get_next(datetime)
        except CroniterBadDateError:
            return


def _occurrences(spec: _Spec, wall: datetime) -> tuple[datetime, ...]:
    """The instants one matching wall-clock time stands for (the rules in the docstring)."""
    real = _real_instants(spec.zone, wall)
    if real:
        return real if spec.wildcard else real[:1]
    return () if spec.wildcard else (_gap_end(spec.zone, wall),)


def _real_instants(zone: ZoneInfo, wall: datetime) -> tuple[datetime, ...]:
    """The instants whose local time is `wall`: none in a gap, two in a repeated hour."""
    readings = {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    return tuple(sorted(instant for instant in readings if _wall(instant, zone) == wall))


def _gap_end(zone: ZoneInfo, wall: datetime) -> datetime:
    """The first instant after the clock jumped over `wall` (the transition itself)."""
    # Read with the offset after the jump, `wall` falls before it; with the one before, after.
    low = math.floor(wall.replace(tzinfo=zone, fold=1).timestamp())
    high = math.ceil(wall.replace(tzinfo=zone, fold=0).timestamp())
    offset = _offset(zone, high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _offset(zone, middle) == offset else (middle, high)
    return datetime.fromtimestamp(high, UTC)


def _offset(zone: ZoneInfo, timestamp: int) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, zone).utcoffset()


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _lookback(zone: ZoneInfo, instant: datetime) -> timedelta:
    # Near a fall-back a due instant after `instant` can have a wall-clock time before its
    # local time (the clock ran back): look back by as much as the clock can move there.
    days = (instant + timedelta(days=shift) for shift in (-2, 0, 2))
    offsets = [offset for moment in days if (offset := moment.astimezone(zone).utcoffset())]
    return max(offsets, default=timedelta(0)) - min(offsets, default=timedelta(0))


# --- counting without listing ----------------------------------------------------------------


def _tally(
    spec: _Spec, since: datetime, now: datetime, limit: int
) -> tuple[list[datetime], int, datetime | None]:
    """The oldest `limit` due times in (since, now], how many there are, and the newest."""
    head = list(islice(_between(spec, since, now), limit + 1))
    if len(head) <= limit:
        return head, len(head), head[-1] if head else None
    return head[:limit], _count(spec, since, now), _newest(spec, since, now)


def _newest(spec: _Spec, since: datetime, now: datetime) -> datetime | None:
    """The newest due time in (since, now], looking back over a window that doubles."""
    window = timedelta(hours=1)
    while True:
        start = max(since, now - window)
        newest = deque(_between(spec, start, now), maxlen=1)
        if newest or start == since:
            return newest[0] if newest else None
        window *= 2


def _count(spec: _Spec, since: datetime, now: datetime) -> int:
    """How many due times lie in (since, now]: whole local days without a DST change are
    counted from the cron fields, the ragged ends and the other days one by one."""
    first_day = _wall(since, spec.zone).date() + timedelta(days=1)
    last_day = _wall(now, spec.zone).date()
    if first_day >= last_day:
        return _ilen(_between(spec, since, now))
    start = _day_start(spec.zone, first_day)
    total = _ilen(_between(spec, since, start - _MICROSECOND))
    total += _ilen(_between(spec, _day_start(spec.zone, last_day) - _MICROSECOND, now))
    matching = _matching_days(spec.day_expr, first_day, last_day)
    day = first_day
    while day < last_day:
        end = _day_start(spec.zone, day + timedelta(days=1))
        if _is_plain(spec.zone, day, start, end):
            total += spec.runs_per_day if day in matching else 0
        else:
            total += _ilen(_between(spec, start - _MICROSECOND, end - _MICROSECOND))
        day, start = day + timedelta(days=1), end
    return total


def _matching_days(day_expr: str, first: date, last: date) -> set[date]:
    """The days in [first, last) on which the expression matches."""
    start = datetime.combine(first, time()) - timedelta(minutes=1)
    midnights = takewhile(lambda wall: wall.date() < last, _walls(day_expr, start))
    return {midnight.date() for midnight in midnights}


def _day_start(zone: ZoneInfo, day: date) -> datetime:
    midnight = datetime.combine(day, time())
    real = _real_instants(zone, midnight)
    return real[0] if real else _gap_end(zone, midnight)


def _is_plain(zone: ZoneInfo, day: date, start: datetime, end: datetime) -> bool:
    """Whether the day's instants are exactly its wall-clock times (no DST change in it)."""
    if len(_real_instants(zone, datetime.combine(day, time()))) != 1:
        return False
    # A gap may end at `start` or begin before `end` (crossing midnight): both disqualify.
    moments = (start - _MICROSECOND, start, end)
    return len({moment.astimezone(zone).utcoffset() for moment in moments}) == 1


def _ilen(items: Iterable[object]) -> int:
    return sum(1 for _ in items)


def _require_aware(**values: datetime | None) -> None:
    for name, value in values.items():
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, not {value!r}")
