"""`vault import --as-app`: a foreign ZIP or tar of an application, read as its layout.

Members whose name ends in `.db`, `.sqlite` or `.sqlite3` and that are SQLite databases
become one sqlite snapshot each; a `settings.json` or `.env` becomes a settings snapshot
with the configured secret globs applied (redacted, or sealed with `secrets = "encrypt"`);
everything else is one files snapshot. All of them form one group (one id, one time), as
`vault backup --group` would make. Databases and settings are read by the real sources
from a private scratch copy (0700, removed after), so the snapshots are exactly what
backing up those files would store.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

from vault.config.source_parts import DEFAULT_SECRET_KEYS
from vault.foundation.progress import ProgressReporter
from vault.repository.snapshot import Snapshot
from vault.runtime.app import Vault
from vault.sources.base import Source
from vault.transfer.archives import Archive, Member, MemberPlan

_DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SETTINGS_NAMES = ("settings.json", ".env")
_SQLITE_MAGIC = b"SQLite format 3\x00"
SecretsMode = Literal["redact", "encrypt"]


@dataclass
class AppLayout:
    """Which members are databases, settings files and plain files."""

    name: str
    databases: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    files: MemberPlan = field(default_factory=MemberPlan)
    #: the database and settings members, by path
    special: dict[str, Member] = field(default_factory=dict)

    def preview(self) -> dict[str, object]:
        return {"name": self.name, "databases": self.databases, "settings": self.settings,
                "files": len(self.files.accepted)}


def plan_app(archive: Archive, plan: MemberPlan, name: str) -> AppLayout:
    """Sort the accepted members (a database must also start as SQLite files do)."""
    layout = AppLayout(name, files=MemberPlan(refused=plan.refused, dirs=plan.dirs))
    for path, member in plan.accepted.items():
        base = PurePosixPath(path).name
        if base.lower().endswith(_DATABASE_SUFFIXES) and _is_sqlite(archive, path, member):
            layout.databases.append(path)
        elif base in _SETTINGS_NAMES:
            layout.settings.append(path)
        else:
            layout.files.accepted[path] = member
            continue
        layout.special[path] = member
    return layout


def _is_sqlite(archive: Archive, path: str, member: Member) -> bool:
    item = next(archive.items(MemberPlan(accepted={path: member})))
    with item.open() as stream:
        return stream.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


def secret_globs(vault: Vault) -> tuple[str, ...]:
    """The secret globs of the configured settings sources (the defaults if none)."""
    globs = [g for s in vault.config.sources if s.type == "settings"
             for g in getattr(s, "secret_keys", [])]
    return tuple(dict.fromkeys(globs)) or tuple(DEFAULT_SECRET_KEYS)


def import_app(vault: Vault, archive: Archive, layout: AppLayout, reporter: ProgressReporter,
               tags: list[str], secrets: SecretsMode,
               group: tuple[str, datetime]) -> list[Snapshot]:
    """One snapshot per database and settings file, in the group `group` (id, time)."""
    from vault.operations.source_backup import SourceBackupRequest, run_source_backup
    from vault.sources.settings.source import SettingsSource
    from vault.sources.sqlite.source import SqliteSource, name_for

    scratch = vault.cache_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    workdir = Path(tempfile.mkdtemp(prefix="app-import-", dir=scratch))
    snapshots: list[Snapshot] = []
    try:
        sources: list[tuple[Source, str]] = []
        for index, path in enumerate([*layout.databases, *layout.settings]):
            local = workdir / str(index) / PurePosixPath(path).name
            _extract(archive, path, layout.special[path], local)
            label = f"{layout.name}:{path}"
            if path in layout.databases:
                sources.append((SqliteSource(f"{layout.name}-{name_for(local)}", local),
                                label))
            else:
                sources.append((SettingsSource(f"{layout.name}-{name_for(local)}",
                                               path=str(local),
                                               secrets=secrets,
                                               secret_keys=secret_globs(vault)), label))
        for source, label in sources:
            outcome = run_source_backup(vault, SourceBackupRequest(
                source=source, label=label, tags=tags, group_id=group[0],
                group_time=group[1]), reporter)
            assert outcome.snapshot is not None
            snapshots.append(outcome.snapshot)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return snapshots


def app_name(archive: Path) -> str:
    """The application's name, from the archive's file name (a valid source name)."""
    from vault.sources.sqlite.source import name_for

    return name_for(archive)


def new_group() -> tuple[str, datetime]:
    return f"group-{uuid.uuid4().hex[:16]}", datetime.now(UTC)


def _extract(archive: Archive, path: str, member: Member, local: Path) -> None:
    local.parent.mkdir(mode=0o700)
    item = next(archive.items(MemberPlan(accepted={path: member})))
    # 0600 from the first byte: a settings file holds the application's secrets.
    with item.open() as stream, \
            os.fdopen(os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        shutil.copyfileobj(stream, out)
