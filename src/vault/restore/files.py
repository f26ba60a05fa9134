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

import os
import stat
from functools import partial

from vault.foundation.progress import ProgressCounter
from vault.planning.restore_plan import PlannedItem
from vault.repository.repository import Repository
from vault.repository.tree import Node
from vault.restore.file_writer import (
    ContentWriter,
    PendingFile,
    RestoreProblem,
    RestoreStats,
    inode_of,
)
from vault.restore.files_plan import FilesPlan, refuse_conflicts

__all__ = ["FileRestorer", "RestoreProblem", "RestoreStats"]

_WRITES = ("create", "overwrite", "rename")


class FileRestorer(ContentWriter):
    def __init__(self, repo: Repository, files_plan: FilesPlan, progress: ProgressCounter,
                 *, threads: int = 2) -> None:
        super().__init__(repo, files_plan.target, progress, threads)
        self.files_plan = files_plan
        self._dirs: list[tuple[str, Node]] = []
        self._links: list[tuple[str, Node]] = []
        self._hardlinks: list[tuple[str, str]] = []  # (link, first path with that inode)
        self._first_by_key: dict[str, str] = {}
        self._bad_dirs: set[str] = set()  # not made, or not ours: no metadata applied
        self._made_links: list[tuple[str, Node]] = []
        self._key_of: dict[str, str] = {}  # destination -> plan key
        self._existed: set[str] = set()  # destinations that were there before
        self._taken: set[bytes] = set()  # destinations as bytes: one entry each

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
        self._files.append(PendingFile(dest, node, self._key_of[dest], remaining=len(node.content)))

    def _delete(self) -> None:
        """The plan's deletes, deepest first: a directory goes after what it held."""
        doomed = sorted((i for i in self.files_plan.plan.items if i.action == "delete"),
                        key=lambda i: i.key.rstrip("/").count("/"), reverse=True)
        for item in doomed:
            path = os.path.join(self.target, item.key.rstrip("/"))
            if self._outside(path, partial(self._failed_item, item)):
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
            if self._outside(dest, self._refuse_dir):
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

    def _make_links(self) -> None:
        for dest, node in self._links:
            if self._outside(dest, self._problem):
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

    def _relink(self, first: PendingFile, dest: str) -> None:
        """Link `dest` to the file written as `first`, only if `first` still is that very
        file (not a symlink, directory or anything else put at its path since)."""
        try:
            st = os.lstat(first.dest)
            if not stat.S_ISREG(st.st_mode) or inode_of(st) != first.inode:
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

