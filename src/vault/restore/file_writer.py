"""Writing file contents safely inside a restore's target: pack by pack, in parallel.

`ContentWriter` is the part of `FileRestorer` (vault.restore.files) that puts bytes on
disk: every needed blob of a pack is read in one ranged load, authenticated, and written
to every file and offset that wants it (a blob shared by many files is read once). Files
are opened with O_NOFOLLOW (a symlink at a file's place is replaced, never followed) and
only below a parent that really lies inside the target.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from vault.errors import IntegrityError, ObjectNotFound, VaultError
from vault.foundation.progress import ProgressCounter
from vault.repository.blob import BlobEntry
from vault.repository.repository import Repository
from vault.repository.tree import Node

#: blobs closer than this in a pack are read in one request (restic uses similar logic)
_COALESCE_GAP = 256 << 10
#: one ranged read stays below this (plus one blob): memory per thread stays small
_MAX_READ = 4 << 20
#: the problem of an entry whose directory would lead out of the target
OUTSIDE = "refused: parent directory leads outside the target"


@dataclass
class RestoreProblem:
    path: str
    error: str


@dataclass
class RestoreStats:
    """What a files restore did (a dry run: what its plan predicts)."""

    files_restored: int = 0  # regular files written, hard links included
    files_skipped: int = 0  # identical already, or the target's kept
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
class PendingFile:
    """A regular file to write: its blobs still to come, and how it went."""

    dest: str
    node: Node
    key: str = ""
    remaining: int = 0
    failed: bool = False
    content_done: bool = False
    created: bool = False  # we created or truncated it, so a failure may remove it
    inode: tuple[int, int] | None = None  # (st_dev, st_ino) as written: hard links check it


#: where one blob goes: a file and the offset in it
Destination = tuple[PendingFile, int]


class ContentWriter:
    """Writes `_files` (and counts into `stats`) below `target`, never outside it."""

    def __init__(self, repo: Repository, target: str, progress: ProgressCounter,
                 threads: int) -> None:
        self.repo = repo
        self.target = target
        self.progress = progress
        self.threads = threads
        self.stats = RestoreStats()
        self._lock = threading.Lock()
        self._files: list[PendingFile] = []
        self._real_target = ""
        self._parent_ok: dict[str, bool] = {}
        self._is_root = os.geteuid() == 0

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

    def _outside(self, dest: str, refuse: Callable[[str, str], object]) -> bool:
        """Whether `dest`'s directory leads out of the target; if so it is refused
        (`refuse(dest, why)`) and nothing may be written there."""
        if self._safe_parent(dest):
            return False
        refuse(dest, OUTSIDE)
        return True

    def _write_contents(self) -> None:
        by_pack: dict[str, list[tuple[BlobEntry, list[Destination]]]] = defaultdict(list)
        wanted: dict[bytes, list[Destination]] = defaultdict(list)
        for f in self._files:
            if self._outside(f.dest, self._problem):
                f.failed = True
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

    def _blob_size(self, blob_id: bytes, f: PendingFile) -> int:
        entry = self.repo.index.get(blob_id)
        if entry is None:
            f.failed = True
            return 0
        return entry.raw_length

    def _create(self, f: PendingFile) -> None:
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
                      blobs: list[tuple[BlobEntry, list[Destination]]]) -> None:
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
                      targets: list[Destination]) -> None:
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

    def _write_whole(self, f: PendingFile, plain: bytes, zero: bool) -> None:
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

    def _finish_file(self, f: PendingFile, fd: int | None) -> None:
        """Count a file whose content is complete and give it its metadata."""
        if fd is None:
            try:
                fd = self._open(f.dest)
            except OSError as exc:
                self._fail_files([f], exc.strerror or str(exc))
                return
            try:
                self._apply_fd(fd, f)
                f.inode = inode_of(os.fstat(fd))
            finally:
                os.close(fd)
        else:
            self._apply_fd(fd, f)
            f.inode = inode_of(os.fstat(fd))
        with self._lock:
            self.stats.files_restored += 1
            self.stats.bytes_written += f.node.size
        f.content_done = True
        self.progress.add(0, 1)

    def _apply_fd(self, fd: int, f: PendingFile) -> None:
        node = f.node
        try:
            if self._is_root:
                os.fchown(fd, node.uid, node.gid)
            os.fchmod(fd, stat.S_IMODE(node.mode))
            os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
        except OSError as exc:
            self._problem(f.dest, f"metadata: {exc.strerror or exc}")

    def _fail_files(self, files: list[PendingFile], error: str) -> None:
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

    def _problem(self, path: str, error: str) -> None:
        with self._lock:
            self.stats.problems.append(RestoreProblem(path, error))


def inode_of(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _coalesce(
    blobs: list[tuple[BlobEntry, list[Destination]]],
) -> list[list[tuple[BlobEntry, list[Destination]]]]:
    """Group blobs sorted by offset into ranges worth one read each."""
    groups: list[list[tuple[BlobEntry, list[Destination]]]] = []
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

