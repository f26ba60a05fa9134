"""The repository's stored size and object counts, measured by listing and remembered in
the local state, so `vault status`, `vault stats` and the TUI do not list every object of a
remote repository each time they are asked (a LIST of data/ is one request per thousand
packs).

Figures are measured again after every write of this host (backup, prune, forget, copy:
`record_storage_usage`) and on `vault stats --refresh`; readers show their age. Writes of
other hosts show up at the next refresh. The quota check before a backup is never decided
on remembered figures: it takes the listings the backup made as it started (`measure`).

One small JSON file per repository id: `<state dir>/repositories/<id[:16]>/usage.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vault.foundation.paths import ensure_private_dir
from vault.storage.base import ObjectKind, Storage
from vault.storage.cache import listing_memory

#: what is counted: the repository's data, not its keys, locks or config
MEASURED_KINDS: tuple[ObjectKind, ...] = ("data", "index", "snapshots")


@dataclass(frozen=True)
class UsageFigures:
    """Objects and bytes per kind, as a listing found them at `measured_at`."""

    measured_at: datetime
    objects: dict[str, int]
    sizes: dict[str, int]

    @property
    def stored_bytes(self) -> int:
        return sum(self.sizes.values())

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.measured_at).total_seconds())


def measure(storage: Storage, now: datetime | None = None) -> UsageFigures:
    """The measured kinds' objects and bytes: from the listings this process took already
    (a backup lists packs, index files and snapshots when it starts; the metadata cache
    adds what the process saved and removed since), else from a listing now."""
    memory = listing_memory(storage)
    objects: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for kind in MEASURED_KINDS:
        listed = memory.listed(kind) if memory is not None else None
        if listed is None:
            listed = {info.name: info.size for info in storage.list(kind)}
        objects[kind], sizes[kind] = len(listed), sum(listed.values())
    return UsageFigures(now or datetime.now(UTC), objects, sizes)


def figures_path(state_dir: Path, repo_id: str) -> Path:
    return state_dir / "repositories" / repo_id[:16] / "usage.json"


def remembered(state_dir: Path, repo_id: str) -> UsageFigures | None:
    """The figures last measured for this repository here, or None (never, or unreadable:
    a damaged file only costs one listing)."""
    try:
        doc = json.loads(figures_path(state_dir, repo_id).read_text())
        return UsageFigures(datetime.fromisoformat(doc["measured_at"]),
                            {k: int(v) for k, v in doc["objects"].items()},
                            {k: int(v) for k, v in doc["sizes"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remember(state_dir: Path, repo_id: str, figures: UsageFigures) -> None:
    """Keep `figures` (atomically; a state dir that refuses the write only costs the next
    reader a listing)."""
    path = figures_path(state_dir, repo_id)
    doc = {"measured_at": figures.measured_at.isoformat(), "objects": figures.objects,
           "sizes": figures.sizes}
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        ensure_private_dir(path.parent)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out)
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)


def refreshed(state_dir: Path, repo_id: str, storage: Storage) -> UsageFigures:
    """Measure now and remember."""
    figures = measure(storage)
    remember(state_dir, repo_id, figures)
    return figures


def current(state_dir: Path, repo_id: str, storage: Storage, *,
            refresh: bool = False) -> UsageFigures:
    """The remembered figures, measured first when there are none or `refresh`."""
    figures = None if refresh else remembered(state_dir, repo_id)
    return figures if figures is not None else refreshed(state_dir, repo_id, storage)
