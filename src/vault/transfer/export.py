"""`vault export`: one snapshot's metadata, data blobs and trees into one export file.

Blobs are written as plaintext chunks (the source repository's chunk boundaries kept) and
the importing repository re-hashes them under its own key: an import costs no re-chunking,
and restoring from the target gives back exactly the source's bytes. Each blob record
starts with the blob's 32-byte id in the source repository; trees are written after every
blob and subtree they name (post-order, the root last), so an importer can rewrite each
tree's blob ids as it goes, holding only an old -> new id map.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vault import __version__
from vault.app import Vault
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.operations.restore import split_ref
from vault.progress import ProgressCounter, ProgressReporter
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node
from vault.transfer.errors import ExportRefused, ExportTargetExists
from vault.transfer.format import FORMAT_VERSION, RecordKind
from vault.transfer.writer import ExportWriter

TRANSFERS_STREAM = "transfers"


@dataclass
class ExportOutcome:
    snapshot: Snapshot
    path: Path
    encrypted: bool
    trees: int
    blobs: int
    bytes_plain: int
    bytes_written: int
    duration_seconds: float


def run_export(vault: Vault, snapshot_ref: str, output: Path, passphrase: str | None,
               reporter: ProgressReporter) -> ExportOutcome:
    """Write the snapshot to `output` (a new file; written aside and renamed when whole)."""
    if output.exists():
        raise ExportTargetExists(path=str(output))
    started = time.monotonic()
    repo = vault.repository()
    snapshot = repo.find_snapshot(split_ref(snapshot_ref)[0])
    if snapshot.source.get("type") == "settings":
        raise ExportRefused(snapshot=snapshot.short_id, detail="a settings snapshot holds "
                            "secrets sealed with this repository's own key")
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    with repository_lock(vault, repo, exclusive=False, operation="export"):
        trees = list(_post_order(repo, bytes.fromhex(snapshot.tree)))
        blob_count = len({c for _tid, nodes in trees for n in nodes for c in n.content})
        counter = ProgressCounter(reporter, "export",
                                  bytes_total=snapshot.summary.bytes_raw or None,
                                  items_total=blob_count + len(trees))
        meta = {"snapshot": snapshot.model_dump(mode="json"), "snapshot_id": snapshot.id,
                "root": snapshot.tree, "source_repo_id": repo.id,
                "exported_at": datetime.now(UTC).isoformat(), "vault_version": __version__,
                "counts": {"trees": len(trees), "blobs": blob_count}}
        header = {"format": "vault-export", "version": FORMAT_VERSION,
                  "created": meta["exported_at"]}
        try:
            with open(partial, "xb") as stream:
                writer = ExportWriter(stream, header, passphrase)
                # ASCII escapes keep non-UTF-8 file names exact (as repository.py does).
                writer.add(RecordKind.META, json.dumps(meta, ensure_ascii=True).encode())
                written: set[bytes] = set()
                for tree_id, nodes in trees:
                    for node in nodes:
                        for blob_id in node.content:
                            if blob_id in written:
                                continue
                            data = repo.load_blob(blob_id)
                            writer.add(RecordKind.DATA, blob_id + data)
                            written.add(blob_id)
                            counter.add(len(data), 1, current=node.name)
                    writer.add(RecordKind.TREE, tree_id + repo.load_blob(tree_id))
                    counter.add(0, 1)
                writer.finish()
                stream.flush()
                os.fsync(stream.fileno())
            os.rename(partial, output)
        finally:
            partial.unlink(missing_ok=True)
        counter.finish()
    outcome = ExportOutcome(snapshot, output, passphrase is not None, len(trees), blob_count,
                            writer.bytes_plain, writer.bytes_written,
                            time.monotonic() - started)
    vault.journal.append(TRANSFERS_STREAM, ev.SnapshotExported(
        repo_id=repo.id, snapshot_id=snapshot.id, file=str(output.resolve()),
        encrypted=outcome.encrypted, format_version=FORMAT_VERSION, trees=outcome.trees,
        blobs=outcome.blobs, bytes_plain=outcome.bytes_plain,
        bytes_written=outcome.bytes_written, duration_seconds=outcome.duration_seconds))
    return outcome


def _post_order(repo: Repository, tree_id: bytes) -> list[tuple[bytes, list[Node]]]:
    """(tree id, nodes) of every distinct tree, each after the subtrees it names."""
    order: list[tuple[bytes, list[Node]]] = []
    seen: set[bytes] = set()
    # Iterative: a deep directory tree must not hit Python's recursion limit.
    stack: list[tuple[bytes, list[Node] | None]] = [(tree_id, None)]
    while stack:
        tid, nodes = stack.pop()
        if nodes is not None:
            order.append((tid, nodes))
            continue
        if tid in seen:
            continue
        seen.add(tid)
        loaded = repo.load_tree(tid)
        stack.append((tid, loaded))
        stack.extend((n.subtree, None) for n in loaded
                     if n.type == "dir" and n.subtree and n.subtree not in seen)
    return order
