"""The plan for restoring files: the snapshot's selected tree against the target as it is.

Both sides become key -> fingerprint maps and `vault.planning.restore_plan.plan_items` decides,
so `--dry-run` and the real restore share one decision. Keys are paths relative to the
target; a directory's key ends in "/" (so a file where the snapshot has a directory is a
delete plus a create, never a silent merge of the two). The group of an item is its
parent directory ("." for the target itself).

Fingerprints: a snapshot file is its list of blob ids; a target file is the list of blob
ids its content would have, cut with the repository's own chunker and keyed with its own
id key (the backup's exact rule), so no snapshot data is read. A size that differs
decides without reading. `trust_mtime` (the old `--overwrite if-changed`) takes equal
size and mtime as equal content. Symlinks compare by link text, directories always match.

Only what lies inside the selection is looked at in the target: a target path counts when
the snapshot path it stands for is selected, and a directory the snapshot lacks counts
(may be deleted) only when everything below it does. Nothing is ever followed through a
symlink.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

from vault.errors import OperationFailed
from vault.planning.restore_plan import Mode, OnConflict, RestorePlan, TargetNotEmpty, plan_items
from vault.repository.chunker import Chunker
from vault.repository.repository import Repository
from vault.repository.tree import (
    MAX_SNAPSHOT_ENTRIES,
    MAX_TREE_DEPTH,
    Node,
    TreeLimitExceeded,
    name_bytes,
)
from vault.restore.selection import Selection

Fingerprint = Hashable


class RestoreConflicts(OperationFailed):
    """refused: {count} conflict(s) with what {target} holds ({where}); nothing was written (choose --on-conflict skip, overwrite or rename)"""  # noqa: E501


class TargetNotEmptyError(OperationFailed):
    """restore target {target} is not empty: --mode new-target restores only into a new or empty directory"""  # noqa: E501

    exit_code = 2


@dataclass(frozen=True)
class SnapEntry:
    """One selected entry of the snapshot: where it goes (`rel`, relative to the target)."""

    rel: str
    snap_path: str
    node: Node


@dataclass
class FilesPlan:
    """A `RestorePlan` plus what the executor needs to carry it out."""

    plan: RestorePlan
    target: str  # absolute
    rename_suffix: str  # ".restored-<snapshot short id>"
    entries: dict[str, SnapEntry] = field(default_factory=dict)  # key -> snapshot side
    refused: list[tuple[str, str]] = field(default_factory=list)  # (snapshot path, why)


def rel_key(rel: str, node_type: str) -> str:
    return rel + "/" if node_type == "dir" else rel


def group_of(key: Hashable) -> str:
    parent = os.path.dirname(str(key).rstrip("/"))
    return parent or "."


def walk_snapshot(repo: Repository, tree_id: bytes, base: str, selection: Selection,
                  refused: list[tuple[str, str]]) -> dict[str, SnapEntry]:
    """Selected entries below tree `tree_id` (snapshot path `base`), parents first.

    An entry whose name is unsafe, or is the same bytes as an earlier entry's of its
    directory, is refused (reported, never restored). Names become the string the target's
    own listing gives for their bytes, so the plan's keys and the target's agree."""
    entries: dict[str, SnapEntry] = {}
    _walk(repo, tree_id, base, "", selection, entries, refused, 1)
    return entries


def _walk(repo: Repository, tree_id: bytes, snap_dir: str, rel_dir: str,
          selection: Selection, entries: dict[str, SnapEntry],
          refused: list[tuple[str, str]], depth: int) -> None:
    if depth > MAX_TREE_DEPTH or len(entries) > MAX_SNAPSHOT_ENTRIES:
        # check_before_restore refuses such a snapshot first; this keeps the walk bounded
        raise TreeLimitExceeded(tree=tree_id.hex()[:12], detail="too deep or too large")
    seen: set[bytes] = set()
    for node in repo.load_tree(tree_id):
        raw = name_bytes(node.name)
        if raw is None or raw in seen:
            path = f"{snap_dir.rstrip('/')}/{node.name}"
            refused.append((path, "refused: entry name would escape the target or repeats"))
            continue
        seen.add(raw)
        name = os.fsdecode(raw)
        path = f"{snap_dir.rstrip('/')}/{name}"
        rel = f"{rel_dir}/{name}" if rel_dir else name
        if node.type != "dir":
            if selection.wants(path):
                entries[rel] = SnapEntry(rel, path, node)
            continue
        if not node.subtree or not selection.may_contain(path):
            continue
        key = rel + "/"
        entries[key] = SnapEntry(rel, path, node)
        before = len(entries)
        _walk(repo, node.subtree, path, rel, selection, entries, refused, depth + 1)
        if len(entries) == before and (selection.paths or selection.includes) \
                and not selection.wants(path):
            del entries[key]  # nothing selected below: leave it out


@dataclass(frozen=True)
class TargetEntry:
    path: str  # absolute
    st: os.stat_result


def scan_target(target: str, base: str, selection: Selection,
                snapshot_dirs: set[str]) -> dict[str, TargetEntry]:
    """What the target holds now within the selection (never following a symlink)."""
    found: dict[str, TargetEntry] = {}
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return found
    if stat.S_ISDIR(st.st_mode):
        _scan(target, base, "", selection, snapshot_dirs, found)
    return found


def _scan(dir_path: str, snap_dir: str, rel_dir: str, selection: Selection,
          snapshot_dirs: set[str], found: dict[str, TargetEntry]) -> bool:
    """Fill `found`; whether everything below `dir_path` was taken (so it may go)."""
    whole = True
    try:
        children = sorted(os.scandir(dir_path), key=lambda e: e.name)
    except OSError:
        return False
    for child in children:
        path = f"{snap_dir.rstrip('/')}/{child.name}"
        rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
        if not selection.wants(path) and not selection.may_contain(path):
            whole = False  # outside the selection: not even looked at (an undo scans "/")
            continue
        try:
            st = child.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone since the listing: it is not there to restore over or delete
        if not stat.S_ISDIR(st.st_mode):
            if selection.wants(path):
                found[rel] = TargetEntry(child.path, st)
            else:
                whole = False
            continue
        if not selection.may_contain(path):
            whole = False
            continue
        below = _scan(child.path, path, rel, selection, snapshot_dirs, found)
        taken = below and selection.wants(path)
        if rel + "/" in snapshot_dirs or taken:
            found[rel + "/"] = TargetEntry(child.path, st)
        whole = whole and taken
    return whole


def snapshot_fingerprint(node: Node) -> Fingerprint:
    if node.type == "file":
        return ("file", tuple(node.content))
    if node.type == "symlink":
        return ("symlink", node.link_target or "")
    return ("dir",)


class TargetFingerprinter:
    """Fingerprints of target entries, in the snapshot's terms (see the module doc)."""

    def __init__(self, repo: Repository, *, trust_mtime: bool = False) -> None:
        self.repo = repo
        self.trust_mtime = trust_mtime
        self._chunker: Chunker | None = None
        self.bytes_read = 0

    def of(self, entry: TargetEntry, wanted: Node | None) -> Fingerprint:
        mode = entry.st.st_mode
        if stat.S_ISDIR(mode):
            return ("dir",)
        if stat.S_ISLNK(mode):
            return ("symlink", os.readlink(entry.path))
        if not stat.S_ISREG(mode):
            return ("special", stat.S_IFMT(mode))
        if wanted is None or wanted.type != "file" or entry.st.st_size != wanted.size:
            return ("file-size", entry.st.st_size)  # decided without reading
        if self.trust_mtime and entry.st.st_mtime_ns == wanted.mtime_ns:
            return snapshot_fingerprint(wanted)
        try:
            return ("file", tuple(self._blob_ids(entry.path, entry.st.st_size)))
        except OSError as exc:
            return ("unreadable", exc.strerror or str(exc))

    def _blob_ids(self, path: str, size: int) -> Iterator[bytes]:
        if self._chunker is None:
            self._chunker = Chunker(self.repo.chunker_params, self.repo.chunker_seed)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb", buffering=0) as f:
            if size <= self._chunker.params.min_size:  # as the backup does: one blob
                data = f.read()
                self.bytes_read += len(data)
                if data:
                    yield self.repo.cipher.blob_id(data)
                return
            for chunk in self._chunker.cut_file_object(f):
                self.bytes_read += len(chunk)
                yield self.repo.cipher.blob_id(chunk)


