"""A SQLite source's secret tables: API keys in the application's settings table (and a
token column) are redacted or sealed in the stored copy, never in the live database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from vault.sources.sqlite.secrets import REDACTED_TEXT, SEALED_PREFIX

SECRET_KEY = "sk-live-0a1b2c3d4e5f"
TOKEN = "tok-users-998877"
BLOB_SECRET = b"\x00\x01binary-secret\xff"
SETTINGS = [("db_password", BLOB_SECRET), ("openai_api_key", SECRET_KEY), ("retries", 3),
            ("site_name", "chat"), ("smtp_token", 424242)]
USERS = [(1, "ann", TOKEN, 1.5), (2, "bob", None, 2.5)]


def _app_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value)")
        conn.executemany("INSERT INTO settings VALUES (?, ?)", SETTINGS)
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, api_token TEXT,"
                     " score REAL)")
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", USERS)
    conn.close()


def _rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    conn.close()
    return rows


def _config(tmp_path: Path, db: Path, mode: str) -> Path:
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "sqlite"\nname = "app-db"\npath = "{db}"\n'
                      f'secrets = "{mode}"\n'
                      '[[sources.secret_tables]]\ntable = "settings"\nkey_column = "key"\n'
                      'value_column = "value"\n'
                      '[[sources.secret_tables]]\ntable = "users"\n')
    return config


def _stored_copy(open_repo: Any, snapshot_id: str, out: Path) -> bytes:
    from vault.restore.items import SnapshotItems

    repo = open_repo()
    (snapshot,) = [s for s in repo.snapshots() if s.id == snapshot_id]
    items = SnapshotItems(repo, snapshot)
    (path,) = items.paths()
    with items.open(path) as stream:
        data = stream.read()
    out.write_bytes(data)
    return data


@pytest.mark.parametrize("mode", ["redact", "encrypt"])
def test_secret_cells_are_protected_in_the_stored_copy_and_restored_as_documented(
        vault_repo: Any, open_repo: Any, tmp_path: Path, mode: str) -> None:
    db = tmp_path / "app.db"
    _app_db(db)
    config = _config(tmp_path, db, mode)
    backed_up = vault_repo.json("--config", config, "backup", "--source", "app-db")
    assert backed_up.code == 0, backed_up.last
    snap = backed_up.summary["snapshot_id"]
    assert _rows(db, "settings") == SETTINGS and _rows(db, "users") == USERS  # live untouched

    stored = tmp_path / "stored.db"
    raw = _stored_copy(open_repo, snap, stored)
    for secret in (SECRET_KEY.encode(), TOKEN.encode(), BLOB_SECRET):
        assert secret not in raw  # not in a cell, and not in a freed page either
    kept = dict(_rows(stored, "settings"))
    assert kept["site_name"] == "chat" and kept["retries"] == 3  # not secrets: as they were
    hidden = [kept["db_password"], kept["openai_api_key"], kept["smtp_token"],
              _rows(stored, "users")[0][2]]
    if mode == "redact":
        assert hidden == [REDACTED_TEXT] * 4
    else:
        assert all(str(v).startswith(SEALED_PREFIX) for v in hidden)
    assert _rows(stored, "users")[1][2] is None  # a NULL stays NULL

    # Into a new file: sealed values come back type for type; redacted ones stay markers.
    fresh = tmp_path / "fresh.db"
    restored = vault_repo.json("--config", config, "restore", snap, "--target", fresh)
    assert restored.code == 0, restored.last
    if mode == "encrypt":
        assert _rows(fresh, "settings") == SETTINGS and _rows(fresh, "users") == USERS
    else:
        assert dict(_rows(fresh, "settings"))["openai_api_key"] == REDACTED_TEXT

    # Over the live database (rows changed since): a redacted secret keeps its live value.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE settings SET value = 'rotated-key' WHERE key = 'openai_api_key'")
        conn.execute("UPDATE settings SET value = 'broken' WHERE key = 'site_name'")
    conn.close()
    over = vault_repo.json("--config", config, "restore", "--yes", snap, "--mode", "overwrite")
    assert over.code == 0, over.last
    settings = dict(_rows(db, "settings"))
    assert settings["site_name"] == "chat"
    assert settings["openai_api_key"] == ("rotated-key" if mode == "redact" else SECRET_KEY)
    assert settings["db_password"] == BLOB_SECRET and _rows(db, "users") == USERS


def test_half_a_key_value_pair_is_a_config_error(vault_repo: Any, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    _app_db(db)
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "sqlite"\nname = "app-db"\npath = "{db}"\n'
                      '[[sources.secret_tables]]\ntable = "settings"\nkey_column = "key"\n')
    result = vault_repo.run("--config", config, "backup", "--source", "app-db")
    assert result.returncode == 2 and "give both key_column and value_column" in result.stderr, \
        result.stderr


def test_sealed_cells_moved_to_another_repository_restore_as_redacted(
        vault_repo: Any, tmp_path: Path) -> None:
    """An export carries a database's sealed cells as they are; the other repository's
    key does not open them, so they restore like redacted ones (documented)."""
    db = tmp_path / "app.db"
    _app_db(db)
    config = _config(tmp_path, db, "encrypt")
    backed_up = vault_repo.json("--config", config, "backup", "--source", "app-db")
    assert backed_up.code == 0, backed_up.last
    out = tmp_path / "db.vault"
    assert vault_repo.json("export", backed_up.summary["snapshot_id"], "-o", out).code == 0
    other = {"VAULT_REPOSITORY": str(tmp_path / "repo2"), "VAULT_PASSWORD": "other pw 77"}
    vault_repo.ok("init", env=other)
    imported = vault_repo.json("import", out, env={
        **other, "VAULT_EXPORT_PASSWORD": vault_repo.env.password})
    assert imported.code == 0, imported.stderr
    fresh = tmp_path / "fresh.db"
    restored = vault_repo.json("restore", imported.summary["snapshot_id"], "--target",
                               f"sqlite://{fresh}", env=other)
    assert restored.code == 0, restored.last
    settings = dict(_rows(fresh, "settings"))
    assert settings["site_name"] == "chat" and settings["retries"] == 3
    assert str(settings["openai_api_key"]).startswith(SEALED_PREFIX)
    assert [r[:2] for r in _rows(fresh, "users")] == [r[:2] for r in USERS]
