"""A group's members are captured at one moment: files + SQLite + PostgreSQL backed up
with `--group`, while writers keep changing both databases and a large file tree takes
seconds to stream.

Each snapshot records `captured_at`; the spread across the group is small although the
file tree is streamed first, and the databases hold exactly what was there at their
recorded capture time (rows written after it, while the files were being read, are not
in the restored copies), proving the time is the real consistent point.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pg_server import APP_USER, missing_binary, running_server

pytestmark = pytest.mark.skipif(missing_binary() is not None,
                                reason=f"PostgreSQL server binary missing: {missing_binary()}")

MiB = 1 << 20


def _config(tmp_path: Path, files: Path, db: Path, pg: Any, pg_db: str) -> Path:
    config = tmp_path / "vault.toml"
    config.write_text(f'''
[[sources]]
type = "files"
name = "uploads"
paths = ["{files}"]

[[sources]]
type = "sqlite"
name = "app-db"
path = "{db}"

[[sources]]
type = "postgresql"
name = "shop"
host = "127.0.0.1"
port = {pg.port}
dbname = "{pg_db}"
user = "app"
password = {{ env = "SHOP_PG_PASSWORD" }}

[[groups]]
name = "app"
sources = ["uploads", "app-db", "shop"]
''')
    return config


class Writers:
    """Insert a row stamped with the wall clock into SQLite and PostgreSQL every ~20 ms
    until stopped: whatever a capture holds says when it was taken."""

    def __init__(self, db: Path, pg: Any, pg_db: str) -> None:
        self.db, self.pg, self.pg_db = db, pg, pg_db
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._sqlite, daemon=True),
                        threading.Thread(target=self._postgres, daemon=True)]

    def _sqlite(self) -> None:
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            while not self.stop.is_set():
                with conn:
                    conn.execute("INSERT INTO ticks (at) VALUES (?)", (time.time(),))
                self.stop.wait(0.02)
        finally:
            conn.close()

    def _postgres(self) -> None:
        while not self.stop.is_set():
            self.pg.psql("INSERT INTO ticks (at) VALUES "
                         "(extract(epoch from clock_timestamp()))", db=self.pg_db,
                         user=APP_USER)
            self.stop.wait(0.02)

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_group_members_are_captured_at_one_moment(vault_repo: Any, tmp_path: Path,
                                                  fs: Any) -> None:
    files = tmp_path / "uploads"
    for i in range(8):  # slow to stream: read, chunked, encrypted after the captures
        fs.write_random(files / f"part{i}.bin", 12 * MiB, seed=40 + i)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE ticks (id INTEGER PRIMARY KEY, at REAL NOT NULL)")
    conn.close()
    with running_server() as pg:
        pg_db = pg.create_database("shop")
        pg.psql("CREATE TABLE ticks (id serial PRIMARY KEY, at double precision NOT NULL)",
                db=pg_db, user=APP_USER)
        config = _config(tmp_path, files, db, pg, pg_db)
        env = {"SHOP_PG_PASSWORD": pg.app_password}
        with Writers(db, pg, pg_db):
            time.sleep(0.3)
            run = vault_repo.json("--config", config, "backup", "--group", "app", env=env)
            time.sleep(0.3)
        assert run.code == 0, run.last
        snapshots = vault_repo.json("--config", config, "snapshots").summary["snapshots"]
        members = {s["source"].get("label") or s["source"].get("name"): s for s in snapshots}
        assert set(members) == {"uploads", "app-db", "shop"}
        captured = {name: _epoch(s["captured_at"]) for name, s in members.items()}
        started = {e["payload"]["job_id"]: _epoch(e["recorded_at"])
                   for e in vault_repo.events("BackupStarted")}
        spread = max(captured.values()) - min(captured.values())
        files_stream = _epoch(members["uploads"]["time"]) - captured["uploads"]
        job_spread = max(started.values()) - min(started.values())
        print(f"\ncaptured_at spread {spread:.3f}s; files streamed {files_stream:.3f}s; "
              f"jobs started over {job_spread:.3f}s; "
              f"{ {n: round(t - min(captured.values()), 3) for n, t in captured.items()} }")
        # The file tree is streamed first; the databases' points were taken while it
        # streamed (one after another, they would come after its end), although their
        # jobs ran after it. An order, not a timing: it holds on a fast or a loaded machine.
        files_end = _epoch(members["uploads"]["time"])
        assert all(captured[db] < files_end for db in ("app-db", "shop")), \
            (captured, files_end)
        assert spread < files_stream, (captured, files_stream)
        assert job_spread > files_stream  # the databases' jobs ran after the files

        # Each database holds what was there at its recorded capture time: rows written
        # later, while the files were streamed, are not in the restored copy.
        out_db = tmp_path / "restored.db"
        vault_repo.json("--config", config, "restore", "--yes", members["app-db"]["id"][:8],
                        "--target", out_db)
        restored = sqlite3.connect(out_db)
        sqlite_last = restored.execute("SELECT max(at) FROM ticks").fetchone()[0]
        restored.close()
        copied = vault_repo.json("--config", config, "restore", members["shop"]["id"][:8],
                                 "--target", "shop_copy", env=env)
        assert copied.code == 0, copied.last
        pg_last = float(pg.psql("SELECT max(at) FROM ticks", db="shop_copy"))
        live_last = float(pg.psql("SELECT max(at) FROM ticks", db=pg_db))
    assert live_last > captured["shop"] + files_stream / 2  # writes went on meanwhile
    for name, last in (("app-db", sqlite_last), ("shop", pg_last)):
        # written before the point (the writers tick every ~20 ms; one psql is slower)...
        assert captured[name] - 1.0 < last, (name, last, captured[name])
        # ...and nothing written after it
        assert last <= captured[name] + 0.05, (name, last, captured[name])
