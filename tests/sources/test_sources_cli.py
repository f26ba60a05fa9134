"""Sources end to end through the `vault` command: the repository engine stores each
source's capture as a snapshot, and `vault restore` gives the data back exactly.

The group test backs up files + SQLite + PostgreSQL + MongoDB together, then stops the
PostgreSQL server and backs the group up again: that snapshot set is partial (exit 3), the
journal says why, and the other three sources' snapshots restore.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId
from bson.raw_bson import RawBSONDocument
from mongo_server_fixture import MongoServer, mongo_db, mongo_server  # noqa: F401
from pg_server import APP_USER, missing_binary, running_server

pytestmark = pytest.mark.skipif(missing_binary() is not None,
                                reason=f"PostgreSQL server binary missing: {missing_binary()}")


def make_sqlite(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, n REAL, raw BLOB)")
        db.executemany("INSERT INTO notes VALUES (?, ?, ?, ?)",
                       [(i, f"note {i} ✓", i / 3, bytes([i % 256]) * 5) for i in range(rows)])
    db.close()


def sqlite_rows(path: Path | str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return db.execute(
            "SELECT id, body, n, raw, typeof(body), typeof(n) FROM notes ORDER BY id").fetchall()
    finally:
        db.close()


def test_sqlite_url_backup_and_restore(vault_repo: Any, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_sqlite(db, 2000)
    first = vault_repo.json("backup", f"sqlite://{db}")
    snapshot_id = first.summary["snapshot_id"]
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM notes WHERE id < 100")  # the loss to undo
    conn.close()
    out = tmp_path / "restored.db"
    restored = vault_repo.json("restore", snapshot_id[:8], "--target", out)
    assert restored.summary["source_type"] == "sqlite"
    assert sqlite_rows(out) == [(i, f"note {i} ✓", i / 3, bytes([i % 256]) * 5, "text", "real")
                                for i in range(2000)]
    listed = vault_repo.json("snapshots").summary["snapshots"]
    assert [s["source"]["type"] for s in listed if s["id"] == snapshot_id] == ["sqlite"]
    completed = vault_repo.events("BackupCompleted")[-1]["payload"]
    assert completed["source_type"] == "sqlite"
    assert completed["source"] == f"sqlite://{db}"


def _pg_rows(server: Any, db: str) -> str:
    return server.psql("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) "
                       "FROM shop.orders t", db=db)


def _config(tmp_path: Path, files: Path, db: Path, pg: Any, pg_db: str, mongo_url: str) -> Path:
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

[[sources]]
type = "mongodb"
name = "chat"
url = "{mongo_url}"

[[groups]]
name = "app"
sources = ["uploads", "app-db", "shop", "chat"]
''')
    return config


def test_group_backup_of_four_sources_and_one_server_stopped(
        vault_repo: Any, tmp_path: Path, fs: Any,
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    files = tmp_path / "uploads"
    fs.write_random(files / "a.bin", 300_000, seed=3)
    (files / "b.txt").write_text("hello")
    db = tmp_path / "app.db"
    make_sqlite(db, 500)
    chat = f"{mongo_db}chat"
    docs = [{"_id": ObjectId(), "n": i, "big": Int64(i << 40), "price": Decimal128(f"{i}.10")}
            for i in range(300)]
    with mongo_server.client() as client:
        client[chat]["messages"].insert_many(docs)
    with running_server() as pg:
        pg_db = pg.create_database("shop")
        pg.psql("CREATE SCHEMA shop; CREATE TABLE shop.orders (id serial PRIMARY KEY, "
                "item text, qty int); INSERT INTO shop.orders (item, qty) "
                "SELECT 'item ' || g, g FROM generate_series(1, 1000) g;", db=pg_db,
                user=APP_USER)
        expected_pg = _pg_rows(pg, pg_db)
        config = _config(tmp_path, files, db, pg, pg_db, mongo_server.db_url(chat))
        env = {"SHOP_PG_PASSWORD": pg.app_password}
        run = vault_repo.json("--config", config, "backup", "--group", "app", env=env)
        assert run.code == 0, run.last
        sources = [r for r in run.records if r.get("type") == "source"]
        assert [s["status"] for s in sources] == ["completed"] * 4
        group_id = run.summary["group_id"]
        assert group_id and run.summary["status"] == "completed"
        snapshots = {s["label"]: s["snapshot_id"] for s in sources}

        # Restore PostgreSQL into a new database while the server still runs.
        copied = vault_repo.json("--config", config, "restore", snapshots["shop"][:8],
                                 "--target", "shop_copy", env=env)
        assert copied.code == 0, copied.last
        assert _pg_rows(pg, "shop_copy") == expected_pg
        pg.psql("SELECT 1")  # still up; now stop it for the second group backup
    # The server is stopped: the group is partial, the others are saved.
    failed = vault_repo.run("--config", config, "--json", "backup", "--group", "app",
                            env={"SHOP_PG_PASSWORD": "unused"})
    assert failed.returncode == 3, failed.stderr
    group = vault_repo.events("BackupGroupCompleted")[-1]["payload"]
    assert group["status"] == "partial"
    by_label = {m["label"]: m for m in group["sources"]}
    assert by_label["shop"]["status"] == "failed"
    assert "127.0.0.1" in by_label["shop"]["error"]
    assert {by_label[n]["status"] for n in ("uploads", "app-db", "chat")} == {"completed"}
    second = {n: by_label[n]["snapshot_id"] for n in ("uploads", "app-db", "chat")}
    failures = vault_repo.events("BackupFailed")
    assert failures and failures[-1]["payload"]["job_id"] == by_label["shop"]["job_id"]

    # The three sources saved in the partial group restore exactly.
    out = tmp_path / "out"
    vault_repo.json("--config", config, "restore", second["uploads"][:8], "--target", out)
    fs.assert_same_tree(files, out / str(files).lstrip("/"), include_root=False)
    vault_repo.json("--config", config, "restore", "--yes", second["app-db"][:8],
                    "--target", tmp_path / "app-restored.db")
    assert sqlite_rows(tmp_path / "app-restored.db") == sqlite_rows(db)
    with mongo_server.client() as client:
        client[chat]["messages"].delete_many({"n": {"$lt": 100}})
        vault_repo.json("--config", config, "restore", "--yes", second["chat"][:8],
                        "--mode", "replace")
        raw = client.get_database(chat, codec_options=client.codec_options.with_options(
            document_class=RawBSONDocument))["messages"]
        got = sorted((bytes(d.raw) for d in raw.find()), key=lambda b: b)
    from bson import encode
    assert got == sorted(encode(d) for d in docs)


SECRETS = ("hunter2-smtp-Zq81", "tok-9f8e7d6c5b4a", "s3cr3t-api-K3y!")


@pytest.mark.parametrize("mode", ["redact", "encrypt"])
def test_settings_secrets_never_leave_in_plain_text(vault_repo: Any, tmp_path: Path,
                                                    mode: str) -> None:
    live = tmp_path / "app" / "config.toml"
    live.parent.mkdir()
    original = (f'title = "chat"\nport = 8080\n[smtp]\nhost = "mail"\npassword = "{SECRETS[0]}"\n'
                f'[api]\ntoken = "{SECRETS[1]}"\nsigning_key = "{SECRETS[2]}"\n')
    live.write_text(original)
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "settings"\nname = "app-settings"\n'
                      f'path = "{live}"\nsecrets = "{mode}"\n')
    backed_up = vault_repo.json("--config", config, "backup", "--source", "app-settings")
    assert backed_up.code == 0, backed_up.last
    snapshot_id = backed_up.summary["snapshot_id"]
    listed = vault_repo.json("--config", config, "snapshots")
    shown = vault_repo.run("--config", config, "ls", snapshot_id[:8], "--json")
    for secret in SECRETS:
        for where, text in (("backup --json", backed_up.stdout), ("snapshots", listed.stdout),
                            ("ls", shown.stdout)):
            assert secret not in text, where
        for path in [*vault_repo.env.repo.rglob("*"), *vault_repo.env.state_dir.rglob("*")]:
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path

    # Re-import after the app rewrote its settings: the stored values come back; redacted
    # secrets keep their live values (encrypted ones are restored).
    live.write_text(original.replace('"chat"', '"broken"').replace(SECRETS[1], "new-token"))
    restored = vault_repo.json("--config", config, "restore", snapshot_id[:8], "--settings")
    assert restored.code == 0, restored.last
    for secret in SECRETS:
        assert secret not in restored.stdout
    text = live.read_text()
    assert 'title = "chat"' in text and "port = 8080" in text
    assert SECRETS[0] in text and SECRETS[2] in text  # unchanged live values
    assert ("new-token" in text) == (mode == "redact")
    assert (SECRETS[1] in text) == (mode == "encrypt")


def test_ls_shows_the_entity_hierarchy_with_counts(
        vault_repo: Any, tmp_path: Path, mongo_server: MongoServer,  # noqa: F811
        mongo_db: str) -> None:  # noqa: F811
    chat = f"{mongo_db}app"
    with mongo_server.client() as client:
        db = client[chat]
        projects = [ObjectId() for _ in range(3)]
        db.projects.insert_many([{"_id": p, "title": f"p{i}"} for i, p in enumerate(projects)])
        sessions = [{"_id": ObjectId(), "project_id": projects[i % 3]} for i in range(7)]
        db.sessions.insert_many(sessions)
        db.messages.insert_many([{"_id": ObjectId(), "session_id": sessions[i % 7]["_id"],
                                  "text": f"m{i}"} for i in range(40)])
    config = tmp_path / "vault.toml"
    config.write_text(f'''
[[sources]]
type = "mongodb"
name = "chat"
url = "{mongo_server.db_url(chat)}"

[[sources.entities]]
name = "project"
collection = "projects"

[[sources.entities]]
name = "session"
collection = "sessions"
parent = "project"
key = "project_id"

[[sources.entities]]
name = "message"
collection = "messages"
parent = "session"
key = "session_id"
''')
    assert vault_repo.json("--config", config, "backup", "--source", "chat").code == 0
    shown = vault_repo.json("--config", config, "ls", "latest", "--source", "chat")
    assert shown.code == 0, shown.last
    [project] = shown.summary["entities"]
    assert (project["name"], project["documents"]) == ("project", 3)
    [session] = project["children"]
    assert (session["name"], session["documents"]) == ("session", 7)
    [message] = session["children"]
    assert (message["name"], message["documents"], message["children"]) == ("message", 40, [])
    human = vault_repo.run("--config", config, "ls", "latest", "--source", "chat")
    assert f"project ({chat}.projects): 3 document(s)" in human.stdout
    assert f"└─ message ({chat}.messages): 40 document(s)" in human.stdout

    # A selective backup of one project takes its sessions and messages along.
    one = vault_repo.json("--config", config, "backup", "--source", "chat",
                          "--entity", f"project={projects[1]}")
    assert one.code == 0, one.last
    shown = vault_repo.json("--config", config, "ls", one.summary["snapshot_id"][:8],
                            "--source", "chat")
    [project] = shown.summary["entities"]
    [session] = project["children"]
    mine = [s["_id"] for s in sessions if s["project_id"] == projects[1]]
    assert (project["documents"], session["documents"]) == (1, len(mine))
    messages = sum(1 for i in range(40) if sessions[i % 7]["_id"] in mine)
    assert session["children"][0]["documents"] == messages
    refused = vault_repo.json("--config", config, "backup", "--entity", "project=1",
                              "/etc/hostname")
    assert refused.code == 2 and "--entity" in refused.last["message"]


def test_database_restore_modes_through_the_cli_dry_run_predicts(vault_repo: Any,
                                                                 tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_sqlite(db, 50)
    snapshot_id = vault_repo.json("backup", f"sqlite://{db}").summary["snapshot_id"][:8]
    with sqlite3.connect(db) as conn:  # the app moved on: deleted, changed, added rows
        conn.execute("DELETE FROM notes WHERE id < 5")
        conn.execute("UPDATE notes SET body = 'edited' WHERE id BETWEEN 10 AND 12")
        conn.execute("INSERT INTO notes VALUES (500, 'new', 0.5, x'00')")
    conn.close()
    preview = vault_repo.json("restore", snapshot_id, "--mode", "merge", "--dry-run")
    assert preview.code == 0, preview.last
    assert preview.summary["plan"]["totals"] == {
        "create": 5, "overwrite": 0, "skip": 45, "rename": 0, "delete": 0, "conflict": 0}
    assert sqlite_rows(db)[0][0] == 5  # nothing written by the preview
    done = vault_repo.json("restore", "--yes", snapshot_id, "--mode", "merge")
    assert done.code == 0, done.last
    assert done.summary["details"]["plan"]["totals"] == preview.summary["plan"]["totals"]
    rows = {r[0]: r[1] for r in sqlite_rows(db)}
    assert [rows[i] for i in (0, 4, 10, 13, 500)] == [
        "note 0 ✓", "note 4 ✓", "edited", "note 13 ✓", "new"]  # merge keeps the edits
    refused = vault_repo.json("restore", snapshot_id, "--mode", "overwrite",
                              "--on-conflict", "fail")
    assert refused.code == 1 and "differ" in refused.last["message"]
    vault_repo.json("restore", "--yes", snapshot_id, "--mode", "overwrite")
    assert sqlite_rows(db) == [(i, f"note {i} ✓", i / 3, bytes([i % 256]) * 5, "text", "real")
                               for i in range(50)]


def test_point_in_time_restore_of_a_group(vault_repo: Any, tmp_path: Path) -> None:
    """Two sources backed up together come back from the newest group in which both
    completed, even though a later group saved one of them."""
    import time as clock
    from datetime import UTC, datetime

    files = tmp_path / "uploads"
    files.mkdir()
    db = tmp_path / "app.db"
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "files"\nname = "uploads"\npaths = ["{files}"]\n'
                      f'[[sources]]\ntype = "sqlite"\nname = "app-db"\npath = "{db}"\n'
                      '[[groups]]\nname = "app"\nsources = ["uploads", "app-db"]\n')

    def state(n: int) -> None:
        (files / "state.txt").write_text(f"state {n}")
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, n INT)")
            conn.execute("INSERT OR REPLACE INTO t VALUES (1, ?)", (n,))
        conn.close()

    state(1)
    assert vault_repo.json("--config", config, "backup", "--group", "app").code == 0
    state(2)
    assert vault_repo.json("--config", config, "backup", "--group", "app").code == 0
    moment = datetime.now(UTC).isoformat()
    clock.sleep(0.01)
    state(3)
    db.rename(tmp_path / "away.db")  # the database is missing: this group is partial
    assert vault_repo.json("--config", config, "backup", "--group", "app").code == 3
    (tmp_path / "away.db").rename(db)
    state(4)
    # Later than the partial group: still the newest group where both completed (state 2).
    later = datetime.now(UTC).isoformat()
    preview = vault_repo.json("--config", config, "restore", "app", "--at", later,
                              "--mode", "overwrite", "--dry-run")
    assert preview.code == 0, preview.last
    assert (files / "state.txt").read_text() == "state 4"
    done = vault_repo.json("--config", config, "restore", "--yes", "app", "--at", later,
                           "--mode", "overwrite")
    assert done.code == 0, done.last
    assert done.summary["snapshots"] == preview.summary["snapshots"]
    assert (files / "state.txt").read_text() == "state 2"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT n FROM t").fetchall() == [(2,)]
    conn.close()
    # One source alone: its newest completed snapshot at or before the moment.
    state(5)
    single = vault_repo.json("--config", config, "restore", "uploads", "--at", moment,
                             "--target", tmp_path / "out")
    assert single.code == 0, single.last
    assert (tmp_path / "out" / str(files).lstrip("/") / "state.txt").read_text() == "state 2"
    missing = vault_repo.json("--config", config, "restore", "uploads", "--at",
                              "2000-01-01T00:00+00:00", "--target", tmp_path / "x")
    assert missing.code == 2 and "no completed snapshot" in missing.last["message"]


def test_sqlite_entity_hierarchy_counts_and_selective_backup(vault_repo: Any,
                                                            tmp_path: Path) -> None:
    """The same hierarchy over SQL tables (foreign-key columns): counts and date ranges in
    the snapshot, the tree in `vault ls --source`, one project backed up with its sessions
    and messages, and its restore holding exactly those rows."""
    db = tmp_path / "chat.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("""
            CREATE TABLE projects (id INTEGER PRIMARY KEY, title TEXT);
            CREATE TABLE sessions (id INTEGER PRIMARY KEY,
                                   project_id INTEGER REFERENCES projects(id), started TEXT);
            CREATE TABLE messages (id INTEGER PRIMARY KEY,
                                   session_id INTEGER REFERENCES sessions(id), body TEXT);
            CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
        """)
        conn.executemany("INSERT INTO projects VALUES (?, ?)", [(i, f"p{i}") for i in (1, 2, 3)])
        conn.executemany("INSERT INTO sessions VALUES (?, ?, ?)",
                         [(i, 1 + i % 3, f"2026-11-{10 + i:02d}") for i in range(9)])
        conn.executemany("INSERT INTO messages VALUES (?, ?, ?)",
                         [(i, i % 9, f"m{i}") for i in range(90)])
        conn.execute("INSERT INTO users VALUES (1, 'ann')")
    conn.close()
    config = tmp_path / "vault.toml"
    config.write_text(f'''
[[sources]]
type = "sqlite"
name = "chat"
path = "{db}"

[[sources.entities]]
name = "project"
collection = "projects"

[[sources.entities]]
name = "session"
collection = "sessions"
parent = "project"
key = "project_id"
date_field = "started"

[[sources.entities]]
name = "message"
collection = "messages"
parent = "session"
key = "session_id"
''')
    assert vault_repo.json("--config", config, "backup", "--source", "chat").code == 0
    shown = vault_repo.json("--config", config, "ls", "latest", "--source", "chat")
    [project] = shown.summary["entities"]
    [session] = project["children"]
    assert (project["documents"], session["documents"]) == (3, 9)
    assert (session["first"], session["last"]) == ("2026-11-10", "2026-11-18")
    assert session["children"][0]["documents"] == 90

    one = vault_repo.json("--config", config, "backup", "--source", "chat",
                          "--entity", "project=2")
    assert one.code == 0, one.last
    out = tmp_path / "project2.db"
    vault_repo.json("--config", config, "restore", "--yes", one.summary["snapshot_id"][:8],
                    "--target", out)
    with sqlite3.connect(out) as conn:
        assert conn.execute("SELECT id FROM projects").fetchall() == [(2,)]
        sessions = [r[0] for r in conn.execute("SELECT id FROM sessions ORDER BY id")]
        assert sessions == [i for i in range(9) if 1 + i % 3 == 2]
        messages = [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY id")]
        assert messages == [i for i in range(90) if i % 9 in sessions]
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    with sqlite3.connect(db) as conn:  # the live database is untouched
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (90,)
    conn.close()


def test_postgresql_entity_counts_in_vault_ls(vault_repo: Any, tmp_path: Path) -> None:
    with running_server() as pg:
        db = pg.create_database("chat")
        pg.psql("CREATE TABLE projects (id serial PRIMARY KEY, title text);"
                "CREATE TABLE sessions (id serial PRIMARY KEY, project_id int, started date);"
                "INSERT INTO projects (title) SELECT 'p' || g FROM generate_series(1, 4) g;"
                "INSERT INTO sessions (project_id, started) SELECT 1 + g % 4, "
                "date '2026-01-01' + g FROM generate_series(1, 10) g;", db=db, user=APP_USER)
        config = tmp_path / "vault.toml"
        config.write_text(f'''
[[sources]]
type = "postgresql"
name = "chat"
host = "127.0.0.1"
port = {pg.port}
dbname = "{db}"
user = "app"
password = {{ env = "CHAT_PG_PASSWORD" }}

[[sources.entities]]
name = "project"
collection = "projects"

[[sources.entities]]
name = "session"
collection = "public.sessions"
parent = "project"
key = "project_id"
date_field = "started"
''')
        env = {"CHAT_PG_PASSWORD": pg.app_password}
        done = vault_repo.json("--config", config, "backup", "--source", "chat", env=env)
        assert done.code == 0, done.last
    shown = vault_repo.json("--config", config, "ls", "latest", "--source", "chat")
    [project] = shown.summary["entities"]
    [session] = project["children"]
    assert (project["documents"], session["documents"]) == (4, 10)
    assert (session["first"], session["last"]) == ("2026-01-02", "2026-01-11")
