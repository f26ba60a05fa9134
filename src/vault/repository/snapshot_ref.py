"""Which snapshot a reference names: `latest`, an id or a unique id prefix, narrowed by
the source, a path it must hold and the host (restic's `--path/--host` for `latest`).

`latest` is the newest snapshot *of the right source*: with a path (`latest:PATH`,
`vault ls latest PATH`, `--path P`) the newest snapshot that holds the path; without
one, the newest snapshot if every candidate is of one source (on one host), else the
reference is refused with the candidates listed, since restoring "whatever was backed
up last" over a live target is a guess. A restore's safety copies (tag `pre-restore`)
are never `latest`. Pure but for `holds`, which the repository answers from its trees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vault.errors import SnapshotNotFound, UsageError
from vault.repository.snapshot import Snapshot, source_name

LATEST = "latest"
PRE_RESTORE_TAG = "pre-restore"

#: does the snapshot hold this absolute path (a file or a directory in its tree)?
HoldsPath = Callable[[Snapshot, str], bool]


@dataclass(frozen=True)
class SnapshotCriteria:
    """What a snapshot reference must also match (None: anything)."""

    source: str | None = None  # a configured source name or label, or a backed-up path
    path: str | None = None  # an absolute path the snapshot holds
    host: str | None = None

    def describe(self) -> str:
        given = [f"--{name} {value}" for name, value in
                 (("source", self.source), ("path", self.path), ("host", self.host)) if value]
        return " ".join(given)


class LatestAmbiguous(UsageError):
    """`latest` is ambiguous: the repository holds snapshots of {count} sources ({names}); name the snapshot by id, or pick one with --source NAME, --path P or --host H"""  # noqa: E501

    def __init__(self, candidates: Sequence[Snapshot]) -> None:
        names = ", ".join(_candidate_name(s) for s in candidates)
        super().__init__(count=len(candidates), names=names)
        #: one line per candidate, shown under the error (the newest snapshot of each)
        self.problems = [
            f"{_candidate_name(s):<24} {s.short_id}  "
            f"{s.time.astimezone().strftime('%Y-%m-%d %H:%M')}  "
            f"{s.source.get('type', 'files')}  {','.join(s.paths)}  "
            f"(--source {source_name(s)} --host {s.host})" for s in candidates]


def _candidate_name(snapshot: Snapshot) -> str:
    return f"{source_name(snapshot)}@{snapshot.host}"


def names_of(snapshot: Snapshot) -> set[str]:
    """What `--source` may call a snapshot by: its source label and name, and its paths."""
    names = {str(v) for k, v in snapshot.source.items() if k in ("label", "name") and v}
    return names | set(snapshot.paths)


def resolve_snapshot(snapshots: Sequence[Snapshot], ref: str, criteria: SnapshotCriteria,
                     holds: HoldsPath, repo: str) -> Snapshot:
    """The snapshot `ref` names among `snapshots` (oldest first) under `criteria`.

    Raises SnapshotNotFound (exit 1) when none matches and LatestAmbiguous (exit 2) when
    `latest` could mean snapshots of several sources."""
    candidates = [s for s in snapshots if _matches(s, criteria)]
    if ref != LATEST:
        found = [s for s in candidates if s.id.startswith(ref)] if len(ref) >= 4 else []
        if len(found) != 1:
            raise SnapshotNotFound(ref=_shown(ref, criteria), repo=repo)
        return found[0]
    backups = [s for s in candidates if PRE_RESTORE_TAG not in s.tags]
    if criteria.path is not None and criteria.path.strip("/"):
        for snapshot in reversed(backups):
            if holds(snapshot, criteria.path):
                return snapshot
        raise SnapshotNotFound(ref=_shown(ref, criteria), repo=repo)
    if not backups:
        raise SnapshotNotFound(ref=_shown(ref, criteria), repo=repo)
    newest: dict[tuple[str, str], Snapshot] = {}
    for snapshot in backups:
        newest[(source_name(snapshot), snapshot.host)] = snapshot
    if len(newest) > 1:
        raise LatestAmbiguous(sorted(newest.values(), key=lambda s: (s.time, s.id),
                                     reverse=True))
    return backups[-1]


def _matches(snapshot: Snapshot, criteria: SnapshotCriteria) -> bool:
    return ((criteria.source is None or criteria.source in names_of(snapshot))
            and (criteria.host is None or snapshot.host == criteria.host))


def _shown(ref: str, criteria: SnapshotCriteria) -> str:
    narrowed = criteria.describe()
    return f"{ref} {narrowed}" if narrowed else ref


def holds_in_paths(snapshot: Snapshot, path: str) -> bool | None:
    """What the snapshot's recorded paths tell of `path` without reading a tree: False
    when a files snapshot's paths are neither at, above nor below it; True when `path`
    is one of them; None when only its tree can tell."""
    wanted = "/" + path.strip("/")
    if wanted in snapshot.paths or path in snapshot.paths:
        return True
    if snapshot.source.get("type", "files") != "files":
        return None
    for backed_up in snapshot.paths:
        root = "/" + backed_up.strip("/")
        if wanted.startswith(root.rstrip("/") + "/") or root.startswith(wanted + "/"):
            return None
    return False
