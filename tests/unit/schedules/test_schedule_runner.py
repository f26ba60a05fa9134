"""The worker's scheduler loop on a real journal and an in-memory Huey queue, with a clock
the test moves: due runs queued once, missed runs reported (and caught up), pauses
skipped, definitions changed, runs finished; two runners racing enqueue each run once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey

from vault.config.model import Schedule, VaultConfig
from vault.errors import ConfigError, UsageError
from vault.jobs.queue import JobQueue
from vault.jobs.schedules import ScheduleRunner, run_now
from vault.jobs.worker import requeue_lost
from vault.journal import Journal
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs
from vault.runtime.effective_schedules import (
    add_schedule,
    find_schedule,
    pause_schedule,
    read_schedules,
    remove_schedule,
    resume_schedule,
    utc_text,
)

T0 = datetime(2026, 3, 2, 0, 0, 30, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


def make_config(tmp_path: Path, *schedules: dict[str, Any]) -> VaultConfig:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return VaultConfig.model_validate({
        "state_dir": str(tmp_path / "state"),
        "repository": {"url": str(tmp_path / "repo")},
        "sources": [{"type": "files", "name": "docs", "paths": [str(data)]},
                    {"type": "files", "name": "mail", "paths": [str(data)]}],
        "schedules": list(schedules),
    })


@pytest.fixture
def queue() -> JobQueue:
    return JobQueue(MemoryHuey("vault", results=False), "memory")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "state" / "journal.db") as opened:
        yield opened


def events(journal: Journal, kind: type[ev.Event]) -> list[Any]:
    return [r.event for r in journal.read(types=[kind.__name__])]


def test_a_due_run_is_queued_once_with_a_job_per_source(tmp_path: Path, journal: Journal,
                                                        queue: JobQueue) -> None:
    config = make_config(tmp_path, {"name": "hourly", "cron": "0 * * * *", "tags": ["auto"]})
    clock = Clock(T0)
    runner = ScheduleRunner(config, journal, queue, now=clock)
    assert runner.tick().queued == []  # created now: nothing was due before it existed
    assert [e.origin for e in events(journal, ev.ScheduleAdded)] == ["config"]

    clock.advance(hours=1)  # 01:00:30, 30 s after the 01:00 due time
    report = runner.tick()
    assert report.queued == ["hourly@2026-03-02T01:00:00Z"] and report.missed == []
    assert runner.tick().queued == []  # the same due time is never queued twice
    [queued] = events(journal, ev.ScheduleRunQueued)
    assert queued.sources == ["docs", "mail"] and not queued.catch_up
    assert queue.waiting_ids() == set(queued.job_ids) and len(queued.job_ids) == 2
    requests = events(journal, ev.BackupRequested)
    assert {r.source for r in requests} == {"docs", "mail"}
    assert {r.group_id for r in requests} == {queued.group_id}
    assert all(r.tags == ["auto", "schedule:hourly"] for r in requests)
    assert events(journal, ev.ScheduleRunMissed) == []


def test_downtime_is_reported_missed_and_caught_up_once(tmp_path: Path, journal: Journal,
                                                        queue: JobQueue) -> None:
    config = make_config(tmp_path, {"name": "hourly", "cron": "0 * * * *"})
    clock = Clock(T0)
    ScheduleRunner(config, journal, queue, now=clock).tick()
    clock.advance(hours=5, minutes=30)  # the worker was down: 01:00 .. 05:00 passed
    report = ScheduleRunner(config, journal, queue, now=clock).tick()
    [missed] = events(journal, ev.ScheduleRunMissed)
    assert missed.missed_count == 5 and missed.caught_up
    assert missed.missed == [utc_text(T0.replace(second=0) + timedelta(hours=h))
                             for h in range(1, 6)]
    [run] = events(journal, ev.ScheduleRunQueued)
    assert run.catch_up and run.due == "2026-03-02T05:00:00+00:00"
    assert report.queued == [run.run_key]
    assert len(queue.waiting_ids()) == 2


def test_without_catch_up_missed_runs_are_reported_and_not_run(
        tmp_path: Path, journal: Journal, queue: JobQueue) -> None:
    config = make_config(tmp_path, {"name": "hourly", "cron": "0 * * * *", "catch_up": False})
    clock = Clock(T0)
    ScheduleRunner(config, journal, queue, now=clock).tick()
    clock.advance(hours=2, minutes=10)
    ScheduleRunner(config, journal, queue, now=clock).tick()
    [missed] = events(journal, ev.ScheduleRunMissed)
    assert (missed.missed_count, missed.caught_up) == (2, False)
    assert events(journal, ev.ScheduleRunQueued) == [] and queue.waiting_ids() == set()
    clock.advance(minutes=51)  # 03:01: on time again
    assert ScheduleRunner(config, journal, queue, now=clock).tick().queued == [
        "hourly@2026-03-02T03:00:00Z"]


def test_paused_runs_are_skipped_not_missed_and_resume_goes_on(
        tmp_path: Path, journal: Journal, queue: JobQueue) -> None:
    config = make_config(tmp_path)
    clock = Clock(T0)
    add_schedule(config, journal, Schedule(name="q", cron="*/15 * * * *", sources=["docs"]),
                 clock())
    runner = ScheduleRunner(config, journal, queue, now=clock)
    pause_schedule(config, journal, "q", clock())
    clock.advance(hours=1)
    runner.tick()
    [skipped] = events(journal, ev.ScheduleRunSkipped)
    assert skipped.skipped_count == 4
    clock.advance(hours=3)  # paused with no worker: still not missed
    resume_schedule(config, journal, "q", clock())
    assert runner.tick().queued == [] and events(journal, ev.ScheduleRunMissed) == []
    clock.advance(minutes=15)
    assert runner.tick().queued == ["q@2026-03-02T04:15:00Z"]
    [view] = read_schedules(config, journal, clock())
    assert (view.paused, view.last_result, view.origin) == (False, "queued", "cli")
    assert view.next_run == datetime(2026, 3, 2, 4, 30, tzinfo=UTC)


def test_a_new_timetable_restarts_the_schedule(tmp_path: Path, journal: Journal,
                                               queue: JobQueue) -> None:
    clock = Clock(T0)
    ScheduleRunner(make_config(tmp_path, {"name": "s", "cron": "0 * * * *"}), journal, queue,
                   now=clock).tick()
    clock.advance(hours=3)
    changed = make_config(tmp_path, {"name": "s", "cron": "30 * * * *"})
    report = ScheduleRunner(changed, journal, queue, now=clock).tick()
    assert report.queued == [] and report.missed == []  # the old timetable's hours are gone
    assert len(events(journal, ev.ScheduleAdded)) == 2
    clock.advance(minutes=30)
    assert ScheduleRunner(changed, journal, queue, now=clock).tick().queued == [
        "s@2026-03-02T03:30:00Z"]


def test_a_run_ends_when_its_jobs_end(tmp_path: Path, journal: Journal,
                                      queue: JobQueue) -> None:
    config = make_config(tmp_path, {"name": "h", "cron": "0 * * * *", "sources": ["docs"],
                                    "retention": {"keep_last": 1}})
    clock = Clock(T0)
    runner = ScheduleRunner(config, journal, queue, now=clock)
    runner.tick()
    clock.advance(hours=1)
    runner.tick()
    [run] = events(journal, ev.ScheduleRunQueued)
    assert runner.tick().finished == []  # its job is still queued
    [job_id] = run.job_ids
    journal.append(job_id, ev.BackupFailed(job_id=job_id, error_kind="X", message="disk"))
    assert runner.tick().finished == [run.run_key]
    assert runner.tick().finished == []
    [done] = events(journal, ev.ScheduleRunCompleted)
    assert (done.status, done.jobs) == ("failed", {job_id: "failed"})
    assert events(journal, ev.ScheduleRetentionApplied) == []  # no new snapshot: no retention
    assert read_schedules(config, journal, clock())[0].last_result == "failed"


def test_manual_runs_and_the_management_rules(tmp_path: Path, journal: Journal,
                                              queue: JobQueue) -> None:
    config = make_config(tmp_path, {"name": "nightly", "cron": "daily"})
    now = T0
    with pytest.raises(UsageError, match=r"defined in vault\.toml: change"):
        add_schedule(config, journal, Schedule(name="nightly", cron="hourly"), now)
    with pytest.raises(UsageError, match=r"defined in vault\.toml: delete"):
        remove_schedule(config, journal, "nightly", now)
    with pytest.raises(ConfigError, match="no source named 'nope'"):
        add_schedule(config, journal, Schedule(name="x", cron="hourly", sources=["nope"]), now)
    add_schedule(config, journal, Schedule(name="x", cron="hourly", sources=["mail"]), now)
    with pytest.raises(UsageError, match="already exists"):
        add_schedule(config, journal, Schedule(name="x", cron="daily"), now)
    run = run_now(config, journal, queue, find_schedule(config, journal, "x", now), now)
    assert run.event.manual and run.event.sources == ["mail"]
    assert queue.waiting_ids() == set(run.event.job_ids)
    view = {v.name: v for v in read_schedules(config, journal, now)}["x"]
    assert view.last_result == "queued" and view.next_run == datetime(2026, 3, 2, 1, tzinfo=UTC)
    remove_schedule(config, journal, "x", now)
    assert [v.name for v in read_schedules(config, journal, now)] == ["nightly"]
    with pytest.raises(UsageError, match="no schedule named x"):
        remove_schedule(config, journal, "x", now)


def test_two_runners_racing_queue_each_run_exactly_once(tmp_path: Path,
                                                        queue: JobQueue) -> None:
    """Two workers (threads, each with its own journal connection) plan the same minutes."""
    config = make_config(tmp_path, {"name": "m", "cron": "* * * * *", "sources": ["docs"]})
    path = tmp_path / "state" / "journal.db"
    with Journal(path) as journal:
        ScheduleRunner(config, journal, queue, now=Clock(T0)).tick()
    minutes = 40
    barrier = threading.Barrier(2)
    lost = [0, 0]

    def worker(index: int) -> None:
        with Journal(path) as own:
            for minute in range(1, minutes + 1):
                clock = Clock(T0 + timedelta(minutes=minute))
                runner = ScheduleRunner(config, own, queue, now=clock)
                barrier.wait()
                lost[index] += runner.tick().lost_races

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with Journal(path) as journal:
        runs = events(journal, ev.ScheduleRunQueued)
        keys = [r.run_key for r in runs]
        assert sorted(keys) == [f"m@2026-03-02T00:{m:02d}:00Z" for m in range(1, minutes + 1)]
        job_ids = [j for r in runs for j in r.job_ids]
        assert len(set(job_ids)) == minutes
        assert {e.job_id for e in events(journal, ev.JobQueued)} == set(job_ids)
        assert events(journal, ev.ScheduleRunMissed) == []
    assert queue.waiting_ids() == set(job_ids)
    print(f"races lost: {lost} of {2 * minutes} ticks")


def test_a_run_whose_messages_never_reached_the_queue_is_not_lost(
        tmp_path: Path, journal: Journal, queue: JobQueue,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The run and its jobs are journaled in one transaction before any message is sent:
    a queue that fails then (or a worker that dies then) leaves jobs the worker's
    `requeue_lost` sends again."""
    config = make_config(tmp_path, {"name": "h", "cron": "0 * * * *"})
    clock = Clock(T0)
    runner = ScheduleRunner(config, journal, queue, now=clock)
    runner.tick()
    clock.advance(hours=1)

    def broken(command: object, *, delay: float = 0) -> None:
        raise ConnectionError("queue went away")

    monkeypatch.setattr(queue, "enqueue", broken)
    assert runner.tick().queued == ["h@2026-03-02T01:00:00Z"]
    monkeypatch.undo()
    [run] = events(journal, ev.ScheduleRunQueued)
    assert queue.waiting_ids() == set()
    assert {r["job_id"] for r in read_jobs(journal.path, statuses=["queued"])} == \
        set(run.job_ids)
    assert sorted(requeue_lost(journal, queue, lost_after=0)) == sorted(run.job_ids)
    assert queue.waiting_ids() == set(run.job_ids)


def test_missed_runs_are_notified_to_the_schedules_targets(tmp_path: Path, journal: Journal,
                                                          queue: JobQueue) -> None:
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    base = make_config(tmp_path).model_dump(mode="json", exclude_defaults=True)
    config = VaultConfig.model_validate({
        **base, "schedules": [{"name": "hourly", "cron": "0 * * * *", "notify": ["ops"]}],
        "notifications": [{"type": "webhook", "name": "ops", "url": hook},
                          {"type": "webhook", "name": "other", "url": hook + "2"}]})
    try:
        clock = Clock(T0)
        ScheduleRunner(config, journal, queue, now=clock).tick()
        clock.advance(hours=3, minutes=30)
        ScheduleRunner(config, journal, queue, now=clock).tick()
    finally:
        server.shutdown()
        server.server_close()
    [notice] = received  # only "ops": the schedule names it
    assert (notice["trigger"], notice["schedule"], notice["target"]) == ("missed", "hourly",
                                                                         "ops")
    assert notice["details"]["missed_count"] == 3 and notice["details"]["caught_up"] is True
    [sent] = events(journal, ev.NotificationSent)
    assert sent.trigger == "missed"
