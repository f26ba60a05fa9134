"""The schedules in effect: `[[schedules]]` of vault.toml plus those added with
`vault schedule add`, with their state from the journal's `schedules` table.

Rules (docs/schedules.md, "Where schedules come from"):

* vault.toml wins a name clash: `vault schedule add` refuses a name the file uses, and a
  file entry that appears later replaces a command-line schedule of the same name;
* a file entry is journaled (`ScheduleAdded`, origin "config") the first time a worker or
  a `vault schedule` command sees it, and again when it changes; a new cron expression or
  time zone restarts its timetable at that moment (nothing before it counts as missed);
* `vault schedule pause`/`resume` override the definition's own `paused`.
* the retention of a command-line schedule can be replaced (`ScheduleRetentionChanged`,
  the TUI's schedule editor); a vault.toml schedule's is edited in the file.

`effective_schedules` is pure; the functions below it read or append journal events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from vault.config.model import Retention, Schedule, VaultConfig
from vault.errors import StaleStreamVersion, UsageError
from vault.journal import Journal
from vault.journal import events as ev
from vault.journal.projections.schedules import read_schedule_rows
from vault.planning.schedule_due import ScheduleState, cron_expression, due_runs, next_run

Origin = Literal["config", "cli"]


class ScheduleNotFound(UsageError):
    """no schedule named {name} (see `vault schedule list`)"""


class ScheduleInConfig(UsageError):
    """schedule {name} is defined in vault.toml: {action} its [[schedules]] entry there"""


class ScheduleChangedMeanwhile(UsageError):
    """schedule {name} was changed by another process meanwhile: look again and retry"""


class ScheduleExists(UsageError):
    """a schedule named {name} already exists (remove it first, or pick another name)"""


def utc_text(moment: datetime) -> str:
    """The one spelling of a time in schedule events: ISO 8601 in UTC."""
    return moment.astimezone(UTC).isoformat()


def parse_utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def schedule_stream(name: str) -> str:
    return f"schedule-{name}"


def schedule_tag(name: str) -> str:
    """The tag every snapshot a schedule takes carries: its retention only judges those."""
    return f"schedule:{name}"


def definition_of(schedule: Schedule) -> dict[str, Any]:
    return schedule.model_dump(mode="json")


@dataclass(frozen=True)
class EffectiveSchedule:
    """A schedule in effect: its definition (with the effective `paused`) and state."""

    schedule: Schedule
    origin: Origin
    created_at: datetime
    last_due: datetime | None = None
    last_run_key: str | None = None
    last_run_at: datetime | None = None
    last_job_ids: tuple[str, ...] = ()
    last_result: str | None = None
    missed_total: int = 0
    journaled: bool = True  # False: a vault.toml entry no worker or command has seen yet

    @property
    def name(self) -> str:
        return self.schedule.name

    def state(self) -> ScheduleState:
        return ScheduleState.from_schedule(self.schedule, created_at=self.created_at,
                                           last_run_at=self.last_due)


def effective_schedules(config: VaultConfig, rows: list[dict[str, Any]],
                        now: datetime) -> list[EffectiveSchedule]:
    """The schedules in effect, by name, from the config and the `schedules` rows."""
    by_name = {row["name"]: row for row in rows}
    found: dict[str, EffectiveSchedule] = {}
    for schedule in config.schedules:
        row = by_name.get(schedule.name)
        if row is None or row["origin"] != "config" or \
                json.loads(row["definition"]) != definition_of(schedule):
            found[schedule.name] = _unjournaled(schedule, row, now)
        else:
            found[schedule.name] = _from_row(schedule, row)
    for row in rows:
        if row["origin"] == "cli" and row["name"] not in found:
            found[row["name"]] = _from_row(Schedule.model_validate(
                json.loads(row["definition"])), row)
    return [found[name] for name in sorted(found)]


def _from_row(schedule: Schedule, row: dict[str, Any]) -> EffectiveSchedule:
    paused = schedule.paused if row["paused"] is None else bool(row["paused"])
    created = parse_utc(row["created_at"])
    assert created is not None
    return EffectiveSchedule(
        schedule=schedule.model_copy(update={"paused": paused}), origin=row["origin"],
        created_at=created, last_due=parse_utc(row["last_due"]),
        last_run_key=row["last_run_key"], last_run_at=parse_utc(row["last_run_at"]),
        last_job_ids=tuple(json.loads(row["last_job_ids"])), last_result=row["last_result"],
        missed_total=row["missed_total"])


def _unjournaled(schedule: Schedule, row: dict[str, Any] | None,
                 now: datetime) -> EffectiveSchedule:
    """A vault.toml entry as it will be once journaled (see the projection's rules)."""
    if row is not None and json.loads(row["definition"]).get("cron") == schedule.cron and \
            json.loads(row["definition"]).get("timezone") == schedule.timezone:
        return EffectiveSchedule(**{**_from_row(schedule, row).__dict__, "origin": "config",
                                    "journaled": False})
    paused = schedule.paused if row is None or row["paused"] is None else bool(row["paused"])
    return EffectiveSchedule(schedule=schedule.model_copy(update={"paused": paused}),
                             origin="config", created_at=now, journaled=False)


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleView:
    """What `vault schedule list` and `vault status` show of one schedule."""

    name: str
    cron: str
    timezone: str
    paused: bool
    origin: Origin
    sources: list[str]
    tags: list[str]
    catch_up: bool
    next_run: datetime | None  # None while paused
    last_run_at: datetime | None
    last_result: str | None  # queued, completed, partial, failed; None: never ran
    missed_total: int
    retention: dict[str, Any] | None = None  # its own rules; None: [retention] applies
    prune: bool = False  # a prune is queued after its retention forgot snapshots
    backup: bool = True  # false: a verify-only schedule
    verify: str | None = None  # what its verify reads ("structure", "all", a subset)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "cron": self.cron, "timezone": self.timezone,
            "paused": self.paused, "origin": self.origin, "sources": self.sources,
            "tags": self.tags, "catch_up": self.catch_up,
            "next_run": utc_text(self.next_run) if self.next_run else None,
            "last_run_at": utc_text(self.last_run_at) if self.last_run_at else None,
            "last_result": self.last_result, "missed_total": self.missed_total,
            "retention": self.retention, "prune": self.prune, "backup": self.backup,
            "verify": self.verify,
        }


