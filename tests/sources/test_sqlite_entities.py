"""Entity restores of a SQLite snapshot: a project with its sessions and messages, chosen
on the stored copy, restored under every mode and conflict policy, or as a new copy with
new ids whose references follow them -- on real database files."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from vault.errors import UsageError
from vault.sources.base import CaptureContext, MemoryStoredItems, SourceRestoreRequest
from vault.sources.base import capture_to_memory as capture_items
from vault.sources.entities import Entity
from vault.sources.sqlite.db import SqliteConflicts, SqliteNewIdsRefused, SqliteTargetExists
from vault.sources.sqlite.entity_scope import SqliteEntityNotFound
from vault.sources.sqlite.source import SqliteSource

SCHEMA = """
CREATE TABLE projects (id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT,
                       project_id INTEGER REFERENCES projects(id), started TEXT);
CREATE INDEX sessions_project ON sessions (project_id);
CREATE TABLE messages (id INTEGER PRIMARY KEY, session_id INTEGER REFERENCES sessions(id),
                       body, old TEXT);
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
"""
TABLES = ("projects", "sessions", "messages", "users")
ENTITIES = (Entity("project", "projects"),
            Entity("session", "sessions", "project", "project_id", "started"),
            Entity("message", "messages", "session", "session_id"))
# project p has sessions s with 1 + s % 3 == p, session s the messages m with m % 9 == s
PROJECT_2_SESSIONS = [1, 4, 7]
PROJECT_2_MESSAGES = [m for m in range(90) if m % 9 in PROJECT_2_SESSIONS]

Rows = dict[str, dict[Any, tuple[tuple[str, Any], ...]]]


def make_chat(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO projects VALUES (?, ?)", [(i, f"p{i}") for i in (1, 2, 3)])
    conn.executemany("INSERT INTO sessions VALUES (?, ?, ?)",
                     [(i, 1 + i % 3, f"2026-11-{10 + i:02d}") for i in range(9)])
    # bodies of every storage class, and a column named like vault's own lookup table's
    bodies: list[Any] = ["text", 7, 2.5, b"\x00\xff", None]
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)",
                     [(i, i % 9, bodies[i % 5], f"o{i}") for i in range(90)])
    conn.execute("INSERT INTO users VALUES (1, 'ann')")
    conn.execute("COMMIT")
    conn.close()


def rows(path: Path) -> Rows:
    """Every table's rows by id, each value with its storage class."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found: Rows = {}
        for table in TABLES:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            if not columns:
                continue
            typed = ", ".join(f"typeof({c}), {c}" for c in columns)
            found[table] = {row[1]: tuple(zip(row[0::2], row[1::2], strict=True))
                            for row in conn.execute(f"SELECT {typed} FROM {table}")}
        return found
    finally:
        conn.close()


@pytest.fixture
def chat(tmp_path: Path) -> tuple[SqliteSource, MemoryStoredItems, Path]:
    db = tmp_path / "chat.db"
    make_chat(db)
    source = SqliteSource("chat", db, entities=ENTITIES)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return source, capture_items(source, CaptureContext(scratch_dir=str(scratch))), db


