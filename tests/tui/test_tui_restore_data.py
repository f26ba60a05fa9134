"""The restore browser's data, without the screen: marks as a selection, the request they
make, and the records of an entity read back from real captures (SQLite, PostgreSQL and a
SecantusDB server) -- each one a record an entity restore can be asked for."""

from __future__ import annotations

import dataclasses
import itertools
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from restore_helpers import make_chat

from vault.errors import UsageError
from vault.sources.base import CaptureContext, SourceRestoreRequest, StoredItems, capture_to_memory
from vault.sources.browse import PAGE, RecordReader, SnapshotContents
from vault.sources.entities import Entity, entities_from_meta
from vault.sources.registry import browser_for
from vault.sources.sqlite.source import SqliteSource
from vault_tui.data.restore_plan import (
    Mark,
    RestoreOptions,
    Selection,
    SnapshotChoice,
    confirmation_name,
    default_options,
    restore_args,
)
from vault_tui.data.restore_tree import database_entries, preview

sys.path.insert(0, str(Path(__file__).parents[1] / "sources"))  # the servers' fixtures
from mongo_server_fixture import MongoServer, mongo_db, mongo_server  # noqa: F401
from pg_server import APP_USER, PgServer, pg_server  # noqa: F401

FILES = SnapshotChoice("ab" * 32, "2026-11-20T10:00:00Z", "files", "docs", ("/srv/app",), 11,
                       "completed")
CHAT = SnapshotChoice("cd" * 32, "2026-11-20T10:00:00Z", "sqlite", "chat", ("chat.db",),
                      9, "completed")


def path(p: str) -> Mark:
    return Mark("path", (p,))


def record(entity: str, key: int | str) -> Mark:
    return Mark("record", (entity,), key)


def contents(source_type: str, stored: StoredItems) -> SnapshotContents:
    browser = browser_for(source_type)
    assert browser is not None
    return browser.contents(stored)


def reader(source_type: str, stored: StoredItems, scratch: Path) -> RecordReader:
    browser = browser_for(source_type)
    assert browser is not None
    return browser.reader(stored, scratch)


# --- marks and requests (pure) -------------------------------------------------------------


def test_marks_keep_to_what_one_restore_can_take() -> None:
    selection, note = Selection().toggle(path("/srv/app/a"))
    selection, note = selection.toggle(path("/srv/app/b/c"))
    assert selection.paths == ["/srv/app/a", "/srv/app/b/c"] and note is None
    # a directory takes in what was marked inside it; inside a marked one, nothing to add
    selection, note = selection.toggle(path("/srv/app/b"))
    assert selection.paths == ["/srv/app/a", "/srv/app/b"] and note
    same, note = selection.toggle(path("/srv/app/b/d"))
    assert same == selection and note == "/srv/app/b/d is already selected with /srv/app/b"
    assert selection.toggle(path("/srv/app/a"))[0].paths == ["/srv/app/b"]  # unmarked

    rows, _ = Selection().toggle(record("project", 2))
    rows, note = rows.toggle(record("project", 3))
    assert rows.query == {"entity": "project", "ids": [2, 3]} and note is None
    rows, note = rows.toggle(record("session", 4))  # another entity: a fresh selection
    assert rows.query == {"entity": "session", "ids": [4]} and note
    tables, note = rows.toggle(Mark("tables", ("users",)))
    assert (tables.tables, tables.query) == (["users"], None) and note
    tables, _ = tables.toggle(Mark("tables", ("sessions", "messages")))
    assert tables.tables == ["users", "sessions", "messages"]
    assert tables.toggle(record("project", 1))[0].tables == []


