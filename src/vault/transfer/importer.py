"""`vault import`: a vault export, a SQLite file, a tar/ZIP archive, a `mongodump --archive`
file or a `pg_dump -Fc` file as a new snapshot.

Two steps, so the CLI can show a preview (and `--dry-run` stop there): `prepare_import`
detects the file's format and checks it (an export's framing, version and checksum; an
archive's members) without touching the repository; `run_import` stores it. Blobs go
through the repository's BlobSaver, so everything already stored deduplicates.
"""

from __future__ import annotations

import getpass
import os
import socket
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from vault.app import Vault
from vault.backup_items import ItemArchiver
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.operations.quota import check_quota
from vault.progress import ProgressCounter, ProgressReporter
from vault.repository.blob import BlobType
from vault.repository.repository import vault_version
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import SNAPSHOT_VERSION, FileProblem, Snapshot
from vault.repository.tree import InvalidTree, Node, decode_tree, encode_tree
from vault.sources.base import SourceItem
from vault.transfer import mongodump, pgdump
from vault.transfer.archives import Archive, MemberPlan, plan_members
from vault.transfer.errors import ExportCorrupted, NotAnExport, NothingToImport
from vault.transfer.export import TRANSFERS_STREAM
from vault.transfer.format import MAGIC, RecordKind
from vault.transfer.reader import ExportFile, open_export

ImportFormat = Literal["vault", "sqlite", "tar", "zip", "mongodump", "pgdump"]
FORMATS: tuple[str, ...] = ("auto", "vault", "sqlite", "tar", "zip", "mongodump", "pgdump")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_ID = 32  # bytes of a blob id at the start of every data and tree record


