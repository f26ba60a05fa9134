"""Copying a snapshot's trees and data into another repository (`vault copy`).

Blob ids are keyed hashes (HMAC under each repository's own id key), so the same chunk has
a different id in every repository: a copy reads each source blob, hashes it under the
destination's key and stores it only when the destination lacks that id. Trees are
rewritten with the destination's ids and sealed under its keys; the shape of every tree
(names, order, metadata) stays exactly the source's, so a copy restores byte-identical.

Chunks keep the source's boundaries (no re-chunking): that is always correct, whatever the
destination's chunker parameters. It shares chunks with the destination's own backups only
when both cut alike (`vault init --copy-chunker-params-from`, docs/offsite.md#dedup).

Reading every blob again to learn its destination id would download a whole snapshot for
each copy; `learn_from_copy` walks an earlier copy beside its original instead (trees only)
and maps the blobs they share, so an incremental copy reads only what changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from vault.errors import IntegrityError, VaultError
from vault.repository.blob import BlobType
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver
from vault.repository.tree import Node, encode_tree
from vault.repository.tree_limits import check_tree_limits

#: called with (bytes of one source blob read, the path it belongs to)
BlobRead = Callable[[int, str], None]
#: a file's whole content rewritten for the destination, or None to keep it as it is
Rewrite = Callable[[bytes], bytes | None]
#: which files are rewritten, and how (settings documents: their sealed secrets are
#: sealed again under the destination's key, operations/copy.py)
RewriteFor = Callable[[Node], Rewrite | None]


class TreeCopier:
    """Copies trees (and the data they name) from `source` through a destination saver.

    The source-to-destination id maps live as long as the copier: blobs and trees shared
    by several snapshots of one `vault copy` are read and hashed once."""

    def __init__(self, source: Repository, saver: BlobSaver,
                 on_read: BlobRead | None = None, threads: int = 4) -> None:
        self.source = source
        self.saver = saver
        self.on_read = on_read
        self.threads = threads
        self.blob_map: dict[bytes, bytes] = {}
        self.tree_map: dict[bytes, bytes] = {}
        self.bytes_read = 0
        self.blobs_read = 0
        #: the path of the data that did not read back whole (what the error names)
        self.failed_path = ""
        self._count_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        #: set per snapshot by the operation (None: every file is copied chunk by chunk)
        self.rewrite_for: RewriteFor | None = None

    def copy_snapshot_tree(self, tree_id: bytes) -> bytes:
        """The destination id of the copied root tree. Bounded first, as every walk is: a
        hostile snapshot is refused (TreeLimitExceeded), never copied.

        The blobs of each directory's files are read, hashed, compressed and sealed by
        `threads` threads (reads from a remote source overlap; the saver fills a pack per
        thread); trees are written once their children are."""
        check_tree_limits(self.source, tree_id)
        with ThreadPoolExecutor(self.threads, thread_name_prefix="copy") as pool:
            self._pool = pool
            try:
                return self._copy_tree(tree_id, "")
            finally:
                self._pool = None

    def _copy_tree(self, tree_id: bytes, path: str) -> bytes:
        known = self.tree_map.get(tree_id)
        if known is not None and self.saver.known(known):  # known() pins it, too
            return known
        nodes = self.source.load_tree(tree_id)
        files = [n for n in nodes if n.type == "file"]
        rewrites = {id(n): r for n in files if self.rewrite_for and (r := self.rewrite_for(n))}
        for node in files:
            if id(node) in rewrites:
                self._rewrite_file(node, rewrites[id(node)], f"{path}/{node.name}")
        self._copy_contents([n for n in files if id(n) not in rewrites], path)
        for node in nodes:
            if node.type == "dir" and node.subtree:
                node.subtree = self._copy_tree(node.subtree, f"{path}/{node.name}")
        copied, _new = self.saver.save(BlobType.TREE, encode_tree(nodes))
        self.tree_map[tree_id] = copied
        return copied

    def _copy_contents(self, files: list[Node], path: str) -> None:
        """Every blob of these files, in parallel; each file's list in its order."""
        work = [(blob_id, f"{path}/{node.name}") for node in files for blob_id in node.content]
        if self._pool is None or len(work) < 2:
            copied = [self._copy_blob(blob_id, where) for blob_id, where in work]
        else:
            copied = list(self._pool.map(lambda item: self._copy_blob(*item), work))
        start = 0
        for node in files:
            node.content, start = copied[start:start + len(node.content)], \
                start + len(node.content)

    def _rewrite_file(self, node: Node, rewrite: Rewrite, path: str) -> None:
        """A file whose content must change for the destination (read whole: settings
        documents are small); kept chunk for chunk when `rewrite` leaves it alone."""
        chunks = [self._read(blob_id, path) for blob_id in node.content]
        rewritten = rewrite(b"".join(chunks))
        if rewritten is None:
            node.content = [self.saver.save(BlobType.DATA, chunk)[0] for chunk in chunks]
            return
        node.content, node.size = [self.saver.save(BlobType.DATA, rewritten)[0]], len(rewritten)

    def _copy_blob(self, blob_id: bytes, path: str) -> bytes:
        known = self.blob_map.get(blob_id)
        if known is not None and self.saver.known(known):
            return known
        copied, _new = self.saver.save(BlobType.DATA, self._read(blob_id, path))
        self.blob_map[blob_id] = copied
        return copied

    def _read(self, blob_id: bytes, path: str) -> bytes:
        try:
            data = self.source.load_blob(blob_id)  # checked: damage raises, never copied
        except IntegrityError:
            self.failed_path = self.failed_path or path
            raise
        with self._count_lock:
            self.bytes_read += len(data)
            self.blobs_read += 1
        if self.on_read is not None:
            self.on_read(len(data), path)
        return data

    def learn_from_copy(self, source_tree: bytes, copied_tree: bytes,
                        destination: Repository) -> None:
        """Map source ids to destination ids through an earlier copy: `copied_tree` in
        `destination` is the copy of `source_tree`, node for node. Only trees are read.
        A pair that does not line up (a foreign or damaged snapshot) is skipped: its blobs
        are then read and hashed as usual, so a wrong guess costs time, never data."""
        if source_tree in self.tree_map:
            return
        try:
            mine = self.source.load_tree(source_tree)
            theirs = destination.load_tree(copied_tree)
        except VaultError:  # a hint only: the copy reads what it cannot map
            return
        if [_shape(n) for n in mine] != [_shape(n) for n in theirs]:
            return
        self.tree_map[source_tree] = copied_tree
        for ours, copy in zip(mine, theirs, strict=True):
            if ours.type == "file":
                self.blob_map.update(zip(ours.content, copy.content, strict=True))
            elif ours.type == "dir" and ours.subtree and copy.subtree:
                self.learn_from_copy(ours.subtree, copy.subtree, destination)


def _shape(node: Node) -> tuple[str, str, int, int]:
    """What must agree between a tree and its copy for ids to be mapped position by
    position: the name, the type, the size and how many chunks."""
    return node.name, node.type, node.size, len(node.content)
