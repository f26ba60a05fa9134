"""Job queue logic in Huey's immediate mode: a submitted job runs in the test's process.

Real repository, real journal, real SQLite queue where a test needs one to sit in; the
only thing immediate mode changes is *where* the task runs. "Dead workers" are real
processes that have exited.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from vault.config.model import load_config
from vault.jobs.commands import BackupArgs, JobCommand, RestoreArgs, VerifyArgs
from vault.jobs.queue import JobNotCancellable, JobQueue
from vault.jobs.tasks import claim, execute, process_start_time
from vault.jobs.worker import recover_interrupted, requeue_lost
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs
from vault.runtime.app import Vault
from vault.runtime.jobrun import new_job_id


@pytest.fixture
def app(vault_repo: object, vault_env: object) -> Iterator[Vault]:
    vault = Vault(load_config(None))
    yield vault
    vault.close()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    return root


def command(app: Vault, args: BackupArgs | RestoreArgs | VerifyArgs) -> JobCommand:
    return JobCommand(job_id=new_job_id(args.kind), args=args,
                      repository=app.storage.location,
                      overrides={"repository.url": app.config.repository.url})


def types(app: Vault, job_id: str) -> list[str]:
    return [r.type for r in app.journal.stream(job_id)]


def job(app: Vault, job_id: str) -> dict[str, object]:
    return read_jobs(app.config.journal_path(), job_id=job_id)[0]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def claim_by_dead_worker(app: Vault, cmd: JobCommand) -> None:
    import socket

    app.journal.append(cmd.job_id, ev.JobClaimed(
        job_id=cmd.job_id, kind=cmd.kind, attempt=cmd.attempt, host=socket.gethostname(),
        pid=dead_pid(), pid_started=None))


def test_a_queued_backup_runs_under_its_job_id_and_journals_every_step(
        app: Vault, src: Path) -> None:
    cmd = command(app, BackupArgs(paths=[str(src)], tags=["queued"]))
    JobQueue.from_config(app.config, immediate=True).submit(app.journal, cmd)

    seen = types(app, cmd.job_id)
    assert seen[:4] == ["BackupRequested", "JobQueued", "JobClaimed", "BackupStarted"]
    assert seen[-1] == "BackupCompleted"
    assert seen.count("BackupRequested") == 1  # the worker did not journal it again
    snapshots = [s for s in app.repository().snapshots() if s.job_id == cmd.job_id]
    assert len(snapshots) == 1 and snapshots[0].tags == ["queued"]
    row = job(app, cmd.job_id)
    assert (row["status"], row["kind"], row["attempt"]) == ("completed", "backup", 1)
    assert str(row["worker"]).endswith(f":{os.getpid()}")
    assert row["snapshot_id"] == snapshots[0].id


def test_a_job_delivered_twice_runs_once(app: Vault, src: Path) -> None:
    cmd = command(app, BackupArgs(paths=[str(src)]))
    JobQueue.from_config(app.config, immediate=True).submit(app.journal, cmd)
    assert execute(cmd) == "skipped"
    assert len([s for s in app.repository().snapshots() if s.job_id == cmd.job_id]) == 1
    assert types(app, cmd.job_id).count("JobClaimed") == 1


def test_of_two_claims_on_one_attempt_only_the_first_wins(app: Vault, src: Path) -> None:
    cmd = command(app, BackupArgs(paths=[str(src)]))
    app.journal.append_many([(cmd.job_id, cmd.requested_event())])
    assert claim(app.journal, cmd) is True
    assert claim(app.journal, cmd) is False
    assert claim(app.journal, cmd.retry()) is True  # a retry is a new attempt


def test_cancel_a_queued_job(app: Vault, src: Path) -> None:
    queue = JobQueue.from_config(app.config)  # the SQLite queue; no worker runs it
    cmd = command(app, BackupArgs(paths=[str(src)]))
    queue.submit(app.journal, cmd)
    assert job(app, cmd.job_id)["status"] == "queued"
    assert len(queue.huey) == 1

    queue.cancel(app.journal, cmd.job_id)
    assert job(app, cmd.job_id)["status"] == "cancelled"
    assert types(app, cmd.job_id)[-1] == "JobCancelled"
    assert execute(cmd) == "skipped"  # a worker that takes the message anyway does nothing
    assert not [s for s in app.repository().snapshots() if s.job_id == cmd.job_id]
    with pytest.raises(JobNotCancellable):
        queue.cancel(app.journal, cmd.job_id)


def test_a_finished_job_cannot_be_cancelled(app: Vault, src: Path) -> None:
    cmd = command(app, BackupArgs(paths=[str(src)]))
    JobQueue.from_config(app.config, immediate=True).submit(app.journal, cmd)
    with pytest.raises(JobNotCancellable, match="completed"):
        JobQueue.from_config(app.config).cancel(app.journal, cmd.job_id)


def test_a_dead_workers_backup_is_marked_interrupted_and_retried(app: Vault, src: Path) -> None:
    cmd = command(app, BackupArgs(paths=[str(src)]))
    JobQueue.from_config(app.config).submit(app.journal, cmd)  # sits in the SQLite queue
    claim_by_dead_worker(app, cmd)
    assert job(app, cmd.job_id)["status"] == "running"

    marked = recover_interrupted(app.journal, JobQueue.from_config(app.config, immediate=True),
                                 retry_delay=0)
    assert [(m.job_id, m.attempt, m.will_retry) for m in marked] == [(cmd.job_id, 1, True)]
    seen = types(app, cmd.job_id)
    assert seen[:5] == ["BackupRequested", "JobQueued", "JobClaimed", "JobInterrupted",
                        "JobQueued"]
    assert seen[-1] == "BackupCompleted"
    row = job(app, cmd.job_id)
    assert (row["status"], row["attempt"]) == ("completed", 2)
    assert len([s for s in app.repository().snapshots() if s.job_id == cmd.job_id]) == 1
    # Nothing is left to recover, and a second look marks nothing twice.
    assert recover_interrupted(app.journal, JobQueue.from_config(app.config, immediate=True)) \
        == []


def test_a_backup_interrupted_a_fourth_time_is_not_retried(app: Vault, src: Path) -> None:
    cmd = command(app, BackupArgs(paths=[str(src)])).model_copy(update={"attempt": 4})
    app.journal.append_many([(cmd.job_id, cmd.requested_event()), (cmd.job_id, ev.JobQueued(
        job_id=cmd.job_id, kind="backup", attempt=4, summary=cmd.summary(), delay_seconds=0,
        command=cmd.model_dump(mode="json")))])
    claim_by_dead_worker(app, cmd)
    marked = recover_interrupted(app.journal, JobQueue.from_config(app.config, immediate=True))
    assert [m.will_retry for m in marked] == [False]
    assert job(app, cmd.job_id)["status"] == "interrupted"


def test_an_interrupted_restore_is_never_retried(app: Vault, src: Path, tmp_path: Path) -> None:
    JobQueue.from_config(app.config, immediate=True).submit(
        app.journal, command(app, BackupArgs(paths=[str(src)])))
    cmd = command(app, RestoreArgs(snapshot_ref="latest", target=str(tmp_path / "out")))
    JobQueue.from_config(app.config).submit(app.journal, cmd)
    claim_by_dead_worker(app, cmd)
    marked = recover_interrupted(app.journal, JobQueue.from_config(app.config, immediate=True),
                                 retry_delay=0)
    assert [(m.kind, m.will_retry) for m in marked] == [("restore", False)]
    assert types(app, cmd.job_id)[-1] == "JobInterrupted"
    assert job(app, cmd.job_id)["status"] == "interrupted"
    assert not (tmp_path / "out").exists()


def test_a_live_workers_job_is_left_alone(app: Vault, src: Path) -> None:
    import socket

    cmd = command(app, BackupArgs(paths=[str(src)]))
    JobQueue.from_config(app.config).submit(app.journal, cmd)
    app.journal.append(cmd.job_id, ev.JobClaimed(
        job_id=cmd.job_id, kind="backup", attempt=1, host=socket.gethostname(),
        pid=os.getpid(), pid_started=process_start_time(os.getpid())))
    assert recover_interrupted(app.journal, JobQueue.from_config(app.config)) == []
    assert job(app, cmd.job_id)["status"] == "running"


def test_a_reused_pid_does_not_pass_for_the_dead_worker(app: Vault, src: Path) -> None:
    import socket

    cmd = command(app, BackupArgs(paths=[str(src)]))
    JobQueue.from_config(app.config).submit(app.journal, cmd)
    started = process_start_time(os.getpid())
    assert started is not None
    app.journal.append(cmd.job_id, ev.JobClaimed(
        job_id=cmd.job_id, kind="backup", attempt=1, host=socket.gethostname(),
        pid=os.getpid(), pid_started=started - 1))  # same pid, another process's start
    marked = recover_interrupted(app.journal, JobQueue.from_config(app.config, immediate=True),
                                 retry_delay=0)
    assert [m.job_id for m in marked] == [cmd.job_id]


def test_a_retry_after_the_snapshot_was_saved_takes_no_second_snapshot(
        app: Vault, src: Path, vault_env: object, tmp_path: Path) -> None:
    """The first attempt saved its snapshot and died before journaling the outcome."""
    cmd = command(app, BackupArgs(paths=[str(src)]))
    JobQueue.from_config(app.config, immediate=True).submit(app.journal, cmd)
    before = app.repository().snapshots()
    # The same job in a journal that never heard how it ended (a second state dir).
    overrides = {**cmd.overrides, "state_dir": str(tmp_path / "state2")}
    other = Vault(load_config(None, overrides=overrides))
    cmd = cmd.model_copy(update={"overrides": overrides})
    try:
        JobQueue.from_config(other.config).submit(other.journal, cmd)
        claim_by_dead_worker(other, cmd)
        recover_interrupted(other.journal, JobQueue.from_config(other.config, immediate=True),
                            retry_delay=0)
        assert types(other, cmd.job_id)[-1] == "BackupCompleted"
        completed = other.journal.stream(cmd.job_id)[-1].event
        assert isinstance(completed, ev.BackupCompleted)
        assert completed.snapshot_id == next(s.id for s in before if s.job_id == cmd.job_id)
    finally:
        other.close()
    assert [s.id for s in app.repository().snapshots()] == [s.id for s in before]


def test_a_failing_job_is_journaled_as_failed(app: Vault) -> None:
    cmd = command(app, RestoreArgs(snapshot_ref="deadbeef", target="/nonexistent/x"))
    JobQueue.from_config(app.config, immediate=True).submit(app.journal, cmd)
    row = job(app, cmd.job_id)
    assert (row["status"], row["error_kind"]) == ("failed", "SnapshotNotFound")


def test_a_queued_verify_runs(app: Vault, src: Path) -> None:
    cmd = command(app, VerifyArgs(read_data=True))
    JobQueue.from_config(app.config, immediate=True).submit(app.journal, cmd)
    assert types(app, cmd.job_id)[-1] == "VerifyCompleted"
    assert job(app, cmd.job_id)["status"] == "completed"


def test_a_command_never_carries_a_secret(app: Vault) -> None:
    with pytest.raises(ValidationError, match="secrets"):
        JobCommand(job_id="backup-1", args=BackupArgs(paths=["/"]), repository="r",
                   overrides={"repository.password": {"env": "X"}})


def test_the_jobs_table_rebuilds_to_the_same_rows(app: Vault, src: Path) -> None:
    cmd = command(app, BackupArgs(paths=[str(src)]))
    JobQueue.from_config(app.config).submit(app.journal, cmd)
    claim_by_dead_worker(app, cmd)
    recover_interrupted(app.journal, JobQueue.from_config(app.config, immediate=True),
                        retry_delay=0)
    cancelled = command(app, BackupArgs(paths=[str(src)]))
    queue = JobQueue.from_config(app.config)
    queue.submit(app.journal, cancelled)
    queue.cancel(app.journal, cancelled.job_id)
    before = read_jobs(app.config.journal_path())
    app.journal.rebuild_projections()
    assert read_jobs(app.config.journal_path()) == before
    assert {r["status"] for r in before} >= {"completed", "cancelled"}


def test_a_job_whose_config_no_longer_loads_fails_in_the_workers_journal(
        app: Vault, src: Path, tmp_path: Path) -> None:
    broken = tmp_path / "vault.toml"
    broken.write_text("[repository]\nno_such_key = 1\n")
    cmd = command(app, BackupArgs(paths=[str(src)])).model_copy(
        update={"config_path": str(broken)})
    JobQueue.from_config(app.config, immediate=True).submit(app.journal, cmd)
    row = job(app, cmd.job_id)
    assert (row["status"], row["error_kind"]) == ("failed", "ConfigInvalid")
    assert types(app, cmd.job_id)[-2:] == ["JobClaimed", "BackupFailed"]


def test_a_queued_job_whose_message_was_lost_is_queued_again_once(
        app: Vault, src: Path) -> None:
    """A worker died between taking the message and claiming the job."""
    queue = JobQueue.from_config(app.config)
    cmd = command(app, BackupArgs(paths=[str(src)]))
    queue.submit(app.journal, cmd)
    assert requeue_lost(app.journal, queue, lost_after=0) == []  # its message is there
    queue.huey.storage.flush_queue()  # what the dead worker took with it
    assert requeue_lost(app.journal, queue, lost_after=3600) == []  # not overdue yet
    assert requeue_lost(app.journal, queue, lost_after=0) == [cmd.job_id]
    assert queue.waiting_ids() == {cmd.job_id}
    assert requeue_lost(app.journal, queue, lost_after=0) == []
    assert execute(cmd) == "completed"
    assert execute(cmd) == "skipped"  # had the first message survived after all
    assert job(app, cmd.job_id)["status"] == "completed"