def read_schedules(config: VaultConfig, journal: Journal, now: datetime) -> list[ScheduleView]:
    """Every schedule in effect with its next and last run: one indexed read of the
    journal's `schedules` table, no event replay."""
    return views(effective_schedules(config, read_schedule_rows(journal.path), now), now)


def views(schedules: list[EffectiveSchedule], now: datetime) -> list[ScheduleView]:
    out = []
    for item in schedules:
        s = item.schedule
        since = max(now, item.last_due or item.created_at)
        out.append(ScheduleView(
            name=s.name, cron=s.cron, timezone=s.timezone, paused=s.paused,
            origin=item.origin, sources=s.sources, tags=s.tags, catch_up=s.catch_up,
            next_run=None if s.paused else next_run(s.cron, s.timezone, since),
            last_run_at=item.last_run_at, last_result=item.last_result,
            missed_total=item.missed_total, prune=s.prune, backup=s.backup,
            verify=(s.read_data_subset or "structure") if s.verify else None,
            retention=None if s.retention is None else {
                rule: value for rule, value in s.retention.model_dump(mode="json").items()
                if value not in (None, [])}))
    return out


def load_schedules(config: VaultConfig, journal: Journal,
                   now: datetime) -> list[EffectiveSchedule]:
    """The schedules in effect after journaling any vault.toml entry new or changed."""
    sync_config_schedules(config, journal, now)
    return effective_schedules(config, read_schedule_rows(journal.path), now)


def find_schedule(config: VaultConfig, journal: Journal, name: str,
                  now: datetime) -> EffectiveSchedule:
    for item in load_schedules(config, journal, now):
        if item.name == name:
            return item
    raise ScheduleNotFound(name=name)


