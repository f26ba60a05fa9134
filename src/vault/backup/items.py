"""Storing a source's items (named byte streams) as the files of a snapshot tree.

A database source hands over its items one at a time, each valid only while it is read
(a cursor, a pipe from pg_dump), so items are read in order in the calling thread; the
chunks they are cut into are compressed and encrypted by a thread pool, a few at a time,
which keeps both cores busy without holding more than a few chunks in memory.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from vault.backup.files import ArchiveResult, TreeDir
from vault.errors import UsageError
from vault.foundation.progress import ProgressCounter
from vault.repository.blob import BlobType
from vault.repository.chunker import Chunker
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import SnapshotSummary
from vault.repository.tree import Node, encode_tree
from vault.sources.base import SourceItem


class InvalidItemPath(UsageError):
    """source item {path!r}: {reason}"""


def item_parts(path: str) -> list[str]:
    """The components of an item path; refuses paths that could escape a restore target."""
    if not path or path.startswith("/"):
        raise InvalidItemPath(path=path, reason="must be a non-empty relative path")
    parts = path.split("/")
    if any(part in ("", ".", "..") or "\0" in part for part in parts):
        raise InvalidItemPath(path=path, reason="has an empty, '.', '..' or NUL component")
    return parts


class ItemArchiver:
    def __init__(self, saver: BlobSaver, progress: ProgressCounter, threads: int = 2) -> None:
        self.saver = saver
        self.progress = progress
        self.threads = max(1, threads)
        self.summary = SnapshotSummary()
        repo = saver.repo
        self._chunker = Chunker(repo.chunker_params, repo.chunker_seed)
        self._root = TreeDir(Node(name="", type="dir", mode=0o40700, mtime_ns=0))

    def store(self, items: Iterable[SourceItem]) -> ArchiveResult:
        started = time.monotonic()
        seen: set[str] = set()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="vault-items") as pool:
            for item in items:
                parts = item_parts(item.path)
                if item.path in seen:
                    raise InvalidItemPath(path=item.path, reason="given twice")
                seen.add(item.path)
                node = Node(name=parts[-1], type="file", mode=item.mode,
                            mtime_ns=item.mtime_ns)
                with item.open() as stream:
                    node.content, node.size = self._save_stream(pool, stream, item.path)
                self._directory(parts[:-1]).children.append(node)
                self.summary.files_new += 1
                self.summary.bytes_raw += node.size
                self.summary.bytes_read += node.size
                self.progress.add(0, 1, current=item.path)
        self.progress.finish()
        tree = self._save_tree(self._root)
        stats = self.saver.stats
        self.summary.bytes_new, self.summary.bytes_stored = stats.bytes_new, stats.bytes_stored
        self.summary.blobs_new = stats.blobs_new
        self.summary.duration_seconds = time.monotonic() - started
        return ArchiveResult(tree, self.summary, [])

    def _save_stream(self, pool: ThreadPoolExecutor, stream: BinaryIO,
                     path: str) -> tuple[list[bytes], int]:
        in_flight: deque[Future[tuple[bytes, bool]]] = deque()
        content: list[bytes] = []
        size = 0
        for view in self._chunker.cut_file_object(stream):
            chunk = bytes(view)  # the view is reused for the next chunk
            size += len(chunk)
            in_flight.append(pool.submit(self.saver.save, BlobType.DATA, chunk))
            if len(in_flight) >= 2 * self.threads:
                content.append(in_flight.popleft().result()[0])
            self.progress.add(len(chunk), current=path)
        content.extend(future.result()[0] for future in in_flight)
        return content, size

    def _directory(self, parts: list[str]) -> TreeDir:
        current = self._root
        for part in parts:
            found = next((c for c in current.children
                          if isinstance(c, TreeDir) and c.node.name == part), None)
            if found is None:
                found = TreeDir(Node(name=part, type="dir", mode=0o40700, mtime_ns=0))
                current.children.append(found)
                self.summary.dirs += 1
            current = found
        return current

    def _save_tree(self, d: TreeDir) -> bytes:
        nodes: list[Node] = []
        for child in sorted(d.children,
                            key=lambda c: c.node.name if isinstance(c, TreeDir) else c.name):
            if isinstance(child, TreeDir):
                child.node.subtree = self._save_tree(child)
                nodes.append(child.node)
            else:
                nodes.append(child)
        return self.saver.save(BlobType.TREE, encode_tree(nodes))[0]
