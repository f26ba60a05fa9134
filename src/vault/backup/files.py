"""Backing up directories of files into a repository.

The walk runs in the calling thread (stat and directory listing hold the GIL anyway);
file contents go to a thread pool in batches, where chunking, hashing, compression and
encryption all release the GIL. Trees are built bottom-up once every file is in.
Unchanged files (per the files cache) are never read.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from vault.backup.files_cache import FilesCache, stat_key
from vault.foundation.progress import ProgressCounter
from vault.planning.filters import PathFilter
from vault.repository.blob import BlobType
from vault.repository.chunker import Chunker
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import FileProblem, SnapshotSummary
from vault.repository.tree import Node, encode_tree

_BATCH_BYTES = 8 << 20
_BATCH_FILES = 256


@dataclass
class BackupOptions:
    path_filter: PathFilter = field(default_factory=PathFilter)
    one_file_system: bool = False
    force: bool = False
    threads: int = 2
    #: read FIFOs and devices like files (borg's --read-special), instead of leaving
    #: them out; what they yield is stored as a regular file
    read_special: bool = False


def special_kind(mode: int) -> str | None:
    """"FIFO", "socket", "character device" or "block device"; None for anything else."""
    for test, kind in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return None


@dataclass
class TreeDir:
    node: Node
    children: list[TreeDir | Node] = field(default_factory=list)


@dataclass
class ArchiveResult:
    tree: bytes
    summary: SnapshotSummary
    problems: list[FileProblem]


class Archiver:
    def __init__(self, saver: BlobSaver, cache: FilesCache | None, options: BackupOptions,
                 progress: ProgressCounter) -> None:
        self.saver = saver
        self.cache = cache if not options.force else None
        self.options = options
        self.progress = progress
        self.summary = SnapshotSummary()
        self.problems: list[FileProblem] = []
        self._failed: set[int] = set()
        #: files read while they changed: stored as read, never trusted by the files cache
        self._changed: set[int] = set()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._to_read: list[tuple[Node, str, os.stat_result]] = []
        self._root = TreeDir(Node(name="", type="dir", mode=0o40755, mtime_ns=0))
        self._started = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=max(1, options.threads),
                                        thread_name_prefix="vault-backup")
        self._cache_learned: list[tuple[str, os.stat_result, Node]] = []

    # --- walking ------------------------------------------------------------------

    def scan(self, paths: list[str]) -> None:
        """Walk the paths: stat everything, consult the files cache, read nothing."""
        self._started = time.monotonic()
        self._root = self._walk_roots(paths)
        self.progress.set_totals(self.bytes_to_read, len(self._to_read))

    @property
    def bytes_to_read(self) -> int:
        return sum(st.st_size for _node, _path, st in self._to_read)

    def store(self) -> ArchiveResult:
        """Read and store every new or changed file, then the trees."""
        try:
            futures = []
            for batch in self._batches():
                futures.append(self._pool.submit(self._read_files, batch))
            for fut in futures:
                fut.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.progress.finish()
        tree = self._save_tree(self._root)
        self.summary.duration_seconds = time.monotonic() - self._started
        stats = self.saver.stats
        self.summary.bytes_new, self.summary.bytes_stored = stats.bytes_new, stats.bytes_stored
        self.summary.blobs_new = stats.blobs_new
        return ArchiveResult(tree, self.summary, self.problems)

    def _batches(self) -> Iterator[list[tuple[Node, str, os.stat_result]]]:
        """Small files grouped (a task per file would cost more than reading it)."""
        batch: list[tuple[Node, str, os.stat_result]] = []
        size = 0
        for item in self._to_read:
            if item[2].st_size >= _BATCH_BYTES:
                yield [item]
                continue
            batch.append(item)
            size += item[2].st_size
            if size >= _BATCH_BYTES or len(batch) >= _BATCH_FILES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def remember_in_cache(self) -> None:
        if self.cache is None:
            return
        for path, st, node in self._cache_learned:
            if id(node) not in self._failed and id(node) not in self._changed:
                self.cache.remember(path, stat_key(st), node.content)

    def _walk_roots(self, paths: list[str]) -> TreeDir:
        root = TreeDir(Node(name="", type="dir", mode=0o40755, mtime_ns=0))
        for top in paths:
            absolute = os.path.abspath(top)
            parent = root
            parts = [p for p in absolute.split("/") if p]
            for depth, part in enumerate(parts[:-1]):
                parent = self._intermediate(parent, part, "/" + "/".join(parts[: depth + 1]))
            try:
                st = os.lstat(absolute)
            except OSError as exc:
                self._problem(absolute, exc)
                continue
            if not parts:  # backing up "/" itself
                root.node = self._node("", st)
                self._fill_dir(root, absolute, st.st_dev)
                continue
            entry = self._entry(absolute, parts[-1], st, st.st_dev)
            if entry is not None:
                self._replace_child(parent, entry)
        return root

    def _intermediate(self, parent: TreeDir, name: str, path: str) -> TreeDir:
        for child in parent.children:
            if isinstance(child, TreeDir) and child.node.name == name:
                return child
        st = os.lstat(path)
        made = TreeDir(self._node(name, st))
        parent.children.append(made)
        return made

    @staticmethod
    def _replace_child(parent: TreeDir, entry: TreeDir | Node) -> None:
        name = entry.node.name if isinstance(entry, TreeDir) else entry.name
        parent.children = [
            c for c in parent.children
            if (c.node.name if isinstance(c, TreeDir) else c.name) != name
        ]
        parent.children.append(entry)

    def _fill_dir(self, d: TreeDir, path: str, root_dev: int) -> None:
        try:
            with os.scandir(path) as it:
                names = sorted(e.name for e in it)
        except OSError as exc:
            self._problem(path, exc)
            return
        base = path.rstrip("/")
        for name in names:
            full = f"{base}/{name}"
            if self.options.path_filter.excluded(full):
                continue
            try:
                st = os.lstat(full)
            except OSError as exc:
                self._problem(full, exc)
                continue
            entry = self._entry(full, name, st, root_dev)
            if entry is not None:
                d.children.append(entry)

    def _entry(self, path: str, name: str, st: os.stat_result,
               root_dev: int) -> TreeDir | Node | None:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            if self.options.one_file_system and st.st_dev != root_dev:
                return None
            d = TreeDir(self._node(name, st))
            self.summary.dirs += 1
            self._fill_dir(d, path, root_dev)
            return d
        if stat.S_ISLNK(mode):
            try:
                target = os.readlink(path)
            except OSError as exc:
                self._problem(path, exc)
                return None
            node = self._node(name, st, "symlink")
            node.link_target = target
            self.summary.symlinks += 1
            return node
        if stat.S_ISREG(mode):
            if not self.options.path_filter.included_file(path, st.st_size):
                return None
            return self._file(path, name, st)
        if self.options.read_special and special_kind(mode) not in (None, "socket"):
            return self._special(path, name, st)
        return None  # sockets, fifos, devices: not application data

    @staticmethod
    def _node(name: str, st: os.stat_result, node_type: str = "dir") -> Node:
        return Node(name=name, type=node_type,  # type: ignore[arg-type]
                    mode=st.st_mode, mtime_ns=st.st_mtime_ns, uid=st.st_uid, gid=st.st_gid)

    def _file(self, path: str, name: str, st: os.stat_result) -> Node:
        node = self._node(name, st, "file")
        node.size = st.st_size
        if st.st_nlink > 1:
            node.hardlink_key = f"{st.st_dev}:{st.st_ino}"
        self.summary.bytes_raw += st.st_size
        cached = self.cache.lookup(path, stat_key(st)) if self.cache else None
        if cached is not None and all(self.saver.known(c) for c in cached):
            node.content = cached
            self.summary.files_unmodified += 1  # not read, so not in the progress totals
            return node
        if self.cache is not None and self.cache.known_path(path):
            self.summary.files_changed += 1
        else:
            self.summary.files_new += 1
        self._cache_learned.append((path, st, node))
        self._to_read.append((node, path, st))
        return node

    def _special(self, path: str, name: str, st: os.stat_result) -> Node:
        """A FIFO or device read as a file: its size is known only once it is read."""
        node = self._node(name, st, "file")
        node.mode = stat.S_IFREG | stat.S_IMODE(st.st_mode)
        self.summary.files_new += 1
        self._to_read.append((node, path, st))
        return node

    # --- reading (worker threads) ------------------------------------------------

    def _chunker(self) -> Chunker:
        chunker: Chunker | None = getattr(self._local, "chunker", None)
        if chunker is None:
            repo = self.saver.repo
            chunker = self._local.chunker = Chunker(repo.chunker_params, repo.chunker_seed)
        return chunker

    def _read_files(self, batch: list[tuple[Node, str, os.stat_result]]) -> None:
        for node, path, st in batch:
            try:
                self._read_file(node, path, st)
            except OSError as exc:
                with self._lock:
                    self._failed.add(id(node))
                self._problem(path, exc)

    def _read_file(self, node: Node, path: str, st: os.stat_result) -> None:
        regular = stat.S_ISREG(st.st_mode)
        before = os.stat(path) if regular else None
        content: list[bytes] = []
        size = 0
        if regular and st.st_size <= self._chunker().params.min_size:
            with open(path, "rb") as f:
                data = f.read()
            if data:
                content.append(self.saver.save(BlobType.DATA, data)[0])
            size = unreported = len(data)
        else:
            # The file may have grown or shrunk since the walk: sizes come from the read.
            for chunk in self._chunker().cut_file(path):
                content.append(self.saver.save(BlobType.DATA, chunk)[0])
                size += len(chunk)
                self.progress.add(len(chunk))
            unreported = 0
        node.content, node.size = content, size
        with self._lock:
            self.summary.bytes_read += size
            if not regular:  # a FIFO's or device's size is what it yielded
                self.summary.bytes_raw += size
        self.progress.add(unreported, 1, current=path)
        if before is not None and _changed_while_read(path, before, size):
            with self._lock:
                self._changed.add(id(node))
                self.problems.append(FileProblem(
                    path=path, error="file changed while it was read: stored as read, "
                                     "which may mix old and new content"))

    def _problem(self, path: str, exc: OSError) -> None:
        with self._lock:
            self.problems.append(FileProblem(path=path, error=exc.strerror or str(exc)))

    # --- trees --------------------------------------------------------------------

    def _save_tree(self, d: TreeDir) -> bytes:
        nodes: list[Node] = []
        for child in d.children:
            if isinstance(child, TreeDir):
                child.node.subtree = self._save_tree(child)
                nodes.append(child.node)
            elif id(child) not in self._failed:  # failed files are listed as problems
                nodes.append(child)
        return self.saver.save(BlobType.TREE, encode_tree(nodes))[0]


def _changed_while_read(path: str, before: os.stat_result, size_read: int) -> bool:
    """Whether the file was written to while it was read (as tar checks): its size,
    mtime or ctime moved, or the bytes read are not its size."""
    try:
        after = os.stat(path)
    except OSError:
        return True  # removed or replaced while read
    return size_read != before.st_size or any(
        getattr(after, key) != getattr(before, key)
        for key in ("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino"))
