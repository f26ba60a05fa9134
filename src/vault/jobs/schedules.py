"""The worker's scheduler loop: turn due schedules into queued backup jobs, exactly once.

Every `SCHEDULE_EVERY` seconds `ScheduleRunner.tick` plans each schedule in effect
(`vault.planning.schedule_due.due_runs`, from the newest due time the journal has handled) and
records the plan in one journal transaction:

* a due run: `ScheduleRunQueued` on stream `schedule-run-<run key>` at expected_version=0
  and, in the same transaction, the request and `JobQueued` of one backup job per source
  of the schedule (sharing a group id and time); the queue messages are sent after it,
  and the worker that takes the first claims the others with it and captures them
  together (`vault.jobs.claims`);
* missed due times (no worker was running): `ScheduleRunMissed` on
  `schedule-missed-<key>`; with `catch_up` the same transaction queues one run for them;
* due times that passed while paused: `ScheduleRunSkipped` on `schedule-skipped-<key>`.

Each of those streams is new for a given key, so when several workers plan the same due
time one transaction lands and the others get StaleStreamVersion and do nothing.

A run is finished when every one of its jobs has ended: the tick that sees it appends
`ScheduleRunCompleted` at expected_version=1 of the run's stream (again, one worker
wins) and that worker applies the schedule's retention to the schedule's own snapshots,
journaling `ScheduleRetentionApplied`. Only a schedule's newest run is followed; a run
overtaken by the next one leaves retention to it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from vault.config.model import VaultConfig
from vault.errors import StaleStreamVersion, VaultError
from vault.jobs.commands import BackupArgs, JobCommand, PruneArgs, VerifyArgs
from vault.jobs.copy_after import ScheduledCopies
from vault.jobs.queue import JobQueue, queued_events
from vault.journal import Journal
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs
from vault.operations.manage import apply_retention
from vault.planning.retention import RetentionPolicy
from vault.planning.schedule_due import DEFAULT_GRACE, DuePlan, due_runs, run_key
from vault.repository.snapshot import Snapshot
from vault.runtime.app import Vault
from vault.runtime.effective_schedules import (
    EffectiveSchedule,
    load_schedules,
    schedule_tag,
    utc_text,
)
from vault.runtime.jobrun import new_job_id

#: how often the worker plans the schedules, in seconds
SCHEDULE_EVERY = 5.0
#: job statuses after which a job will not run again
_ENDED = {"completed", "partial", "failed", "cancelled"}

log = logging.getLogger("vault.jobs")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def run_stream(key: str) -> str:
    return f"schedule-run-{key}"


@dataclass
class TickReport:
    """What one tick did (run keys), for logs and tests."""

    queued: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    lost_races: int = 0


@dataclass
class PreparedRun:
    """A run's event and its job commands, built before anything is written."""

    event: ev.ScheduleRunQueued
    commands: list[JobCommand]
    error: str | None = None

    @property
    def stream(self) -> str:
        return run_stream(self.event.run_key)

    def events(self) -> list[tuple[str, ev.Event]]:
        """The run and its jobs' requests, journaled together in one transaction."""
        items: list[tuple[str, ev.Event]] = [(self.stream, self.event)]
        if self.error is not None:  # nothing to wait for: the run ends as it starts
            items.append((self.stream, ev.ScheduleRunCompleted(
                name=self.event.name, run_key=self.event.run_key, status="failed",
                jobs={}, error=self.error)))
        for command in self.commands:
            items += queued_events(command)
        return items


def prepare_run(config: VaultConfig, item: EffectiveSchedule, *, due: datetime, key: str,
                now: datetime, catch_up: bool = False, manual: bool = False,
                config_path: Path | None = None,
                overrides: dict[str, Any] | None = None) -> PreparedRun:
    """The jobs of one run: a backup per source of the schedule, in one group, and a
    verify when the schedule asks for one."""
    schedule = item.schedule
    group_id = f"group-{uuid.uuid4().hex[:16]}"
    error = None
    sources: list[str] = []
    try:
        if schedule.backup:
            sources = [source.name for source in config.sources_for(schedule)]
            if not sources:
                error = "the schedule has no source to back up (configure [[sources]])"
    except VaultError as exc:  # e.g. a source named by a `vault schedule add` was removed
        sources, error = [], exc.message
    tags = sorted({*schedule.tags, schedule_tag(schedule.name)})
    where = {"repository": config.repository.url,
             "config_path": str(config_path.resolve()) if config_path else None,
             "overrides": dict(overrides or {})}
    commands = [JobCommand(
        job_id=new_job_id("backup"),
        args=BackupArgs(paths=[], tags=tags, force=schedule.backup_type == "full",
                        source=source, group_id=group_id, group_time=utc_text(now)),
        **where) for source in sources]
    if schedule.verify and error is None:
        subset = verify_subset(schedule.read_data_subset, due)
        commands.append(JobCommand(job_id=new_job_id("verify"), args=VerifyArgs(
            read_data=subset is not None, subset=subset, schedule=schedule.name), **where))
    event = ev.ScheduleRunQueued(
        name=schedule.name, due=utc_text(due), run_key=key,
        job_ids=[c.job_id for c in commands], sources=sources, group_id=group_id,
        catch_up=catch_up, manual=manual)
    return PreparedRun(event, commands, error)


