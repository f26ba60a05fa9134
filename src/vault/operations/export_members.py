"""What an export holds: one snapshot or a group's members, and each one's trees in the
order the file needs them (every tree after the blobs and subtrees it names).

A settings snapshot whose secrets are sealed under the repository's key is carried with
them re-sealed under the export's own key (the source type's resealer): its `settings.json` becomes
one SETTINGS record and the trees above it are rewritten to name it. Redacted values stay
redacted; without an export key such a snapshot is refused (its secrets would otherwise
leave sealed under a key the importing repository does not have).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vault.errors import ConfigError, ExportRefused
from vault.operations.restore import split_ref
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node, encode_tree
from vault.restore.point_in_time import group_at
from vault.runtime.app import Vault
from vault.sources.base import SecretSealer
from vault.sources.registry import ItemResealer, resealer_for

#: a tree of a member: its id in the file, its nodes, and its body (None: the stored one)
TreeRecord = tuple[bytes, list[Node], bytes | None]


@dataclass
class ExportMember:
    snapshot: Snapshot
    root: bytes
    trees: list[TreeRecord]
    #: settings documents re-sealed for the export (id in the file -> document bytes)
    settings: dict[bytes, bytes] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot.model_dump(mode="json"),
                "snapshot_id": self.snapshot.id, "root": self.root.hex(),
                "settings_sealed": bool(self.settings)}


@dataclass(frozen=True)
class Selection:
    snapshots: list[Snapshot]
    #: {"name", "group_id", "group_time"} when the ref named a group, else None
    group: dict[str, Any] | None


def select(vault: Vault, repo: Repository, ref: str) -> Selection:
    """A configured group's name (its newest complete backup), a group id
    (`group-...`), or one snapshot (`latest`, an id or a prefix)."""
    snapshots = repo.snapshots()
    names = {g.name for g in vault.config.groups}
    if ref in names:
        try:
            members = [s.name for s in vault.config.group(ref)]
        except ConfigError as exc:
            raise ExportRefused(snapshot=ref, detail=str(exc)) from exc
        picks = group_at(snapshots, members, datetime.now(UTC))
        if picks is None:
            raise ExportRefused(snapshot=ref, detail="no backup of the group in which all "
                                f"of {', '.join(members)} completed")
        chosen = [picks[name] for name in members]
        return Selection(chosen, _group_doc(ref, chosen))
    if ref.startswith("group-"):
        chosen = [s for s in snapshots if s.group_id == ref]
        if not chosen:
            raise ExportRefused(snapshot=ref, detail="no snapshot belongs to this group")
        return Selection(chosen, _group_doc(None, chosen))
    return Selection([repo.find_snapshot(split_ref(ref)[0])], None)


def _group_doc(name: str | None, chosen: list[Snapshot]) -> dict[str, Any]:
    first = chosen[0]
    when = first.group_time or first.time
    return {"name": name, "group_id": first.group_id, "group_time": when.isoformat()}


def plan_member(repo: Repository, snapshot: Snapshot, repo_sealer: SecretSealer,
                export_sealer: SecretSealer | None) -> ExportMember:
    root = bytes.fromhex(snapshot.tree)
    trees: list[TreeRecord] = [(tid, nodes, None) for tid, nodes in post_order(repo, root)]
    resealer = resealer_for(str(snapshot.source.get("type")))
    if resealer is None:
        return ExportMember(snapshot, root, trees)
    member = ExportMember(snapshot, root, [])
    renamed: dict[bytes, bytes] = {}
    for tid, nodes, _body in trees:
        changed = False
        for node in nodes:
            if node.subtree is not None and node.subtree in renamed:
                node.subtree, changed = renamed[node.subtree], True
            if node.type == "file":
                changed = _carry_resealed(repo, snapshot, node, member, resealer,
                                          repo_sealer, export_sealer) or changed
        if changed:
            body = encode_tree(nodes)
            renamed[tid] = hashlib.sha256(b"vault-export-tree" + body).digest()
            member.trees.append((renamed[tid], nodes, body))
        else:
            member.trees.append((tid, nodes, None))
    member.root = renamed.get(root, root)
    return member


def _carry_resealed(repo: Repository, snapshot: Snapshot, node: Node, member: ExportMember,
                    resealer: ItemResealer, repo_sealer: SecretSealer,
                    export_sealer: SecretSealer | None) -> bool:
    """Re-seal a stored item's secrets for the export; whether the node changed."""
    data = b"".join(repo.load_blob(blob_id) for blob_id in node.content)
    seal = export_sealer.seal if export_sealer is not None else _refuse_plain(snapshot)
    carried = resealer(node.name, data, repo_sealer.unseal, seal)
    if carried is None:
        return False  # nothing sealed in it (redacted secrets stay redacted)
    blob_id = hashlib.sha256(b"vault-export-settings" + carried).digest()
    member.settings[blob_id] = carried
    node.content, node.size = [blob_id], len(carried)
    return True


def _refuse_plain(snapshot: Snapshot) -> Callable[[bytes], bytes]:
    """The sealer of an export without a key: reached only for a secret to carry."""

    def refuse(_plaintext: bytes) -> bytes:
        raise ExportRefused(snapshot=snapshot.short_id, detail="its settings hold secrets "
                            "sealed with this repository's key; export it encrypted "
                            "(without --no-encrypt) so they are re-sealed for the file")
    return refuse


def post_order(repo: Repository, tree_id: bytes) -> list[tuple[bytes, list[Node]]]:
    """(tree id, nodes) of every distinct tree, each after the subtrees it names."""
    order: list[tuple[bytes, list[Node]]] = []
    seen: set[bytes] = set()
    # Iterative: a deep directory tree must not hit Python's recursion limit.
    stack: list[tuple[bytes, list[Node] | None]] = [(tree_id, None)]
    while stack:
        tid, nodes = stack.pop()
        if nodes is not None:
            order.append((tid, nodes))
            continue
        if tid in seen:
            continue
        seen.add(tid)
        loaded = repo.load_tree(tid)
        stack.append((tid, loaded))
        stack.extend((n.subtree, None) for n in loaded
                     if n.type == "dir" and n.subtree and n.subtree not in seen)
    return order
