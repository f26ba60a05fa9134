"""Claiming a queued group: the worker that takes one member's message claims every
member still queued with it, in one journal transaction (real journal, real SQLite queue
in which the messages sit; nothing runs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.config.model import load_config
from vault.jobs.claims import claim_with_group
from vault.jobs.commands import BackupArgs, JobCommand
from vault.jobs.queue import JobQueue
from vault.jobs.waiting import WaitingMembers
from vault.journal import Journal
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs
from vault.runtime.app import Vault
from vault.runtime.jobrun import new_job_id


@pytest.fixture
def app(vault_repo: object, vault_env: object) -> Iterator[Vault]:
    vault = Vault(load_config(None))
    yield vault
    vault.close()


def member(app: Vault, path: Path, group_id: str | None, **where: object) -> JobCommand:
    args = BackupArgs(paths=[str(path)], group_id=group_id,
                      group_time="2026-12-07T21:00:00+00:00" if group_id else None)
    return JobCommand(job_id=new_job_id("backup"), args=args,
                      repository=app.storage.location,
                      overrides={"repository.url": app.config.repository.url}, **where)


def claims(app: Vault, job_id: str) -> list[ev.JobClaimed]:
    return [r.event for r in app.journal.stream(job_id) if isinstance(r.event, ev.JobClaimed)]


def test_one_members_message_claims_the_groups_queued_members(app: Vault,
                                                              tmp_path: Path) -> None:
    queue = JobQueue.from_config(app.config)  # the SQLite queue: no worker takes anything
    first, second, third = (member(app, tmp_path / n, "group-a") for n in "xyz")
    alone = member(app, tmp_path / "w", None)
    other_group = member(app, tmp_path / "v", "group-b")
    other_config = member(app, tmp_path / "u", "group-a", config_path=str(tmp_path / "c"))
    queue.submit_many(app.journal, [first, second, third, alone, other_group, other_config])
    queue.cancel(app.journal, third.job_id)

    claimed = claim_with_group(app.journal, second)
    assert [c.job_id for c in claimed] == [second.job_id, first.job_id]
    seqs = [app.journal.stream(c.job_id)[-1].seq for c in claimed]
    assert abs(seqs[0] - seqs[1]) == 1  # one transaction
    # The others' messages, taken later, find their job claimed
    assert claim_with_group(app.journal, first) == []
    assert claim_with_group(app.journal, second) == []
    assert claim_with_group(app.journal, third) == []  # cancelled
    assert [c.job_id for c in claim_with_group(app.journal, alone)] == [alone.job_id]
    assert [c.job_id for c in claim_with_group(app.journal, other_group)] == [
        other_group.job_id]
    assert [c.job_id for c in claim_with_group(app.journal, other_config)] == [
        other_config.job_id]


def test_a_retried_group_is_claimed_again_as_its_new_attempts(app: Vault,
                                                              tmp_path: Path) -> None:
    queue = JobQueue.from_config(app.config)
    first, second = member(app, tmp_path / "x", "group-a"), member(app, tmp_path / "y", "group-a")
    queue.submit_many(app.journal, [first, second])
    assert len(claim_with_group(app.journal, first)) == 2
    for cmd in (first, second):  # the worker died: both marked, both queued again
        app.journal.append(cmd.job_id, ev.JobInterrupted(
            job_id=cmd.job_id, kind="backup", attempt=1, reason="worker died",
            will_retry=True))
    queue.submit_many(app.journal, [first.retry(), second.retry()], delay=30)

    claimed = claim_with_group(app.journal, second.retry())
    assert [(c.job_id, c.attempt) for c in claimed] == [(second.job_id, 2), (first.job_id, 2)]
    assert [c.attempt for c in claims(app, first.job_id)] == [1, 2]
    assert claim_with_group(app.journal, first.retry()) == []


def test_two_workers_taking_two_members_at_once_claim_the_group_once(
        app: Vault, tmp_path: Path) -> None:
    queue = JobQueue.from_config(app.config)
    members = [member(app, tmp_path / str(i), "group-a") for i in range(4)]
    queue.submit_many(app.journal, members)
    results: dict[int, list[JobCommand]] = {}
    start = threading.Barrier(len(members))

    def take(index: int) -> None:
        with Journal(app.config.journal_path()) as journal:
            start.wait()
            results[index] = claim_with_group(journal, members[index])

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(members))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [claimed for claimed in results.values() if claimed]
    assert len(winners) == 1, results
    assert sorted(c.job_id for c in winners[0]) == sorted(m.job_id for m in members)
    assert all(len(claims(app, m.job_id)) == 1 for m in members)


def test_members_waiting_for_their_turn_say_so_until_it_comes(app: Vault,
                                                             tmp_path: Path) -> None:
    queue = JobQueue.from_config(app.config)
    first, second = member(app, tmp_path / "x", "group-a"), member(app, tmp_path / "y", "group-a")
    queue.submit_many(app.journal, [first, second])
    claim_with_group(app.journal, first)

    def waiting(job_id: str) -> int:
        return sum(1 for r in app.journal.stream(job_id)
                   if isinstance(r.event, ev.BackupProgressed) and r.event.phase == "waiting")

    with WaitingMembers(app.journal, [first.job_id, second.job_id], interval=0.05):
        time.sleep(0.3)
        app.journal.append(first.job_id, ev.BackupStarted(job_id=first.job_id,
                                                          repo_id="r", parent=None))
        marked = waiting(first.job_id)
        time.sleep(0.3)
    assert marked >= 2 and waiting(first.job_id) == marked  # none after its turn came
    assert waiting(second.job_id) > marked
    [row] = read_jobs(app.config.journal_path(), job_id=second.job_id)
    assert (row["status"], row["phase"], row["started_at"]) == ("running", "waiting", None)
