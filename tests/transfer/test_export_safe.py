"""Exports that are safe by default: encrypted (the repository's passphrase unless one is
given for the file), mode 0600, groups and settings snapshots carried whole."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
import struct
from pathlib import Path
from typing import Any

import zstandard

from vault.transfer.format import (
    END_MAGIC,
    MAGIC,
    RECORD,
    Encryption,
    RecordKind,
    RecordSealer,
)
from vault.transfer.reader import open_export

VaultCLI = Any  # the conftest fixtures (conftest modules are not imported)
FsTools = Any

SECRETS = ("sk-live-4f9a8b7c6d5e", "hunter2-db-Zq81", "smtp-pw-77x")
FILE_TEXT = "quarterly figures: 4711 widgets"


def _secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def _app(tmp_path: Path, secrets_mode: str = "encrypt") -> tuple[Path, Path, Path, Path]:
    """An application: uploaded files, a SQLite database whose settings table holds API
    keys, and a settings file; a config grouping the three as `app`."""
    files = tmp_path / "uploads"
    files.mkdir()
    (files / "report.txt").write_text(FILE_TEXT)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
        conn.executemany("INSERT INTO settings VALUES (?, ?)",
                         [("site_name", "chat"), ("openai_api_key", SECRETS[0])])
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, n REAL)")
        conn.executemany("INSERT INTO notes VALUES (?, ?, ?)",
                         [(i, f"note {i}", i / 3) for i in range(20)])
    conn.close()
    live = tmp_path / "settings.json"
    live.write_text(json.dumps({"title": "chat", "db": {"password": SECRETS[1]},
                                "smtp": {"password": SECRETS[2]}}))
    config = tmp_path / "vault.toml"
    config.write_text(
        f'[[sources]]\ntype = "files"\nname = "uploads"\npaths = ["{files}"]\n'
        f'[[sources]]\ntype = "sqlite"\nname = "app-db"\npath = "{db}"\n'
        f'[[sources]]\ntype = "settings"\nname = "app-settings"\npath = "{live}"\n'
        f'secrets = "{secrets_mode}"\n'
        '[[groups]]\nname = "app"\nsources = ["uploads", "app-db", "app-settings"]\n')
    return config, files, db, live


def _repo2(vault: VaultCLI, tmp_path: Path) -> dict[str, str]:
    env = {"VAULT_REPOSITORY": str(tmp_path / "repo2"), "VAULT_PASSWORD": "second repo pw 3"}
    vault.ok("init", env=env)
    return env


def test_a_default_export_is_encrypted_private_and_names_nothing(
        vault_repo: VaultCLI, tmp_path: Path) -> None:
    """`strings` of a default export finds no file content, no name, no secret."""
    config, _files, _db, _live = _app(tmp_path, secrets_mode="encrypt")
    assert vault_repo.json("--config", config, "backup", "--group", "app").code == 0
    out = tmp_path / "app.vault"
    done = vault_repo.json("--config", config, "export", "app", "-o", out)
    assert done.code == 0, done.stderr
    assert done.summary["encrypted"] is True and done.summary["key"] == "repository"
    assert len(done.summary["snapshot_ids"]) == 3 and done.summary["warnings"] == []
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    raw = out.read_bytes()
    for needle in (*SECRETS, FILE_TEXT, "report.txt", "note 1", "openai_api_key", "settings",
                   "uploads", str(tmp_path)):
        assert needle.encode() not in raw, needle
    header = open_export(out).header
    assert header["version"] == 2 and header["encryption"]["key"] == "repository"


def test_a_group_export_moves_to_another_repository_and_restores_exactly(
        vault_repo: VaultCLI, fs: FsTools, tmp_path: Path) -> None:
    config, files, db, live = _app(tmp_path, secrets_mode="encrypt")
    assert vault_repo.json("--config", config, "backup", "--group", "app").code == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT * FROM notes ORDER BY id").fetchall()
        settings_rows = conn.execute("SELECT * FROM settings ORDER BY key").fetchall()
    conn.close()
    original_settings = json.loads(live.read_text())
    out = tmp_path / "app.vault"
    assert vault_repo.json("--config", config, "export", "app", "-o", out).code == 0

    other = _repo2(vault_repo, tmp_path)
    needed = vault_repo.json("import", out, env=other)  # sealed with repo 1's passphrase
    assert (needed.code, needed.last["error"]) == (2, "ExportPassphraseNeeded")
    assert "passphrase of the repository it came from" in needed.last["message"]
    pw = _secret_file(tmp_path / "repo1.pw", vault_repo.env.password)
    imported = vault_repo.json("import", out, "--password-file", pw, env=other)
    assert imported.code == 0, imported.stderr
    ids = imported.summary["snapshot_ids"]
    snaps = {s["id"]: s for s in vault_repo.query("snapshots", env=other).summary["snapshots"]}
    assert sorted(snaps) == sorted(ids)
    assert len({snaps[i]["group_id"] for i in ids}) == 1 and snaps[ids[0]]["group_id"]
    by_type = {snaps[i]["source"]["type"]: i for i in ids}

    # Files: byte for byte.
    target = tmp_path / "restored"
    vault_repo.restore(by_type["files"], "--target", target, env=other)
    fs.assert_same_tree(files, fs.restored_path(target, files))
    # The database: row for row, type for type.
    again = tmp_path / "again.db"
    db_restored = vault_repo.json("--config", config, "restore", by_type["sqlite"], "--target",
                                  again, env=other)
    assert db_restored.code == 0, db_restored.last
    with sqlite3.connect(again) as conn:
        assert conn.execute("SELECT * FROM notes ORDER BY id").fetchall() == rows
        assert conn.execute("SELECT * FROM settings ORDER BY key").fetchall() == settings_rows
    conn.close()
    # Settings: the sealed secrets were re-sealed for the file, then for repository 2.
    live.write_text(json.dumps({"title": "broken"}))
    restored = vault_repo.json("--config", config, "restore", by_type["settings"][:8],
                               "--settings", env=other)
    assert restored.code == 0, restored.last
    assert json.loads(live.read_text()) == original_settings
    for path in (tmp_path / "repo2").rglob("*"):
        if path.is_file():
            assert not any(s.encode() in path.read_bytes() for s in SECRETS), path


def test_a_redacted_settings_snapshot_exports_and_stays_redacted(
        vault_repo: VaultCLI, tmp_path: Path) -> None:
    config, _files, _db, live = _app(tmp_path, secrets_mode="redact")
    backed_up = vault_repo.json("--config", config, "backup", "--source", "app-settings")
    assert backed_up.code == 0, backed_up.last
    out = tmp_path / "settings.vault"
    done = vault_repo.json("export", backed_up.summary["snapshot_id"], "-o", out,
                           "--no-encrypt")
    assert done.code == 0, done.stderr
    assert "not encrypted" in done.summary["warnings"][0]
    raw = out.read_bytes()
    assert not any(s.encode() in raw for s in SECRETS)
    other = _repo2(vault_repo, tmp_path)
    imported = vault_repo.json("import", out, env=other)
    assert imported.code == 0, imported.stderr
    # Restored: the non-secret values come back, the live secrets are kept as they are.
    live.write_text(json.dumps({"title": "broken", "db": {"password": "live-db"},
                                "smtp": {"password": "live-smtp"}}))
    restored = vault_repo.json("--config", config, "restore",
                               imported.summary["snapshot_id"][:8], "--settings", env=other)
    assert restored.code == 0, restored.last
    assert json.loads(live.read_text()) == {"title": "chat", "db": {"password": "live-db"},
                                            "smtp": {"password": "live-smtp"}}


def test_sealed_settings_are_refused_in_a_plaintext_export(vault_repo: VaultCLI,
                                                           tmp_path: Path) -> None:
    config, _files, _db, _live = _app(tmp_path, secrets_mode="encrypt")
    assert vault_repo.json("--config", config, "backup", "--source", "app-settings").code == 0
    out = tmp_path / "s.vault"
    refused = vault_repo.json("export", "latest", "-o", out, "--no-encrypt")
    assert (refused.code, refused.last["error"]) == (2, "ExportRefused")
    assert "export it encrypted" in refused.last["message"] and not out.exists()
    assert list(tmp_path.glob(".s.vault.partial-*")) == []


def test_no_encrypt_warns_and_a_password_command_encrypts(vault_repo: VaultCLI,
                                                          tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text(FILE_TEXT)
    vault_repo.backup(tmp_path / "d")
    plain = tmp_path / "plain.vault"
    done = vault_repo.run("export", "latest", "-o", plain, "--no-encrypt")
    assert done.returncode == 0 and "warning: " in done.stderr and "not encrypted" in done.stderr
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600
    assert not open_export(plain).encrypted

    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho 'file passphrase 9'\n")
    script.chmod(0o700)
    out = tmp_path / "cmd.vault"
    done_json = vault_repo.json("export", "latest", "-o", out, "--password-command", script)
    assert done_json.code == 0 and done_json.summary["key"] == "passphrase"
    assert "file passphrase 9" not in done_json.stdout
    # Not the repository's passphrase: this repository cannot open it on its own.
    needed = vault_repo.json("import", out, "--dry-run")
    assert needed.last["error"] == "ExportPassphraseNeeded"
    wrong = vault_repo.json("import", out, "--dry-run", env={"VAULT_EXPORT_PASSWORD": "nope"})
    assert (wrong.code, wrong.last["error"]) == (2, "ExportPassphraseWrong")
    ok = vault_repo.json("import", out, "--password-command", script)
    assert ok.code == 0, ok.stderr
    # A default export opens in its own repository without any passphrase given.
    own = tmp_path / "own.vault"
    vault_repo.ok("export", "latest", "-o", own)
    assert vault_repo.json("import", own).code == 0


def test_an_encrypted_export_cut_at_a_record_with_a_new_checksum_is_refused(
        vault_repo: VaultCLI, fs: FsTools, tmp_path: Path) -> None:
    """Version 2 seals the END record: dropping the last records and writing a new count
    and checksum does not pass for a whole file."""
    fs.write_random(tmp_path / "d" / "a.bin", 300_000, seed=5)
    fs.write_random(tmp_path / "d" / "b.bin", 300_000, seed=6)
    vault_repo.backup(tmp_path / "d")
    out = tmp_path / "e.vault"
    vault_repo.ok("export", "latest", "-o", out)
    records = _split_records(out.read_bytes())
    body = records[:-2]  # drop the root tree and the END record
    cut = tmp_path / "cut.vault"
    forged = b"".join(body) + RECORD.pack(int(RecordKind.END), 1) + str(len(body) - 1).encode()
    cut.write_bytes(forged + END_MAGIC + hashlib.sha256(forged).digest())
    result = vault_repo.json("import", cut)
    assert (result.code, result.last["error"]) == (1, "ExportCorrupted"), result.last
    assert "end record" in result.last["message"]


def _split_records(data: bytes) -> list[bytes]:
    """[preamble+header, record, ..., END record] of an export (its trailer left off)."""
    header_len = struct.unpack(">I", data[10:14])[0]
    pos = 14 + header_len
    parts = [data[:pos]]
    while pos < len(data) - 40:
        _kind, length = RECORD.unpack(data[pos:pos + RECORD.size])
        parts.append(data[pos:pos + RECORD.size + length])
        pos += RECORD.size + length
    return parts


def write_v1(v2_path: Path, v1_path: Path, passphrase: str | None) -> None:
    """An unencrypted one-snapshot version-2 export rewritten as version 1 wrote it:
    one snapshot at the top of the metadata, records sealed under the v1 label, a plain
    END record."""
    export = open_export(v2_path)
    meta = export.meta()
    member = meta.pop("members")[0]
    del meta["group"]
    meta.update(snapshot=member["snapshot"], snapshot_id=member["snapshot_id"],
                root=member["root"])
    header: dict[str, Any] = {"format": "vault-export", "version": 1, "created": "x",
                              "encryption": None}
    sealer = None
    if passphrase is not None:
        encryption = Encryption.new()
        sealer = RecordSealer(encryption.derive(passphrase), version=1)
        header["encryption"] = encryption.to_json(sealer.check_value())
    doc = json.dumps(header).encode()
    out = [struct.pack(">8sHI", MAGIC, 1, len(doc)), doc]
    records = [(RecordKind.META, json.dumps(meta).encode()), *export.records()]
    for seq, (kind, plain) in enumerate(records, start=1):
        payload = zstandard.ZstdCompressor(write_content_size=True).compress(plain)
        if sealer is not None:
            payload = sealer.seal(int(kind), seq, payload)
        out.append(RECORD.pack(int(kind), len(payload)) + payload)
    out.append(RECORD.pack(int(RecordKind.END), len(str(len(records)))) +
               str(len(records)).encode())
    data = b"".join(out)
    v1_path.write_bytes(data + END_MAGIC + hashlib.sha256(data).digest())


def test_version_1_exports_plain_and_encrypted_still_import(
        vault_repo: VaultCLI, fs: FsTools, tmp_path: Path) -> None:
    src = tmp_path / "src"
    fs.write_random(src / "r.bin", 500_000, seed=8)
    (src / "t.txt").write_text(FILE_TEXT)
    snap = vault_repo.backup(src)["snapshot_id"]
    v2 = tmp_path / "v2.vault"
    vault_repo.ok("export", snap, "-o", v2, "--no-encrypt")
    other = _repo2(vault_repo, tmp_path)
    pw = _secret_file(tmp_path / "v1.pw", "old file passphrase")
    for passphrase in (None, "old file passphrase"):
        v1 = tmp_path / f"v1-{bool(passphrase)}.vault"
        write_v1(v2, v1, passphrase)
        assert open_export(v1).version == 1
        args = ["--password-file", pw] if passphrase else []
        imported = vault_repo.json("import", v1, *args, env=other)
        assert imported.code == 0, imported.stderr
        assert imported.summary["preview"]["format_version"] == 1
        target = tmp_path / f"restored-{bool(passphrase)}"
        vault_repo.restore(imported.summary["snapshot_id"], "--target", target, env=other)
        fs.assert_same_tree(src, fs.restored_path(target, src))


def _app_zip(path: Path, db: Path) -> dict[str, bytes]:
    """A ZIP of an application: its database, settings.json and .env with API keys, and
    static files; the plain files' bytes."""
    import zipfile

    files = {"static/logo.png": bytes(range(256)) * 40, "README.txt": FILE_TEXT.encode()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(db, "data/app.db")
        archive.writestr("config/settings.json", json.dumps(
            {"title": "chat", "openai_api_key": SECRETS[0], "db": {"password": SECRETS[1]}}))
        archive.writestr(".env", f"PORT=8080\nSMTP_PASSWORD={SECRETS[2]}\n")
        for name, data in files.items():
            archive.writestr(name, data)
    return files


def test_an_application_zip_imports_as_databases_settings_and_files(
        vault_repo: VaultCLI, open_repo: Any, tmp_path: Path) -> None:
    _config, _files, db, _live = _app(tmp_path)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT * FROM notes ORDER BY id").fetchall()
    conn.close()
    archive = tmp_path / "chat-app.zip"
    files = _app_zip(archive, db)
    preview = vault_repo.json("import", archive, "--as-app", "--dry-run")
    assert preview.code == 0, preview.stderr
    assert preview.summary["preview"]["app"] == {
        "name": "chat-app", "databases": ["data/app.db"],
        "settings": ["config/settings.json", ".env"], "files": 2}

    imported = vault_repo.json("import", archive, "--as-app")
    assert imported.code == 0, imported.stderr
    for secret in SECRETS:
        assert secret not in imported.stdout
    ids = imported.summary["snapshot_ids"]
    snaps = {s["id"]: s for s in vault_repo.query("snapshots").summary["snapshots"]}
    assert len(ids) == 4 and len({snaps[i]["group_id"] for i in ids}) == 1
    kinds = sorted(snaps[i]["source"]["type"] for i in ids)
    assert kinds == ["files", "settings", "settings", "sqlite"]

    from vault.restore.items import SnapshotItems

    repo = open_repo()
    stored: dict[str, bytes] = {}
    for snapshot in (s for s in repo.snapshots() if s.id in ids):
        items = SnapshotItems(repo, snapshot)
        for path in items.paths():
            with items.open(path) as stream:
                stored[f"{snapshot.source['type']}:{snapshot.paths[0]}:{path}"] = stream.read()
    settings_docs = [v for k, v in stored.items() if k.startswith("settings:")]
    assert len(settings_docs) == 2
    for doc in settings_docs:
        assert not any(s.encode() in doc for s in SECRETS)  # redacted by the default globs
    assert any(b'"chat"' in doc for doc in settings_docs)
    assert any(b'"8080"' in doc for doc in settings_docs)

    by_type = {snaps[i]["source"]["type"]: i for i in ids}
    restored = tmp_path / "restored.db"
    vault_repo.restore(by_type["sqlite"], "--target", f"sqlite://{restored}")
    with sqlite3.connect(restored) as conn:
        assert conn.execute("SELECT * FROM notes ORDER BY id").fetchall() == rows
    conn.close()
    out = tmp_path / "files-out"
    vault_repo.restore(by_type["files"], "--target", out)
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == files
    (scratch,) = [p for p in vault_repo.env.root.rglob("scratch") if p.is_dir()]
    assert list(scratch.iterdir()) == []  # the private copies of the settings are gone


def test_a_typed_repository_passphrase_is_asked_for_once(vault_repo: VaultCLI,
                                                         tmp_path: Path) -> None:
    """At a terminal the repository's passphrase opens the repository and keys the
    export: typed once, not twice."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text(FILE_TEXT)
    vault_repo.backup(tmp_path / "d")
    out = tmp_path / "typed.vault"
    env = {k: v for k, v in vault_repo.env.env.items() if k != "VAULT_PASSWORD"}
    main, side = pty.openpty()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("vault")), "export", "latest",
                             "-o", str(out)], stdin=side, stdout=side, stderr=side, env=env,
                            cwd=tmp_path)
    os.close(side)
    seen, answered, deadline = b"", 0, time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if select.select([main], [], [], 0.2)[0]:
            try:
                seen += os.read(main, 4096)
            except OSError:
                break
        if seen.count(b"passphrase:") > answered:
            os.write(main, vault_repo.env.password.encode() + b"\r")
            answered += 1
    proc.wait(timeout=60)
    os.close(main)
    assert proc.returncode == 0, seen
    assert answered == 1, seen
    assert vault_repo.json("import", out, "--dry-run").code == 0  # keyed by that passphrase