def detect_format(path: Path) -> ImportFormat:
    """What a file is, by its content (never by its name)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(16)
    except OSError as exc:
        raise NotAnExport(path=str(path), detail=exc.strerror or str(exc)) from exc
    if head.startswith(MAGIC[: max(len(head), 1)]) and head:
        return "vault"
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(pgdump.MAGIC):
        return "pgdump"
    if mongodump.is_mongodump(path):
        return "mongodump"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    return _foreign(path, head)


def _foreign(path: Path, head: bytes) -> ImportFormat:
    raise NotAnExport(path=str(path), detail=f"it starts with {head[:8]!r}")


@dataclass
class PreparedImport:
    """A checked input and what importing it will make (`preview`)."""

    path: Path
    format: ImportFormat
    preview: dict[str, Any]
    export: ExportFile | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    plan: MemberPlan | None = None


def prepare_import(path: Path, fmt: str = "auto",
                   passphrase: str | None = None) -> PreparedImport:
    kind: ImportFormat = detect_format(path) if fmt == "auto" else fmt  # type: ignore[assignment]
    if kind == "vault":
        return _prepare_export(path, passphrase)
    if kind == "sqlite":
        return PreparedImport(path, kind, {"format": kind, "file": str(path.resolve()),
                                           "bytes": path.stat().st_size})
    if kind == "mongodump":
        return PreparedImport(path, kind, mongodump.preview(path,
                                                            mongodump.check_archive(path)))
    if kind == "pgdump":
        return PreparedImport(path, kind, pgdump.preview(path, pgdump.check_dump(path)))
    archive = Archive(path, kind)
    try:
        plan = plan_members(archive.members())
    finally:
        archive.close()
    if not plan.accepted:
        raise NothingToImport(path=str(path), detail=f"no regular file among its "
                              f"members; {len(plan.refused)} refused")
    preview = {"format": kind, "file": str(path.resolve()), "files": len(plan.accepted),
               "dirs": plan.dirs, "bytes": plan.bytes_total,
               "refused": [{"path": n, "error": why} for n, why in plan.refused]}
    return PreparedImport(path, kind, preview, plan=plan)


def _prepare_export(path: Path, passphrase: str | None) -> PreparedImport:
    export = open_export(path)
    export.unlock(passphrase)
    meta = export.meta()
    records = check_records(export, str(meta.get("root", "")))
    try:
        snap = meta["snapshot"]
        preview = {"format": "vault", "file": str(path.resolve()),
                   "format_version": export.version, "encrypted": export.encrypted,
                   "snapshot_id": meta.get("snapshot_id"), "time": snap["time"],
                   "host": snap["host"], "paths": snap["paths"], "tags": snap.get("tags", []),
                   "source_type": snap.get("source", {}).get("type", "files"),
                   "files": snap.get("summary", {}).get("files_new", 0)
                   + snap.get("summary", {}).get("files_changed", 0)
                   + snap.get("summary", {}).get("files_unmodified", 0),
                   "bytes": snap.get("summary", {}).get("bytes_raw", 0),
                   "exported_at": meta.get("exported_at"), "records": records}
    except (KeyError, TypeError, AttributeError) as exc:
        raise ExportCorrupted(path=str(path), detail=f"metadata lacks {exc}") from exc
    return PreparedImport(path, "vault", preview, export=export, meta=meta)


def check_records(export: ExportFile, root_hex: str) -> int:
    """Decode (and, when encrypted, authenticate) every record before anything is stored,
    and check that each tree names only blobs and trees before it and the root comes last;
    the number of records. The checksum alone does not stop someone who recomputes it."""
    where = str(export.path)
    seen: set[bytes] = set()
    last_tree = b""
    count = 0
    for kind, plain in export.records():
        count += 1
        if len(plain) < _ID or kind not in (RecordKind.DATA, RecordKind.TREE):
            raise ExportCorrupted(path=where, detail=f"unexpected {kind.name} record {count}")
        if kind == RecordKind.TREE:
            _check_tree(plain[_ID:], seen, where)
            last_tree = plain[:_ID]
        seen.add(plain[:_ID])
    if last_tree.hex() != root_hex:
        raise ExportCorrupted(path=where, detail="the root tree is not the last record")
    return count


@dataclass
class ImportOutcome:
    snapshot: Snapshot
    format: ImportFormat
    files: int
    bytes_raw: int
    bytes_new: int
    refused: list[FileProblem]
    duration_seconds: float


def run_import(vault: Vault, prepared: PreparedImport, reporter: ProgressReporter,
               tags: list[str] | None = None) -> ImportOutcome:
    started = time.monotonic()
    if prepared.format == "sqlite":
        snapshot = _import_sqlite(vault, prepared.path, reporter, tags or [])
        refused: list[FileProblem] = []
    elif prepared.format == "vault":
        snapshot = _import_export(vault, prepared, reporter, tags or [])
        refused = []
    elif prepared.format == "mongodump":
        snapshot, refused = _import_mongodump(vault, prepared.path, reporter, tags or []), []
    elif prepared.format == "pgdump":
        snapshot, refused = _import_pgdump(vault, prepared.path, reporter, tags or []), []
    else:
        snapshot, refused = _import_archive(vault, prepared, reporter, tags or [])
    summary = snapshot.summary
    files = summary.files_new + summary.files_changed + summary.files_unmodified
    outcome = ImportOutcome(snapshot, prepared.format, files, summary.bytes_raw,
                            summary.bytes_new, refused, time.monotonic() - started)
    repo = vault.repository()
    vault.journal.append(TRANSFERS_STREAM, ev.SnapshotImported(
        repo_id=repo.id, snapshot_id=snapshot.id, file=str(prepared.path.resolve()),
        format=prepared.format,
        format_version=prepared.export.version if prepared.export else None,
        source_snapshot_id=prepared.meta.get("snapshot_id"), files=files,
        bytes_raw=summary.bytes_raw, bytes_new=summary.bytes_new,
        refused=[ev.FileProblem(path=p.path, error=p.error) for p in refused],
        duration_seconds=outcome.duration_seconds))
    return outcome


# --- a vault export -----------------------------------------------------------------------


def _import_export(vault: Vault, prepared: PreparedImport, reporter: ProgressReporter,
                   tags: list[str]) -> Snapshot:
    export, meta = prepared.export, prepared.meta
    assert export is not None
    where = str(prepared.path)
    doc = dict(meta["snapshot"])
    if int(doc.get("version", 0)) > SNAPSHOT_VERSION:
        raise ExportCorrupted(path=where, detail=f"its snapshot is of version "
                              f"{doc.get('version')}; this vault reads up to {SNAPSHOT_VERSION}")
    try:
        original = Snapshot.model_validate(doc)
    except ValueError as exc:
        raise ExportCorrupted(path=where, detail=f"bad snapshot metadata: {exc}") from exc
    repo = vault.repository()
    counts = meta.get("counts", {})
    counter = ProgressCounter(reporter, "import", bytes_total=original.summary.bytes_raw or None,
                              items_total=(counts["trees"] + counts["blobs"])
                              if "trees" in counts and "blobs" in counts else None)
    with repository_lock(vault, repo, exclusive=False, operation="import") as lock:
        repo.load_index()
        check_quota(vault, repo, original.summary.bytes_raw)
        cfg = vault.config.repository
        saver = BlobSaver(repo, compression_level=cfg.compression_level,
                          pack_size=cfg.pack_size_mib << 20)
        new_ids: dict[bytes, bytes] = {}
        for kind, plain in export.records():
            if len(plain) < _ID or kind not in (RecordKind.DATA, RecordKind.TREE):
                raise ExportCorrupted(path=where, detail=f"unexpected {kind.name} record")
            old_id, body = plain[:_ID], plain[_ID:]
            if kind == RecordKind.DATA:
                new_ids[old_id] = saver.save(BlobType.DATA, body)[0]
                counter.add(len(body), 1)
            else:
                tree = _rewrite_tree(body, new_ids, where)
                new_ids[old_id] = saver.save(BlobType.TREE, tree)[0]
                counter.add(0, 1)
        root = new_ids.get(bytes.fromhex(str(meta["root"])))
        if root is None:
            raise ExportCorrupted(path=where, detail="the root tree is missing")
        saver.flush()
        counter.finish()
        stats = saver.stats
        summary = original.summary.model_copy(update={
            "bytes_new": stats.bytes_new, "bytes_stored": stats.bytes_stored,
            "blobs_new": stats.blobs_new})
        imported = {"format": "vault", "file": str(prepared.path.resolve()),
                    "snapshot_id": meta.get("snapshot_id"),
                    "repo_id": meta.get("source_repo_id"),
                    "exported_at": meta.get("exported_at")}
        snapshot = original.model_copy(update={
            "tree": root.hex(), "parent": None, "job_id": None, "group_id": None,
            "group_time": None, "vault_version": vault_version(), "summary": summary,
            "tags": sorted({*original.tags, *tags}),
            "source": {**original.source, "imported": imported}})
        lock.check()
        repo.save_snapshot(snapshot)
    return snapshot


def _rewrite_tree(body: bytes, new_ids: dict[bytes, bytes], where: str) -> bytes:
    """The tree with its blob ids replaced by the target repository's."""
    try:
        nodes: list[Node] = decode_tree(body)
        for node in nodes:
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


