"""Pieces every operation shares: taking the repository lock, checking free space."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vault.errors import NotEnoughSpace, StorageError, VaultError
from vault.foundation.units import human_bytes
from vault.journal.events import StaleLockRemoved
from vault.planning.quota import free_space_reserve
from vault.repository.lock import RepositoryLock
from vault.repository.repository import Repository
from vault.runtime.app import Vault
from vault.storage.base import temp_file_cleaner


@contextmanager
def repository_lock(vault: Vault, repo: Repository, *, exclusive: bool,
                    operation: str, wait_seconds: float = 0) -> Iterator[RepositoryLock]:
    """Hold the repository lock; stale locks of dead processes are removed and journaled."""
    lock = RepositoryLock.acquire(repo.storage, exclusive=exclusive, operation=operation,
                                  wait_seconds=wait_seconds)
    try:
        for stale in lock.stale_removed:
            vault.journal.append(f"repository-{repo.id}", StaleLockRemoved(
                repo_id=repo.id, lock_id=stale.lock_id, holder=stale.holder))
        yield lock
    finally:
        lock.release()


def check_free_space(vault: Vault, repo: Repository, need: int) -> None:
    """Fail before writing anything when `need` bytes plus the free-space reserve (room
    for the index, the snapshot and a pack in flight; docs/config.md#free-space) will not
    fit. The error names both figures."""
    free = repo.storage.free_space()
    if free is None:
        return
    reserve = free_space_reserve(repo.storage.volume_size(),
                                 vault.config.repository.free_space_reserve)
    if free < need + reserve:
        raise NotEnoughSpace(where=repo.location,
                             need=f"{human_bytes(need)} + {human_bytes(reserve)} reserve",
                             have=human_bytes(free))


def remove_temp_debris(vault: Vault, repo: Repository) -> int:
    """Remove the temp files killed saves left behind, once older than
    `repository.temp_file_lease` (docs/storage.md#debris); returns how many. Removing the
    temp file of a save that is still running only makes that save fail (its rename finds
    nothing), never a committed object go. A failure here is housekeeping, not the
    operation's: it becomes a warning."""
    storage = temp_file_cleaner(repo.storage)
    if storage is None:
        return 0
    lease = vault.config.repository.temp_file_lease.total_seconds()
    try:
        return len(storage.cleanup_temp_files(max_age_seconds=lease))
    except StorageError as exc:
        vault.warn(f"could not remove leftover temp files: {exc.message}")
        return 0


def record_read_damage(repo: Repository, found_by: str, job_id: str, snapshot_id: str,
                       paths: list[str]) -> str | None:
    """Remember the bad copies and missing packs this session's reads met (a restore, a
    dump), so no backup reuses them and `snapshot_id` shows as corrupted. Returns a
    warning when the repository cannot be written (read-only, full): the damage is then
    found again by the next verify."""
    found = repo.found_damage
    blobs = sorted(found.blobs)
    if not blobs and not found.packs:
        return None
    snapshots = {snapshot_id: {"paths": paths, "blobs": blobs}} if blobs else {}
    try:
        repo.save_found_damage(found_by, job_id, snapshots)
    except VaultError as exc:
        return f"the damage found could not be recorded in the repository: {exc.message}"
    return None