def test_the_request_is_what_vault_restore_queue_would_queue(tmp_path: Path,
                                                             monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    marks = Selection((path("/srv/app/sub"), path("/srv/app/a.txt")))
    options = RestoreOptions("overwrite", "rename", "out")
    # one directory backed up: it is what lands in the target (ID:/srv/app)
    args = restore_args(FILES, marks, options, base="/srv/app")
    assert (args.snapshot_ref, args.paths, args.target, args.mode, args.on_conflict) == (
        f"{FILES.snapshot_id}:/srv/app", ["sub", "a.txt"], str(tmp_path / "out"),
        "overwrite", "rename")
    assert not args.yes and not args.database
    whole = restore_args(FILES, Selection((path("/srv/app"),)), options, base="/srv/app")
    assert whole.paths == []
    several = restore_args(FILES, marks, options)  # base "/": full paths under the target
    assert (several.snapshot_ref, several.paths) == (FILES.snapshot_id,
                                                     ["/srv/app/sub", "/srv/app/a.txt"])
    assert confirmation_name(FILES, args) == "out"

    rows = Selection((record("project", 2),))
    own = restore_args(CHAT, rows, RestoreOptions("merge", "skip", ""))
    assert (own.database, own.target, own.query, own.only) == (
        True, None, {"entity": "project", "ids": [2]}, [])
    assert confirmation_name(CHAT, own) == "chat"
    copy = restore_args(CHAT, Selection((Mark("tables", ("users",)),)),
                        RestoreOptions("new-target", "overwrite", "copy.db"))
    assert (copy.target, copy.only) == (str(tmp_path / "copy.db"), ["users"])
    assert default_options(FILES, "/home/op") == RestoreOptions(
        "merge", "skip", f"/home/op/restore-{FILES.short_id}")
    assert default_options(CHAT, "/home/op") == RestoreOptions("merge", "skip", "")

    for bad in (RestoreOptions("new-target", "skip", ""), RestoreOptions("sideways", "skip", "x"),
                RestoreOptions("merge", "never", "x")):
        with pytest.raises(UsageError):
            restore_args(CHAT, rows, bad)
    with pytest.raises(UsageError, match="target directory"):
        restore_args(FILES, marks, RestoreOptions("merge", "skip", " "))


def test_a_copy_with_new_ids_takes_marked_records_and_a_mode_that_adds() -> None:
    rows = Selection((record("project", 2), record("project", 3)))
    copy = restore_args(CHAT, rows, RestoreOptions(
        "merge", "skip", "", new_ids=True, rename="title=p2 (copy); note = a=b "))
    assert (copy.remap_ids, copy.rename, copy.query) == (
        True, {"title": "p2 (copy)", "note": " a=b "}, {"entity": "project", "ids": [2, 3]})
    plain = restore_args(CHAT, rows, RestoreOptions("merge", "skip", ""))
    assert (plain.remap_ids, plain.rename) == (False, {})
    refused = {
        "mark them in the tree": (Selection((Mark("tables", ("users",)),)),
                                  RestoreOptions("merge", "skip", "", new_ids=True)),
        "use mode merge or new-target": (rows, RestoreOptions("overwrite", "overwrite", "",
                                                              new_ids=True)),
        "tick": (rows, RestoreOptions("merge", "skip", "", rename="title=x")),
        "give FIELD=VALUE": (rows, RestoreOptions("merge", "skip", "", new_ids=True,
                                                  rename="title")),
        "twice": (rows, RestoreOptions("merge", "skip", "", new_ids=True,
                                       rename="title=a; title=b")),
    }
    for message, (selection, options) in refused.items():
        with pytest.raises(UsageError, match=message):
            restore_args(CHAT, selection, options)


# --- records, read back from real captures --------------------------------------------------

SQLITE_ENTITIES = (Entity("project", "projects"),
                   Entity("session", "sessions", "project", "project_id", "started"),
                   Entity("message", "messages", "session", "session_id"))


def test_sqlite_records_are_the_rows_of_the_stored_copy(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    make_chat(db)
    source = SqliteSource("chat", db, entities=SQLITE_ENTITIES)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    stored = capture_to_memory(source, CaptureContext(scratch_dir=str(scratch)))
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DELETE FROM sessions WHERE project_id = 2")  # the live file moves on
    conn.close()
    entities = entities_from_meta(stored.meta)
    assert entities == SQLITE_ENTITIES
    records = reader("sqlite", stored, tmp_path / "tui-scratch")
    try:
        projects = records.records(entities[0].collection)
        assert [(r.key, preview(r)) for r in projects.records] == [
            (1, "p1"), (2, "p2"), (3, "p3")]
        sessions = records.records(entities[1].collection, ("project_id", 2))
        assert [r.key for r in sessions.records] == [1, 4, 7] and sessions.total == 3
        messages = records.records(entities[2].collection)
        assert messages.total == 90 and len(messages.records) == min(90, PAGE)
        # a record's key is what the entity restore is asked for
        selection = Selection((Mark("record", ("session",), sessions.records[1].key),))
        plan = source.restore(stored, SourceRestoreRequest(
            mode="merge", query=selection.query, dry_run=True)).details["plan"]
        # session 4 is gone from the live file, its 10 messages are still there
        assert (plan["totals"]["create"], plan["totals"]["skip"]) == (1, 10)
    finally:
        records.close()
    assert list((tmp_path / "tui-scratch").iterdir()) == [], "the copy is removed"
    tree = database_entries(contents("sqlite", stored))
    assert [e.label for e in tree] == ["entities", "tables"]
    assert [e.label for e in tree[1].children or ()] == [
        "messages: 90 rows", "projects: 3 rows", "sessions: 9 rows", "users: 1 rows"]


_names = itertools.count()
PG_SCHEMA = r"""
CREATE TABLE projects (id serial PRIMARY KEY, title text NOT NULL);
CREATE TABLE sessions (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  project_id int NOT NULL REFERENCES projects (id), started date);
CREATE TABLE messages (id serial PRIMARY KEY,
  session_id bigint NOT NULL REFERENCES sessions (id), body text);
INSERT INTO projects (title) SELECT E'project\t' || g FROM generate_series(1, 3) g;
INSERT INTO sessions (project_id, started)
SELECT 1 + g % 3, date '2026-11-01' + g FROM generate_series(1, 9) g;
INSERT INTO messages (session_id, body) SELECT 1 + g % 9, 'm' || g FROM generate_series(1, 45) g;
"""


@pytest.fixture(scope="module")
def pg(pg_server: PgServer) -> PgServer:  # noqa: F811
    return pg_server


def test_postgresql_records_are_the_rows_of_the_stored_copy_blocks(pg: PgServer,
                                                                   tmp_path: Path) -> None:
    from vault.config.secrets import SecretRef
    from vault.sources.postgresql.source import PostgresSource
    from vault.sources.postgresql.tools import PgTarget

    db = pg.create_database(f"tuichat_{os.getpid()}_{next(_names)}")
    pg.psql(PG_SCHEMA, db, user=APP_USER)
    secret = tmp_path / "pw"
    secret.write_text(pg.app_password)
    secret.chmod(0o600)
    source = PostgresSource(
        "chat", PgTarget(host=pg.host, port=pg.port, dbname=db, user=APP_USER),
        password_ref=SecretRef(file=secret),
        entities=(Entity("project", "projects"),
                  Entity("session", "public.sessions", "project", "project_id", "started"),
                  Entity("message", "messages", "session", "session_id")))
    stored = capture_to_memory(source)
    entities = entities_from_meta(stored.meta)
    records = reader("postgresql", stored, tmp_path)
    projects = records.records(entities[0].collection)
    assert [(r.key, preview(r)) for r in projects.records] == [
        (str(i), f"project\t{i}") for i in (1, 2, 3)]
    sessions = records.records(entities[1].collection, ("project_id", "2"))
    live = pg.psql("SELECT id FROM sessions WHERE project_id = 2 ORDER BY id", db)
    assert [r.key for r in sessions.records] == live.split()
    selection = Selection((Mark("record", ("project",), "2"),))
    plan = source.restore(stored, dataclasses.replace(SourceRestoreRequest(
        mode="merge", query=selection.query), dry_run=True)).details["plan"]
    assert plan["totals"]["skip"] == 1 + 3 + 15  # all there, unchanged
    tree = database_entries(contents("postgresql", stored))
    assert [e.label.split(":")[0] for e in tree[1].children or ()] == [
        "public.messages", "public.projects", "public.sessions"]


def test_mongodb_records_are_the_stored_documents(mongo_server: MongoServer,  # noqa: F811
                                                  mongo_db: str,  # noqa: F811
                                                  tmp_path: Path) -> None:
    from bson import ObjectId

    from vault.sources.mongodb.config import MongoSourceConfig
    from vault.sources.mongodb.source import from_config

    database = f"{mongo_db}_chat"
    projects = [ObjectId() for _ in range(3)]
    with mongo_server.client() as client:
        client[database].projects.insert_many(
            [{"_id": p, "name": f"p{i}"} for i, p in enumerate(projects)])
        client[database].sessions.insert_many(
            [{"_id": s, "project_id": projects[s % 3]} for s in range(6)])
        client[database].users.insert_one({"_id": "u1"})
    source = from_config(MongoSourceConfig.model_validate({
        "type": "mongodb", "name": "chat", "url": mongo_server.db_url(database),
        "entities": [{"name": "project", "collection": "projects"},
                     {"name": "session", "collection": "sessions", "parent": "project",
                      "key": "project_id"}]}))
    stored = capture_to_memory(source)
    entities = entities_from_meta(stored.meta)
    records = reader("mongodb", stored, tmp_path)
    found = records.records(entities[0].collection)
    assert [(r.key, preview(r)) for r in found.records] == [
        (str(p), f"p{i}") for i, p in enumerate(projects)]
    sessions = records.records(entities[1].collection, ("project_id", str(projects[1])))
    assert [r.key for r in sessions.records] == [1, 4]
    # the hex text of an ObjectId names the document in an entity restore's query
    query = Selection((Mark("record", ("project",), str(projects[1])),)).query
    plan = source.restore(stored, SourceRestoreRequest(
        mode="merge", query=query, dry_run=True)).details["plan"]
    assert plan["totals"]["skip"] == 1 + 2
    tree = database_entries(contents("mongodb", stored))
    assert [e.label for e in tree] == ["entities", "collections"]
    [db_node] = tree[1].children or ()
    assert db_node.label == f"{database}: 3 collection(s)"
    assert db_node.mark is not None and db_node.mark.names == (
        f"{database}.projects", f"{database}.sessions", f"{database}.users")