def restore(source: SqliteSource, stored: MemoryStoredItems,
            request: SourceRestoreRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dry run, then the restore: both results' details."""
    dry = source.restore(stored, dataclasses.replace(request, dry_run=True)).details
    return dry, source.restore(stored, request).details


PROJECT_2 = {"entity": "project", "ids": [2]}


def test_a_project_restored_beside_the_original_as_a_new_copy(
        chat: tuple[SqliteSource, MemoryStoredItems, Path]) -> None:
    """The must-show: project 2 with its sessions and messages restored into the same
    database under new ids; every session points at the new project, every message at its
    new session, the original rows are untouched, and the report maps old to new."""
    source, stored, db = chat
    before, raw = rows(db), db.read_bytes()
    request = SourceRestoreRequest(mode="merge", query=PROJECT_2, remap_ids=True)

    dry = source.restore(stored, dataclasses.replace(request, dry_run=True)).details
    assert db.read_bytes() == raw, "a dry run writes nothing"
    done = source.restore(stored, request).details

    assert done["plan"] == dry["plan"] and done["id_map"] == dry["id_map"]
    assert done["plan"]["totals"]["create"] == 1 + 3 + 30
    assert done["plan"]["groups"] == {"messages": {"create": 30}, "projects": {"create": 1},
                                      "sessions": {"create": 3}}
    # new keys continue above the highest either side holds, in the snapshot's row order
    assert done["id_map"] == {
        "projects": {"2": 4},
        "sessions": {"1": 9, "4": 10, "7": 11},
        "messages": {str(old): 90 + n for n, old in enumerate(PROJECT_2_MESSAGES)}}
    after = rows(db)
    for table in TABLES:  # the original rows are all there, unchanged
        assert {k: v for k, v in after[table].items() if k in before[table]} == before[table]
    assert [len(after[t]) - len(before[t]) for t in TABLES] == [1, 3, 30, 0]
    assert after["projects"][4] == (("integer", 4), ("text", "p2"))
    for old, new in done["id_map"]["sessions"].items():
        assert after["sessions"][new] == (("integer", new), ("integer", 4),
                                          before["sessions"][int(old)][2])
    for old, new in done["id_map"]["messages"].items():
        was = before["messages"][int(old)]
        session = done["id_map"]["sessions"][str(was[1][1])]
        assert after["messages"][new] == (("integer", new), ("integer", session), *was[2:])
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # AUTOINCREMENT has moved past the copies: the application's next session is new
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'sessions'"
                        ).fetchone() == (11,)
    conn.close()


def test_a_new_copy_in_another_database_keeps_its_rows_and_that_database_own(
        chat: tuple[SqliteSource, MemoryStoredItems, Path], tmp_path: Path) -> None:
    source, stored, db = chat
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other, isolation_level=None)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO projects VALUES (2, 'theirs'), (40, 'high')")
    conn.execute("INSERT INTO sessions VALUES (100, 40, 'x')")
    conn.close()
    raw = db.read_bytes()

    dry, done = restore(source, stored, SourceRestoreRequest(
        target=str(other), mode="merge", query=PROJECT_2, remap_ids=True))

    assert done["plan"] == dry["plan"] and done["id_map"] == dry["id_map"]
    assert db.read_bytes() == raw, "the source database is not the target"
    assert done["id_map"]["projects"] == {"2": 41}
    assert done["id_map"]["sessions"] == {"1": 101, "4": 102, "7": 103}
    after = rows(other)
    assert after["projects"] == {2: (("integer", 2), ("text", "theirs")),
                                 40: (("integer", 40), ("text", "high")),
                                 41: (("integer", 41), ("text", "p2"))}
    assert {s[1][1] for k, s in after["sessions"].items() if k > 100} == {41}
    assert len(after["messages"]) == 30 and after["users"] == {}


def test_new_target_makes_a_file_of_the_entity_alone(
        chat: tuple[SqliteSource, MemoryStoredItems, Path], tmp_path: Path) -> None:
    source, stored, db = chat
    snapshot = rows(db)
    out = tmp_path / "out" / "project2.db"
    dry, done = restore(source, stored, SourceRestoreRequest(
        target=str(out), mode="new-target", query=PROJECT_2))
    assert done["plan"] == dry["plan"] and done["target"] == dry["target"] == str(out)
    assert done["plan"]["mode"] == "new-target"
    assert done["tables_created"] == ["projects", "sessions", "messages"]
    assert rows(out) == {
        "projects": {2: snapshot["projects"][2]},
        "sessions": {k: snapshot["sessions"][k] for k in PROJECT_2_SESSIONS},
        "messages": {k: snapshot["messages"][k] for k in PROJECT_2_MESSAGES}}
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                        ).fetchall() == [("sessions_project",)]
    conn.close()
    with pytest.raises(SqliteTargetExists):
        source.restore(stored, SourceRestoreRequest(target=str(out), mode="new-target",
                                                    query=PROJECT_2))

    renumbered = tmp_path / "renumbered.db"
    done = source.restore(stored, SourceRestoreRequest(
        target=str(renumbered), mode="new-target", query={"entity": "session", "ids": [4]},
        remap_ids=True)).details
    assert done["id_map"]["sessions"] == {"4": 9}  # above the snapshot's own keys
    copied = rows(renumbered)
    assert list(copied) == ["sessions", "messages"]
    assert {m[1][1] for m in copied["messages"].values()} == {9}
    assert copied["sessions"][9][1] == ("integer", 2)  # its project is not copied: kept


