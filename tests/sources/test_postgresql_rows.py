"""Per-row restore of the PostgreSQL source against a real server: every mode x conflict
policy over a target that differs from the snapshot (rows deleted, changed, added), the
exact resulting rows, and the dry run's plan equal to the executed one."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_server import APP_USER, PgServer, missing_binary, running_server

from vault.config.secrets import SecretRef
from vault.sources.base import MemoryStoredItems, SourceRestoreRequest, capture_to_memory
from vault.sources.postgresql.rows_plan import (
    PgCannotRename,
    PgRowConflicts,
    PgTableMissing,
)
from vault.sources.postgresql.source import PostgresSource
from vault.sources.postgresql.tools import PgTarget, PostgresError

_names = itertools.count()

SCHEMA = r"""
CREATE SCHEMA shop;
CREATE TABLE shop.items (id serial PRIMARY KEY, name text NOT NULL,
  price numeric(8,2), tags text[], data jsonb);
CREATE TABLE shop.stock (item_id int REFERENCES shop.items (id), place text,
  qty int NOT NULL, PRIMARY KEY (item_id, place));
CREATE TABLE public.notes (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text,
  len int GENERATED ALWAYS AS (length(body)) STORED);
CREATE TABLE public.nokey (v int);
INSERT INTO shop.items (name, price, tags, data)
SELECT 'item ' || g || E'\ttab\nline\\ü', g * 1.5, ARRAY['t' || g, NULL],
       jsonb_build_object('g', g) FROM generate_series(1, 6) g;
INSERT INTO shop.stock SELECT i, p, i * 10 FROM generate_series(1, 6) i,
  unnest(ARRAY['north', 'south "q"']) p;
INSERT INTO public.notes (body) VALUES ('one'), ('two'), ('three'), ('four');
INSERT INTO public.nokey VALUES (1), (2);
"""

# The target drifts: rows deleted, changed and added (shop.stock, whose composite key
# cannot be renamed, only loses and gains rows).
DRIFT = r"""
DELETE FROM shop.stock WHERE item_id = 2;
DELETE FROM shop.items WHERE id = 2;
UPDATE shop.items SET price = 99, tags = ARRAY['changed'] WHERE id IN (3, 4);
INSERT INTO shop.items (name, price) VALUES ('added', 7);
INSERT INTO shop.stock VALUES (7, 'north', 1);
DELETE FROM public.notes WHERE id = 1;
UPDATE public.notes SET body = 'TWO!' WHERE id = 2;
INSERT INTO public.notes (body) VALUES ('five');
"""

KEYS = {"shop.items": ("id",), "shop.stock": ("item_id", "place"), "public.notes": ("id",)}
ALL = ("shop.items", "shop.stock", "public.notes")
SERIAL = ("shop.items", "public.notes")  # the tables whose key a sequence hands out


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    missing = missing_binary()
    if missing is not None:
        pytest.skip(f"PostgreSQL server binary {missing} is not installed")
    with running_server() as running:
        yield running


def make_source(server: PgServer, dbname: str, tmp_path: Path) -> PostgresSource:
    secret = tmp_path / f"pw-{next(_names)}"
    secret.write_text(server.app_password)
    secret.chmod(0o600)
    target = PgTarget(host=server.host, port=server.port, dbname=dbname, user=APP_USER)
    return PostgresSource("pg", target, password_ref=SecretRef(file=secret))


Rows = dict[tuple[Any, ...], dict[str, Any]]


def rows_of(server: PgServer, db: str, table: str) -> Rows:
    """The table's rows as JSON objects (types kept: numbers, arrays, objects), by key."""
    out = server.psql(f"SELECT row_to_json(t)::text FROM {table} t", db, user=APP_USER)
    found = [json.loads(line) for line in out.splitlines()]
    return {tuple(r[c] for c in KEYS[table]): r for r in found}


def state(server: PgServer, db: str, tables: tuple[str, ...] = ALL) -> dict[str, Rows]:
    return {t: rows_of(server, db, t) for t in tables}


