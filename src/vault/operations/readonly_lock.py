"""The lock of an operation that only reads, for when the repository cannot be written.

A restore is what people run in an incident, and a full or read-only repository is a
common one: it must not refuse because its lock object cannot be written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from vault.errors import (
    NotEnoughSpace,
    ObjectNotFound,
    RepositoryLocked,
    StorageError,
    TransientStorageError,
)
from vault.journal.events import LockSkipped
from vault.operations.common import repository_lock
from vault.repository.lock import RepositoryLock, list_locks
from vault.repository.repository import Repository
from vault.runtime.app import Vault


@contextmanager
def read_only_lock(vault: Vault, repo: Repository, *,
                   operation: str) -> Iterator[RepositoryLock | None]:
    """A shared lock for an operation that only reads (restore, verify without repair).

    When the lock object cannot be written (the repository is full or read-only: the very
    incident a restore exists for), go on without one, as restic's `--no-lock` does, after
    checking that no live exclusive lock (a prune, a forget) is held; the skipped lock is
    journaled and told as a warning. The risk (docs/cli.md#read-only-repositories): a prune
    that starts meanwhile cannot see this reader and may delete packs it still needs.
    """
    with ExitStack() as stack:
        try:
            lock: RepositoryLock | None = stack.enter_context(
                repository_lock(vault, repo, exclusive=False, operation=operation))
        except (NotEnoughSpace, StorageError) as exc:
            if isinstance(exc, TransientStorageError | ObjectNotFound):
                raise
            _go_on_unlocked(vault, repo, operation, exc.message)
            lock = None
        yield lock


def _go_on_unlocked(vault: Vault, repo: Repository, operation: str, reason: str) -> None:
    _refuse_exclusive_holder(repo)
    vault.journal.append(f"repository-{repo.id}", LockSkipped(
        repo_id=repo.id, operation=operation, reason=reason))
    vault.warn(f"{operation} runs without a repository lock: {reason} "
               "(a prune started meanwhile could remove data it reads)")


def _refuse_exclusive_holder(repo: Repository) -> None:
    """Raise RepositoryLocked if a live exclusive lock is held (reading locks writes nothing)."""
    for held in list_locks(repo.storage):
        if held.exclusive and held.state != "stale":
            raise RepositoryLocked(repo=repo.location, holder=held.holder,
                                   since=held.created.isoformat(timespec="seconds"))