def verify_subset(spec: str | None, due: datetime) -> str | None:
    """The `--read-data-subset` of a scheduled verify: `rotate/T` becomes `n/T` with n
    from the run's day, so T daily runs read every pack once; anything else as given."""
    if spec is None or not spec.startswith("rotate/"):
        return spec
    total = int(spec.split("/")[1])
    return f"{due.date().toordinal() % total + 1}/{total}"


def enqueue_run(queue: JobQueue, run: PreparedRun) -> None:
    """Put the messages of a run's jobs, already journaled as queued, on the queue.

    A message that cannot be sent (the queue is down, the process dies) is not lost: the
    job stays `queued` in the journal and a worker's `requeue_lost` sends it again."""
    for command in run.commands:
        try:
            queue.enqueue(command)
        except Exception as exc:  # see above: requeue_lost sends it later
            log.warning("job %s of schedule %s: not on the queue yet (%s); a worker will "
                        "queue it again", command.job_id, run.event.name, exc)


class ScheduleRunner:
    """Plans and records schedule runs; `now` is injectable so tests control the clock."""

    def __init__(self, config: VaultConfig, journal: Journal, queue: JobQueue, *,
                 now: Clock = utc_now, grace: timedelta = DEFAULT_GRACE,
                 config_path: Path | None = None,
                 overrides: dict[str, Any] | None = None) -> None:
        self.config, self.journal, self.queue = config, journal, queue
        self.now, self.grace = now, grace
        self.config_path, self.overrides = config_path, dict(overrides or {})
        self._vault: Vault | None = None
        #: the copies of schedules' `copy_to`, in threads of their own
        self.copies = ScheduledCopies(config)

    def close(self) -> None:
        if self._vault is not None:
            self._vault.close()

    def tick(self) -> TickReport:
        now = self.now()
        report = TickReport()
        for item in load_schedules(self.config, self.journal, now):
            plan = due_runs(item.state(), now, grace=self.grace)
            if plan.last_due is not None:
                self._record(item, plan, now, report)
        for item in load_schedules(self.config, self.journal, now):
            if item.last_result == "queued" and item.last_run_key:
                self._finish(item, report)
        return report

    # --- due runs ------------------------------------------------------------------------

    def _record(self, item: EffectiveSchedule, plan: DuePlan, now: datetime,
                report: TickReport) -> None:
        assert plan.last_due is not None
        key = run_key(item.name, plan.last_due)
        items: list[tuple[str, ev.Event]] = []
        if plan.missed_count:
            items.append((f"schedule-missed-{key}", ev.ScheduleRunMissed(
                name=item.name, missed=[utc_text(t) for t in plan.missed],
                missed_count=plan.missed_count, caught_up=plan.catch_up,
                last_due=utc_text(plan.last_due))))
        if plan.skipped_paused:
            items.append((f"schedule-skipped-{key}", ev.ScheduleRunSkipped(
                name=item.name, skipped_count=plan.skipped_paused,
                last_due=utc_text(plan.last_due))))
        run = None
        if plan.run_at is not None:
            run = prepare_run(self.config, item, due=plan.run_at, key=key, now=now,
                              catch_up=plan.catch_up, config_path=self.config_path,
                              overrides=self.overrides)
            items += run.events()
        try:
            self.journal.append_many(items, expected_versions={s: 0 for s, _ in items})
        except StaleStreamVersion:
            report.lost_races += 1  # another worker recorded this very plan
            return
        if plan.missed_count:
            report.missed.append(key)
            log.warning("schedule %s: %d run(s) missed while no worker ran%s", item.name,
                        plan.missed_count, "; catching up now" if plan.catch_up else "")
            self._notify_missed(item, plan)
        if plan.skipped_paused:
            report.skipped.append(key)
        if run is not None:
            report.queued.append(key)
            log.info("schedule %s: run %s queued (%d job(s))", item.name, key,
                     len(run.commands))
            enqueue_run(self.queue, run)

    def _notify_missed(self, item: EffectiveSchedule, plan: DuePlan) -> None:
        """Tell the schedule's targets (its `notify` list, else all) about missed runs;
        the worker that won the race to journal them is the one that sends it."""
        from vault.notify import Notice, notify

        if not self.config.notifications:
            return
        configured = [s for s in self.config.schedules if s.name == item.name]
        only = configured[0].notify if configured and configured[0].notify else None
        notify(self.config, self.journal, Notice(
            "missed", f"schedule {item.name}: {plan.missed_count} run(s) missed"
            + ("; one catch-up run queued" if plan.catch_up else ""),
            {"missed_count": plan.missed_count,
             "missed": [utc_text(t) for t in plan.missed[:20]],
             "caught_up": plan.catch_up}, schedule=item.name), only=only)

    # --- finished runs -----------------------------------------------------------------

    def _finish(self, item: EffectiveSchedule, report: TickReport) -> None:
        assert item.last_run_key is not None
        statuses = {job_id: self._job_status(job_id) for job_id in item.last_job_ids}
        if not all(status in _ENDED for status in statuses.values()):
            return
        done = [s for s in statuses.values() if s in ("completed", "partial")]
        status: Literal["completed", "partial", "failed"] = (
            "completed" if done and all(s == "completed" for s in statuses.values())
            else "partial" if done else "failed")
        try:
            self.journal.append(run_stream(item.last_run_key), ev.ScheduleRunCompleted(
                name=item.name, run_key=item.last_run_key, status=status,
                jobs={k: str(v) for k, v in statuses.items()}), expected_version=1)
        except StaleStreamVersion:
            return  # another worker saw it end first and applies the retention
        report.finished.append(item.last_run_key)
        log.info("schedule %s: run %s %s", item.name, item.last_run_key, status)
        if done:
            self._apply_retention(item, item.last_run_key)
            self.copies.start(item.schedule)

    def _job_status(self, job_id: str) -> str | None:
        rows = read_jobs(self.journal.path, job_id=job_id)
        if not rows:
            return None
        status = str(rows[0]["status"])
        if status == "interrupted":
            # Ended for good unless the worker that marked it queues a retry.
            marks = [r.event for r in self.journal.stream(job_id)
                     if isinstance(r.event, ev.JobInterrupted)]
            return "failed" if marks and not marks[-1].will_retry else status
        return status

    def _apply_retention(self, item: EffectiveSchedule, key: str) -> None:
        schedule = item.schedule
        policy = RetentionPolicy.from_config(self.config.retention_for(schedule),
                                             timezone=schedule.timezone)
        if policy.is_empty():
            return  # no rule: keep everything, and say nothing
        names = {s.name for s in self.config.sources_for(schedule)}
        tag = schedule_tag(schedule.name)

        def own(snapshot: Snapshot) -> bool:
            return snapshot.source.get("label") in names and tag in snapshot.tags

        try:
            plan = apply_retention(self.vault(), policy, "host,paths", dry_run=False,
                                   select=own, wait_seconds=60)
        except Exception as exc:  # the run's snapshots stand; the next run tries again
            message = exc.message if isinstance(exc, VaultError) else str(exc)
            self.journal.append(run_stream(key), ev.ScheduleRetentionApplied(
                name=item.name, run_key=key, policy=policy.describe(), removed=[], kept=0,
                error=message))
            log.warning("schedule %s: retention not applied: %s", item.name, message)
            return
        prune_job_id = self._queue_prune(item) if schedule.prune and plan.remove else None
        self.journal.append(run_stream(key), ev.ScheduleRetentionApplied(
            name=item.name, run_key=key, policy=policy.describe(),
            removed=[d.snapshot.id for d in plan.remove], kept=len(plan.keep),
            prune_job_id=prune_job_id))
        log.info("schedule %s: retention (%s) removed %d snapshot(s)", item.name,
                 policy.describe(), len(plan.remove))

    def _queue_prune(self, item: EffectiveSchedule) -> str | None:
        """The schedule's `prune`: queue a prune job, so the space of what its retention
        just forgot comes back. A queue that fails is logged: the next forgetting run
        queues another (one prune collects everything)."""
        command = JobCommand(
            job_id=new_job_id("prune"), args=PruneArgs(),
            repository=self.config.repository.url,
            config_path=str(self.config_path.resolve()) if self.config_path else None,
            overrides=dict(self.overrides))
        try:
            return self.queue.submit(self.journal, command)
        except VaultError as exc:
            log.warning("schedule %s: prune not queued: %s", item.name, exc.message)
            return None

    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = Vault(self.config)
        return self._vault


def run_now(config: VaultConfig, journal: Journal, queue: JobQueue, item: EffectiveSchedule,
            now: datetime, *, config_path: Path | None = None,
            overrides: dict[str, Any] | None = None) -> PreparedRun:
    """`vault schedule run`: one run now, outside the timetable (which it leaves alone)."""
    key = f"{item.name}@manual-{now.astimezone(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    run = prepare_run(config, item, due=now, key=key, now=now, manual=True,
                      config_path=config_path, overrides=overrides)
    journal.append_many(run.events(), expected_versions={run.stream: 0})
    enqueue_run(queue, run)
    return run