@pytest.fixture
def drifted(server: PgServer, tmp_path: Path) -> tuple[PostgresSource, str, MemoryStoredItems]:
    """A database captured, then drifted; the source, its name, and the snapshot."""
    db = server.create_database(f"rows_{os.getpid()}_{next(_names)}")
    server.psql(SCHEMA, db, user=APP_USER)
    source = make_source(server, db, tmp_path)
    stored = capture_to_memory(source)
    server.psql(DRIFT, db, user=APP_USER)
    return source, db, stored


def expected(snap: dict[str, Rows], before: dict[str, Rows], mode: str, policy: str,
             id_map: dict[str, dict[str, str]]) -> dict[str, Rows]:
    """What the tables must hold after the restore, derived from the two sides."""
    result: dict[str, Rows] = {}
    for table, theirs in snap.items():
        ours = before[table]
        out = dict(ours) if mode == "merge" else {k: v for k, v in ours.items() if k in theirs}
        for key, row in theirs.items():
            if key not in ours or policy == "overwrite":
                out[key] = row
            elif row != ours[key] and policy == "rename":
                new = int(id_map[table][str(key[0])])
                out[(new,)] = {**row, "id": new}
        result[table] = out
    return result


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
@pytest.mark.parametrize("policy", ["skip", "overwrite", "rename"])
def test_every_mode_and_policy_restores_exactly_what_the_dry_run_planned(
        server: PgServer, drifted: tuple[PostgresSource, str, MemoryStoredItems],
        mode: str, policy: str) -> None:
    source, db, stored = drifted
    tables = ALL
    before = state(server, db, tables)
    request = SourceRestoreRequest(mode=mode, on_conflict=policy,  # type: ignore[arg-type]
                                   only=tables)
    planned = source.restore(stored, SourceRestoreRequest(
        mode=mode, on_conflict=policy, only=tables, dry_run=True))  # type: ignore[arg-type]
    assert state(server, db, tables) == before  # the dry run wrote nothing
    done = source.restore(stored, request)
    assert done.details["plan"] == planned.details["plan"]
    after = state(server, db, tables)

    snap_db = server.create_database(f"snap_{os.getpid()}_{next(_names)}")
    source.restore(stored, SourceRestoreRequest(target=snap_db, mode="new"))
    snap = state(server, snap_db, tables)
    assert after == expected(snap, before, mode, policy, done.details["id_map"])

    totals = done.details["plan"]["totals"]
    differing = sum(1 for t in tables for k, r in snap[t].items()
                    if k in before[t] and before[t][k] != r)
    missing = sum(1 for t in tables for k in snap[t] if k not in before[t])
    extra = sum(1 for t in tables for k in before[t] if k not in snap[t])
    assert totals["create"] == missing
    assert totals[policy] - (0 if policy != "skip" else
                             sum(1 for t in tables for k, r in snap[t].items()
                                 if before[t].get(k) == r)) == differing
    assert totals["delete"] == (extra if mode == "overwrite" else 0)
    if policy == "rename":
        assert sorted(done.details["id_map"]) == ["public.notes", "shop.items"]
        assert sorted(done.details["id_map"]["shop.items"]) == ["3", "4"]
    # The sequences go on past every restored key.
    server.psql("INSERT INTO shop.items (name) VALUES ('later')", db, user=APP_USER)


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_on_conflict_fail_refuses_before_writing_anything(
        server: PgServer, drifted: tuple[PostgresSource, str, MemoryStoredItems],
        mode: str) -> None:
    source, db, stored = drifted
    before = state(server, db)
    for dry_run in (True, False):
        with pytest.raises(PgRowConflicts) as refused:
            source.restore(stored, SourceRestoreRequest(
                mode=mode, on_conflict="fail", only=ALL,  # type: ignore[arg-type]
                dry_run=dry_run))
        assert "3 row(s) differ" in str(refused.value)
        assert "shop.items: 2" in str(refused.value)
        assert state(server, db) == before


