"""The restore browser's tree: which snapshots there are, and what one holds, a level at
a time.

`snapshot_choices` reads the journal's snapshots projection (newest first). A
`SnapshotBrowser` reads one snapshot from the repository: for files the backed-up paths,
then a directory's entries when it is expanded; for a database what the source type's
browser (`vault.sources.browse`) finds in it: the entity hierarchy with its counts (as
`vault ls --source` shows it) and the tables or collections with theirs, then an entity's
records when it is expanded. Every method that reads runs in a worker thread; the tree
entries are plain data the screen turns into nodes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vault.foundation.sqlite_readonly import open_read_only
from vault.foundation.units import human_bytes
from vault.operations.restore import resolve_subtree
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node, same_name
from vault.restore.items import SnapshotItems
from vault.sources.browse import (
    Key,
    Match,
    RecordReader,
    SnapshotContents,
    StoredRecord,
    StoredTable,
)
from vault.sources.entities import Entity, EntityNode, subtree
from vault.sources.registry import browser_for
from vault_tui.data.restore_plan import Mark, SnapshotChoice

__all__ = ["PREVIEW", "SnapshotBrowser", "TreeEntry", "database_entries", "preview",
           "snapshot_choices"]

EntryKind = Literal["dir", "file", "symlink", "group", "table", "entity", "record", "item",
                    "note"]
#: characters of a record's other values shown beside its key
PREVIEW = 40


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


# --- database snapshots: the tree from their contents ---------------------------------------


def preview(record: StoredRecord) -> str:
    """A few of a record's other values, to recognise it by beside its key."""
    shown = " ".join("-" if v is None else f"<{len(v)} bytes>" if isinstance(v, bytes)
                     else str(v) for _, v in record.fields)
    return shown if len(shown) <= PREVIEW else shown[:PREVIEW - 1] + "…"


def _entity_entry(node: EntityNode, entities: tuple[Entity, ...], unit: str) -> TreeEntry:
    dates = f"  {node.first} .. {node.last}" if node.first or node.last else ""
    tables = tuple(e.collection for e in subtree(entities, node.name))
    below = f" with its {', '.join(tables[1:])}" if len(tables) > 1 else ""
    return TreeEntry(f"{node.name} ({node.collection}): {node.documents} {unit}{dates}",
                     "entity", Mark("tables", tables, text=f"all of {node.collection}{below}"),
                     expandable=True, entity=node.name)


def _table_entry(table: StoredTable, unit: str) -> TreeEntry:
    count = f"{table.count} {unit}" if table.count is not None else \
        f"~{'?' if table.estimated_count is None else table.estimated_count} {unit}"
    size = f", {human_bytes(table.bytes)}" if table.bytes is not None else ""
    return TreeEntry(f"{table.short_name}: {count}{size}", "table",
                     Mark("tables", (table.name,)))


def _table_entries(contents: SnapshotContents) -> list[TreeEntry]:
    """The tables, each database's collections under one group entry."""
    entries: list[TreeEntry] = []
    groups: dict[str, list[StoredTable]] = {}
    for table in contents.tables:
        if table.group is None:
            entries.append(_table_entry(table, contents.record_noun))
        else:
            groups.setdefault(table.group, []).append(table)
    noun = contents.table_noun.removesuffix("s")
    return entries + [
        TreeEntry(f"{group}: {len(tables)} {noun}(s)", "group",
                  Mark("tables", tuple(t.name for t in tables), text=f"database {group}"),
                  expandable=True,
                  children=tuple(_table_entry(t, contents.record_noun) for t in tables))
        for group, tables in groups.items()]


def database_entries(contents: SnapshotContents) -> list[TreeEntry]:
    """The top of a database snapshot's tree (pure): its entities, then its tables or
    collections with their counts; a snapshot with neither shows its stored items."""
    entries = []
    if contents.entities:
        roots = tuple(_entity_entry(node, contents.entities, contents.record_noun)
                      for node in contents.entity_tree)
        entries.append(TreeEntry("entities", "group", expandable=True, children=roots))
    tables = _table_entries(contents)
    if tables:
        entries.append(TreeEntry(contents.table_noun, "group", expandable=True,
                                 children=tuple(tables)))
    if not entries:
        entries = [TreeEntry(item, "item") for item in contents.items]
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
    _contents: SnapshotContents | None = None
    #: what a files restore puts into the target: the one directory backed up, else "/"
    base: str = "/"

    @property
    def source_type(self) -> str:
        return str(self.snapshot.source.get("type", "files"))

    def root_entries(self) -> list[TreeEntry]:
        with self._lock:
            self.repo.refresh_index()  # the worker may have saved packs since it was read
            if self.source_type == "files":
                entries = [self._path_entry(path) for path in self.snapshot.paths]
                if len(entries) == 1 and entries[0].kind == "dir" and entries[0].mark:
                    self.base = entries[0].mark.names[0]
                return entries
            stored = SnapshotItems(self.repo, self.snapshot)
            browser = browser_for(self.source_type)
            if browser is None:  # a type this vault cannot browse: its items, as stored
                return [TreeEntry(item, "item") for item in stored.paths()]
            self._contents = browser.contents(stored)
            self._reader = browser.reader(stored, self.scratch_dir)
            return database_entries(self._contents)

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
            if entry.kind == "entity" and entry.entity and self._contents:
                return self._entity(self._contents, entry.entity)
            if entry.kind == "record" and entry.entity and entry.record is not None \
                    and self._contents:
                return self._below_record(self._contents, entry.entity, entry.record)
        return []

    def _directory(self, path: str, tree: bytes) -> list[TreeEntry]:
        nodes = sorted(self.repo.load_tree(tree), key=lambda n: (n.type != "dir", n.name))
        return [_node_entry(node, f"{path.rstrip('/')}/{node.name}") for node in nodes]

    def _entity(self, contents: SnapshotContents, name: str) -> list[TreeEntry]:
        """Below an entity: the entities under it (with their counts), then its records."""
        entities = contents.entities
        nodes = {node.name: node for node in _flatten(contents.entity_tree)}
        below = [_entity_entry(nodes[e.name], entities, contents.record_noun)
                 for e in entities if e.parent == name and e.name in nodes]
        entity = next(e for e in entities if e.name == name)
        return below + self._records(contents, entity, None)

    def _below_record(self, contents: SnapshotContents, name: str, key: Key
                      ) -> list[TreeEntry]:
        """Below a record: the records of each entity under it that belong to it."""
        found: list[TreeEntry] = []
        for child in contents.entities:
            if child.parent == name and child.key:
                found += self._records(contents, child, (child.key, key))
        return found

    def _records(self, contents: SnapshotContents, entity: Entity, match: Match | None
                 ) -> list[TreeEntry]:
        if self._reader is None:
            return [TreeEntry(f"(the records of a {self.source_type} snapshot are not "
                              "listed)", "note")]
        page = self._reader.records(entity.collection, match)
        has_children = any(e.parent == entity.name for e in contents.entities)
        entries = [TreeEntry(f"{entity.name} {r.key}  {preview(r)}".rstrip(), "record",
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


def _flatten(nodes: Iterable[EntityNode]) -> list[EntityNode]:
    out: list[EntityNode] = []
    for node in nodes:
        out += [node, *_flatten(node.children)]
    return out