# --- a SQLite file ------------------------------------------------------------------------


def _import_sqlite(vault: Vault, path: Path, reporter: ProgressReporter,
                   tags: list[str]) -> Snapshot:
    """Exactly what `vault backup sqlite:///path` makes (a consistent copy, one item)."""
    from vault.operations.source_backup import SourceBackupRequest, run_source_backup
    from vault.sources.sqlite import SqliteSource, name_for

    absolute = path.resolve()
    url = f"sqlite://{absolute}"
    request = SourceBackupRequest(source=SqliteSource(name_for(absolute), absolute),
                                  label=url, adhoc_url=url, tags=tags)
    outcome = run_source_backup(vault, request, reporter)
    assert outcome.snapshot is not None
    return outcome.snapshot


# --- a tar or ZIP archive -----------------------------------------------------------------


def _import_archive(vault: Vault, prepared: PreparedImport, reporter: ProgressReporter,
                    tags: list[str]) -> tuple[Snapshot, list[FileProblem]]:
    plan = prepared.plan
    assert plan is not None and prepared.format in ("tar", "zip")
    refused = [FileProblem(path=name, error=why) for name, why in plan.refused]
    repo = vault.repository()
    absolute = str(prepared.path.resolve())
    counter = ProgressCounter(reporter, "import", bytes_total=plan.bytes_total,
                              items_total=len(plan.accepted))
    archive = Archive(prepared.path, prepared.format)
    try:
        with repository_lock(vault, repo, exclusive=False, operation="import") as lock:
            repo.load_index()
            check_quota(vault, repo, plan.bytes_total)
            cfg = vault.config.repository
            saver = BlobSaver(repo, compression_level=cfg.compression_level,
                              pack_size=cfg.pack_size_mib << 20)
            result = ItemArchiver(saver, counter).store(archive.items(plan))
            saver.flush()
            snapshot = Snapshot(
                time=datetime.now(UTC), host=socket.gethostname(), user=_user(),
                uid=os.getuid(), paths=[absolute], tags=sorted(set(tags)),
                tree=result.tree.hex(), backup_type="full", status="completed",
                source={"type": "files", "imported": {
                    "format": prepared.format, "file": absolute, "refused": len(refused)}},
                summary=result.summary, errors=refused, vault_version=vault_version())
            lock.check()
            repo.save_snapshot(snapshot)
    finally:
        archive.close()
    return snapshot, refused