@pytest.mark.parametrize("policy", ["skip", "overwrite", "rename", "fail"])
def test_new_target_creates_every_row_as_planned(
        server: PgServer, drifted: tuple[PostgresSource, str, MemoryStoredItems],
        policy: str) -> None:
    source, db, stored = drifted
    target = f"{db}_new_{policy}"
    planned = source.restore(stored, SourceRestoreRequest(
        target=target, mode="new-target", on_conflict=policy,  # type: ignore[arg-type]
        dry_run=True))
    exists = server.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{target}'")
    assert exists == "0"  # the dry run created nothing
    done = source.restore(stored, SourceRestoreRequest(
        target=target, mode="new-target", on_conflict=policy))  # type: ignore[arg-type]
    assert done.details["plan"] == planned.details["plan"]
    plan = done.details["plan"]
    restored = state(server, target)
    assert plan["totals"]["create"] == sum(len(r) for r in restored.values()) + 2  # + nokey
    keys = {(i["group"], i["key"]) for i in plan["items"]}
    assert ("shop.items", "2") in keys and ("shop.stock", '["2", "north"]') in keys
    assert ("public.nokey", "#1") in keys
    assert restored["shop.items"][(2,)]["tags"] == ["t2", None]


def test_per_row_modes_refuse_a_missing_table(
        server: PgServer, drifted: tuple[PostgresSource, str, MemoryStoredItems]) -> None:
    """(A table without a primary key is replaced whole: test_postgresql_unkeyable.)"""
    source, db, stored = drifted
    before = state(server, db)
    server.psql("DROP TABLE shop.stock", db, user=APP_USER)
    with pytest.raises(PgTableMissing, match=r"shop\.stock does not exist"):
        source.restore(stored, SourceRestoreRequest(mode="merge", only=ALL))
    with pytest.raises(PgCannotRename, match=r"table shop\.stock"):
        server.psql("CREATE TABLE shop.stock (item_id int, place text, qty int NOT NULL,"
                    " PRIMARY KEY (item_id, place)); INSERT INTO shop.stock VALUES"
                    " (1, 'north', 0)", db, user=APP_USER)
        source.restore(stored, SourceRestoreRequest(mode="merge", on_conflict="rename",
                                                    only=ALL))
    del before["shop.stock"]
    assert state(server, db, SERIAL) == before


def test_a_failure_while_executing_the_plan_leaves_the_target_untouched(
        server: PgServer, drifted: tuple[PostgresSource, str, MemoryStoredItems]) -> None:
    source, db, stored = drifted
    # Renamed rows keep their names, which a unique constraint refuses: the deletes and
    # inserts already run in the same transaction are rolled back with it.
    server.psql("ALTER TABLE shop.items ADD UNIQUE (name)", db, user=APP_USER)
    before = state(server, db)
    with pytest.raises(PostgresError, match="items_name_key"):
        source.restore(stored, SourceRestoreRequest(mode="overwrite", on_conflict="rename",
                                                    only=ALL))
    assert state(server, db) == before


def test_for_target_captures_the_tables_a_restore_would_touch(
        server: PgServer, drifted: tuple[PostgresSource, str, MemoryStoredItems]) -> None:
    source, db, stored = drifted
    undo = source.for_target(SourceRestoreRequest(mode="overwrite", only=("shop.items",)))
    assert undo.describe()["database"] == db and undo.describe()["tables"] == ["shop.items"]
    undo_snapshot = capture_to_memory(undo)
    assert [t["name"] for t in undo_snapshot.meta["tables"]] == ["items"]
    drifted_items = rows_of(server, db, "shop.items")
    source.restore(stored, SourceRestoreRequest(mode="merge", on_conflict="overwrite",
                                                only=("shop.items",)))
    assert rows_of(server, db, "shop.items") != drifted_items
    undo.restore(undo_snapshot, SourceRestoreRequest(mode="overwrite"))
    assert rows_of(server, db, "shop.items") == drifted_items
    other = source.for_target(SourceRestoreRequest(target=f"{db}_elsewhere"))
    assert other.describe()["database"] == f"{db}_elsewhere"
    assert "password" not in json.dumps(other.describe())
