"""`vault schedule`: list, add, pause, resume, remove and run schedules (docs/schedules.md).

Schedules of vault.toml and those added here are listed together; every change is
journaled (stream `schedule-<name>`), and the workers pick it up on their next tick.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from vault.cli.main import CliState, F, output_options, pass_state
from vault.config.model import NamedRepository, Retention, Schedule
from vault.errors import ConfigError, UsageError
from vault.jobs.queue import JobQueue
from vault.jobs.schedules import run_now
from vault.planning.retention import RetentionPolicy
from vault.runtime.effective_schedules import (
    ScheduleView,
    add_schedule,
    find_schedule,
    pause_schedule,
    read_schedules,
    remove_schedule,
    resume_schedule,
    set_schedule_retention,
    sync_config_schedules,
    views,
)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _show(state: CliState, view: ScheduleView, verb: str) -> None:
    out = state.output()
    next_text = "paused" if view.paused else f"next run {_when(view.next_run)}"
    out.line(f"schedule {view.name} {verb}: {view.cron} ({view.timezone}), {next_text}")
    out.summary(schedule=view.to_json())


def retention_options(func: F) -> F:
    """The --keep-* options of `schedule add` and `schedule retention`."""
    for option in reversed([
        click.option("--keep-last", type=int, metavar="N", help="Retention: keep the last N."),
        click.option("--keep-hourly", type=int, metavar="N", help="Retention: N hourly."),
        click.option("--keep-daily", type=int, metavar="N", help="Retention: N daily."),
        click.option("--keep-weekly", type=int, metavar="N", help="Retention: N weekly."),
        click.option("--keep-monthly", type=int, metavar="N", help="Retention: N monthly."),
        click.option("--keep-yearly", type=int, metavar="N", help="Retention: N yearly."),
        click.option("--keep-within", metavar="DURATION",
                     help="Retention: all within DURATION."),
        click.option("--keep-tag", multiple=True, metavar="TAG",
                     help="Retention: all with TAG.")]):
        func = option(func)
    return func


@click.group()
def schedule() -> None:
    """Schedules: backups that the worker (`vault worker`) runs by themselves."""


@schedule.command("list")
@output_options
@pass_state
def list_schedules(state: CliState) -> None:
    """List every schedule (vault.toml and `vault schedule add`) with its next and last run."""
    vault = state.vault()
    now = datetime.now(UTC)
    sync_config_schedules(vault.config, vault.journal, now)
    shown = read_schedules(vault.config, vault.journal, now)
    state.output().table(
        ["NAME", "CRON", "TIMEZONE", "STATE", "NEXT RUN", "LAST RUN", "RESULT", "ORIGIN"],
        [[v.name, v.cron, v.timezone, "paused" if v.paused else "active",
          "-" if v.paused else _when(v.next_run), _when(v.last_run_at),
          v.last_result or "-", v.origin] for v in shown])
    state.output().summary(schedules=[v.to_json() for v in shown])


@schedule.command("add")
@click.argument("name")
@click.option("--cron", required=True, metavar="EXPR",
              help="When it runs: 5 cron fields, or hourly, daily, weekly, monthly.")
@click.option("--timezone", default="UTC", show_default=True, metavar="TZ",
              help="IANA time zone the cron expression is read in.")
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="A configured source to back up (repeatable; default: every source).")
@click.option("--tag", "tags", multiple=True, help="Tag for its snapshots (repeatable).")
@click.option("--catch-up/--no-catch-up", default=True, show_default=True,
              help="After downtime, run once for the missed runs.")
@click.option("--prune/--no-prune", default=False, show_default=True,
              help="Queue a prune after its retention forgot snapshots (frees their space).")
@click.option("--verify", is_flag=True,
              help="Queue a `vault verify` in each run (a damage found is a failure notice).")
@click.option("--read-data-subset", metavar="SPEC",
              help="What the verify reads: N%, n/t, a size, or rotate/T (a different T-th "
                   "each day: every pack every T days). Needs --verify.")
@click.option("--no-backup", is_flag=True,
              help="Back nothing up: a verify-only schedule (with --verify).")
@click.option("--copy-to", "copy_to", multiple=True, metavar="NAME",
              help="After each run, copy its snapshots into the [[repositories]] entry NAME "
                   "(repeatable; docs/offsite.md).")
@retention_options
@output_options
@pass_state
def add(state: CliState, name: str, cron: str, timezone: str, sources: tuple[str, ...],
        tags: tuple[str, ...], catch_up: bool, prune: bool, verify: bool,
        read_data_subset: str | None, no_backup: bool, copy_to: tuple[str, ...],
        keep_last: int | None,
        keep_hourly: int | None, keep_daily: int | None, keep_weekly: int | None,
        keep_monthly: int | None, keep_yearly: int | None, keep_within: str | None,
        keep_tag: tuple[str, ...]) -> None:
    """Add a schedule (kept in the journal; vault.toml's [[schedules]] are edited there)."""
    vault = state.vault()  # first: a refused schedule is journaled (CommandFailed) too
    try:
        retention = _retention(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly,
                               keep_yearly, keep_within, keep_tag)
        definition = Schedule.model_validate({
            "name": name, "cron": cron, "timezone": timezone, "sources": list(sources),
            "tags": list(tags), "catch_up": catch_up, "retention": retention,
            "prune": prune, "verify": verify, "read_data_subset": read_data_subset,
            "backup": not no_backup, "copy_to": list(copy_to)})
    except ValueError as exc:  # pydantic's ValidationError: one line per problem
        raise _invalid(exc) from None
    _check_copy_targets(vault.config.repositories, copy_to)
    now = datetime.now(UTC)
    item = add_schedule(vault.config, vault.journal, definition, now)
    if definition.retention is not None:
        policy = RetentionPolicy.from_config(definition.retention, timezone=timezone)
        state.output().info(f"retention after each run: {policy.describe()}")
    _show(state, views([item], now)[0], "added")


def _check_copy_targets(entries: list[NamedRepository], targets: tuple[str, ...]) -> None:
    names = [entry.name for entry in entries]
    for target in targets:
        if target not in names:
            raise ConfigError(f"--copy-to {target!r}: no such repository in the configuration "
                              f"(configured [[repositories]]: {', '.join(names) or 'none'})")


@schedule.command("retention")
@click.argument("name")
@retention_options
@click.option("--clear", is_flag=True,
              help="Drop the schedule's own retention: the top-level [retention] applies.")
@output_options
@pass_state
def retention(state: CliState, name: str, keep_last: int | None, keep_hourly: int | None,
              keep_daily: int | None, keep_weekly: int | None, keep_monthly: int | None,
              keep_yearly: int | None, keep_within: str | None, keep_tag: tuple[str, ...],
              clear: bool) -> None:
    """Replace the retention of a schedule added with `vault schedule add` (the rules
    given replace all of its rules; its timetable goes on as it was)."""
    vault = state.vault()
    try:
        rules = _retention(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly,
                           keep_yearly, keep_within, keep_tag)
    except ValueError as exc:
        raise _invalid(exc) from None
    if (rules is None) != clear:
        raise UsageError("give the new --keep-* rules, or --clear to use [retention]")
    now = datetime.now(UTC)
    item = set_schedule_retention(vault.config, vault.journal, name, rules, now)
    if rules is not None:
        policy = RetentionPolicy.from_config(rules, timezone=item.schedule.timezone)
        state.output().info(f"retention after each run: {policy.describe()}")
    _show(state, views([item], now)[0], "changed")


def _retention(keep_last: int | None, keep_hourly: int | None, keep_daily: int | None,
               keep_weekly: int | None, keep_monthly: int | None, keep_yearly: int | None,
               keep_within: str | None, keep_tag: tuple[str, ...]) -> Retention | None:
    """The --keep-* options as a Retention (None when none is given)."""
    rules = {"keep_last": keep_last, "keep_hourly": keep_hourly, "keep_daily": keep_daily,
             "keep_weekly": keep_weekly, "keep_monthly": keep_monthly,
             "keep_yearly": keep_yearly, "keep_within": keep_within}
    given: dict[str, object] = {k: v for k, v in rules.items() if v is not None}
    if keep_tag:
        given["keep_tags"] = list(keep_tag)
    return Retention.model_validate(given) if given else None


def _invalid(exc: ValueError) -> ConfigError:
    """pydantic's ValidationError as one line per problem."""
    problems = [f"{'.'.join(map(str, e['loc'])) or 'schedule'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in getattr(exc, "errors", lambda: [])()] or [str(exc)]
    return ConfigError(f"invalid schedule: {'; '.join(problems)}")


@schedule.command("remove")
@click.argument("name")
@output_options
@pass_state
def remove(state: CliState, name: str) -> None:
    """Remove a schedule added with `vault schedule add` (its snapshots stay)."""
    vault = state.vault()
    remove_schedule(vault.config, vault.journal, name, datetime.now(UTC))
    state.output().line(f"schedule {name} removed")
    state.output().summary(schedule={"name": name}, removed=True)


@schedule.command("pause")
@click.argument("name")
@output_options
@pass_state
def pause(state: CliState, name: str) -> None:
    """Pause a schedule: nothing runs; runs due meanwhile are skipped, not missed."""
    vault = state.vault()
    now = datetime.now(UTC)
    _show(state, views([pause_schedule(vault.config, vault.journal, name, now)], now)[0],
          "paused")


@schedule.command("resume")
@click.argument("name")
@output_options
@pass_state
def resume(state: CliState, name: str) -> None:
    """Resume a paused schedule from its next due time."""
    vault = state.vault()
    now = datetime.now(UTC)
    _show(state, views([resume_schedule(vault.config, vault.journal, name, now)], now)[0],
          "resumed")


@schedule.command("run")
@click.argument("name")
@output_options
@pass_state
def run(state: CliState, name: str) -> None:
    """Queue a run of a schedule now, outside its timetable (a worker runs it)."""
    vault = state.vault()
    now = datetime.now(UTC)
    item = find_schedule(vault.config, vault.journal, name, now)
    queue = JobQueue.from_config(vault.config)
    queue.check()
    prepared = run_now(
        vault.config, vault.journal, queue, item, now,
        config_path=state.config_path,
        overrides={**state.overrides, "repository.url": vault.config.repository.url})
    out = state.output()
    if prepared.error is not None:
        raise ConfigError(f"schedule {name}: {prepared.error}")
    out.line(f"queued run {prepared.event.run_key} of schedule {name}: "
             f"{len(prepared.commands)} job(s)")
    out.summary(schedule={"name": name}, run_key=prepared.event.run_key,
                job_ids=prepared.event.job_ids, group_id=prepared.event.group_id,
                queue=queue.where)


COMMANDS = [schedule]
