"""Checks a restore makes before it touches anything.

* Compatibility (pure, `version_warnings`): a snapshot written in a format newer than this
  vault reads is refused; one written by an older format or an older vault is restored,
  with a warning *record* (`{"kind": "older_version", ...}`) that the report, the JSON
  summary and the journal carry as data.
* Integrity (`missing_objects`): every tree and every data blob the selection needs is in
  the index, and every pack holding them exists in storage (one listing, no pack is read).
  A restore that would stop halfway through because a blob is gone is refused up front.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vault.errors import IntegrityError, UnsupportedFormat, UsageError
from vault.repository.repository import Repository, vault_version
from vault.repository.snapshot import SNAPSHOT_VERSION, Snapshot
from vault.repository.tree_limits import check_tree_limits
from vault.restore.selection import Selection


class SnapshotIncomplete(IntegrityError):
    """snapshot {snapshot} cannot be restored: {count} object(s) it needs are missing from {repo} ({first}); nothing was written; run `vault verify`"""  # noqa: E501


def _version_tuple(text: str) -> tuple[int, ...] | None:
    """"0.1.0" -> (0, 1, 0); "1.2.0rc1" -> (1, 2, 0); None when it is not a version."""
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts) or None


def version_warnings(snapshot: Snapshot, *, reads: int = SNAPSHOT_VERSION,
                     running: str | None = None, repo: str = "") -> list[dict[str, Any]]:
    """Warning records for a snapshot from another version (pure); raises
    UnsupportedFormat for a snapshot format newer than `reads`."""
    running = running if running is not None else vault_version()
    if snapshot.version > reads:
        raise UnsupportedFormat(repo=repo or "the repository",
                                version=f"{snapshot.version} (snapshot {snapshot.short_id})",
                                supported=reads)
    theirs, ours = _version_tuple(snapshot.vault_version), _version_tuple(running)
    older_vault = theirs is not None and ours is not None and theirs < ours
    if snapshot.version < reads or older_vault:
        return [{"kind": "older_version", "snapshot_id": snapshot.id,
                 "snapshot_version": snapshot.version, "format_version": reads,
                 "snapshot_vault_version": snapshot.vault_version,
                 "vault_version": running}]
    return []


@dataclass
class MissingObjects:
    trees: list[str] = field(default_factory=list)  # hex ids
    blobs: list[str] = field(default_factory=list)
    packs: list[str] = field(default_factory=list)
    checked_blobs: int = 0

    def __bool__(self) -> bool:
        return bool(self.trees or self.blobs or self.packs)

    def first(self) -> str:
        for kind, ids in (("tree", self.trees), ("blob", self.blobs), ("pack", self.packs)):
            if ids:
                return f"{kind} {ids[0][:12]}"
        return "none"

    def count(self) -> int:
        return len(self.trees) + len(self.blobs) + len(self.packs)


def missing_objects(repo: Repository, tree: bytes, base: str,
                    selection: Selection | None = None) -> MissingObjects:
    """What the restore of `tree` (found at path `base` in the snapshot) under `selection`
    needs but the repository lacks. Trees are read (the restore reads them anyway, and a
    damaged one is as missing as an absent one); data blobs are only looked up."""
    index = repo.load_index()
    found = MissingObjects()
    packs: set[str] = set()
    pending = [(tree, base)]
    while pending:
        tree_id, path = pending.pop()
        entry = index.get(tree_id)
        if entry is None:
            found.trees.append(tree_id.hex())
            continue
        packs.add(entry.pack_id)
        try:
            nodes = repo.load_tree(tree_id)
        except IntegrityError:
            found.trees.append(tree_id.hex())
            continue
        for node in nodes:
            child = path.rstrip("/") + "/" + node.name
            if node.type == "dir" and node.subtree is not None:
                if selection is None or selection.may_contain(child):
                    pending.append((node.subtree, child))
            elif node.type == "file" and (selection is None or selection.wants(child)):
                for blob in node.content:
                    found.checked_blobs += 1
                    blob_entry = index.get(blob)
                    if blob_entry is None:
                        found.blobs.append(blob.hex())
                    else:
                        packs.add(blob_entry.pack_id)
    stored = {info.name for info in repo.storage.list("data")}
    found.packs = sorted(packs - stored)
    return found


def check_before_restore(repo: Repository, snapshot: Snapshot, tree: bytes | None = None,
                         base: str = "/",
                         selection: Selection | None = None) -> list[dict[str, Any]]:
    """Run every check; returns the warning records, raises when the restore must not
    start (UnsupportedFormat, SnapshotIncomplete)."""
    warnings = version_warnings(snapshot, repo=repo.location)
    root = tree if tree is not None else bytes.fromhex(snapshot.tree)
    check_tree_limits(repo, root)  # a hostile tree is refused, not walked
    missing = missing_objects(repo, root, base, selection)
    if missing:
        raise SnapshotIncomplete(snapshot=snapshot.short_id, count=missing.count(),
                                 repo=repo.location, first=missing.first())
    return warnings


#: Asked before a destructive restore writes: (the target, the plan's JSON without its
#: items). It returns to go on and raises (a VaultError) to refuse; the CLI asks the
#: operator or demands --yes, the worker honours the --yes given at enqueue time.
Confirm = Callable[[str, dict[str, Any]], None]


def warning_text(record: dict[str, Any]) -> str:
    """One line for a warning record (pure): what humans and the journal read."""
    kind = record.get("kind")
    if kind == "older_version":
        return (f"older_version: snapshot {str(record.get('snapshot_id', ''))[:8]} was "
                f"written by vault {record.get('snapshot_vault_version')} (snapshot format "
                f"{record.get('snapshot_version')}); this is vault "
                f"{record.get('vault_version')} (format {record.get('format_version')})")
    if kind == "post_hook_failed":
        how = "timed out" if record.get("timed_out") else \
            f"exited with status {record.get('exit_code')}"
        return f"post_hook_failed: `{record.get('command')}` {how}"
    return f"{kind}: " + ", ".join(f"{k}={v}" for k, v in record.items() if k != "kind")


class RestoreNotConfirmed(UsageError):
    """restore into {target} would change what is there ({changes}): {how}; nothing was written"""


def plan_changes(plan: dict[str, Any]) -> str:
    """"overwrite 3, delete 1" from a plan's JSON (pure)."""
    totals = plan.get("totals")
    if not isinstance(totals, dict):
        return "it replaces the target's data" if plan.get("mode") == "replace" else "?"
    shown = [f"{action} {totals[action]}" for action in ("overwrite", "delete")
             if totals.get(action)]
    return ", ".join(shown) or "it overwrites or deletes"


def refuse_unconfirmed(target: str, plan: dict[str, Any]) -> None:
    """The `Confirm` of a restore nobody can be asked about (a queued job without --yes)."""
    raise RestoreNotConfirmed(target=target, changes=plan_changes(plan),
                              how="it was queued without --yes")
