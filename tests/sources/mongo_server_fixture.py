"""MongoDB servers for the source tests: a SecantusDB started on loopback for the session,
and a real `mongod` as well when `VAULT_TEST_MONGODB_URL` points at one.

Each test works in databases of its own (`mongo_db`, a unique prefix) and drops them after,
so tests share a server safely under pytest-xdist and against a long-lived mongod.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

SERVERS = ["secantusdb"] + (["mongod"] if os.environ.get("VAULT_TEST_MONGODB_URL") else [])


@dataclass
class MongoServer:
    kind: str
    url: str  # mongodb://host:port/ with no database

    def client(self) -> MongoClient[Any]:
        return MongoClient(self.url, serverSelectionTimeoutMS=10_000)

    def db_url(self, database: str, **params: str) -> str:
        query = "&".join(f"{key}={value}" for key, value in params.items())
        return f"{self.url.rstrip('/')}/{database}" + (f"?{query}" if query else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _secantusd() -> str | None:
    beside = Path(sys.executable).with_name("secantusd-py")
    return str(beside) if beside.exists() else shutil.which("secantusd-py")


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"secantusd-py exited: {log.read_text()[-2000:]}")
        try:
            with MongoClient(url, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"secantusd-py did not accept connections: {log.read_text()[-2000:]}")


@contextmanager
def secantusdb(home: Path) -> Iterator[MongoServer]:
    """A SecantusDB server on loopback with its data and log under `home`, stopped on exit
    (skips when secantusd-py is not installed)."""
    binary = _secantusd()
    if binary is None:
        pytest.skip("secantusd-py not found (pip install -e '.[test]' installs SecantusDB)")
    port = free_port()
    log = home / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(port),
             "--storage-path", str(home / "data"), "--log-level", "WARNING"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"mongodb://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, process, log)
        yield MongoServer("secantusdb", url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session", params=SERVERS)
def mongo_server(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    if request.param == "mongod":
        yield MongoServer("mongod", os.environ["VAULT_TEST_MONGODB_URL"])
        return
    with secantusdb(tmp_path_factory.mktemp("secantus")) as server:
        yield server


@pytest.fixture
def mongo_db(mongo_server: MongoServer) -> Iterator[str]:
    """A prefix for this test's database names; its databases are dropped afterwards."""
    prefix = f"vt{uuid.uuid4().hex[:10]}"
    yield prefix
    with mongo_server.client() as client:
        for name in client.list_database_names():
            if name.startswith(prefix):
                client.drop_database(name)