def diverge(path: Path) -> None:
    """Within project 2: its title changed, session 4 and its messages deleted, message 1
    changed, session 20 with message 200 added. Outside it: project 1 gained session 21,
    message 11 (project 3's) changed, a user added."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("""
        BEGIN;
        UPDATE projects SET title = 'p2 edited' WHERE id = 2;
        DELETE FROM sessions WHERE id = 4;
        DELETE FROM messages WHERE session_id = 4;
        UPDATE messages SET body = 'edited' WHERE id = 1;
        INSERT INTO sessions VALUES (20, 2, '2026-12-01');
        INSERT INTO messages VALUES (200, 20, 'new', 'o200');
        INSERT INTO sessions VALUES (21, 1, '2026-12-02');
        UPDATE messages SET body = 'other' WHERE id = 11;
        INSERT INTO users VALUES (2, 'bob');
        COMMIT;
    """)
    conn.close()


def expected(snapshot: Rows, before: Rows, mode: str, policy: str,
             id_map: dict[str, dict[str, int]]) -> Rows:
    """What the issue says each mode and policy leaves, worked out from both sides, within
    project 2's rows (on the snapshot's side and, as it stands, on the target's)."""
    chosen = {"projects": {2}, "sessions": set(PROJECT_2_SESSIONS),
              "messages": set(PROJECT_2_MESSAGES)}
    target_side = {"projects": {2}, "sessions": {1, 7, 20},
                   "messages": {m for m, r in before["messages"].items()
                                if r[1][1] in (1, 4, 7, 20)}}
    result = {table: dict(found) for table, found in before.items()}
    for table, keys in chosen.items():
        now = result[table]
        for key in keys:
            row = snapshot[table][key]
            if key not in now or (policy == "overwrite" and now[key] != row):
                now[key] = row
            elif now[key] != row and policy == "rename":
                new = id_map[table][str(key)]
                now[new] = (("integer", new), *row[1:])
        if mode == "overwrite":
            for key in target_side[table] - keys:
                del now[key]
    return result


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
@pytest.mark.parametrize("policy", ["skip", "overwrite", "rename", None])
def test_every_mode_and_policy_within_the_entity_leaves_what_its_dry_run_planned(
        chat: tuple[SqliteSource, MemoryStoredItems, Path], mode: str,
        policy: str | None) -> None:
    source, stored, db = chat
    snapshot = rows(db)
    diverge(db)
    before = rows(db)

    dry, done = restore(source, stored, SourceRestoreRequest(
        mode=mode, on_conflict=policy, query=PROJECT_2))  # type: ignore[arg-type]

    assert done["plan"] == dry["plan"] and done["id_map"] == dry["id_map"]
    effective = policy or ("skip" if mode == "merge" else "overwrite")
    assert rows(db) == expected(snapshot, before, mode, effective, done["id_map"])
    groups = done["plan"]["groups"]
    # both differing rows (project 2's title, message 1) take the policy's action
    assert groups["projects"] == {effective: 1}
    assert groups["sessions"] == {"create": 1, "skip": 2} | (
        {"delete": 1} if mode == "overwrite" else {})
    assert groups["messages"]["create"] == 10
    assert groups["messages"].get("delete", 0) == (1 if mode == "overwrite" else 0)
    if effective == "rename":  # new keys above each whole table's highest, either side
        assert done["id_map"] == {"projects": {"2": 4}, "messages": {"1": 201}}
    assert "users" not in done["tables"]


def test_fail_policy_refuses_before_writing(
        chat: tuple[SqliteSource, MemoryStoredItems, Path]) -> None:
    source, stored, db = chat
    diverge(db)
    raw = db.read_bytes()
    with pytest.raises(SqliteConflicts, match=r"2 row\(s\) differ .*messages: 1, projects: 1"):
        source.restore(stored, SourceRestoreRequest(mode="merge", on_conflict="fail",
                                                    query=PROJECT_2))
    assert db.read_bytes() == raw


