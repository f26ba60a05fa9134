"""What the source contract needs to know about each source type: how to set up a live
source holding a small known dataset, how to read its data back type for type, and how to
damage it (with what a restore plan must then say).

A harness yields a `Live`: the `[[sources]]` entry that configures vault for it, the
environment its secrets come from, `read()` (group -> record key -> the record, every
value tagged with its type, so 1, 1.0 and True never compare equal), `damage()`, which
deletes, changes and adds records and returns the `Expected` plan of a restore in mode
overwrite, and `elsewhere()`: a new target to restore a copy into (a `--target`
argument) and the `Live` that reads it. Then the browse side: `browse_view(data)`, the
records as the source type's browser must show them (vault.sources.browse: some show
less than the live database holds, e.g. PostgreSQL values as COPY text without their
types), and `browsed(group, key, fields)`, one browsed record in that shape. A type with
entities declares them (`entities`, an `EntityCase`) and `lose_entity()` deletes that
case's record with everything below it.

The harnesses: source_harness_sql.py (SQLite, PostgreSQL), source_harness_mongo.py,
source_harness_settings.py.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from source_servers import SourceServers

#: group (table, collection, settings) -> record key -> the record, typed
Data = dict[str, dict[Any, Any]]
Fields = tuple[tuple[str, Any], ...]  # a browsed record's other fields (StoredRecord)
Planned = set[tuple[str, str]]  # (group, key) of planned items


@dataclass(frozen=True)
class Expected:
    """What a restore in mode overwrite must plan after `damage()`."""

    create: Planned = field(default_factory=set)
    overwrite: Planned = field(default_factory=set)
    delete: Planned = field(default_factory=set)


@dataclass(frozen=True)
class EntityCase:
    """A source's entity hierarchy and one record of its top entity with its children,
    as a browser and an entity restore name them."""

    levels: tuple[tuple[str, str, str | None], ...]  # (entity, its group, parent entity)
    parent_entity: str
    parent_key: Any  # the record's key, as browsed; what `--query` ids name
    child_group: str
    child_field: str  # the child's field holding the parent's key
    child_keys: frozenset[Any]  # the children's keys, as browsed


class Live(Protocol):
    entry: dict[str, Any]  # the [[sources]] entry
    env: dict[str, str]  # where the entry's secrets are read from
    entities: EntityCase | None

    def read(self) -> Data: ...

    def damage(self) -> Expected: ...

    def elsewhere(self) -> tuple[str, Live]: ...

    def lose_entity(self) -> None: ...

    def browse_view(self, data: Data) -> Data: ...

    def browsed(self, group: str, key: Any, fields: Fields) -> Any: ...


@dataclass(frozen=True)
class HarnessContext:
    tmp_path: Path
    servers: SourceServers


@dataclass(frozen=True)
class Harness:
    #: the live source, its dataset loaded; it is removed when the context ends
    start: Callable[[HarnessContext], AbstractContextManager[Live]]
    #: items whose first bytes say when they were written (item -> how many bytes): two
    #: captures of unchanged data may differ there, and only there
    stamped: dict[str, int] = field(default_factory=dict)


def typed(value: Any) -> Any:
    """`value` with the type of every part beside it: equal results mean equal values
    of equal types all the way down."""
    if isinstance(value, dict):
        return ("dict", {key: typed(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(item) for item in value])
    return (type(value).__name__, value)
