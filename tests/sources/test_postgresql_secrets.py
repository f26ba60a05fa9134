"""A PostgreSQL source's secret tables, against a real server through `vault`: API keys
in a key/value settings table (jsonb values) and token columns (text, bytea) are redacted
or sealed in the stored rows, never in the live database."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_server import APP_USER, PgServer, missing_binary, running_server

from vault.sources.postgresql.secrets import PgSecretColumnType
from vault.sources.sqlite.secrets import REDACTED_TEXT, SEALED_PREFIX

pytestmark = pytest.mark.skipif(missing_binary() is not None,
                                reason=f"PostgreSQL server binary missing: {missing_binary()}")

SECRET_KEY = "sk-live-pg-0a1b2c3d"
SMTP_PASSWORD = "hunter2-pg-Zq81"
TOKEN = "tok-pg-users-998877"
BLOB = "binary-pg-secret"
SCHEMA = f"""
CREATE SCHEMA cfg;
CREATE TABLE cfg.settings (key text PRIMARY KEY, value jsonb);
INSERT INTO cfg.settings VALUES ('openai_api_key', '"{SECRET_KEY}"'),
  ('smtp_password', '{{"v": "{SMTP_PASSWORD}", "n": 1.50}}'), ('retries', '3'),
  ('site_name', '"chat"'), ('empty_token', NULL);
CREATE TABLE users (id int PRIMARY KEY, name text, api_token varchar(64),
  auth_blob bytea, score float8, born date);
INSERT INTO users VALUES (1, E'ann\\ttab', '{TOKEN}', decode('00{BLOB.encode().hex()}ff', 'hex'),
  1.5, '2000-01-02'), (2, 'bob', NULL, NULL, 2.5, NULL);