def test_entities_come_from_the_snapshot_when_the_source_declares_none(
        chat: tuple[SqliteSource, MemoryStoredItems, Path], tmp_path: Path) -> None:
    _, stored, db = chat
    bare = SqliteSource("chat", db)  # an ad-hoc sqlite:// source knows no hierarchy
    out = tmp_path / "copy.db"
    done = bare.restore(stored, SourceRestoreRequest(
        target=str(out), mode="new-target", query={"entity": "project", "ids": ["2"]}))
    assert done.details["plan"]["totals"]["create"] == 34


@pytest.mark.parametrize(("request_", "error", "message"), [
    (SourceRestoreRequest(mode="merge", remap_ids=True), UsageError,
     "new ids follow an entity's references"),
    (SourceRestoreRequest(mode="merge", query={"ids": [1]}), UsageError,
     "selects an entity with --query"),
    (SourceRestoreRequest(mode="merge", query={"entity": "project", "ids": []}), UsageError,
     "non-empty list"),
    (SourceRestoreRequest(mode="merge", query={"entity": "team", "ids": [1]}), UsageError,
     "no entity is named 'team'"),
    (SourceRestoreRequest(mode="merge", query=PROJECT_2, only=("users",)), UsageError,
     "not both"),
    (SourceRestoreRequest(mode="merge", query={"entity": "project", "ids": [99]}),
     SqliteEntityNotFound, "holds no project row with id 99"),
])
def test_bad_entity_requests_are_refused_and_write_nothing(
        chat: tuple[SqliteSource, MemoryStoredItems, Path], request_: SourceRestoreRequest,
        error: type[Exception], message: str) -> None:
    source, stored, db = chat
    raw = db.read_bytes()
    with pytest.raises(error, match=message):
        source.restore(stored, request_)
    assert db.read_bytes() == raw


