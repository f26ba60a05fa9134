"""A real PostgreSQL server for tests: initdb + pg_ctl on 127.0.0.1 at a free port.

PostgreSQL refuses to run as root, and the tests run as root, so the cluster belongs to the
`postgres` system user and lives in a `tempfile.mkdtemp()` directory chowned to it (pytest's
tmp_path sits under a 0700 root directory that user cannot enter). TCP connections need a
password (scram-sha-256), so authentication failures are real; the unix socket (in the
same directory) trusts the superuser, which the tests use to set up and inspect databases.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("VAULT_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
APP_USER = "app"


def missing_binary() -> str | None:
    """The first server binary the fixture needs that is not installed, or None."""
    for name in ("initdb", "pg_ctl", "postgres", "psql", "pg_dump", "pg_restore"):
        if not (PG_BIN / name).exists():
            return str(PG_BIN / name)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PgServer:
    """A running server; `psql()` runs SQL as the superuser over the unix socket."""

    port: int
    socket_dir: Path
    app_password: str
    host: str = "127.0.0.1"

    def psql(self, sql: str, db: str = "postgres", user: str = "postgres") -> str:
        """Run `sql` (several statements allowed) as `user` (the superuser by default);
        the unaligned, tuples-only output."""
        done = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-U", user, "-d", db],
            input=sql, capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"psql failed: {done.stderr.strip()}\n{sql[:500]}")
        return done.stdout.strip()

    def create_database(self, name: str, owner: str = APP_USER) -> str:
        self.psql(f'CREATE DATABASE "{name}" OWNER {owner} TEMPLATE template0')
        return name

    def url(self, db: str, *, user: str = APP_USER, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{db}"


def _as_postgres(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                          text=True, check=True, **kwargs)  # type: ignore[call-overload]


@contextmanager
def running_server() -> Iterator[PgServer]:
    """Start a fresh cluster, yield it, stop it and remove its directory."""
    root = Path(tempfile.mkdtemp(prefix="vault-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    port = free_port()
    app_password = "pw-" + secrets.token_hex(8)
    try:
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                      "--locale=C.UTF-8"])
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                   f"-c unix_socket_directories={root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                      "-l", str(root / "log"), "start"])
        server = PgServer(port=port, socket_dir=root, app_password=app_password)
        server.psql(f"CREATE ROLE {APP_USER} LOGIN CREATEDB PASSWORD '{app_password}'")
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                          "stop"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    """A server for the test module that imports this fixture; the module's tests that use
    it are skipped where PostgreSQL is not installed."""
    missing = missing_binary()
    if missing is not None:
        pytest.skip(f"PostgreSQL server binary {missing} is not installed")
    with running_server() as running:
        yield running