# --- writing ---------------------------------------------------------------------------


def sync_config_schedules(config: VaultConfig, journal: Journal, now: datetime) -> list[str]:
    """Journal every vault.toml schedule that is new or changed; the names journaled.

    Several workers may do this at once: each append names the stream version it read,
    so a schedule is journaled once per change."""
    rows = read_schedule_rows(journal.path)
    done = []
    for item in effective_schedules(config, rows, now):
        if item.journaled:
            continue
        schedule = next(s for s in config.schedules if s.name == item.name)
        if _append(journal, item.name, ev.ScheduleAdded(
                name=item.name, origin="config", definition=definition_of(schedule),
                since=utc_text(now))):
            done.append(item.name)
    return done


def _append(journal: Journal, name: str, event: ev.Event) -> bool:
    stream = schedule_stream(name)
    version = len(journal.stream(stream))
    try:
        journal.append(stream, event, expected_version=version)
    except StaleStreamVersion:
        return False  # another process changed the schedule meanwhile
    return True


def add_schedule(config: VaultConfig, journal: Journal, schedule: Schedule,
                 now: datetime) -> EffectiveSchedule:
    """`vault schedule add`: a schedule kept in the journal (origin "cli")."""
    if any(s.name == schedule.name for s in config.schedules):
        raise ScheduleInConfig(name=schedule.name, action="change")
    cron_expression(schedule.cron)
    config.sources_for(schedule)  # every named source must exist
    if any(item.name == schedule.name for item in load_schedules(config, journal, now)):
        raise ScheduleExists(name=schedule.name)
    if not _append(journal, schedule.name, ev.ScheduleAdded(
            name=schedule.name, origin="cli", definition=definition_of(schedule),
            since=utc_text(now))):
        raise ScheduleExists(name=schedule.name)
    return find_schedule(config, journal, schedule.name, now)


def remove_schedule(config: VaultConfig, journal: Journal, name: str, now: datetime) -> None:
    """`vault schedule remove`: only command-line schedules; the snapshots stay."""
    if any(s.name == name for s in config.schedules):
        raise ScheduleInConfig(name=name, action="delete")
    find_schedule(config, journal, name, now)
    _append(journal, name, ev.ScheduleRemoved(name=name))


def pause_schedule(config: VaultConfig, journal: Journal, name: str,
                   now: datetime) -> EffectiveSchedule:
    item = find_schedule(config, journal, name, now)
    if not item.schedule.paused:
        _append(journal, name, ev.SchedulePaused(name=name))
    return find_schedule(config, journal, name, now)


def resume_schedule(config: VaultConfig, journal: Journal, name: str,
                    now: datetime) -> EffectiveSchedule:
    """Resume; due times that passed while paused are skipped, never reported missed."""
    item = find_schedule(config, journal, name, now)
    if item.schedule.paused:
        skipped = due_runs(item.state(), now).last_due
        _append(journal, name, ev.ScheduleResumed(
            name=name, last_due=utc_text(skipped) if skipped else None))
    return find_schedule(config, journal, name, now)


def set_schedule_retention(config: VaultConfig, journal: Journal, name: str,
                           retention: Retention | None, now: datetime) -> EffectiveSchedule:
    """Replace the retention of a schedule added with `vault schedule add` (None: the
    top-level `[retention]` applies). Its timetable goes on as it was. A vault.toml
    schedule's retention is edited in the file, so it is refused here."""
    if any(s.name == name for s in config.schedules):
        raise ScheduleInConfig(name=name, action="change")
    item = find_schedule(config, journal, name, now)
    if item.schedule.retention != retention:
        dumped = None if retention is None else retention.model_dump(mode="json")
        if not _append(journal, name, ev.ScheduleRetentionChanged(name=name,
                                                                  retention=dumped)):
            raise ScheduleChangedMeanwhile(name=name)
    return find_schedule(config, journal, name, now)