CREATE TABLE notes (id serial PRIMARY KEY, body text);
INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 50) g;
"""
ROWS = {"cfg.settings": "SELECT t::text, jsonb_typeof(value) FROM cfg.settings t ORDER BY key",
        "users": "SELECT t::text, pg_typeof(auth_blob) FROM users t ORDER BY id",
        "notes": "SELECT t::text FROM notes t ORDER BY id"}
_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    with running_server() as running:
        yield running


def _rows(server: PgServer, db: str) -> dict[str, str]:
    return {table: server.psql(sql, db) for table, sql in ROWS.items()}


def _value(server: PgServer, db: str, sql: str) -> str:
    return server.psql(sql, db)


def _config(tmp_path: Path, server: PgServer, db: str, mode: str) -> Path:
    config = tmp_path / "vault.toml"
    config.write_text(f'''
[[sources]]
type = "postgresql"
name = "shop"
host = "127.0.0.1"
port = {server.port}
dbname = "{db}"
user = "{APP_USER}"
password = {{ env = "SHOP_PG_PASSWORD" }}
secrets = "{mode}"

[[sources.secret_tables]]
table = "cfg.settings"
key_column = "key"
value_column = "value"

[[sources.secret_tables]]
table = "users"
''')
    return config


def _stored_bytes(open_repo: Any, snapshot_id: str) -> dict[str, bytes]:
    """Every item of the snapshot, read back from the repository (decrypted)."""
    from vault.restore.items import SnapshotItems

    repo = open_repo()
    (snapshot,) = [s for s in repo.snapshots() if s.id == snapshot_id]
    items = SnapshotItems(repo, snapshot)
    found = {}
    for path in items.paths():
        with items.open(path) as stream:
            found[path] = stream.read()
    return found


@pytest.mark.parametrize("mode", ["redact", "encrypt"])
def test_secret_fields_are_protected_in_the_stored_rows_and_restored_as_documented(
        vault_repo: Any, open_repo: Any, tmp_path: Path, server: PgServer, mode: str) -> None:
    db = server.create_database(f"shop_{os.getpid()}_{next(_names)}")
    server.psql(SCHEMA, db, user=APP_USER)
    original = _rows(server, db)
    config = _config(tmp_path, server, db, mode)
    env = {"SHOP_PG_PASSWORD": server.app_password}
    backed_up = vault_repo.json("--config", config, "backup", "--source", "shop", env=env)
    assert backed_up.code == 0, backed_up.last
    snap = backed_up.summary["snapshot_id"]
    assert _rows(server, db) == original  # the live database is untouched

    stored = _stored_bytes(open_repo, snap)
    everything = b"".join(stored.values())
    for secret in (SECRET_KEY, SMTP_PASSWORD, TOKEN, BLOB, BLOB.encode().hex()):
        assert secret.encode() not in everything, secret
    assert b"note 50" in everything and b'"chat"' in everything  # the rest is stored
    settings = stored["tables/cfg/settings.sql"]
    marker = (REDACTED_TEXT if mode == "redact" else SEALED_PREFIX).encode()
    assert settings.count(b'\t"' + marker) == 2  # openai_api_key, smtp_password; NULL kept
    assert stored["tables/public/users.sql"].count(b"\t" + marker) == 2  # token, blob

    # Into a new database: sealed values come back exactly; redacted ones as the marker.
    fresh = f"{db}_fresh"
    restored = vault_repo.json("--config", config, "restore", snap, "--target", fresh, env=env)
    assert restored.code == 0, restored.last
    got = _rows(server, fresh)
    assert got["notes"] == original["notes"]
    if mode == "encrypt":
        assert got == original
    else:
        assert _value(server, fresh, "SELECT value #>> '{}' FROM cfg.settings WHERE key = "
                      "'openai_api_key'") == REDACTED_TEXT
        assert _value(server, fresh, "SELECT api_token || convert_from(auth_blob, 'UTF8') "
                      "FROM users WHERE id = 1") == REDACTED_TEXT * 2
        assert _value(server, fresh, "SELECT value FROM cfg.settings WHERE key = 'retries'") \
            == "3"

    # Over the live database (rows changed since): a redacted secret keeps its live value.
    server.psql("UPDATE cfg.settings SET value = '\"rotated\"' WHERE key = 'openai_api_key';"
                "UPDATE cfg.settings SET value = '\"broken\"' WHERE key = 'site_name';"
                "UPDATE users SET name = 'changed' WHERE id = 1;", db)
    over = vault_repo.json("--config", config, "restore", "--yes", snap, "--mode", "overwrite",
                           env=env)
    assert over.code == 0, over.last
    now = _rows(server, db)
    live_key = _value(server, db, "SELECT value #>> '{}' FROM cfg.settings WHERE key = "
                      "'openai_api_key'")
    assert live_key == ("rotated" if mode == "redact" else SECRET_KEY)
    assert now["users"] == original["users"] and now["notes"] == original["notes"]
    assert _value(server, db, "SELECT value #>> '{}' FROM cfg.settings WHERE key = "
                  "'site_name'") == "chat"
    if mode == "encrypt":
        assert now == original

    # Another table alone: the safety copy taken first holds no secret table, and works.
    server.psql("DELETE FROM notes WHERE id > 40", db)
    only = vault_repo.json("--config", config, "restore", "--yes", snap, "--only", "notes",
                           "--mode", "replace", env=env)
    assert only.code == 0, only.last
    assert _rows(server, db)["notes"] == original["notes"]


def test_a_secret_column_that_cannot_hold_the_marker_fails_the_backup(
        vault_repo: Any, tmp_path: Path, server: PgServer) -> None:
    db = server.create_database(f"shop_{os.getpid()}_{next(_names)}")
    server.psql("CREATE TABLE users (id int PRIMARY KEY, pin_token int);"
                "INSERT INTO users VALUES (1, 1234);", db, user=APP_USER)
    config = tmp_path / "vault.toml"
    config.write_text(_config(tmp_path, server, db, "redact").read_text().split(
        "[[sources.secret_tables]]")[0] + '[[sources.secret_tables]]\ntable = "users"\n')
    result = vault_repo.run("--config", config, "backup", "--source", "shop",
                            env={"SHOP_PG_PASSWORD": server.app_password})
    assert result.returncode == 2, result.stderr
    assert "column pin_token of table public.users is integer" in result.stderr, result.stderr
    assert PgSecretColumnType.__doc__ and "text, varchar" in PgSecretColumnType.__doc__
    assert vault_repo.json("snapshots").summary["snapshots"] == []
    failed = vault_repo.events("BackupFailed")[-1]["payload"]
    assert "pin_token" in failed["message"], failed


def test_sealed_fields_moved_to_another_repository_restore_as_redacted(
        vault_repo: Any, tmp_path: Path, server: PgServer) -> None:
    """An export carries a table's sealed fields as they are; the other repository's key
    does not open them, so they restore like redacted ones: the marker (documented)."""
    db = server.create_database(f"shop_{os.getpid()}_{next(_names)}")
    server.psql(SCHEMA, db, user=APP_USER)
    original = _rows(server, db)
    config = _config(tmp_path, server, db, "encrypt")
    env = {"SHOP_PG_PASSWORD": server.app_password}
    backed_up = vault_repo.json("--config", config, "backup", "--source", "shop", env=env)
    assert backed_up.code == 0, backed_up.last
    out = tmp_path / "db.vault"
    assert vault_repo.json("export", backed_up.summary["snapshot_id"], "-o", out).code == 0
    other = {"VAULT_REPOSITORY": str(tmp_path / "repo2"), "VAULT_PASSWORD": "other pw 77"}
    vault_repo.ok("init", env=other)
    imported = vault_repo.json("import", out, env={
        **other, "VAULT_EXPORT_PASSWORD": vault_repo.env.password})
    assert imported.code == 0, imported.stderr
    # Created first: without a configured source the target URL is the source, and a
    # restore connects to it to create a missing database (a limit outside this test).
    fresh = server.create_database(f"{db}_other")
    restored = vault_repo.json("restore", imported.summary["snapshot_id"], "--target",
                               server.url(fresh, password=server.app_password), env=other)
    assert restored.code == 0, restored.last
    got = _rows(server, fresh)
    assert got["notes"] == original["notes"]
    assert _value(server, fresh, "SELECT value #>> '{}' FROM cfg.settings WHERE key = "
                  "'openai_api_key'") == REDACTED_TEXT
    assert _value(server, fresh, "SELECT value FROM cfg.settings WHERE key = 'retries'") == "3"
    assert _value(server, fresh, "SELECT api_token FROM users WHERE id = 1") == REDACTED_TEXT
