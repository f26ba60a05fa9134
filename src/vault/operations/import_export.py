"""Importing a `vault export` file: every member snapshot, under the target's keys.

Every record is decoded (and, when encrypted, authenticated) by `check_records` before
anything is stored. A group's members come back as a group of their own (a new group id,
the original group time), so `vault restore --group NAME --at ...` finds them together.
Settings secrets the export carries sealed under its own key are re-sealed under the
target repository's key as they are stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from vault.errors import ExportCorrupted
from vault.foundation.progress import ProgressCounter, ProgressReporter
from vault.operations.common import repository_lock
from vault.operations.quota import keeping_written_packs, writing_saver
from vault.operations.source_backup import sealer_for
from vault.repository.blob import BlobType
from vault.repository.repository import vault_version
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import SNAPSHOT_VERSION, Snapshot
from vault.repository.tree import InvalidTree, Node, decode_tree, encode_tree
from vault.runtime.app import Vault
from vault.sources.settings.stored import reseal_document
from vault.transfer.format import RecordKind
from vault.transfer.reader import ExportFile, open_export

_ID = 32  # bytes of a blob id at the start of every data and tree record
_BLOBS = (RecordKind.DATA, RecordKind.SETTINGS)
#: asked for an encrypted export's passphrase when none was given (None: nobody to ask)
AskPassphrase = Callable[[ExportFile], str | None]


def prepare_export(path: Path, passphrase: str | None,
                   ask: AskPassphrase | None) -> tuple[ExportFile, dict[str, Any], dict[str, Any]]:
    """The opened export, its metadata and the import's preview."""
    export = open_export(path)
    if export.encrypted and passphrase is None and ask is not None:
        passphrase = ask(export)
    export.unlock(passphrase)
    meta = export.meta()
    members = meta.get("members") or []
    records = check_records(export, [str(m.get("root", "")) for m in members])
    try:
        docs = [_member_preview(m) for m in members]
        first = docs[0]
        preview = {"format": "vault", "file": str(path.resolve()),
                   "format_version": export.version, "encrypted": export.encrypted,
                   **first, "snapshots": docs, "group": meta.get("group"),
                   "exported_at": meta.get("exported_at"), "records": records}
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ExportCorrupted(path=str(path), detail=f"metadata lacks {exc}") from exc
    return export, meta, preview


def _member_preview(member: dict[str, Any]) -> dict[str, Any]:
    snap = member["snapshot"]
    summary = snap.get("summary", {})
    return {"snapshot_id": member.get("snapshot_id"), "time": snap["time"],
            "host": snap["host"], "paths": snap["paths"], "tags": snap.get("tags", []),
            "source_type": snap.get("source", {}).get("type", "files"),
            "files": summary.get("files_new", 0) + summary.get("files_changed", 0)
            + summary.get("files_unmodified", 0),
            "bytes": summary.get("bytes_raw", 0)}


def check_records(export: ExportFile, roots_hex: list[str]) -> int:
    """Decode (and, when encrypted, authenticate) every record before anything is stored,
    and check that each tree names only blobs and trees before it and that every member's
    root is among the trees; the number of records. The checksum alone does not stop
    someone who recomputes it."""
    where = str(export.path)
    seen: set[bytes] = set()
    trees: set[bytes] = set()
    count = 0
    for kind, plain in export.records():
        count += 1
        if len(plain) < _ID or kind not in (*_BLOBS, RecordKind.TREE):
            raise ExportCorrupted(path=where, detail=f"unexpected {kind.name} record {count}")
        if kind == RecordKind.TREE:
            _check_tree(plain[_ID:], seen, where)
            trees.add(plain[:_ID])
        seen.add(plain[:_ID])
    if not roots_hex or any(bytes.fromhex(root) not in trees for root in roots_hex):
        raise ExportCorrupted(path=where, detail="a member's root tree is missing")
    return count


def import_export(vault: Vault, export: ExportFile, meta: dict[str, Any],
                  reporter: ProgressReporter, tags: list[str]) -> list[Snapshot]:
    """Store every record, then one snapshot per member; the new snapshots."""
    where = str(export.path)
    originals = [_original(m, where) for m in meta["members"]]
    repo = vault.repository()
    counts = meta.get("counts", {})
    bytes_raw = sum(o.summary.bytes_raw for o in originals)
    counter = ProgressCounter(reporter, "import", bytes_total=bytes_raw or None,
                              items_total=(counts["trees"] + counts["blobs"])
                              if "trees" in counts and "blobs" in counts else None)
    with repository_lock(vault, repo, exclusive=False, operation="import") as lock:
        repo.load_index()
        saver = writing_saver(vault, repo, bytes_raw)
        with keeping_written_packs(saver):
            new_ids = _store_records(export, saver, counter, lambda data: reseal_document(
                data, _export_sealer(export).unseal, sealer_for(repo).seal))
            saver.flush()
        counter.finish()
        group = _new_group(meta.get("group"))
        snapshots = []
        for member, original in zip(meta["members"], originals, strict=True):
            root = new_ids.get(bytes.fromhex(str(member["root"])))
            if root is None:
                raise ExportCorrupted(path=where, detail="the root tree is missing")
            snapshots.append(_imported_snapshot(export, meta, member, original, root,
                                                saver, group, tags))
        lock.check()
        for snapshot in snapshots:
            repo.save_snapshot(snapshot)
    return snapshots


