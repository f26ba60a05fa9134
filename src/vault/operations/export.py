"""`vault export`: one snapshot, or a group's members, into one export file.

Blobs are written as plaintext chunks (the source repository's chunk boundaries kept) and
the importing repository re-hashes them under its own key: an import costs no re-chunking,
and restoring from the target gives back exactly the source's bytes. Each blob record
starts with the blob's 32-byte id in the source repository; trees are written after every
blob and subtree they name (post-order, each member's root after its trees), so an
importer can rewrite each tree's blob ids as it goes, holding only an old -> new id map.

The file is encrypted unless the caller asks otherwise (`key=None`): with a passphrase
given for it, or by default with the repository's own passphrase (an export is meant to
outlive the repository, so never with the repository's master key, which dies with it).
It is created mode 0600, written aside and renamed when whole.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault import __version__
from vault.errors import ExportTargetExists
from vault.foundation.progress import ProgressCounter, ProgressReporter
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.operations.export_members import ExportMember, Selection, plan_member, select
from vault.operations.source_backup import sealer_for
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.runtime.app import Vault
from vault.transfer.format import FORMAT_VERSION, KEY_REPOSITORY, RecordKind
from vault.transfer.writer import ExportKey, ExportWriter

TRANSFERS_STREAM = "transfers"


def repository_key(vault: Vault) -> ExportKey:
    """The default export key: the passphrase that opens this repository."""
    repo = vault.repository()
    return ExportKey(vault.passphrase(), KEY_REPOSITORY, repo.id)


@dataclass
class ExportOutcome:
    snapshot: Snapshot
    snapshots: list[Snapshot]
    group: dict[str, Any] | None
    path: Path
    encrypted: bool
    trees: int
    blobs: int
    bytes_plain: int
    bytes_written: int
    duration_seconds: float


def run_export(vault: Vault, snapshot_ref: str, output: Path, key: ExportKey | None,
               reporter: ProgressReporter) -> ExportOutcome:
    """Write the snapshot(s) `snapshot_ref` names to `output` (a new file, mode 0600;
    encrypted with `key`, plaintext when it is None)."""
    if output.exists():
        raise ExportTargetExists(path=str(output))
    started = time.monotonic()
    repo = vault.repository()
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    with repository_lock(vault, repo, exclusive=False, operation="export"):
        selection = select(vault, repo, snapshot_ref)
        try:
            # O_EXCL and 0600 from the first byte: no moment where others may read it.
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                           "wb") as stream:
                writer = ExportWriter(stream, {"format": "vault-export",
                                               "version": FORMAT_VERSION,
                                               "created": datetime.now(UTC).isoformat()}, key)
                members = [plan_member(repo, snap, sealer_for(repo), writer.secrets_sealer)
                           for snap in selection.snapshots]
                blobs = _write_members(repo, writer, selection, members, reporter)
                writer.finish()
                stream.flush()
                os.fsync(stream.fileno())
            os.rename(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    trees = sum(len(m.trees) for m in members)
    outcome = ExportOutcome(selection.snapshots[0], selection.snapshots, selection.group,
                            output, key is not None, trees, blobs, writer.bytes_plain,
                            writer.bytes_written, time.monotonic() - started)
    for snapshot in selection.snapshots:
        vault.journal.append(TRANSFERS_STREAM, ev.SnapshotExported(
            repo_id=repo.id, snapshot_id=snapshot.id, file=str(output.resolve()),
            encrypted=outcome.encrypted, format_version=FORMAT_VERSION, trees=trees,
            blobs=blobs, bytes_plain=outcome.bytes_plain,
            bytes_written=outcome.bytes_written, duration_seconds=outcome.duration_seconds))
    return outcome


def _write_members(repo: Repository, writer: ExportWriter, selection: Selection,
                   members: list[ExportMember], reporter: ProgressReporter) -> int:
    """The metadata record, then every member's blobs and trees; the blobs written."""
    content = {c for m in members for _tid, nodes, _b in m.trees for n in nodes
               for c in n.content}
    counter = ProgressCounter(reporter, "export",
                              bytes_total=sum(s.summary.bytes_raw for s in selection.snapshots)
                              or None,
                              items_total=len(content) + sum(len(m.trees) for m in members))
    meta = {"members": [m.meta() for m in members], "group": selection.group,
            "source_repo_id": repo.id, "exported_at": datetime.now(UTC).isoformat(),
            "vault_version": __version__,
            "counts": {"trees": sum(len(m.trees) for m in members), "blobs": len(content)}}
    # ASCII escapes keep non-UTF-8 file names exact (as repository.py does).
    writer.add(RecordKind.META, json.dumps(meta, ensure_ascii=True).encode())
    written: set[bytes] = set()
    for member in members:
        for tree_id, nodes, body in member.trees:
            if tree_id in written:
                continue  # a tree shared with an earlier member, with all it names
            for node in nodes:
                for blob_id in node.content:
                    if blob_id in written:
                        continue
                    if blob_id in member.settings:
                        data = member.settings[blob_id]
                        writer.add(RecordKind.SETTINGS, blob_id + data)
                    else:
                        data = repo.load_blob(blob_id)
                        writer.add(RecordKind.DATA, blob_id + data)
                    written.add(blob_id)
                    counter.add(len(data), 1, current=node.name)
            writer.add(RecordKind.TREE, tree_id + (body if body is not None
                                                   else repo.load_blob(tree_id)))
            written.add(tree_id)
            counter.add(0, 1)
    counter.finish()
    return len(content)