# --- a mongodump archive or a pg_dump custom-format file ------------------------------------


def _import_mongodump(vault: Vault, path: Path, reporter: ProgressReporter,
                      tags: list[str]) -> Snapshot:
    """The archive as the MongoDB source's items; documents spooled per collection in the
    vault's scratch directory to be stored in `_id` order, then removed."""
    with tempfile.TemporaryDirectory(dir=_scratch(vault), prefix="mongodump-") as tmp:
        spool = mongodump.Spool(Path(tmp))
        try:
            with mongodump.open_archive(path) as stream:
                contents = mongodump.read_archive(stream, str(path), spool.add)
            if spool.duplicate is not None:
                raise ExportCorrupted(path=str(path), detail=spool.duplicate)
            if not contents.namespaces:
                raise NothingToImport(path=str(path), detail="the archive holds no "
                                      "collection the MongoDB source imports")
            name = mongodump.source_name(contents)
            absolute = str(path.resolve())
            record: dict[str, Any] = {"type": "mongodb", "name": name, "label": absolute,
                      "describe": {"type": "mongodb", "name": name, "file": absolute,
                                   "databases": sorted({ns.database
                                                        for ns in contents.kept})},
                      "meta": mongodump.capture_meta(contents),
                      "imported": {"format": "mongodump", "file": absolute,
                                   "tool_version": contents.header.get("tool_version"),
                                   "skipped": [{"path": n, "why": w}
                                               for n, w in contents.skipped]}}
            items = mongodump.source_items(contents, spool)
            return _save_source_snapshot(vault, reporter, tags, items, record, absolute,
                                         contents.bytes)
        finally:
            spool.close()


def _import_pgdump(vault: Vault, path: Path, reporter: ProgressReporter,
                   tags: list[str]) -> Snapshot:
    """The dump as the PostgreSQL source's items: its archive without the tables' rows,
    and each table's rows as a plain COPY block (pg_restore writes them)."""
    with tempfile.TemporaryDirectory(dir=_scratch(vault), prefix="pgdump-") as tmp:
        dump = pgdump.check_dump(path)
        converted = pgdump.convert(path, dump, Path(tmp))
        absolute = str(path.resolve())
        name = dump.dbname or path.stem
        record: dict[str, Any] = {"type": "postgresql", "name": name, "label": absolute,
                  "describe": {"type": "postgresql", "name": name, "file": absolute,
                               "database": dump.dbname},
                  "meta": converted.meta,
                  "imported": {"format": "pgdump", "file": absolute,
                               "pg_dump_version": dump.dump_version,
                               "archive_version": dump.version_text}}
        return _save_source_snapshot(vault, reporter, tags, converted.items, record,
                                     absolute, converted.bytes_total)


def _save_source_snapshot(vault: Vault, reporter: ProgressReporter, tags: list[str],
                          items: list[SourceItem], record: dict[str, Any], label: str,
                          bytes_total: int) -> Snapshot:
    repo = vault.repository()
    counter = ProgressCounter(reporter, "import", bytes_total=bytes_total or None,
                              items_total=len(items))
    with repository_lock(vault, repo, exclusive=False, operation="import") as lock:
        repo.load_index()
        check_quota(vault, repo, bytes_total)
        cfg = vault.config.repository
        saver = BlobSaver(repo, compression_level=cfg.compression_level,
                          pack_size=cfg.pack_size_mib << 20)
        result = ItemArchiver(saver, counter).store(items)
        saver.flush()
        snapshot = Snapshot(
            time=datetime.now(UTC), host=socket.gethostname(), user=_user(),
            uid=os.getuid(), paths=[label], tags=sorted(set(tags)), tree=result.tree.hex(),
            backup_type="full", status="completed", source=record, summary=result.summary,
            vault_version=vault_version())
        lock.check()
        repo.save_snapshot(snapshot)
    return snapshot


def _scratch(vault: Vault) -> Path:
    scratch = vault.cache_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    return scratch


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
