"""How much a daily PostgreSQL capture adds to the repository (~200 MB database).

Prints the figures recorded in docs/performance.md (run with -s). The one assertion is
the issue's: after an application-like change of 1 % of the rows, the next capture's new
data is under 10 % of the database size.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pg_server import APP_USER, PG_BIN, PgServer, missing_binary, running_server

from vault.config.secrets import SecretRef
from vault.sources.base import MemoryStoredItems, capture_to_memory
from vault.sources.postgresql.client import client_env
from vault.sources.postgresql.source import PostgresSource
from vault.sources.postgresql.tools import PgTarget, conninfo

NewBytes = Callable[[MemoryStoredItems, MemoryStoredItems], int]  # conftest's fixture
ROWS = 1_000_000
MB = 1e6

CREATE = f"""
CREATE TABLE events (id bigint PRIMARY KEY, account int NOT NULL, kind text NOT NULL,
  body text NOT NULL, at timestamptz NOT NULL);
INSERT INTO events SELECT g, g % 5000, 'kind-' || g % 17,
  md5(g::text) || ' ' || md5((g * 7)::text) || ' ' || md5((g * 13)::text) || ' ' || md5((g * 31)::text),
  timestamptz '2024-01-01' + g * interval '1 second'
FROM generate_series(1, {ROWS}) g;
CREATE TABLE accounts (id int PRIMARY KEY, name text);
INSERT INTO accounts SELECT g, 'account ' || g FROM generate_series(1, 5000) g;
ANALYZE;
"""  # noqa: E501

# What an application does in a day: edits a run of recent rows, appends new ones.
CONTIGUOUS = f"""
UPDATE events SET body = upper(body), at = at + interval '1 day'
  WHERE id BETWEEN {ROWS // 2} AND {ROWS // 2 + ROWS // 200 - 1};
INSERT INTO events SELECT g, g % 5000, 'kind-new', md5(g::text) || ' new', now()
  FROM generate_series({ROWS + 1}, {ROWS + ROWS // 200}) g;
"""

SCATTERED = f"UPDATE events SET kind = 'scattered' WHERE id % 100 = 37 AND id <= {ROWS};"


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    missing = missing_binary()
    if missing is not None:
        pytest.skip(f"PostgreSQL server binary {missing} is not installed")
    with running_server() as running:
        yield running


def whole_dump(server: PgServer, db: str, *options: str) -> MemoryStoredItems:
    """One pg_dump of the whole database as one item: the alternative forms compared."""
    target = PgTarget(server.host, server.port, db, APP_USER)
    done = subprocess.run([str(PG_BIN / "pg_dump"), "-w", *options, "--dbname",
                           conninfo(target)], capture_output=True, check=True,
                          env={**client_env(target), "PGPASSWORD": server.app_password})
    return MemoryStoredItems({"dump": done.stdout}, {})


@pytest.mark.slow
def test_a_day_of_changes_to_one_percent_of_rows_adds_little(
        server: PgServer, tmp_path: Path, new_bytes: NewBytes) -> None:
    db = server.create_database("dedup")
    server.psql(CREATE, db, user=APP_USER)
    secret = tmp_path / "pw"
    secret.write_text(server.app_password)
    secret.chmod(0o600)
    source = PostgresSource("pg", PgTarget(server.host, server.port, db, APP_USER),
                            password_ref=SecretRef(file=secret))
    size = int(server.psql(f"SELECT pg_database_size('{db}')"))

    forms = {"per-table items (chosen)": lambda: capture_to_memory(source),
             "one pg_dump -Fc -Z0": lambda: whole_dump(server, db, "-Fc", "-Z0"),
             "one pg_dump -Fp": lambda: whole_dump(server, db, "-Fp")}
    day0 = {name: take() for name, take in forms.items()}
    server.psql(CONTIGUOUS, db, user=APP_USER)
    day1 = {name: take() for name, take in forms.items()}
    server.psql(SCATTERED, db, user=APP_USER)
    day2 = {"per-table items (chosen)": capture_to_memory(source)}

    print(f"\ndatabase size {size / MB:.1f} MB, {ROWS} rows")
    for name in forms:
        dumped = sum(len(v) for v in day1[name].data.values())
        added = new_bytes(day0[name], day1[name])
        print(f"  contiguous 1 %: {name:26s} dump {dumped / MB:6.1f} MB, "
              f"new {added / MB:6.2f} MB = {100 * added / size:5.2f} % of the database")
    chosen = "per-table items (chosen)"
    scattered = new_bytes(day1[chosen], day2[chosen])
    print(f"  scattered 1 %:  {chosen:26s} new {scattered / MB:6.2f} MB = "
          f"{100 * scattered / size:5.2f} % of the database")
    assert new_bytes(day0[chosen], day1[chosen]) < 0.10 * size
    assert day1[chosen].meta["tables"][1]["rows"] == ROWS + ROWS // 200
