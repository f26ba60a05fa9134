"""A MongoDB source's secret collections, against a real server through `vault`: API keys
in a key/value settings collection and secret fields at any depth of user documents are
redacted or sealed in the stored BSON, never in the live database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import Binary, Decimal128, Int64, ObjectId, decode
from mongo_helpers import raw_documents
from mongo_server_fixture import MongoServer, mongo_db, mongo_server  # noqa: F401

from vault.sources.sqlite.secrets import REDACTED_TEXT, SEALED_PREFIX

SECRET_KEY = "sk-live-mongo-0a1b2c"
SMTP_PASSWORD = "hunter2-mongo-Zq81"
TOKEN = "tok-mongo-users-9988"
NESTED_PASSWORD = "nested-pw-mongo-77"
SERVER_TOKEN = "server-tok-mongo-55"
BLOB = b"\x00bin-mongo-secret\xff"
SECRETS = (SECRET_KEY, SMTP_PASSWORD, TOKEN, NESTED_PASSWORD, SERVER_TOKEN)


def _fill(server: MongoServer, database: str) -> None:
    settings = [{"_id": ObjectId(), "key": "openai_api_key", "value": SECRET_KEY},
                {"_id": ObjectId(), "key": "smtp_password",
                 "value": {"pw": SMTP_PASSWORD, "n": Int64(1)}},
                {"_id": ObjectId(), "key": "retries", "value": 3},
                {"_id": ObjectId(), "key": "site_name", "value": "chat"},
                {"_id": ObjectId(), "key": "empty_token", "value": None}]
    users = [{"_id": 1, "name": "ann", "api_token": TOKEN, "score": Decimal128("1.50"),
              "profile": {"smtp": {"host": "mail", "password": NESTED_PASSWORD},
                          "servers": [{"token": SERVER_TOKEN}, {"host": "h"}]},
              "key_secret": Binary(BLOB, 0),
              "born": datetime(2000, 1, 2, tzinfo=UTC)},
             {"_id": 2, "name": "bob", "api_token": None, "profile": {}}]
    with server.client() as client:
        client[database]["settings"].insert_many(settings)
        client[database]["users"].insert_many(users)
        client[database]["messages"].insert_many(
            [{"_id": i, "text": f"message {i}", "big": Int64(i << 40)} for i in range(40)])


def _all_raw(server: MongoServer, database: str) -> dict[str, list[bytes]]:
    with server.client() as client:
        return {name: raw_documents(client, database, name)
                for name in ("settings", "users", "messages")}


def _config(tmp_path: Path, url: str, mode: str) -> Path:
    config = tmp_path / "vault.toml"
    config.write_text(f'''
[[sources]]
type = "mongodb"
name = "chat"
url = "{url}"
secrets = "{mode}"

[[sources.secret_collections]]
collection = "settings"
key_field = "key"
value_field = "value"

[[sources.secret_collections]]
collection = "users"
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


def _setting(server: MongoServer, database: str, key: str) -> Any:
    with server.client() as client:
        found = client[database]["settings"].find_one({"key": key})
    assert found is not None
    return found["value"]


@pytest.mark.parametrize("mode", ["redact", "encrypt"])
def test_secret_fields_are_protected_in_the_stored_documents_and_restored_as_documented(
        vault_repo: Any, open_repo: Any, tmp_path: Path, mode: str,
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    chat = f"{mongo_db}chat"
    _fill(mongo_server, chat)
    original = _all_raw(mongo_server, chat)
    config = _config(tmp_path, mongo_server.db_url(chat), mode)
    backed_up = vault_repo.json("--config", config, "backup", "--source", "chat")
    assert backed_up.code == 0, backed_up.last
    snap = backed_up.summary["snapshot_id"]
    assert _all_raw(mongo_server, chat) == original  # the live database is untouched

    stored = _stored_bytes(open_repo, snap)
    everything = b"".join(stored.values())
    for secret in (*(s.encode() for s in SECRETS), BLOB, b"bin-mongo-secret"):
        assert secret not in everything, secret
    assert b"message 39" in everything and b"mail" in everything  # the rest is stored
    marker = REDACTED_TEXT if mode == "redact" else SEALED_PREFIX
    users = [decode(raw) for raw in _split(stored[f"{chat}/users.bson"])]
    hidden = [users[0]["api_token"], users[0]["profile"]["smtp"]["password"],
              users[0]["profile"]["servers"][0]["token"], users[0]["key_secret"]]
    assert all(str(value).startswith(marker) for value in hidden), hidden
    assert users[1]["api_token"] is None and users[0]["profile"]["servers"][1] == {"host": "h"}
    settings = {d["key"]: d["value"] for d in map(decode, _split(stored[f"{chat}/settings.bson"]))}
    assert settings["retries"] == 3 and settings["empty_token"] is None
    assert str(settings["smtp_password"]).startswith(marker)

    # Into a new database: sealed values come back exactly; redacted ones as the marker.
    fresh = f"{chat}_fresh"
    restored = vault_repo.json("--config", config, "restore", snap, "--target", fresh)
    assert restored.code == 0, restored.last
    got = _all_raw(mongo_server, fresh)
    assert got["messages"] == original["messages"]
    if mode == "encrypt":
        assert got == original
    else:
        assert _setting(mongo_server, fresh, "openai_api_key") == REDACTED_TEXT
        assert decode(got["users"][0])["profile"]["smtp"]["password"] == REDACTED_TEXT

    # Over the live database (documents changed since): redacted secrets keep live values.
    with mongo_server.client() as client:
        client[chat]["settings"].update_one({"key": "openai_api_key"},
                                            {"$set": {"value": "rotated"}})
        client[chat]["settings"].update_one({"key": "site_name"}, {"$set": {"value": "x"}})
        client[chat]["users"].update_one({"_id": 1}, {"$set": {"name": "changed"}})
    over = vault_repo.json("--config", config, "restore", "--yes", snap, "--mode", "overwrite")
    assert over.code == 0, over.last
    now = _all_raw(mongo_server, chat)
    assert _setting(mongo_server, chat, "site_name") == "chat"
    assert now["users"] == original["users"] and now["messages"] == original["messages"]
    assert _setting(mongo_server, chat, "openai_api_key") == (
        "rotated" if mode == "redact" else SECRET_KEY)
    if mode == "encrypt":
        assert now == original

    # Another collection alone: the safety copy taken first holds no secret collection.
    with mongo_server.client() as client:
        client[chat]["messages"].delete_many({"_id": {"$gte": 30}})
    only = vault_repo.json("--config", config, "restore", "--yes", snap, "--only", "messages",
                           "--mode", "overwrite")
    assert only.code == 0, only.last
    assert _all_raw(mongo_server, chat)["messages"] == original["messages"]


def _split(data: bytes) -> list[bytes]:
    import io

    from vault.sources.mongodb.bson_items import iter_raw_documents

    return list(iter_raw_documents(io.BytesIO(data), "test"))


def test_a_misspelt_secret_collection_fails_the_backup(
        vault_repo: Any, tmp_path: Path,
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    chat = f"{mongo_db}chat"
    _fill(mongo_server, chat)
    config = _config(tmp_path, mongo_server.db_url(chat), "redact")
    config.write_text(config.read_text().replace('collection = "users"',
                                                 'collection = "userz"'))
    result = vault_repo.run("--config", config, "backup", "--source", "chat")
    assert result.returncode == 2, result.stderr
    assert f"has no collection '{chat}.userz'" in result.stderr, result.stderr
    assert vault_repo.json("snapshots").summary["snapshots"] == []
    failed = vault_repo.events("BackupFailed")[-1]["payload"]
    assert "userz" in failed["message"], failed


def test_half_a_key_value_pair_is_a_config_error(vault_repo: Any, tmp_path: Path) -> None:
    config = tmp_path / "vault.toml"
    config.write_text('[[sources]]\ntype = "mongodb"\nname = "chat"\n'
                      'url = "mongodb://127.0.0.1:1/chat"\n'
                      '[[sources.secret_collections]]\ncollection = "settings"\n'
                      'key_field = "key"\n')
    result = vault_repo.run("--config", config, "config", "check")
    assert result.returncode == 2 and "give both key_field and value_field" in (
        result.stderr + result.stdout), result.stderr


def test_sealed_values_moved_to_another_repository_restore_as_redacted(
        vault_repo: Any, tmp_path: Path,
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    """An export carries sealed values as they are; the other repository's key does not
    open them, so they restore like redacted ones (documented: the sealed string stays)."""
    chat = f"{mongo_db}chat"
    _fill(mongo_server, chat)
    original = _all_raw(mongo_server, chat)
    config = _config(tmp_path, mongo_server.db_url(chat), "encrypt")
    backed_up = vault_repo.json("--config", config, "backup", "--source", "chat")
    assert backed_up.code == 0, backed_up.last
    out = tmp_path / "db.vault"
    assert vault_repo.json("export", backed_up.summary["snapshot_id"], "-o", out).code == 0
    other = {"VAULT_REPOSITORY": str(tmp_path / "repo2"), "VAULT_PASSWORD": "other pw 77"}
    vault_repo.ok("init", env=other)
    imported = vault_repo.json("import", out, env={
        **other, "VAULT_EXPORT_PASSWORD": vault_repo.env.password})
    assert imported.code == 0, imported.stderr
    fresh = f"{chat}_other"
    restored = vault_repo.json("restore", imported.summary["snapshot_id"], "--target",
                               mongo_server.db_url(fresh), env=other)
    assert restored.code == 0, restored.last
    got = _all_raw(mongo_server, fresh)
    assert got["messages"] == original["messages"]
    assert str(_setting(mongo_server, fresh, "openai_api_key")).startswith(SEALED_PREFIX)
    assert _setting(mongo_server, fresh, "retries") == 3