def plan_files(repo: Repository, tree_id: bytes, base: str, target: str,
               selection: Selection, *, mode: Mode, on_conflict: OnConflict | None,
               snapshot_short_id: str, trust_mtime: bool = False) -> FilesPlan:
    """Decide, item by item, what restoring `base` (tree `tree_id`) into `target` does."""
    target = os.path.abspath(target)
    refused: list[tuple[str, str]] = []
    entries = walk_snapshot(repo, tree_id, base, selection, refused)
    if mode == "new-target" and holds_anything(target):
        raise TargetNotEmptyError(target=target)
    dirs = {key for key in entries if key.endswith("/")}
    present = scan_target(target, base, selection, dirs)
    fingerprinter = TargetFingerprinter(repo, trust_mtime=trust_mtime)
    wanted: dict[Hashable, Fingerprint] = {
        key: snapshot_fingerprint(e.node) for key, e in entries.items()}
    now: dict[Hashable, Fingerprint] = {
        key: fingerprinter.of(t, entries[key].node if key in entries else None)
        for key, t in present.items()}
    try:
        plan = plan_items(wanted, now, mode=mode, on_conflict=on_conflict,
                          group_of=group_of, size_of=lambda k: _size(entries, k))
    except TargetNotEmpty as exc:  # only if the directory changed since the check
        raise TargetNotEmptyError(target=target) from exc
    return FilesPlan(plan, target, f".restored-{snapshot_short_id}", entries, refused)


def refuse_conflicts(files_plan: FilesPlan) -> None:
    """`--on-conflict fail`: refuse the whole restore when any item is in conflict."""
    conflicts = files_plan.plan.conflicts
    if conflicts:
        where = ", ".join(i.key for i in conflicts[:5]) + (" ..." if len(conflicts) > 5 else "")
        raise RestoreConflicts(count=len(conflicts), target=files_plan.target, where=where)


def _size(entries: dict[str, SnapEntry], key: Hashable) -> int:
    entry = entries.get(str(key))
    return entry.node.size if entry and entry.node.type == "file" else 0


def holds_anything(target: str) -> bool:
    try:
        with os.scandir(target) as it:
            return any(True for _ in it)
    except (FileNotFoundError, NotADirectoryError):
        return False
