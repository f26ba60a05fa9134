"""The restore browser's tree: which snapshots there are, and what one holds, a level at
a time.

`snapshot_choices` reads the journal's snapshots projection (newest first). A
`SnapshotBrowser` reads one snapshot from the repository: for files the backed-up paths,
then a directory's entries when it is expanded; for a database the entity hierarchy with
its counts (as `vault ls --source` shows it) and the tables or collections with theirs,
from the snapshot's meta, then an entity's records (`restore_records`) when it is
expanded. Every method that reads runs in a worker thread; the tree entries are plain
data the screen turns into nodes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vault.foundation.sqlite_readonly import open_read_only
from vault.foundation.units import human_bytes
from vault.operations.restore import resolve_subtree
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node, same_name
from vault.restore.items import SnapshotItems
from vault.sources.entities import Entity, EntityNode, entity_tree, subtree
from vault_tui.data.restore_plan import Mark, SnapshotChoice
from vault_tui.data.restore_records import (
    Key,
    RecordPage,
    RecordReader,
    entities_of,
    record_reader,
)

__all__ = ["SnapshotBrowser", "TreeEntry", "database_entries", "snapshot_choices"]

EntryKind = Literal["dir", "file", "symlink", "group", "table", "entity", "record", "item",
                    "note"]


@dataclass(frozen=True)
class TreeEntry:
    """One node of the tree. `mark` is what marking it selects (None: not markable);
    `children` are known already (from the snapshot's meta) or, when None and
    `expandable`, read by `SnapshotBrowser.children` on expansion."""

    label: str
    kind: EntryKind
    mark: Mark | None = None
    expandable: bool = False
    children: tuple[TreeEntry, ...] | None = None
    tree_id: str | None = None  # a directory's tree (hex)
    entity: str | None = None  # entity and record entries
    record: Key | None = None  # record entries


# --- the snapshots on offer -------------------------------------------------------------------


def snapshot_choices(journal_path: Path) -> list[SnapshotChoice]:
    """Completed and partial snapshots the journal saw made, newest first; a restore's
    safety copies (tag `pre-restore`) are left out: undo reaches them."""
    if not journal_path.exists():
        return []
    conn = open_read_only(journal_path, timeout=30)
    try:
        rows = conn.execute(
            "SELECT snapshot_id, snapshot_time, source_type, source, paths, tags, bytes_raw,"
            " status FROM snapshots WHERE status IN ('completed', 'partial')"
            " ORDER BY snapshot_time DESC, recorded_seq DESC").fetchall()
    except sqlite3.OperationalError:  # a journal from before the projection existed
        return []
    finally:
        conn.close()
    return [SnapshotChoice(row[0], row[1], row[2] or "files", row[3], tuple(json.loads(row[4])),
                           int(row[6]), row[7])
            for row in rows if "pre-restore" not in json.loads(row[5])]


# --- database snapshots: the tree from the meta -----------------------------------------------


def _unit(source_type: str) -> str:
    return "documents" if source_type == "mongodb" else "rows"


def _entity_entry(node: EntityNode, entities: tuple[Entity, ...], unit: str) -> TreeEntry:
    dates = f"  {node.first} .. {node.last}" if node.first or node.last else ""
    tables = tuple(e.collection for e in subtree(entities, node.name))
    below = f" with its {', '.join(tables[1:])}" if len(tables) > 1 else ""
    return TreeEntry(f"{node.name} ({node.collection}): {node.documents} {unit}{dates}",
                     "entity", Mark("tables", tables, text=f"all of {node.collection}{below}"),
                     expandable=True, entity=node.name)


def _table_entries(source_type: str, meta: Mapping[str, Any]) -> list[TreeEntry]:
    if source_type == "sqlite":
        return [TreeEntry(f"{name}: {rows} rows", "table", Mark("tables", (name,)))
                for name, rows in sorted((meta.get("tables") or {}).items())]
    if source_type == "postgresql":
        entries = []
        for table in meta.get("tables") or []:
            name = f"{table['schema']}.{table['name']}"
            rows = table.get("rows")
            count = f"{rows} rows" if rows is not None else \
                f"~{table.get('estimated_rows', '?')} rows"
            size = f", {human_bytes(int(table['bytes']))}" if table.get("bytes") else ""
            entries.append(TreeEntry(f"{name}: {count}{size}", "table",
                                     Mark("tables", (name,))))
        return entries
    if source_type == "mongodb":
        by_database: dict[str, list[TreeEntry]] = {}
        for full, stats in sorted((meta.get("collections") or {}).items()):
            database, _, name = full.partition(".")
            by_database.setdefault(database, []).append(TreeEntry(
                f"{name}: {stats.get('documents', 0)} documents, "
                f"{human_bytes(int(stats.get('bytes') or 0))}", "table",
                Mark("tables", (full,))))
        return [TreeEntry(f"{database}: {len(colls)} collection(s)", "group",
                          Mark("tables", tuple(c.mark.names[0] for c in colls if c.mark),
                               text=f"database {database}"),
                          expandable=True, children=tuple(colls))
                for database, colls in by_database.items()]
    return []


def database_entries(source_type: str, meta: Mapping[str, Any],
                     items: list[str]) -> list[TreeEntry]:
    """The top of a database snapshot's tree (pure): its entities, then its tables or
    collections with their counts; a snapshot with neither shows its stored items."""
    entries = []
    unit = _unit(source_type)
    entities = entities_of(meta)
    if entities:
        roots = tuple(_entity_entry(node, entities, unit) for node in entity_tree(meta))
        entries.append(TreeEntry("entities", "group", expandable=True, children=roots))
    tables = _table_entries(source_type, meta)
    if tables:
        name = "collections" if source_type == "mongodb" else "tables"
        entries.append(TreeEntry(name, "group", expandable=True, children=tuple(tables)))
    if not entries:
        entries = [TreeEntry(item, "item") for item in items]
    return entries


# --- reading a snapshot ------------------------------------------------------------------------


def _node_entry(node: Node, path: str, label: str | None = None) -> TreeEntry:
    name = label or node.name
    mark = Mark("path", (path,))
    if node.type == "dir" and node.subtree is not None:
        return TreeEntry(f"{name}/", "dir", mark, expandable=True, tree_id=node.subtree.hex())
    if node.type == "symlink":
        return TreeEntry(f"{name} -> {node.link_target}", "symlink", mark)
    return TreeEntry(f"{name}  {human_bytes(node.size)}", "file", mark)


@dataclass
class SnapshotBrowser:
    """Reads one snapshot for the tree. Its methods may run in several worker threads at
    once: the repository is read under one lock."""

    repo: Repository
    snapshot: Snapshot
    scratch_dir: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reader: RecordReader | None = None
    _stored: SnapshotItems | None = None
    #: what a files restore puts into the target: the one directory backed up, else "/"
    base: str = "/"

    @property
    def source_type(self) -> str:
        return str(self.snapshot.source.get("type", "files"))

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.snapshot.source.get("meta")
        return dict(meta) if isinstance(meta, dict) else {}

    def root_entries(self) -> list[TreeEntry]:
        with self._lock:
            self.repo.refresh_index()  # the worker may have saved packs since it was read
            if self.source_type == "files":
                entries = [self._path_entry(path) for path in self.snapshot.paths]
                if len(entries) == 1 and entries[0].kind == "dir" and entries[0].mark:
                    self.base = entries[0].mark.names[0]
                return entries
            self._stored = SnapshotItems(self.repo, self.snapshot)
            self._reader = record_reader(self.source_type, self._stored, self.scratch_dir)
            return database_entries(self.source_type, self.meta, self._stored.paths())

    def _path_entry(self, path: str) -> TreeEntry:
        """A backed-up path, shown whole (no walk from / through its parents)."""
        if not path.strip("/"):
            return TreeEntry("/", "dir", Mark("path", ("/",)), expandable=True,
                             tree_id=self.snapshot.tree)
        parent, _, name = path.rstrip("/").rpartition("/")
        found = [n for n in self.repo.load_tree(resolve_subtree(self.repo, self.snapshot,
                                                                parent or "/"))
                 if same_name(n.name, name)]
        if not found:
            return TreeEntry(f"{path} (not in the snapshot)", "note")
        return _node_entry(found[0], path, label=path)

    def children(self, entry: TreeEntry) -> list[TreeEntry]:
        if entry.children is not None:
            return list(entry.children)
        with self._lock:
            if entry.kind == "dir" and entry.tree_id and entry.mark:
                return self._directory(entry.mark.names[0], bytes.fromhex(entry.tree_id))
            if entry.kind == "entity" and entry.entity:
                return self._entity(entry.entity)
            if entry.kind == "record" and entry.entity and entry.record is not None:
                return self._below_record(entry.entity, entry.record)
        return []

    def _directory(self, path: str, tree: bytes) -> list[TreeEntry]:
        nodes = sorted(self.repo.load_tree(tree), key=lambda n: (n.type != "dir", n.name))
        return [_node_entry(node, f"{path.rstrip('/')}/{node.name}") for node in nodes]

    def _entities(self) -> tuple[Entity, ...]:
        return entities_of(self.meta)

    def _entity(self, name: str) -> list[TreeEntry]:
        """Below an entity: the entities under it (with their counts), then its records."""
        entities = self._entities()
        nodes = {node.name: node for node in _flatten(entity_tree(self.meta))}
        below = [_entity_entry(nodes[e.name], entities, _unit(self.source_type))
                 for e in entities if e.parent == name and e.name in nodes]
        entity = next(e for e in entities if e.name == name)
        return below + self._records(entity, None)

    def _below_record(self, name: str, key: Key) -> list[TreeEntry]:
        """Below a record: the records of each entity under it that belong to it."""
        found: list[TreeEntry] = []
        for child in self._entities():
            if child.parent == name and child.key:
                found += self._records(child, (child.key, key))
        return found

    def _records(self, entity: Entity, parent: tuple[str, Key] | None) -> list[TreeEntry]:
        if self._reader is None:
            return [TreeEntry(f"(the records of a {self.source_type} snapshot are not "
                              "listed)", "note")]
        page: RecordPage = self._reader.records(entity, parent)
        has_children = any(e.parent == entity.name for e in self._entities())
        entries = [TreeEntry(f"{entity.name} {r.key}  {r.preview}".rstrip(), "record",
                             Mark("record", (entity.name,), r.key, f"{entity.name} {r.key}"),
                             expandable=has_children, entity=entity.name, record=r.key)
                   for r in page.records]
        if page.total > len(page.records):
            entries.append(TreeEntry(f"... and {page.total - len(page.records)} more "
                                     f"{entity.name} records", "note"))
        return entries

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


def _flatten(nodes: list[EntityNode]) -> list[EntityNode]:
    out: list[EntityNode] = []
    for node in nodes:
        out += [node, *_flatten(node.children)]
    return out
