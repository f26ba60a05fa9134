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

from vault.backup.items import ItemArchiver
from vault.errors import ExportCorrupted, NotAnExport, NothingToImport, UsageError
from vault.foundation.progress import ProgressCounter, ProgressReporter
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.operations.export import TRANSFERS_STREAM
from vault.operations.import_app import (
    AppLayout,
    SecretsMode,
    app_name,
    import_app,
    new_group,
    plan_app,
)
from vault.operations.import_export import AskPassphrase, import_export, prepare_export
from vault.operations.quota import keeping_written_packs, writing_saver
from vault.repository.repository import vault_version
from vault.repository.snapshot import FileProblem, Snapshot
from vault.runtime.app import Vault
from vault.sources.base import SourceItem
from vault.sources.mongodb import mongodump
from vault.sources.postgresql import pgdump
from vault.transfer.archives import Archive, MemberPlan, plan_members
from vault.transfer.format import MAGIC
from vault.transfer.reader import ExportFile

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
    app: AppLayout | None = None


def prepare_import(path: Path, fmt: str = "auto", passphrase: str | None = None,
                   ask: AskPassphrase | None = None, as_app: bool = False) -> PreparedImport:
    """`passphrase` opens an encrypted export; without it, `ask` is asked for one. With
    `as_app`, a tar or ZIP is read as an application's layout (app_import)."""
    kind: ImportFormat = detect_format(path) if fmt == "auto" else fmt  # type: ignore[assignment]
    if as_app and kind not in ("tar", "zip"):
        raise UsageError(f"--as-app reads a ZIP or tar archive; {path} is {kind}")
    if kind == "vault":
        export, meta, preview = prepare_export(path, passphrase, ask)
        return PreparedImport(path, "vault", preview, export=export, meta=meta)
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
        app = plan_app(archive, plan, app_name(path)) if as_app else None
    finally:
        archive.close()
    if not plan.accepted:
        raise NothingToImport(path=str(path), detail=f"no regular file among its "
                              f"members; {len(plan.refused)} refused")
    preview = {"format": kind, "file": str(path.resolve()), "files": len(plan.accepted),
               "dirs": plan.dirs, "bytes": plan.bytes_total,
               "refused": [{"path": n, "error": why} for n, why in plan.refused]}
    if app is not None:
        preview["app"] = app.preview()
    return PreparedImport(path, kind, preview, plan=plan, app=app)


@dataclass
class ImportOutcome:
    snapshot: Snapshot
    format: ImportFormat
    files: int
    bytes_raw: int
    bytes_new: int
    refused: list[FileProblem]
    duration_seconds: float
    #: every new snapshot (a group export's members; else just `snapshot`)
    snapshots: list[Snapshot] = field(default_factory=list)


def run_import(vault: Vault, prepared: PreparedImport, reporter: ProgressReporter,
               tags: list[str] | None = None,
               app_secrets: SecretsMode = "redact") -> ImportOutcome:
    started = time.monotonic()
    refused: list[FileProblem] = []
    if prepared.app is not None:
        snapshots, refused = _import_as_app(vault, prepared, reporter, tags or [], app_secrets)
    elif prepared.format == "sqlite":
        snapshots = [_import_sqlite(vault, prepared.path, reporter, tags or [])]
    elif prepared.format == "vault":
        assert prepared.export is not None
        snapshots = import_export(vault, prepared.export, prepared.meta, reporter, tags or [])
    elif prepared.format == "mongodump":
        snapshots = [_import_mongodump(vault, prepared.path, reporter, tags or [])]
    elif prepared.format == "pgdump":
        snapshots = [_import_pgdump(vault, prepared.path, reporter, tags or [])]
    else:
        snapshot, refused = _import_archive(vault, prepared, reporter, tags or [])
        snapshots = [snapshot]
    files = sum(_files(s) for s in snapshots)
    outcome = ImportOutcome(snapshots[0], prepared.format, files,
                            sum(s.summary.bytes_raw for s in snapshots),
                            max(s.summary.bytes_new for s in snapshots), refused,
                            time.monotonic() - started, snapshots)
    repo = vault.repository()
    members = prepared.meta.get("members") or [{}] * len(snapshots)
    for snapshot, member in zip(snapshots, members, strict=True):
        vault.journal.append(TRANSFERS_STREAM, ev.SnapshotImported(
            repo_id=repo.id, snapshot_id=snapshot.id, file=str(prepared.path.resolve()),
            format=prepared.format,
            format_version=prepared.export.version if prepared.export else None,
            source_snapshot_id=member.get("snapshot_id"), files=_files(snapshot),
            bytes_raw=snapshot.summary.bytes_raw, bytes_new=snapshot.summary.bytes_new,
            refused=[ev.FileProblem(path=p.path, error=p.error) for p in refused],
            duration_seconds=outcome.duration_seconds))
    return outcome


def _files(snapshot: Snapshot) -> int:
    summary = snapshot.summary
    return summary.files_new + summary.files_changed + summary.files_unmodified


# --- a SQLite file ------------------------------------------------------------------------


def _import_sqlite(vault: Vault, path: Path, reporter: ProgressReporter,
                   tags: list[str]) -> Snapshot:
    """Exactly what `vault backup sqlite:///path` makes (a consistent copy, one item)."""
    from vault.operations.source_backup import SourceBackupRequest, run_source_backup
    from vault.sources.sqlite.source import SqliteSource, name_for

    absolute = path.resolve()
    url = f"sqlite://{absolute}"
    request = SourceBackupRequest(source=SqliteSource(name_for(absolute), absolute),
                                  label=url, adhoc_url=url, tags=tags)
    outcome = run_source_backup(vault, request, reporter)
    assert outcome.snapshot is not None
    return outcome.snapshot


# --- a tar or ZIP archive -----------------------------------------------------------------


def _import_as_app(vault: Vault, prepared: PreparedImport, reporter: ProgressReporter,
                   tags: list[str], secrets: SecretsMode) -> tuple[list[Snapshot],
                                                                   list[FileProblem]]:
    layout = prepared.app
    assert layout is not None and prepared.format in ("tar", "zip")
    group = new_group()
    archive = Archive(prepared.path, prepared.format)
    try:
        snapshots = import_app(vault, archive, layout, reporter, tags, secrets, group)
    finally:
        archive.close()
    refused = [FileProblem(path=name, error=why) for name, why in layout.files.refused]
    if layout.files.accepted:
        files, refused = _import_archive(vault, prepared, reporter, tags, layout.files, group)
        snapshots.append(files)
    return snapshots, refused


def _import_archive(vault: Vault, prepared: PreparedImport, reporter: ProgressReporter,
                    tags: list[str], plan: MemberPlan | None = None,
                    group: tuple[str, datetime] | None = None
                    ) -> tuple[Snapshot, list[FileProblem]]:
    plan = plan or prepared.plan
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
            saver = writing_saver(vault, repo, plan.bytes_total)
            with keeping_written_packs(saver):
                result = ItemArchiver(saver, counter).store(archive.items(plan))
                saver.flush()
            snapshot = Snapshot(
                time=datetime.now(UTC), host=socket.gethostname(), user=_user(),
                uid=os.getuid(), paths=[absolute], tags=sorted(set(tags)),
                tree=result.tree.hex(), backup_type="full", status="completed",
                source={"type": "files", "imported": {
                    "format": prepared.format, "file": absolute, "refused": len(refused)}},
                summary=result.summary, errors=refused, vault_version=vault_version(),
                group_id=group[0] if group else None, group_time=group[1] if group else None)
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
        saver = writing_saver(vault, repo, bytes_total)
        with keeping_written_packs(saver):
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
