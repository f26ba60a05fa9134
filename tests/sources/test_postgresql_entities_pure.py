"""The pure part of a PostgreSQL entity restore: which stored rows a selection takes,
read from COPY blocks as pg_dump writes them."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from vault.errors import UsageError
from vault.sources.entities import (
    Entity,
    EntitySelection,
    entities_from_meta,
    entity_selection_of,
)
from vault.sources.postgresql.entities import (
    PgEntityNotFound,
    PgEntityTableUnfit,
    entity_scope,
)
from vault.sources.postgresql.rows_plan import CopyBlock, data_lines
from vault.sources.postgresql.tools import TableRef

PROJECTS, SESSIONS, MESSAGES = (TableRef("public", "projects"), TableRef("app", "sessions"),
                                TableRef("public", "messages"))
TABLES = [MESSAGES, PROJECTS, SESSIONS]
KEYS = {PROJECTS: ["id"], SESSIONS: ["id"], MESSAGES: ["id"]}
ENTITIES = (Entity("project", "projects"),
            Entity("session", "app.sessions", "project", "project_id"),
            Entity("message", "messages", "session", "session_id"))
# As pg_dump writes them: escapes, NULLs, a key spelled as text (uuid-like), and a
# `setval` after the block that is not a row.
BLOCKS = {
    PROJECTS: b"COPY public.projects (id, title) FROM stdin;\n"
              b"1\tone\n2\ttwo\\tand\\\\ more\n3\t\\N\n\\.\n\n"
              b"SELECT pg_catalog.setval('public.projects_id_seq', 3, true);\n",
    SESSIONS: b'COPY app.sessions (id, "project_id", started) FROM stdin;\n'
              b"10\t2\t2026-01-01\n11\t1\t\\N\n12\t2\t2026-01-03\n13\t\\N\tx\n\\.\n",
    MESSAGES: b"COPY public.messages (id, session_id, body) FROM stdin;\n"
              + b"".join(f"{m}\t{10 + m % 4}\tm{m}\\n\n".encode() for m in range(1, 13))
              + b"\\.\n",
}


def pg_selection(query: dict[str, object]) -> EntitySelection:
    return entity_selection_of(query, "PostgreSQL")


def read_block(table: TableRef) -> tuple[list[str], Iterable[bytes]]:
    data = b"--\n-- PostgreSQL database dump\n--\n" + BLOCKS[table]
    block = CopyBlock([data[i:i + 7] for i in range(0, len(data), 7)], table.qualified)
    return block.columns(), data_lines(block.rows())


def test_the_closure_follows_the_references_on_the_stored_rows() -> None:
    scope = entity_scope(ENTITIES, pg_selection({"entity": "project", "ids": ["2"]}),
                         TABLES, KEYS, read_block, "utf-8")
    assert [t.table for t in scope.tables] == [PROJECTS, SESSIONS, MESSAGES]
    assert scope.rows["public.projects"].keys == ["2"]
    assert scope.rows["public.projects"].lines == [b"2\ttwo\\tand\\\\ more"]  # as stored
    assert scope.rows["app.sessions"].keys == ["10", "12"]
    assert scope.rows["public.messages"].keys == [str(m) for m in range(1, 13)
                                                  if 10 + m % 4 in (10, 12)]
    assert b"".join(scope.rows["app.sessions"].copy_data()) == (
        b"10\t2\t2026-01-01\n12\t2\t2026-01-03\n\\.\n")
    assert scope.references() == {"app.sessions": {"project_id": "public.projects"},
                                   "public.messages": {"session_id": "app.sessions"}}


def test_a_selection_below_the_top_and_numbers_or_text_alike() -> None:
    scope = entity_scope(ENTITIES, pg_selection({"entity": "session", "ids": [11, "13"]}),
                         TABLES, KEYS, read_block, "utf-8")
    assert [t.table for t in scope.tables] == [SESSIONS, MESSAGES]
    assert scope.tables[0].parent is None  # the project above is not copied: kept as is
    assert scope.rows["app.sessions"].keys == ["11", "13"]
    assert scope.rows["public.messages"].keys == ["1", "3", "5", "7", "9", "11"]
    assert scope.references() == {"public.messages": {"session_id": "app.sessions"}}


@pytest.mark.parametrize(("query", "entities", "keys", "error", "message"), [
    ({"entity": "project", "ids": [2, 7, 8]}, ENTITIES, KEYS, PgEntityNotFound,
     r"no project row with id 7, 8 \(table public.projects has 3 row\(s\): 1, 2, 3\)"),
    ({"entity": "team", "ids": [1]}, ENTITIES, KEYS, UsageError,
     r"no entity is named 'team' \(known: message, project, session\)"),
    ({"entity": "project", "ids": [1]}, (), KEYS, UsageError, "declares no entities"),
    ({"entity": "project", "ids": [1]}, (Entity("project", "nope"),), KEYS,
     PgEntityTableUnfit, r"entity 'project' \(table nope\).*no table 'nope'"),
    ({"entity": "project", "ids": [1]}, ENTITIES, {**KEYS, MESSAGES: ["id", "session_id"]},
     PgEntityTableUnfit, r"primary key is \(id, session_id\), not one column"),
    ({"entity": "project", "ids": [1]}, ENTITIES, {**KEYS, SESSIONS: []},
     PgEntityTableUnfit, "records no primary key"),
    ({"entity": "project", "ids": [1]},
     (*ENTITIES[:2], Entity("message", "messages", "session", "thread_id")), KEYS,
     PgEntityTableUnfit, "the snapshot's rows have no column 'thread_id'"),
    ({"entity": "project", "ids": [1]},
     (*ENTITIES, Entity("reply", "public.messages", "message", "id")), KEYS,
     PgEntityTableUnfit, "entity 'message' is stored in the same table"),
])
def test_bad_selections_are_refused_in_one_line(
        query: dict[str, object], entities: tuple[Entity, ...],
        keys: dict[TableRef, list[str]], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as raised:
        entity_scope(entities, pg_selection(query), TABLES, keys, read_block, "utf-8")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("query", [
    {"ids": [1]}, {"entity": "project"}, {"entity": "project", "ids": []},
    {"entity": "project", "ids": [True]}, {"entity": "project", "ids": [1.5]},
    {"entity": 3, "ids": [1]}, {"entity": "project", "ids": [1], "filter": {}},
])
def test_malformed_queries_are_usage_errors(query: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="entity"):
        pg_selection(query)


def test_the_hierarchy_can_come_from_the_snapshots_meta() -> None:
    meta = {"entities": [
        {"name": "project", "collection": "projects", "parent": None, "key": None,
         "date_field": None, "documents": 3},
        {"name": "session", "collection": "app.sessions", "parent": "project",
         "key": "project_id", "date_field": "started", "documents": 4}]}
    assert entities_from_meta(meta) == (
        Entity("project", "projects"),
        Entity("session", "app.sessions", "project", "project_id", "started"))
    assert entities_from_meta({}) == ()
