"""Quotas in the operations: measure the stored size, refuse a backup that would pass the
quota, and journal StorageLow / StorageRecovered when usage crosses `warn_at`.

The decisions are vault.planning.quota's pure functions; this module does the listing and the
journal I/O. `record_storage_usage` is the one place a storage event is born: whatever
should react to low storage (notifications) hooks its return value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vault.errors import QuotaExceeded, QuotaReached
from vault.foundation.units import human_bytes
from vault.journal import events as ev
from vault.operations import usage_figures
from vault.planning.quota import (
    LastStorageEvent,
    QuotaGuard,
    StorageUsage,
    threshold_crossing,
    would_exceed,
)
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver
from vault.runtime.app import Vault
from vault.storage.base import ObjectKind, Storage

#: what counts against the quota: the repository's data, not its keys, locks or config
STORED_KINDS: tuple[ObjectKind, ...] = ("data", "index", "snapshots")
_STORAGE_EVENTS = ["StorageLow", "StorageRecovered"]


def stored_bytes(storage: Storage) -> int:
    """The repository's stored size, from the storage listing (no passphrase needed): the
    listings this command took already where it has them (a backup lists packs, index
    files and snapshots as it starts, seconds before its quota check), else a new one."""
    return usage_figures.measure(storage).stored_bytes


def storage_usage(vault: Vault, storage: Storage, repo_id: str | None = None, *,
                  refresh: bool = False) -> StorageUsage:
    """Usage against the quota. With the repository's id, from the figures remembered in
    the local state (listing only when there are none yet, or `refresh`): what `vault
    status` and the TUI show, with their age (usage_figures.py)."""
    cfg = vault.config.repository
    if repo_id is None:
        return StorageUsage(used=stored_bytes(storage), quota=cfg.quota,
                            warn_percent=cfg.warn_at)
    figures = usage_figures.current(vault.config.resolved_state_dir(), repo_id, storage,
                                    refresh=refresh)
    return StorageUsage(used=figures.stored_bytes, quota=cfg.quota, warn_percent=cfg.warn_at,
                        measured_at=figures.measured_at)


def check_quota(vault: Vault, repo: Repository, estimated_new: int) -> int | None:
    """Raise QuotaExceeded when `estimated_new` more bytes would pass the quota; the
    stored size it measured (None without a quota), for `quota_guard`."""
    quota = vault.config.repository.quota
    if quota is None:
        return None
    used = stored_bytes(repo.storage)
    if would_exceed(used, estimated_new, quota):
        raise QuotaExceeded(repo=repo.location, used=human_bytes(used),
                            new=human_bytes(estimated_new), quota=human_bytes(quota))
    return used


def quota_guard(vault: Vault, repo: Repository, used: int | None = None) -> QuotaGuard | None:
    """The hard quota for one backup's saver (None without a quota): every pack is
    admitted against the stored size (`used` as `check_quota` just measured it, or
    measured now: one listing, docs/config.md#quotas)."""
    quota = vault.config.repository.quota
    if quota is None:
        return None
    if used is None:
        used = stored_bytes(repo.storage)
    return QuotaGuard(used=used, quota=quota, repo=repo.location)


def writing_saver(vault: Vault, repo: Repository, estimated_new: int) -> BlobSaver:
    """The saver of an operation that adds data (an import): the quota checked first on
    the estimate, then on every pack it writes (wrap the writing in
    `keeping_written_packs`)."""
    used = check_quota(vault, repo, estimated_new)
    cfg = vault.config.repository
    return BlobSaver(repo, compression_level=cfg.compression_level,
                     pack_size=cfg.pack_size_mib << 20, budget=quota_guard(vault, repo, used))


@contextmanager
def keeping_written_packs(saver: BlobSaver) -> Iterator[None]:
    """A backup stopped by the quota indexes the packs it wrote before it fails, so the
    next backup finds their blobs and does not store them again."""
    try:
        yield
    except QuotaReached:
        saver.index_written()
        raise


def last_storage_event(vault: Vault, repo_id: str) -> LastStorageEvent:
    """Whether the journal last said this repository's storage was low or recovered."""
    found = vault.journal.read(stream_id=f"repository-{repo_id}", types=_STORAGE_EVENTS,
                               limit=1, descending=True)
    if not found:
        return None
    return "StorageLow" if found[0].type == "StorageLow" else "StorageRecovered"


def storage_low_event(vault: Vault, repo: Repository
                      ) -> ev.StorageLow | ev.StorageRecovered | None:
    """The event the current usage calls for (not journaled), or None.

    Measures the usage afresh and remembers it (the figures `vault status` shows)."""
    last = last_storage_event(vault, repo.id)
    usage = storage_usage(vault, repo.storage, repo.id, refresh=True)
    if vault.config.repository.quota is None and last != "StorageLow":
        return None
    crossing = threshold_crossing(usage, last)
    if crossing is None:
        return None
    event_type = ev.StorageLow if crossing == "StorageLow" else ev.StorageRecovered
    return event_type(repo_id=repo.id, repository=repo.location, used_bytes=usage.used,
                      quota_bytes=usage.quota or 0, percent=round(usage.percent or 0.0, 2),
                      warn_percent=usage.warn_percent)


def record_storage_usage(vault: Vault, repo: Repository
                         ) -> ev.StorageLow | ev.StorageRecovered | None:
    """Journal StorageLow/StorageRecovered if usage crossed `warn_at` since the last one,
    and return it (None when nothing changed). Called after backup, forget, prune and copy
    (of the destination): the stored-size figures are measured again each time.

    A StorageLow is also sent to the notification targets whose `on` holds
    `low_storage` (`vault.notify`, which never raises)."""
    event = storage_low_event(vault, repo)
    if event is not None:
        vault.journal.append(f"repository-{repo.id}", event)
    if isinstance(event, ev.StorageLow) and vault.config.notifications:
        from vault.foundation.units import human_bytes
        from vault.notify import Notice, notify

        notify(vault.config, vault.journal, Notice(
            "low_storage",
            f"repository {repo.location} is {event.percent:.0f}% full "
            f"({human_bytes(event.used_bytes)} of {human_bytes(event.quota_bytes)})",
            {"repo_id": repo.id, "used_bytes": event.used_bytes,
             "quota_bytes": event.quota_bytes, "percent": event.percent,
             "warn_percent": event.warn_percent}))
    return event
