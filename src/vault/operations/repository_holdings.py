"""`vault status` with `[[repositories]]`: each configured repository, its id (from its
plain config object: no passphrase) and the newest snapshot of each source in it, from the
journal (planning.repository_holdings). A repository that cannot be reached is listed with
the reason, never fails the dashboard."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.errors import VaultError
from vault.journal.queries import events_of_type, parse_time
from vault.planning.repository_holdings import HeldSnapshot, NewestSnapshot, newest_per_source
from vault.repository.repository import read_config
from vault.runtime.app import Vault
from vault.storage.registry import open_storage

#: events read per type: far more than a journal holds of them in years of daily backups
_EVENTS_READ = 1_000_000


@dataclass
class RepositoryHoldings:
    name: str
    url: str
    current: bool  # the repository this command uses (-r, or the default)
    repo_id: str | None = None
    error: str | None = None
    newest: list[NewestSnapshot] = field(default_factory=list)


def repository_holdings(vault: Vault) -> list[RepositoryHoldings]:
    """One entry per `[[repositories]]` entry ([] without any)."""
    config = vault.config
    if not config.repositories:
        return []
    held, forgotten = _journal_holdings(config.journal_path())
    found = []
    for entry in config.repositories:
        settings = entry.settings()
        item = RepositoryHoldings(entry.name, settings.url,
                                  current=settings.url == config.repository.url)
        try:
            storage = vault.storage if item.current else open_storage(settings.url, settings)
            try:
                item.repo_id = str(read_config(storage)["id"])
            finally:
                if not item.current:
                    storage.close()
        except VaultError as exc:
            item.error = exc.message
        if item.repo_id is not None:
            item.newest = newest_per_source(held, forgotten, item.repo_id)
        found.append(item)
    return found


def _journal_holdings(journal: Path) -> tuple[list[HeldSnapshot], set[tuple[str, str]]]:
    held = [_backed_up(row["payload"]) for row in
            events_of_type(journal, "BackupCompleted", limit=_EVENTS_READ)]
    held += [_copied(row["payload"]) for row in
             events_of_type(journal, "SnapshotCopied", limit=_EVENTS_READ)]
    forgotten = {(row["payload"]["repo_id"], row["payload"]["snapshot_id"]) for row in
                 events_of_type(journal, "SnapshotForgotten", limit=_EVENTS_READ)}
    return [h for h in held if h is not None], forgotten


def _backed_up(payload: dict[str, Any]) -> HeldSnapshot | None:
    time = parse_time(payload.get("snapshot_time"))
    if time is None:
        return None
    source = payload.get("source") or ",".join(payload.get("paths") or [])
    return HeldSnapshot(str(payload["repo_id"]), str(payload["snapshot_id"]), str(source),
                        time)


def _copied(payload: dict[str, Any]) -> HeldSnapshot | None:
    time = parse_time(payload.get("snapshot_time"))
    if time is None:
        return None
    return HeldSnapshot(str(payload["to_repo_id"]), str(payload["to_snapshot_id"]),
                        str(payload.get("source") or ""), time)


def newest_age_seconds(snapshot: NewestSnapshot, now: datetime) -> float:
    return (now - snapshot.time).total_seconds()
