"""Repository management: init, keys, forget, diff, stats.

Everything that changes the repository is journaled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from vault.errors import SnapshotDamaged
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.operations.quota import record_storage_usage
from vault.planning.retention import RetentionPlan, RetentionPolicy, SnapshotRef, apply_policy
from vault.repository.keys import KeyFile
from vault.repository.repository import FORMAT_VERSION, Repository, list_key_files
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node
from vault.repository.tree_limits import check_tree_limits
from vault.runtime.app import Vault

#: which snapshots a retention policy may judge
SnapshotFilter = Callable[[Snapshot], bool]


def _stream(repo: Repository) -> str:
    return f"repository-{repo.id}"


def init_repository(vault: Vault, passphrase: str, chunk_avg: int,
                    chunker_of: Repository | None = None) -> Repository:
    repo = Repository.init(vault.storage, passphrase, chunk_avg=chunk_avg,
                           chunker_of=chunker_of)
    vault.journal.append(_stream(repo), ev.RepositoryInitialized(
        repo_id=repo.id, repository=repo.location, format_version=FORMAT_VERSION,
        key_id=repo.key_id))
    return repo


def list_keys(repo: Repository) -> list[KeyFile]:
    return list_key_files(repo.storage)


def add_key(vault: Vault, new_passphrase: str, label: str | None) -> str:
    repo = vault.repository()
    with repository_lock(vault, repo, exclusive=True, operation="key add"):
        key_id = repo.add_key(new_passphrase, label)
    vault.journal.append(_stream(repo), ev.KeyAdded(repo_id=repo.id, key_id=key_id,
                                                    label=label))
    return key_id


def remove_key(vault: Vault, key_ref: str) -> str:
    repo = vault.repository()
    key_id = _find_key(repo, key_ref)
    with repository_lock(vault, repo, exclusive=True, operation="key remove"):
        repo.remove_key(key_id)
    vault.journal.append(_stream(repo), ev.KeyRemoved(repo_id=repo.id, key_id=key_id))
    return key_id


def change_passphrase(vault: Vault, new_passphrase: str) -> str:
    """Replace the key in use by one under a new passphrase (new first, then old removed)."""
    repo = vault.repository()
    old = repo.key_id
    label = next((k.label for k in list_key_files(repo.storage) if k.key_id == old), None)
    with repository_lock(vault, repo, exclusive=True, operation="key passwd"):
        new = repo.add_key(new_passphrase, label)
        repo.key_id = new
        repo.storage.remove("keys", old)
    vault.journal.append(_stream(repo), ev.KeyChanged(repo_id=repo.id, old_key_id=old,
                                                      new_key_id=new))
    return new


def _find_key(repo: Repository, ref: str) -> str:
    from vault.errors import UsageError

    matches = [k.key_id for k in list_key_files(repo.storage) if k.key_id.startswith(ref)]
    if len(ref) < 4 or len(matches) != 1:
        raise UsageError(f"no single key matches {ref!r} (see `vault key list`)")
    return matches[0]


@dataclass(frozen=True)
class ForgetTarget:
    """A snapshot `vault forget` removes: a readable one, or a damaged snapshot file named
    by its id (which nothing else can remove, and which stops prune while it is there)."""

    id: str
    damaged: str | None = None  # why its file does not open

    @property
    def short_id(self) -> str:
        return self.id[:8]


def forget_targets(repo: Repository, refs: list[str]) -> list[ForgetTarget]:
    """What `refs` name, damaged snapshot files included (by id or id prefix)."""
    targets = []
    for ref in refs:
        try:
            targets.append(ForgetTarget(repo.find_snapshot(ref).id))
        except SnapshotDamaged as exc:
            targets.append(ForgetTarget(str(exc.fields["snapshot_id"]),
                                        damaged=str(exc.fields["detail"])))
    return targets


def forget_snapshots(vault: Vault, refs: list[str], reason: str = "forgotten on request"
                     ) -> list[ForgetTarget]:
    """Remove snapshot objects; their data stays until garbage collection reclaims it."""
    repo = vault.repository()
    targets = forget_targets(repo, refs)
    with repository_lock(vault, repo, exclusive=True, operation="forget"):
        for snap in targets:
            repo.remove_snapshot(snap.id)
            vault.journal.append(_stream(repo), ev.SnapshotForgotten(
                job_id=None, repo_id=repo.id, snapshot_id=snap.id, reason=reason))
    record_storage_usage(vault, repo)
    return targets


def plan_retention(repo: Repository, policy: RetentionPolicy, group_by: str,
                   now: datetime | None = None, select: SnapshotFilter | None = None,
                   allow_empty: bool = False) -> RetentionPlan:
    """What a retention policy keeps and removes, with reasons (pure past the listing).

    A backup group with a member `select` leaves out keeps all its judged members too:
    the unjudged member stays, and a group is restored whole or not at all."""
    judged: list[SnapshotRef] = []
    held: set[str] = set()
    for snap in repo.snapshots():
        if select is None or select(snap):
            judged.append(SnapshotRef.from_snapshot(snap))
        elif snap.group_id is not None:
            held.add(snap.group_id)
    return apply_policy(judged, policy, now or datetime.now(UTC), group_by=group_by,
                        allow_empty=allow_empty, held_groups=frozenset(held))


def apply_retention(vault: Vault, policy: RetentionPolicy, group_by: str,
                    dry_run: bool, select: SnapshotFilter | None = None,
                    wait_seconds: float = 0, allow_empty: bool = False) -> RetentionPlan:
    """Forget what the policy does not keep; each removal is journaled with its reason.

    The plan is made again under the exclusive lock, so a snapshot saved meanwhile is
    judged too (and never removed unseen). `select` limits the policy to some snapshots
    (a schedule's own); the others are neither judged nor removed. Unless `allow_empty`,
    the newest complete snapshot of each source stays (see vault.planning.retention).
    """
    repo = vault.repository()
    if dry_run:
        return plan_retention(repo, policy, group_by, select=select, allow_empty=allow_empty)
    with repository_lock(vault, repo, exclusive=True, operation="forget",
                         wait_seconds=wait_seconds):
        plan = plan_retention(repo, policy, group_by, select=select, allow_empty=allow_empty)
        for decision in plan.remove:
            repo.remove_snapshot(decision.snapshot.id)
            vault.journal.append(_stream(repo), ev.SnapshotForgotten(
                job_id=None, repo_id=repo.id, snapshot_id=decision.snapshot.id,
                reason=f"retention ({policy.describe()}): {'; '.join(decision.reasons)}"))
    record_storage_usage(vault, repo)
    return plan


@dataclass(frozen=True)
class DiffEntry:
    change: str  # "+" added, "-" removed, "M" content changed, "T" type changed, "U" metadata
    path: str


def diff_snapshots(repo: Repository, a: Snapshot, b: Snapshot) -> list[DiffEntry]:
    for snap in (a, b):
        check_tree_limits(repo, bytes.fromhex(snap.tree))  # refused, not walked
    return list(_diff_trees(repo, bytes.fromhex(a.tree), bytes.fromhex(b.tree), ""))


def _diff_trees(repo: Repository, a: bytes | None, b: bytes | None,
                prefix: str) -> Iterator[DiffEntry]:
    if a == b:
        return  # same tree id: nothing below differs
    left = {n.name: n for n in repo.load_tree(a)} if a else {}
    right = {n.name: n for n in repo.load_tree(b)} if b else {}
    for name in sorted(left.keys() | right.keys()):
        path = f"{prefix}/{name}"
        old, new = left.get(name), right.get(name)
        if old is None or new is None:
            node = new or old
            assert node is not None
            yield DiffEntry("+" if old is None else "-", path + ("/" if node.type == "dir" else ""))
            if node.type == "dir":
                yield from _diff_trees(repo, None if old else node.subtree,
                                       node.subtree if old is None else None, path)
            continue
        yield from _diff_pair(repo, old, new, path)


def _diff_pair(repo: Repository, old: Node, new: Node, path: str) -> Iterator[DiffEntry]:
    if old.type != new.type:
        yield DiffEntry("T", path)
    elif old.type == "dir":
        # A directory's mtime moves whenever an entry comes or goes (shown already), so
        # only its mode and owner count as a metadata change of its own.
        if _metadata(old)[::2] != _metadata(new)[::2] or old.gid != new.gid:
            yield DiffEntry("U", path + "/")
        yield from _diff_trees(repo, old.subtree, new.subtree, path)
    elif old.content != new.content or old.link_target != new.link_target:
        yield DiffEntry("M", path)
    elif _metadata(old) != _metadata(new):
        yield DiffEntry("U", path)


def _metadata(node: Node) -> tuple[int, int, int, int]:
    return (node.mode, node.mtime_ns, node.uid, node.gid)


@dataclass
class RepoStats:
    snapshots: int
    packs: int
    stored_bytes: int  # what the repository takes on storage (packs)
    unique_bytes: int  # plaintext of every distinct blob
    logical_bytes: int  # sum of every snapshot's file sizes
    blobs: int

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.unique_bytes if self.unique_bytes else 1.0

    @property
    def compression_ratio(self) -> float:
        return self.unique_bytes / self.stored_bytes if self.stored_bytes else 1.0

    @property
    def saving_percent(self) -> float:
        return 100 * (1 - self.stored_bytes / self.logical_bytes) if self.logical_bytes else 0


def repository_stats(repo: Repository) -> tuple[RepoStats, list[Snapshot]]:
    index = repo.load_index()
    snaps = repo.snapshots()
    unique = sum(e.raw_length for e in index.entries())
    stats = RepoStats(
        snapshots=len(snaps), packs=len(index.pack_sizes),
        stored_bytes=sum(index.pack_sizes.values()), unique_bytes=unique,
        logical_bytes=sum(s.summary.bytes_raw for s in snaps), blobs=len(index))
    return stats, snaps
