"""Fixtures for the journal tests: a real SQLite file in tmp_path and a realistic workload."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vault.foundation.actor import Actor
from vault.journal import (
    BackupCompleted,
    BackupFailed,
    BackupProgressed,
    BackupRequested,
    BackupStarted,
    CommandFailed,
    Event,
    FileProblem,
    Journal,
    KeyAdded,
    RepositoryInitialized,
    RestoreCompleted,
    RestoreProgressed,
    RestoreRequested,
    RestoreStarted,
    SnapshotCorrupted,
    SnapshotForgotten,
    VerifyCompleted,
    VerifyProgressed,
    VerifyRequested,
    VerifyStarted,
)

ALICE = Actor(user="alice", uid=1000, host="nas", ssh_client=None)
BOB = Actor(user="bob", uid=1001, host="laptop", ssh_client="192.0.2.7:51234")


@pytest.fixture
def alice() -> Actor:
    return ALICE


@pytest.fixture
def bob() -> Actor:
    return BOB


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.db"


@pytest.fixture
def journal(journal_path: Path) -> Iterator[Journal]:
    with Journal(journal_path, actor=ALICE) as opened:
        yield opened


def progress(
    job_id: str,
    cls: type[BackupProgressed] | type[RestoreProgressed] | type[VerifyProgressed],
    done: int,
    total: int,
) -> Event:
    return cls(
        job_id=job_id,
        phase="copy",
        bytes_done=done,
        bytes_total=total,
        items_done=done // 10,
        items_total=total // 10,
        rate_bps=1234.5,
        eta_seconds=(total - done) / 1234.5,
        current=f"/srv/file-{done}",
    )


def backup_job(job_id: str, snapshot_id: str, outcome: str) -> list[Event]:
    """A backup job's events: requested, started, 3 progress flushes, then the outcome."""
    events: list[Event] = [
        BackupRequested(
            job_id=job_id,
            repository="/srv/repo",
            paths=["/srv/app"],
            tags=["nightly"],
            options={"exclude": ["*.tmp"], "one_file_system": True},
        ),
        BackupStarted(job_id=job_id, repo_id="repo-1", parent=None),
    ]
    events += [progress(job_id, BackupProgressed, done, 3000) for done in (1000, 2000, 3000)]
    if outcome == "failed":
        events.append(BackupFailed(job_id=job_id, error_kind="NotEnoughSpace", message="full"))
        return events
    problems = [FileProblem(path="/srv/app/locked.db", error="EACCES")]
    events.append(
        BackupCompleted(
            job_id=job_id,
            repo_id="repo-1",
            snapshot_id=snapshot_id,
            status="partial" if outcome == "partial" else "completed",
            backup_type="full",
            parent=None,
            paths=["/srv/app"],
            tags=["nightly"],
            host="nas",
            snapshot_time="2024-05-01T02:00:00Z",
            files_new=10,
            files_changed=2,
            files_unmodified=100,
            dirs=7,
            bytes_raw=3000,
            bytes_new=1200,
            bytes_stored=800,
            duration_seconds=2.5,
            errors=problems if outcome == "partial" else [],
        )
    )
    return events


def restore_job(job_id: str, snapshot_id: str) -> list[Event]:
    return [
        RestoreRequested(
            job_id=job_id,
            repository="/srv/repo",
            snapshot_ref="latest",
            target="/tmp/restore",
            paths=[],
            include=["*.conf"],
            exclude=[],
            options={},
        ),
        RestoreStarted(job_id=job_id, snapshot_id=snapshot_id),
        progress(job_id, RestoreProgressed, 500, 1000),
        RestoreCompleted(
            job_id=job_id,
            snapshot_id=snapshot_id,
            target="/tmp/restore",
            files_restored=12,
            files_skipped=0,
            dirs=3,
            bytes_written=1000,
            duration_seconds=0.75,
            errors=[],
        ),
    ]


def verify_job(job_id: str, corrupted: str) -> list[Event]:
    return [
        VerifyRequested(job_id=job_id, repository="/srv/repo", read_data=True, subset="1/5"),
        VerifyStarted(job_id=job_id, repo_id="repo-1"),
        progress(job_id, VerifyProgressed, 10, 100),
        SnapshotCorrupted(
            job_id=job_id,
            repo_id="repo-1",
            snapshot_id=corrupted,
            reason="pack 3f2a missing",
            paths=["/srv/app/big.bin"],
        ),
        VerifyCompleted(
            job_id=job_id,
            repo_id="repo-1",
            ok=False,
            snapshots_checked=4,
            packs_checked=20,
            blobs_checked=900,
            bytes_read=4096,
            problems=["pack 3f2a missing"],
            unreferenced_packs=1,
            duration_seconds=9.0,
        ),
    ]


def realistic_workload() -> list[tuple[str, Event]]:
    """About 50 events of the kinds a week of use produces, each with its stream id."""
    items: list[tuple[str, Event]] = [
        (
            "repo-1",
            RepositoryInitialized(
                repo_id="repo-1", repository="/srv/repo", format_version=1, key_id="k1"
            ),
        ),
        ("repo-1", KeyAdded(repo_id="repo-1", key_id="k2", label="laptop")),
        ("cli", CommandFailed(command="backup", error_kind="WrongPassphrase", message="no")),
    ]
    outcomes = ["completed", "partial", "failed", "completed", "completed", "partial", "completed"]
    for n, outcome in enumerate(outcomes):
        items += [(f"job-b{n}", e) for e in backup_job(f"b{n}", f"snap-{n}", outcome)]
    items += [("job-r0", e) for e in restore_job("r0", "snap-0")]
    items += [("job-v0", e) for e in verify_job("v0", "snap-1")]
    items.append(
        (
            "repo-1",
            SnapshotForgotten(
                job_id=None, repo_id="repo-1", snapshot_id="snap-3", reason="keep-daily 1"
            ),
        )
    )
    return items


@pytest.fixture
def workload() -> Callable[[], list[tuple[str, Event]]]:
    return realistic_workload
