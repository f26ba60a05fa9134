"""The settings source end to end: capture real files and a real SQLite table, restore them
into real files, and compare the data type for type."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import VaultError
from vault.sources.base import (
    CaptureContext,
    MemoryStoredItems,
    SourceRestoreRequest,
    capture_to_memory,
)
from vault.sources.registry import source_from_config
from vault.sources.settings.errors import SealerMissing, SettingsMalformed, SettingsUnreadable
from vault.sources.settings.formats import parse_settings
from vault.sources.settings.merge import same_value
from vault.sources.settings.source import ITEM, SettingsSource


class AesGcmSealer:
    """A real sealer, as the repository's: AES-256-GCM with a random nonce per value."""

    def __init__(self) -> None:
        self.aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self.aead.encrypt(nonce, plaintext, b"vault-settings")

    def unseal(self, sealed: bytes) -> bytes:
        return self.aead.decrypt(sealed[:12], sealed[12:], b"vault-settings")


SECRETS = ["hunter2-toml-literal", "db-pass-literal", "srv-token-literal", "yaml-smtp-literal",
           "yaml-key-literal", "json-secret-literal", "env-pass-literal", "env-secret-literal"]

SAMPLES = {
    "config.toml": """\
title = "chat"
port = 8080
ratio = 0.5
whole = 3.0
big = 9007199254740993
huge = inf
missing = nan
enabled = true
released = 1979-05-27T07:32:00-08:00
local = 1979-05-27T07:32:00.999999
day = 1979-05-27
at = 07:32:00
password = "hunter2-toml-literal"
api_key = 4242

[database]
host = "db.local"
password = "db-pass-literal"

[[servers]]
name = "a"
token = "srv-token-literal"

[[servers]]
name = "b"
ports = [1, 2.5, "x"]
""",
    "config.yaml": """\
name: chat
port: 8080
ratio: 1.0
flag: yes
nothing: null
when: 2024-01-02 10:20:30+02:00
day: 2024-01-02
blob: !!binary aGVsbG8=
tags: !!set {a, b}
1: one
no: false-key
nested: {list: [1, 2, {api_key: yaml-key-literal}]}
smtp:
  host: mail
  password: yaml-smtp-literal
""",
    "settings.json": """\
{
    "name": "chat", "n": 1, "f": 1.0, "e": 1e300, "neg0": -0.0, "b": false, "null": null,
    "list": [1, "a", {"client_secret": "json-secret-literal"}],
    "$vault": "a user's value", "nested": {"x": {"y": [true]}}, "unicode": "h\\u00e9llo"
}
""",
    ".env": """\
# the app's environment
export APP_NAME=chat
DB_PASSWORD='env-pass-literal'
GREETING="hello\\nworld \\"quoted\\""
EMPTY=
URL=http://x/y?a=1 # a comment
MULTI="line one
line two"
SECRET_KEY="env-secret-literal"
""",
}
FORMATS = {"config.toml": "toml", "config.yaml": "yaml", "settings.json": "json", ".env": "env"}