def _export_sealer(export: ExportFile) -> Any:
    sealer = export.secrets_sealer
    if sealer is None:  # a SETTINGS record only exists in an encrypted file
        raise ExportCorrupted(path=str(export.path), detail="sealed settings in a file "
                              "that is not encrypted")
    return sealer


def _store_records(export: ExportFile, saver: BlobSaver, counter: ProgressCounter,
                   reseal: Callable[[bytes], bytes]) -> dict[bytes, bytes]:
    """Every blob and tree into the target; the map of ids in the file -> new ids."""
    where = str(export.path)
    new_ids: dict[bytes, bytes] = {}
    sizes: dict[bytes, int] = {}
    for kind, plain in export.records():
        if len(plain) < _ID or kind not in (*_BLOBS, RecordKind.TREE):
            raise ExportCorrupted(path=where, detail=f"unexpected {kind.name} record")
        old_id, body = plain[:_ID], plain[_ID:]
        if kind == RecordKind.SETTINGS:
            try:
                body = reseal(body)
            except (InvalidTag, ValueError, KeyError, TypeError) as exc:
                raise ExportCorrupted(path=where, detail="a settings record's sealed "
                                      f"secrets do not open ({type(exc).__name__})") from exc
            sizes[old_id] = len(body)
        if kind in _BLOBS:
            new_ids[old_id] = saver.save(BlobType.DATA, body)[0]
            counter.add(len(body), 1)
        else:
            tree = _rewrite_tree(body, new_ids, sizes, where)
            new_ids[old_id] = saver.save(BlobType.TREE, tree)[0]
            counter.add(0, 1)
    return new_ids


def _original(member: dict[str, Any], where: str) -> Snapshot:
    doc = dict(member["snapshot"])
    if int(doc.get("version", 0)) > SNAPSHOT_VERSION:
        raise ExportCorrupted(path=where, detail=f"its snapshot is of version "
                              f"{doc.get('version')}; this vault reads up to {SNAPSHOT_VERSION}")
    try:
        return Snapshot.model_validate(doc)
    except ValueError as exc:
        raise ExportCorrupted(path=where, detail=f"bad snapshot metadata: {exc}") from exc


def _new_group(group: dict[str, Any] | None) -> tuple[str, datetime] | None:
    if not group:
        return None
    return f"group-{uuid.uuid4().hex[:16]}", datetime.fromisoformat(str(group["group_time"]))


def _imported_snapshot(export: ExportFile, meta: dict[str, Any], member: dict[str, Any],
                       original: Snapshot, root: bytes, saver: BlobSaver,
                       group: tuple[str, datetime] | None, tags: list[str]) -> Snapshot:
    stats = saver.stats
    summary = original.summary.model_copy(update={
        "bytes_new": stats.bytes_new, "bytes_stored": stats.bytes_stored,
        "blobs_new": stats.blobs_new})
    imported = {"format": "vault", "file": str(export.path.resolve()),
                "snapshot_id": member.get("snapshot_id"),
                "repo_id": meta.get("source_repo_id"), "exported_at": meta.get("exported_at")}
    return original.model_copy(update={
        "tree": root.hex(), "parent": None, "job_id": None,
        "group_id": group[0] if group else None, "group_time": group[1] if group else None,
        "vault_version": vault_version(), "summary": summary,
        "tags": sorted({*original.tags, *tags}),
        "source": {**original.source, "imported": imported}})


def _rewrite_tree(body: bytes, new_ids: dict[bytes, bytes], sizes: dict[bytes, int],
                  where: str) -> bytes:
    """The tree with its blob ids replaced by the target repository's (and the size of a
    re-sealed settings document, which need not be its size in the file)."""
    try:
        nodes: list[Node] = decode_tree(body)
        for node in nodes:
            if len(node.content) == 1 and node.content[0] in sizes:
                node.size = sizes[node.content[0]]
            node.content = [new_ids[c] for c in node.content]
            if node.subtree is not None:
                node.subtree = new_ids[node.subtree]
    except InvalidTree as exc:
        raise ExportCorrupted(path=where, detail=f"bad tree record: {exc}") from exc
    except KeyError as exc:
        raise ExportCorrupted(path=where, detail="a tree names a blob the export lacks") \
            from exc
    return encode_tree(nodes)


def _check_tree(body: bytes, seen: set[bytes], where: str) -> None:
    try:
        nodes = decode_tree(body)
    except InvalidTree as exc:
        raise ExportCorrupted(path=where, detail=f"bad tree record: {exc}") from exc
    for node in nodes:
        named = [*node.content, *([node.subtree] if node.subtree else [])]
        if any(blob_id not in seen for blob_id in named):
            raise ExportCorrupted(path=where, detail="a tree names a blob the export lacks "
                                  "(or names it before it)")