def test_new_ids_need_integer_keys(tmp_path: Path) -> None:
    db = tmp_path / "teams.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript("""
        CREATE TABLE teams (code TEXT PRIMARY KEY, name TEXT);
        CREATE TABLE members (id INTEGER PRIMARY KEY, team TEXT);
        INSERT INTO teams VALUES ('red', 'Red'), ('blue', 'Blue');
        INSERT INTO members VALUES (1, 'red'), (2, 'blue'), (3, 'red');
    """)
    conn.close()
    source = SqliteSource("teams", db, entities=(
        Entity("team", "teams"), Entity("member", "members", "team", "team")))
    stored = capture_items(source)
    raw = db.read_bytes()
    with pytest.raises(SqliteNewIdsRefused, match=r"'teams' is keyed by \(\"code\"\)"):
        source.restore(stored, SourceRestoreRequest(
            mode="merge", query={"entity": "team", "ids": ["red"]}, remap_ids=True))
    assert db.read_bytes() == raw
    # without new ids, a text key selects rows as well as a number does
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM members WHERE id = 3")
    conn.close()
    done = source.restore(stored, SourceRestoreRequest(
        mode="merge", query={"entity": "team", "ids": ["red"]})).details
    assert done["plan"]["groups"] == {"members": {"create": 1, "skip": 1},
                                      "teams": {"skip": 1}}
    assert rows_of(db, "members") == [(1, "red"), (2, "blue"), (3, "red")]


def rows_of(db: Path, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    finally:
        conn.close()


def chat_config(tmp_path: Path, db: Path, levels: int = 3) -> Path:
    """vault.toml with the SQLite source `chat` and the first `levels` entities of its
    hierarchy (project -> session -> message)."""
    entities = [("project", "projects", None, None), ("session", "sessions", "project",
                                                      "project_id"),
                ("message", "messages", "session", "session_id")][:levels]
    text = f'[[sources]]\ntype = "sqlite"\nname = "chat"\npath = "{db}"\n'
    for name, table, parent, key in entities:
        text += f'\n[[sources.entities]]\nname = "{name}"\ncollection = "{table}"\n'
        if parent:
            text += f'parent = "{parent}"\nkey = "{key}"\n'
    config = tmp_path / "vault.toml"
    config.write_text(text)
    return config


def test_cli_restores_a_project_as_a_new_copy(vault_repo: Any, tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    make_chat(db)
    config = chat_config(tmp_path, db)
    backup = vault_repo.json("--config", config, "backup", "--source", "chat")
    assert backup.code == 0, backup.last
    snap = backup.summary["snapshot_id"][:8]
    args = ("--config", config, "restore", snap, "--query", json.dumps(PROJECT_2),
            "--new-ids", "--mode", "merge")
    before = rows(db)
    dry = vault_repo.json(*args, "--dry-run")
    assert dry.code == 0, dry.last
    assert rows(db) == before
    done = vault_repo.json(*args)
    assert done.code == 0, done.last
    after = rows(db)
    assert len(after["messages"]) == 120 and after["projects"][4][1] == ("text", "p2")
    assert [s for s in after["sessions"].values() if s[1] == ("integer", 4)] == [
        (("integer", 9 + n), ("integer", 4), before["sessions"][old][2])
        for n, old in enumerate(PROJECT_2_SESSIONS)]
    shutil.copyfile(db, tmp_path / "kept.db")  # for a look after a failure


def test_cli_rename_gives_the_new_copy_its_own_name(vault_repo: Any, tmp_path: Path) -> None:
    """`--rename title=...` with --new-ids: the copied project carries the new name, its
    sessions and messages follow it, the original keeps its own; bad uses are refused."""
    db = tmp_path / "chat.db"
    make_chat(db)
    config = chat_config(tmp_path, db, levels=2)
    backup = vault_repo.json("--config", config, "backup", "--source", "chat")
    snap = backup.summary["snapshot_id"][:8]
    base = ("--config", config, "restore", snap, "--query", json.dumps(PROJECT_2))
    before = rows(db)
    for bad, says in [(("--rename", "title=x", "--mode", "merge"), "--new-ids"),
                      (("--new-ids", "--mode", "merge", "--rename", "nope=x"), "not a column"),
                      (("--new-ids", "--mode", "merge", "--rename", "id=9"), "the key"),
                      (("--new-ids", "--mode", "merge", "--rename", "title"), "FIELD=VALUE"),
                      (("--new-ids", "--mode", "overwrite", "--yes"), "merge or new-target"),
                      (("--new-ids", "--mode", "overwrite", "--queue", "--yes"),
                       "merge or new-target")]:
        refused = vault_repo.json(*base, *bad)
        assert refused.code == 2 and says in refused.last["message"], refused.last
        assert rows(db) == before
    both = vault_repo.json(*base, "--entity", "project=2", "--new-ids", "--mode", "merge")
    assert both.code == 2 and "not both" in both.last["message"]
    # --entity project=2 is the same selection as the --query
    done = vault_repo.json("--config", config, "restore", snap, "--entity", "project=2",
                           "--new-ids", "--mode", "merge", "--rename", "title=Website (copy)")
    assert done.code == 0, done.last
    assert done.summary["details"]["renamed"] == {"title": "Website (copy)"}
    # the journal keeps the report: per table counts and the old -> new ids
    [report] = [e["payload"] for e in vault_repo.events("RestoreReported")
                if e["payload"]["job_id"] == done.summary["job_id"]]
    assert report["id_map"] == {table: {str(old): str(new) for old, new in ids.items()}
                                for table, ids in done.summary["details"]["id_map"].items()}
    assert {g["group"]: g["restored"] for g in report["groups"]} == {
        "projects": 1, "sessions": len(PROJECT_2_SESSIONS)}
    assert report["restored"] == 1 + len(PROJECT_2_SESSIONS) and report["failed"] == 0
    after = rows(db)
    assert after["projects"][2] == before["projects"][2]  # the original keeps its name
    [new] = [k for k in after["projects"] if k not in before["projects"]]
    assert after["projects"][new] == (("integer", new), ("text", "Website (copy)"))
    copied = [s for s in after["sessions"].values() if s[1] == ("integer", new)]
    assert len(copied) == len(PROJECT_2_SESSIONS)