def write_sample(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "app" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(SAMPLES[name])
    path.chmod(0o640)
    return path


def parsed(path: Path, name: str) -> Any:
    return parse_settings(path.read_bytes(), FORMATS[name], str(path))  # type: ignore[arg-type]


def restore(source: SettingsSource, stored: MemoryStoredItems, target: Path | None = None,
            sealer: AesGcmSealer | None = None) -> dict[str, Any]:
    request = SourceRestoreRequest(target=None if target is None else str(target), sealer=sealer)
    return source.restore(stored, request).details


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_format_round_trips_type_for_type(tmp_path: Path, name: str) -> None:
    path = write_sample(tmp_path, name)
    source = SettingsSource("app", path=str(path), secret_keys=[])
    original = parsed(path, name)

    stored = capture_to_memory(source)
    details = restore(source, stored, tmp_path / f"copy-{name}")

    assert same_value(parsed(tmp_path / f"copy-{name}", name), original)
    assert details["missing_secrets"] == [] and details["undo"] is None
    assert (tmp_path / f"copy-{name}").stat().st_mode & 0o777 == 0o640  # the captured mode


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_restore_brings_back_changed_settings_and_keeps_live_secrets(tmp_path: Path,
                                                                       name: str) -> None:
    path = write_sample(tmp_path, name)
    source = SettingsSource("app", path=str(path))
    original = parsed(path, name)
    stored = capture_to_memory(source)
    live_text = SAMPLES[name].replace("chat", "changed").replace("-literal", "-rotated")
    path.write_text(live_text)
    path.chmod(0o604)

    details = restore(source, stored)

    # The secrets (every "-literal" string of the samples) are the live ones, everything
    # else is as captured.
    assert same_value(parsed(path, name), rotated(original))
    assert details["kept_secrets"] and details["missing_secrets"] == []
    assert path.stat().st_mode & 0o777 == 0o604  # the live file's mode is kept
    assert Path(details["undo"]).read_text() == live_text
    assert Path(details["undo"]).name.startswith(f"{path.name}.vault-undo-")


def rotated(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("-literal", "-rotated")
    if isinstance(value, dict):
        return {key: rotated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rotated(item) for item in value]
    return value


@pytest.mark.parametrize("name", list(SAMPLES))
def test_redacted_secrets_without_live_values_are_reported(tmp_path: Path, name: str) -> None:
    path = write_sample(tmp_path, name)
    source = SettingsSource("app", path=str(path))
    stored = capture_to_memory(source)

    details = restore(source, stored, tmp_path / "fresh")

    text = (tmp_path / "fresh").read_text()
    assert details["missing_secrets"], "the sample has secrets"
    assert not any(secret in text for secret in SECRETS)
    assert set(details["added"]).isdisjoint(details["missing_secrets"])


@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("mode", ["redact", "encrypt"])
def test_no_secret_literal_is_captured(tmp_path: Path, name: str, mode: str) -> None:
    path = write_sample(tmp_path, name)
    source = SettingsSource("app", path=str(path), secrets=mode)  # type: ignore[arg-type]
    present = [s for s in SECRETS if s in SAMPLES[name]]
    assert present

    stored = capture_to_memory(source, CaptureContext(sealer=AesGcmSealer()))

    exposed = [stored.data[ITEM], json.dumps(stored.meta).encode(),
               json.dumps(source.describe()).encode()]
    for secret in present:
        assert not any(secret.encode() in blob for blob in exposed), secret
    assert stored.meta["secrets"] >= len(present) - 1  # a whole table may hold several


@pytest.mark.parametrize("name", list(SAMPLES))
def test_encrypted_secrets_round_trip_with_a_real_sealer(tmp_path: Path, name: str) -> None:
    path = write_sample(tmp_path, name)
    source = SettingsSource("app", path=str(path), secrets="encrypt")
    sealer = AesGcmSealer()
    stored = capture_to_memory(source, CaptureContext(sealer=sealer))

    details = restore(source, stored, tmp_path / "fresh", sealer=sealer)

    assert same_value(parsed(tmp_path / "fresh", name), parsed(path, name))
    assert details["missing_secrets"] == []


def test_encrypt_mode_needs_a_sealer_to_capture_and_to_restore(tmp_path: Path) -> None:
    path = write_sample(tmp_path, ".env")
    source = SettingsSource("app", path=str(path), secrets="encrypt")
    with pytest.raises(SealerMissing, match="sealer"):
        capture_to_memory(source)
    stored = capture_to_memory(source, CaptureContext(sealer=AesGcmSealer()))
    path.write_text("APP_NAME=live\n")

    with pytest.raises(SealerMissing, match="sealer"):
        restore(source, stored)

    assert path.read_text() == "APP_NAME=live\n"
    assert list(path.parent.iterdir()) == [path]


def test_restoring_unchanged_settings_writes_nothing(tmp_path: Path) -> None:
    path = write_sample(tmp_path, "config.toml")
    source = SettingsSource("app", path=str(path))
    stored = capture_to_memory(source)
    before = path.stat().st_mtime_ns

    details = restore(source, stored)

    assert details["undo"] is None and details["changed"] == []
    assert path.stat().st_mtime_ns == before and list(path.parent.iterdir()) == [path]


def test_unchanged_settings_capture_the_same_bytes(tmp_path: Path, new_bytes: Any) -> None:
    path = write_sample(tmp_path, "config.toml")
    source = SettingsSource("app", path=str(path))
    first = capture_to_memory(source)
    path.write_text("\n\n" + SAMPLES["config.toml"].replace("hunter2", "rotated"))

    second = capture_to_memory(source)

    assert second.data == first.data  # layout and redacted secrets do not show
    assert new_bytes(first, second) == 0
    sealer = AesGcmSealer()
    sealed = [capture_to_memory(table, CaptureContext(sealer=sealer)).data[ITEM]
              for table in [SettingsSource("app", path=str(path), secrets="encrypt")] * 2]
    print(f"settings item: {len(first.data[ITEM])} bytes redacted, {len(sealed[0])} sealed")
    assert sealed[0] != sealed[1]  # a fresh nonce per capture: documented, not deduplicated


def test_a_symlinked_file_is_replaced_through_its_link(tmp_path: Path) -> None:
    real = write_sample(tmp_path, "settings.json")
    link = tmp_path / "linked.json"
    link.symlink_to(real)
    source = SettingsSource("app", path=str(link))
    stored = capture_to_memory(source)
    real.write_text('{"name": "other"}')

    details = restore(source, stored)

    assert link.is_symlink() and json.loads(real.read_text())["name"] == "chat"
    assert Path(details["undo"]).parent == real.parent


def test_env_comments_and_layout_survive_a_reimport(tmp_path: Path) -> None:
    path = write_sample(tmp_path, ".env")
    source = SettingsSource("app", path=str(path))
    stored = capture_to_memory(source)
    path.write_text(SAMPLES[".env"].replace("APP_NAME=chat", "APP_NAME=other") + "EXTRA=1\n")

    details = restore(source, stored)

    assert path.read_text() == SAMPLES[".env"]
    assert (details["changed"], details["removed"]) == (["APP_NAME"], ["EXTRA"])


@pytest.mark.parametrize(("name", "text", "line"), [
    ("bad.json", '{\n  "a": 1,\n  "password": "json-bad-literal\n}\n', 3),
    ("bad.toml", 'a = 1\npassword = "toml-bad-literal\n', 2),
    ("bad.yaml", "a: 1\nb:\n  - x\n password: [yaml-bad-literal\n", 4),
    (".env", "A=1\nPASSWORD json-bad-literal\n", 2),
    ("bad.json", '{"a": "\xff"}', 1),
])  # fmt: skip
def test_a_malformed_file_is_a_one_line_error_naming_file_and_line(
        tmp_path: Path, name: str, text: str, line: int) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1" if "\xff" in text else "utf-8"))
    source = SettingsSource("app", path=str(path))

    with pytest.raises(SettingsMalformed) as raised:
        capture_to_memory(source)

    message = str(raised.value)
    assert isinstance(raised.value, VaultError) and "\n" not in message
    assert message.startswith(f"{path}, line {line}")
    assert "literal" not in message


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    source = SettingsSource("app", path=str(tmp_path / "nope.json"))
    with pytest.raises(SettingsUnreadable, match=r"nope\.json: no such file"):
        capture_to_memory(source)


def test_a_malformed_live_file_is_left_as_it_is(tmp_path: Path) -> None:
    path = write_sample(tmp_path, "settings.json")
    source = SettingsSource("app", path=str(path))
    stored = capture_to_memory(source)
    path.write_text("{broken")

    with pytest.raises(SettingsMalformed, match="line 1"):
        restore(source, stored)

    assert path.read_text() == "{broken" and list(path.parent.iterdir()) == [path]


# --- a SQLite settings table ------------------------------------------------------------------

ROWS: list[tuple[Any, ...]] = [
    ("site_name", "chat"), ("max_upload", 10485760), ("ratio", 0.25), ("whole", 2.0),
    ("logo", b"\x89PNG\x00"), ("motd", None), ("smtp_password", "sql-pass-literal"),
    ("oauth_token", b"sql-token-literal"),
]


def make_table(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE app_config (name TEXT PRIMARY KEY, val, "
                   "updated_at TEXT DEFAULT 'never')")
        db.executemany("INSERT INTO app_config (name, val) VALUES (?, ?)", ROWS)
    db.close()


def rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT name, val, updated_at, typeof(val) FROM app_config "
                           "ORDER BY name").fetchall()
    db.close()
    return found


def table_source(path: Path, **keys: Any) -> SettingsSource:
    return SettingsSource("app", database=str(path), table="app_config", key_column="name",
                          value_column="val", **keys)


def test_a_settings_table_round_trips_and_keeps_live_secrets(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    make_table(database)
    original = rows(database)
    source = table_source(database)
    stored = capture_to_memory(source)
    assert b"literal" not in stored.data[ITEM] and stored.meta["secrets"] == 2
    with sqlite3.connect(database) as db:
        db.execute("UPDATE app_config SET val = 'other', updated_at = 'now' "
                   "WHERE name = 'site_name'")
        db.execute("UPDATE app_config SET val = 'rotated' WHERE name = 'smtp_password'")
        db.execute("DELETE FROM app_config WHERE name = 'ratio'")
        db.execute("INSERT INTO app_config (name, val) VALUES ('extra', 1)")
    db.close()
    before = rows(database)

    details = restore(source, stored)

    expected = [row if row[0] != "smtp_password" else (row[0], "rotated", "never", "text")
                for row in original]
    expected = [(*row[:2], "now", row[3]) if row[0] == "site_name" else row for row in expected]
    assert rows(database) == expected
    assert (details["changed"], details["added"], details["removed"]) == (
        ["site_name"], ["ratio"], ["extra"])
    assert sorted(details["kept_secrets"]) == ["oauth_token", "smtp_password"]
    assert rows(Path(details["undo"])) == before


def test_a_settings_table_encrypted_restores_into_a_new_database(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    make_table(database)
    sealer = AesGcmSealer()
    source = table_source(database, secrets="encrypt")
    stored = capture_to_memory(source, CaptureContext(sealer=sealer))
    assert b"literal" not in stored.data[ITEM]

    details = restore(source, stored, tmp_path / "new.db", sealer=sealer)

    with sqlite3.connect(tmp_path / "new.db") as db:
        found = db.execute("SELECT name, val FROM app_config ORDER BY name").fetchall()
    db.close()
    assert found == sorted(ROWS, key=lambda row: row[0])
    assert [type(value) for _, value in found] == [type(v) for _, v in sorted(ROWS)]
    assert details["undo"] is None and details["missing_secrets"] == []


def test_a_missing_table_is_a_clear_error(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    sqlite3.connect(database).close()
    with pytest.raises(VaultError, match=r"settings table 'app_config' in .*app\.db: no such"):
        capture_to_memory(table_source(database))


def test_the_registry_builds_the_source_from_config(tmp_path: Path) -> None:
    from vault.config.model import VaultConfig

    path = write_sample(tmp_path, "config.yaml")
    config = VaultConfig.model_validate(
        {"sources": [{"type": "settings", "name": "app", "path": str(path)}]})

    source = source_from_config(config.sources[0])

    assert source.describe() == {"type": "settings", "name": "app", "path": str(path),
                                 "format": "yaml", "secrets": "redact"}
    assert source.estimate().bytes == len(SAMPLES["config.yaml"])


def test_secrets_sealed_under_another_repositorys_key_are_a_clean_error(
        tmp_path: Path, unlocked_repo: Any) -> None:
    """A document whose sealed secrets do not open with this repository's key (sealed by
    another repository, or damaged) fails in one line and writes nothing."""
    from vault.operations.group_capture import sealer_for
    from vault.repository.repository import Repository
    from vault.sources.settings.errors import SettingsDocumentInvalid
    from vault.storage.local import LocalStorage

    path = write_sample(tmp_path, ".env")
    source = SettingsSource("app", path=str(path), secrets="encrypt")
    stored = capture_to_memory(source, CaptureContext(sealer=sealer_for(unlocked_repo)))
    other = Repository.init(LocalStorage(tmp_path / "other-repo"), "another passphrase",
                            chunk_avg=64 << 10)
    path.write_text("APP_NAME=live\n")

    with pytest.raises(SettingsDocumentInvalid, match="do not open with this repository"):
        restore(source, stored, sealer=sealer_for(other))

    assert path.read_text() == "APP_NAME=live\n"
    assert list(path.parent.iterdir()) == [path]
