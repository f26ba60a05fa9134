"""The database servers the source contract runs against, started on loopback the first
time a harness asks for one and stopped at the end of the session.

PostgreSQL comes from tests/sources/pg_server.py (initdb + pg_ctl as the `postgres` user),
MongoDB is a SecantusDB server (`secantusd-py`, a test dependency) started the way
tests/sources/mongo_server_fixture.py starts it, or the real `mongod` that
VAULT_TEST_MONGODB_URL names, when set. A `-k sqlite` run starts neither.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "sources"))  # the servers' helpers
from mongo_server_fixture import MongoServer, secantusdb
from pg_server import PgServer, missing_binary, running_server

__all__ = ["MongoServer", "PgServer", "SourceServers"]


class SourceServers:
    """Servers shared by the session's harnesses, each started on first use."""

    def __init__(self, stack: ExitStack, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._stack = stack
        self._tmp = tmp_path_factory
        self._postgres: PgServer | None = None
        self._mongo: MongoServer | None = None
        # read now: a test's vault_env removes every VAULT_* variable while it runs
        self._mongod_url = os.environ.get("VAULT_TEST_MONGODB_URL")

    def postgres(self) -> PgServer:
        if self._postgres is None:
            missing = missing_binary()
            if missing is not None:
                pytest.skip(f"PostgreSQL server binary {missing} is not installed")
            self._postgres = self._stack.enter_context(running_server())
        return self._postgres

    def mongo(self) -> MongoServer:
        if self._mongo is None and self._mongod_url:
            self._mongo = MongoServer("mongod", self._mongod_url)
        if self._mongo is None:
            self._mongo = self._stack.enter_context(secantusdb(self._tmp.mktemp("secantus")))
        return self._mongo
