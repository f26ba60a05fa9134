"""A PostgreSQL table without a primary key, holding duplicate rows, against a real server:
never refused. Into a new database it comes back whole (pg_restore of the capture); into
a live one (modes overwrite, merge) it is replaced whole in the restore's one transaction,
and the plan says so, while keyed tables still go row by row."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import APP_USER, PgServer, missing_binary, running_server

from vault.config.secrets import SecretRef
from vault.sources.base import MemoryStoredItems, SourceRestoreRequest, capture_to_memory
from vault.sources.postgresql.entities import PgEntityTableUnfit
from vault.sources.postgresql.rows_plan import NO_PRIMARY_KEY
from vault.sources.postgresql.source import PostgresSource
from vault.sources.postgresql.tools import PgTarget

_names = itertools.count()

SCHEMA = r"""
CREATE TABLE public.events (at int, what text, data jsonb, tags text[]);
CREATE INDEX events_at ON public.events (at);
CREATE TABLE public.things (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO public.events VALUES (1, 'twin', '{"x": 1}', ARRAY['a', NULL]),
  (1, 'twin', '{"x": 1}', ARRAY['a', NULL]), (2, NULL, NULL, NULL),
  (3, E'tab\there\nline ü', '[1, 2.50]', '{}');
INSERT INTO public.things (name) VALUES ('one'), ('two');
"""

DRIFT = r"""
DELETE FROM public.events WHERE ctid = (SELECT min(ctid) FROM public.events WHERE at = 1);
UPDATE public.events SET what = 'changed' WHERE at = 2;
INSERT INTO public.events VALUES (9, 'added since', NULL, NULL);
UPDATE public.things SET name = 'TWO' WHERE id = 2;
INSERT INTO public.things (name) VALUES ('three');
"""


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    missing = missing_binary()
    if missing is not None:
        pytest.skip(f"PostgreSQL server binary {missing} is not installed")
    with running_server() as running:
        yield running


@pytest.fixture
def captured(server: PgServer, tmp_path: Path
             ) -> tuple[PostgresSource, str, MemoryStoredItems, dict[str, list[str]]]:
    """A database captured (the source, its name, the snapshot, its rows), then drifted."""
    db = server.create_database(f"nokey_{os.getpid()}_{next(_names)}")
    server.psql(SCHEMA, db, user=APP_USER)
    secret = tmp_path / "pw"
    secret.write_text(server.app_password)
    secret.chmod(0o600)
    source = PostgresSource("pg", PgTarget(host=server.host, port=server.port, dbname=db,
                                           user=APP_USER), password_ref=SecretRef(file=secret))
    stored = capture_to_memory(source)
    rows = state(server, db)
    server.psql(DRIFT, db, user=APP_USER)
    return source, db, stored, rows


def state(server: PgServer, db: str) -> dict[str, list[str]]:
    """Every row of both tables as JSON text (types kept), duplicates kept, sorted."""
    return {table: sorted(server.psql(f"SELECT row_to_json(t)::text FROM {table} t",
                                      db, user=APP_USER).splitlines())
            for table in ("public.events", "public.things")}


def test_a_new_database_gets_every_row_back(
        server: PgServer,
        captured: tuple[PostgresSource, str, MemoryStoredItems, dict[str, list[str]]]) -> None:
    source, db, stored, rows = captured
    target = f"{db}_new"
    done = source.restore(stored, SourceRestoreRequest(target=target, mode="new"))
    assert state(server, target) == rows
    assert len(rows["public.events"]) == 4  # the twin rows both came back
    assert server.psql("SELECT indexname FROM pg_indexes WHERE tablename = 'events'",
                       target) == "events_at"
    assert done.details["plan"]["groups"]["public.events"] == {"create": 4}


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_a_live_database_has_the_table_replaced_whole(
        server: PgServer,
        captured: tuple[PostgresSource, str, MemoryStoredItems, dict[str, list[str]]],
        mode: str) -> None:
    source, db, stored, rows = captured
    before = state(server, db)
    planned = source.restore(stored, SourceRestoreRequest(mode=mode, dry_run=True))
    plan = planned.details["plan"]
    assert plan["whole"] == {"public.events": NO_PRIMARY_KEY}
    # paired by content: the twin and row 3 are there, a twin and row 2 come back, the
    # changed row 2 and the added row 9 go
    assert plan["groups"]["public.events"] == {"create": 2, "delete": 2, "skip": 2}
    assert plan["destructive"] is True
    assert state(server, db) == before  # the dry run wrote nothing

    done = source.restore(stored, SourceRestoreRequest(mode=mode))
    assert done.details["plan"] == plan
    after = state(server, db)
    assert after["public.events"] == rows["public.events"]
    if mode == "overwrite":
        assert after["public.things"] == rows["public.things"]
    else:  # merge keeps the target's version of a differing keyed row, and its own rows
        assert after["public.things"] == before["public.things"]
    assert server.psql("SELECT indexname FROM pg_indexes WHERE tablename = 'events'",
                       db) == "events_at"


def test_only_an_entity_selection_of_it_is_refused(
        server: PgServer,
        captured: tuple[PostgresSource, str, MemoryStoredItems, dict[str, list[str]]]) -> None:
    from vault.sources.entities import Entity

    source, db, stored, _ = captured
    before = state(server, db)
    source.entities = (Entity(name="event", collection="public.events"),)
    with pytest.raises(PgEntityTableUnfit, match=r"entity 'event' \(table public\.events\)"
                       r" cannot be restored row by row"):
        source.restore(stored, SourceRestoreRequest(
            mode="merge", query={"entity": "event", "ids": [1]}))
    assert state(server, db) == before
