"""Restoring files from a snapshot into a target directory: carrying out a `FilesPlan`.

The plan (vault.restore.files_plan) has already decided every item; this executes exactly
that, in an order chosen for speed and safety:
1. refuse the whole restore when the plan holds a conflict (`--on-conflict fail`);
2. delete what the plan deletes (deepest first; links unlinked, never followed);
3. create directories (never through a symlink: each is checked with lstat);
4. write file contents pack by pack, in pack order, in parallel threads: every needed blob
   of a pack is read in one ranged load, authenticated, and written to every file and
   offset that wants it (a blob shared by many files is read once);
5. create symlinks and hard links last, so no write can follow a link from the snapshot;
6. set modes, owners and mtimes, directories bottom-up (writing into a directory
   changes its mtime).
Files are opened with O_NOFOLLOW; an existing symlink at a file's place is replaced,
never followed. Nothing outside the target is written: every parent is checked to lie
inside it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from vault.errors import IntegrityError, ObjectNotFound, VaultError
from vault.foundation.progress import ProgressCounter
from vault.planning.restore_plan import PlannedItem
from vault.repository.blob import BlobEntry
from vault.repository.repository import Repository
from vault.repository.tree import Node
from vault.restore.files_plan import FilesPlan, refuse_conflicts

#: the old `--overwrite` choices (see vault.operations.restore.legacy_policy)
OverwritePolicy = Literal["always", "if-changed", "never"]
_COALESCE_GAP = 256 << 10
#: one ranged read stays below this (plus one blob): memory per thread stays small
_MAX_READ = 4 << 20
_WRITES = ("create", "overwrite", "rename")


@dataclass
class RestoreProblem:
    path: str
    error: str


@dataclass
class RestoreStats:
    files_restored: int = 0
    files_skipped: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes_written: int = 0
    problems: list[RestoreProblem] = field(default_factory=list)
    # What changed in the target, absolute paths (for undo and the report).
    created: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed_keys: set[str] = field(default_factory=set)  # plan keys that did not happen


@dataclass
class _File:
    dest: str
    node: Node
    key: str = ""
    remaining: int = 0
    failed: bool = False
    content_done: bool = False
    created: bool = False  # we created or truncated it, so a failure may remove it
    inode: tuple[int, int] | None = None  # (st_dev, st_ino) as written: hard links check it


class FileRestorer:
    def __init__(self, repo: Repository, files_plan: FilesPlan, progress: ProgressCounter,
                 *, threads: int = 2) -> None:
        self.repo = repo
        self.files_plan = files_plan
        self.target = files_plan.target
        self.progress = progress
        self.threads = threads
        self.stats = RestoreStats()
        self._lock = threading.Lock()
        self._dirs: list[tuple[str, Node]] = []
        self._files: list[_File] = []
        self._links: list[tuple[str, Node]] = []
        self._hardlinks: list[tuple[str, str]] = []  # (link, first path with that inode)
        self._first_by_key: dict[str, str] = {}
        self._real_target = ""
        self._parent_ok: dict[str, bool] = {}
        self._bad_dirs: set[str] = set()  # not made, or not ours: no metadata applied
        self._made_links: list[tuple[str, Node]] = []
        self._key_of: dict[str, str] = {}  # destination -> plan key
        self._existed: set[str] = set()  # destinations that were there before
        self._taken: set[bytes] = set()  # destinations as bytes: one entry each
        self._is_root = os.geteuid() == 0

    def run(self) -> RestoreStats:
        """Carry out the plan; nothing at all when it holds a conflict."""
        refuse_conflicts(self.files_plan)
        for path, error in self.files_plan.refused:
            self._problem(path, error)
        self._collect()
        self.progress.set_totals(sum(f.node.size for f in self._files), len(self._files))
        os.makedirs(self.target, mode=0o700, exist_ok=True)
        self._real_target = os.path.realpath(self.target)
        self._delete()
        self._parent_ok.clear()  # a deleted symlink may now be a real directory
        self._make_dirs()
        self._write_contents()
        self._make_links()
        self._finish_metadata()
        self._record_changes()
        self.progress.finish()
        return self.stats

    # --- from the plan ------------------------------------------------------------

    def _collect(self) -> None:
        for item in self.files_plan.plan.items:
            entry = self.files_plan.entries.get(item.key)
            if entry is None or item.action not in (*_WRITES, "skip"):
                continue
            node = entry.node
            if not self._claim(entry.rel, item):
                continue
            if node.type == "dir":
                self._dirs.append((os.path.join(self.target, entry.rel), node))
                if item.action == "create":
                    self._key_of[self._dirs[-1][0]] = item.key
                continue
            if item.action == "skip":
                self.stats.files_skipped += 1
                continue
            dest = os.path.join(self.target, entry.rel)
            if item.action == "rename":
                dest += self.files_plan.rename_suffix
            self._key_of[dest] = item.key
            if os.path.lexists(dest):
                self._existed.add(dest)
            self._plan_leaf(dest, node, renamed=item.action == "rename")

    def _claim(self, rel: str, item: PlannedItem) -> bool:
        """Whether `rel` is the first entry to land on its path (compared as bytes: the
        plan's names are, but a renamed entry's suffix may meet another entry's name)."""
        if item.action == "skip":
            return True
        dest = os.path.join(self.target, rel)
        if item.action == "rename":
            dest += self.files_plan.rename_suffix
        raw = os.fsencode(dest)
        if raw in self._taken:
            self._failed_item(item, dest, "refused: another entry of the snapshot lands "
                                          "on this path")
            return False
        self._taken.add(raw)
        return True

    def _plan_leaf(self, dest: str, node: Node, *, renamed: bool) -> None:
        if node.type == "symlink":
            self._links.append((dest, node))
            return
        key = None if renamed else node.hardlink_key
        if key and key in self._first_by_key:
            self._hardlinks.append((dest, self._first_by_key[key]))
            return
        if key:
            self._first_by_key[key] = dest
        self._files.append(_File(dest, node, self._key_of[dest], remaining=len(node.content)))

    def _delete(self) -> None:
        """The plan's deletes, deepest first: a directory goes after what it held."""
        doomed = sorted((i for i in self.files_plan.plan.items if i.action == "delete"),
                        key=lambda i: i.key.rstrip("/").count("/"), reverse=True)
        for item in doomed:
            path = os.path.join(self.target, item.key.rstrip("/"))
            if not self._safe_parent(path):
                self._failed_item(item, path, "refused: parent directory leads outside "
                                              "the target")
                continue
            try:
                if item.key.endswith("/"):
                    os.rmdir(path)  # empty by now, or the plan was overtaken: reported
                else:
                    os.unlink(path)
                self.stats.deleted.append(path)
            except FileNotFoundError:
                self.stats.deleted.append(path)  # already gone: the plan's end state holds
            except OSError as exc:
                self._failed_item(item, path, exc.strerror or str(exc))

    def _failed_item(self, item: PlannedItem, path: str, error: str) -> None:
        self.stats.failed_keys.add(item.key)
        self._problem(path, error)

    def _record_changes(self) -> None:
        """Which destinations now hold the snapshot's version: created or overwritten."""
        failed = {f.dest for f in self._files if f.failed} | self._bad_dirs
        failed |= {p.path for p in self.stats.problems if not p.error.startswith("metadata")}
        for dest, key in self._key_of.items():
            if dest in failed:
                self.stats.failed_keys.add(key)
            elif dest in self._existed:
                self.stats.overwritten.append(dest)
            else:
                self.stats.created.append(dest)
        self.stats.created.sort()
        self.stats.overwritten.sort()

    # --- writing ------------------------------------------------------------------

    def _make_dirs(self) -> None:
        for dest, _node in self._dirs:
            # A symlink already in the target (target/sub -> /elsewhere) must not be
            # followed: not by mkdir below it, nor later by chmod/utime on it.
            if not self._safe_parent(dest):
                self._refuse_dir(dest, "refused: parent directory leads outside the target")
                continue
            try:
                os.mkdir(dest, 0o700)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(dest).st_mode):
                    self._refuse_dir(dest, "refused: exists and is not a directory (symlink?)")
            except OSError as exc:
                self._refuse_dir(dest, exc.strerror or str(exc))
        self.stats.dirs = len(self._dirs) - len(self._bad_dirs)

    def _refuse_dir(self, dest: str, error: str) -> None:
        self._bad_dirs.add(dest)
        self._problem(dest, error)

    def _safe_parent(self, dest: str) -> bool:
        """Whether `dest`'s directory really lies inside the target (no symlink escapes).

        Checked once per directory: every directory below the target was made (or found
        to be a real directory) by `_make_dirs` before any file is written.
        """
        parent = os.path.dirname(dest)
        ok = self._parent_ok.get(parent)
        if ok is None:
            real = os.path.realpath(parent)
            inside = self._real_target.rstrip(os.sep) + os.sep  # the target "/" is "/"
            ok = real == self._real_target or real.startswith(inside)
            self._parent_ok[parent] = ok
        return ok

    def _write_contents(self) -> None:
        by_pack: dict[str, list[tuple[BlobEntry, list[tuple[_File, int]]]]] = defaultdict(list)
        wanted: dict[bytes, list[tuple[_File, int]]] = defaultdict(list)
        for f in self._files:
            if not self._safe_parent(f.dest):
                f.failed = True
                self._problem(f.dest, "refused: parent directory leads outside the target")
                continue
            offset = 0
            for blob_id in f.node.content:
                wanted[blob_id].append((f, offset))
                offset += self._blob_size(blob_id, f)
            if len(f.node.content) != 1:
                # Several blobs arrive in any order: the file must exist, at its size, first.
                # Single-blob files (most of them) are made by the worker in one open.
                self._create(f)
        for blob_id, targets in wanted.items():
            entry = self.repo.index.get(blob_id)
            if entry is None:
                self._fail_files([t[0] for t in targets], "data missing from the index")
                continue
            by_pack[entry.pack_id].append((entry, targets))
        with ThreadPoolExecutor(self.threads, thread_name_prefix="vault-restore") as pool:
            for fut in [pool.submit(self._restore_pack, p, b) for p, b in sorted(by_pack.items())]:
                fut.result()
        for f in self._files:
            if not f.content_done and not f.failed:  # empty files
                self._finish_file(f, None)

    def _blob_size(self, blob_id: bytes, f: _File) -> int:
        entry = self.repo.index.get(blob_id)
        if entry is None:
            f.failed = True
            return 0
        return entry.raw_length

    def _create(self, f: _File) -> None:
        if f.failed:
            return
        try:
            fd = self._open(f.dest, os.O_TRUNC)
            f.created = True
            try:
                os.ftruncate(fd, f.node.size)  # sparse: zero chunks are then skipped
            finally:
                os.close(fd)
        except OSError as exc:
            f.failed = True
            self._problem(f.dest, exc.strerror or str(exc))

    def _open(self, dest: str, extra: int = 0) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | extra
        try:
            return os.open(dest, flags, 0o600)
        except OSError as exc:
            if exc.errno != 40 or not os.path.islink(dest):  # ELOOP: a symlink is there
                raise
            os.unlink(dest)  # replace the link itself; never write through it
            return os.open(dest, flags, 0o600)

    def _restore_pack(self, pack_id: str,
                      blobs: list[tuple[BlobEntry, list[tuple[_File, int]]]]) -> None:
        blobs.sort(key=lambda b: b[0].offset)
        for group in _coalesce(blobs):
            start = group[0][0].offset
            end = group[-1][0].offset + group[-1][0].length
            try:
                data = memoryview(self.repo.storage.load("data", pack_id, start, end - start))
            except VaultError as exc:
                if isinstance(exc, ObjectNotFound):  # remembered: see repository/damage.py
                    self.repo.note_damaged_pack(pack_id, "missing")
                    for entry, _targets in group:
                        self.repo.note_damaged_copy(entry.blob_id, pack_id, "pack missing")
                self._fail_files([t[0] for _, ts in group for t in ts], exc.message)
                continue
            for entry, targets in group:
                self._restore_blob(entry, data[entry.offset - start:
                                              entry.offset - start + entry.length], targets)

    def _restore_blob(self, entry: BlobEntry, sealed: memoryview,
                      targets: list[tuple[_File, int]]) -> None:
        try:
            plain = self.repo.open_blob(entry, sealed)
        except IntegrityError as exc:
            self.repo.note_damaged_copy(entry.blob_id, entry.pack_id, str(exc.fields["detail"]))
            self._fail_files([t[0] for t in targets], exc.message)
            return
        zero = len(plain) >= 4096 and plain.count(0) == len(plain)
        for f, offset in targets:
            if f.failed:
                continue
            try:
                if len(f.node.content) == 1:
                    self._write_whole(f, plain, zero)
                    continue
                if not zero:  # the file was pre-sized: a zero chunk stays a hole
                    fd = self._open(f.dest)
                    try:
                        os.pwrite(fd, plain, offset)
                    finally:
                        os.close(fd)
            except OSError as exc:
                self._fail_files([f], exc.strerror or str(exc))
                continue
            self.progress.add(len(plain))
            with self._lock:
                f.remaining -= 1
                done = f.remaining == 0
            if done:
                self._finish_file(f, None)

    def _write_whole(self, f: _File, plain: bytes, zero: bool) -> None:
        """A one-blob file: create, write, stamp and close in a single open."""
        fd = self._open(f.dest, os.O_TRUNC)
        f.created = True
        try:
            if zero:
                os.ftruncate(fd, len(plain))
            else:
                view = memoryview(plain)
                while view:
                    view = view[os.write(fd, view):]
            self.progress.add(len(plain))
            self._finish_file(f, fd)
        finally:
            os.close(fd)

    def _finish_file(self, f: _File, fd: int | None) -> None:
        """Count a file whose content is complete and give it its metadata."""
        if fd is None:
            try:
                fd = self._open(f.dest)
            except OSError as exc:
                self._fail_files([f], exc.strerror or str(exc))
                return
            try:
                self._apply_fd(fd, f)
                f.inode = _inode(os.fstat(fd))
            finally:
                os.close(fd)
        else:
            self._apply_fd(fd, f)
            f.inode = _inode(os.fstat(fd))
        with self._lock:
            self.stats.files_restored += 1
            self.stats.bytes_written += f.node.size
        f.content_done = True
        self.progress.add(0, 1)

    def _apply_fd(self, fd: int, f: _File) -> None:
        node = f.node
        try:
            if self._is_root:
                os.fchown(fd, node.uid, node.gid)
            os.fchmod(fd, stat.S_IMODE(node.mode))
            os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
        except OSError as exc:
            self._problem(f.dest, f"metadata: {exc.strerror or exc}")

    def _fail_files(self, files: list[_File], error: str) -> None:
        for f in files:
            with self._lock:
                if f.failed:
                    continue
                f.failed = True
            if f.created:
                # A full-size file with zeroed gaps would look restored; leave none.
                with contextlib.suppress(OSError):
                    os.unlink(f.dest)
                error += " (the partly written file was removed)"
            self._problem(f.dest, error)

    def _make_links(self) -> None:
        for dest, node in self._links:
            if not self._safe_parent(dest):
                self._problem(dest, "refused: parent directory leads outside the target")
                continue
            try:
                if os.path.lexists(dest):
                    os.unlink(dest)
                os.symlink(node.link_target or "", dest)
                self.stats.symlinks += 1
                self._made_links.append((dest, node))
            except OSError as exc:
                self._problem(dest, exc.strerror or str(exc))

    # --- metadata -----------------------------------------------------------------

    def _finish_metadata(self) -> None:
        """Hard links, then symlink and directory metadata (files got theirs already).

        Directories last and bottom-up: writing into a directory changes its mtime."""
        written = {f.dest: f for f in self._files if not f.failed}
        for dest, first in self._hardlinks:
            copy = written.get(first)
            if copy is None or not self._safe_parent(dest):
                self._problem(dest, "not linked: its first copy was not restored")
                continue
            self._relink(copy, dest)
        for dest, node in self._made_links:
            self._apply(dest, node)
        for dest, node in reversed(self._dirs):
            if dest not in self._bad_dirs:
                self._apply(dest, node)

    def _relink(self, first: _File, dest: str) -> None:
        """Link `dest` to the file written as `first`, only if `first` still is that very
        file (not a symlink, directory or anything else put at its path since)."""
        try:
            st = os.lstat(first.dest)
            if not stat.S_ISREG(st.st_mode) or _inode(st) != first.inode:
                self._problem(dest, "refused: not linked, its first copy was replaced")
                return
            if os.path.lexists(dest):
                os.unlink(dest)
            os.link(first.dest, dest, follow_symlinks=False)
            with self._lock:
                self.stats.files_restored += 1
        except OSError as exc:
            self._problem(dest, exc.strerror or str(exc))

    def _apply(self, dest: str, node: Node) -> None:
        link = node.type == "symlink"
        try:
            if not link and not stat.S_ISDIR(os.lstat(dest).st_mode):
                # chmod follows a symlink: a directory must still be one
                self._problem(dest, "refused: metadata, no longer a directory")
                return
            if self._is_root:
                os.chown(dest, node.uid, node.gid, follow_symlinks=False)
            if not link:
                os.chmod(dest, stat.S_IMODE(node.mode))
            os.utime(dest, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)
        except OSError as exc:
            self._problem(dest, f"metadata: {exc.strerror or exc}")

    def _problem(self, path: str, error: str) -> None:
        with self._lock:
            self.stats.problems.append(RestoreProblem(path, error))


def _inode(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _coalesce(
    blobs: list[tuple[BlobEntry, list[tuple[_File, int]]]],
) -> list[list[tuple[BlobEntry, list[tuple[_File, int]]]]]:
    """Group blobs sorted by offset into ranges worth one read each."""
    groups: list[list[tuple[BlobEntry, list[tuple[_File, int]]]]] = []
    end = -1
    for item in blobs:
        entry = item[0]
        span = entry.offset + entry.length - groups[-1][0][0].offset if groups else 0
        if groups and entry.offset - end <= _COALESCE_GAP and span <= _MAX_READ:
            groups[-1].append(item)
        else:
            groups.append([item])
        end = entry.offset + entry.length
    return groups

