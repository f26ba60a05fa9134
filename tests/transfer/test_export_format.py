"""The export format's versions: a version-0 file (the older format) is migrated on import."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
import zstandard

from vault.transfer.format import END_MAGIC, MAGIC, FormatError, RecordKind, unpack_payload
from vault.transfer.reader import DIALECTS, open_export

VaultCLI = Any  # the conftest fixtures (conftest modules are not imported)
FsTools = Any


def write_v0(v2_path: Path, v0_path: Path) -> None:
    """Rewrite an unencrypted one-snapshot export in the version-0 layout: records stored
    uncompressed, one snapshot at the top level, the root named `tree_root`, no end
    record, the same trailer."""
    export = open_export(v2_path)
    meta = export.meta()
    member = meta.pop("members")[0]
    del meta["group"], meta["counts"]
    meta.update(snapshot=member["snapshot"], snapshot_id=member["snapshot_id"],
                tree_root=member["root"])
    header = json.dumps({"format": "vault-export", "version": 0}).encode()
    body = [struct.pack(">8sHI", MAGIC, 0, len(header)), header]
    records = [(RecordKind.META, json.dumps(meta).encode()), *export.records()]
    body += [struct.pack(">BI", int(kind), len(plain)) + plain for kind, plain in records]
    data = b"".join(body)
    v0_path.write_bytes(data + END_MAGIC + hashlib.sha256(data).digest())


def test_a_version_0_export_is_migrated_and_restores_exactly(
        vault_repo: VaultCLI, fs: FsTools, tmp_path: Path) -> None:
    assert set(DIALECTS) == {0, 1, 2}
    src = tmp_path / "src"
    fs.write_random(src / "r.bin", 700_000, seed=9)
    (src / "sub").mkdir()
    (src / "sub" / "t.txt").write_text("version zero\n")
    snap = vault_repo.backup(src)["snapshot_id"]
    v1, v0 = tmp_path / "v1.vault", tmp_path / "v0.vault"
    assert vault_repo.query("export", snap, "-o", v1, "--no-encrypt").code == 0
    write_v0(v1, v0)
    assert open_export(v0).version == 0

    other = {"VAULT_REPOSITORY": str(tmp_path / "repo2"), "VAULT_PASSWORD": "other pw 1"}
    vault_repo.ok("init", env=other)
    preview = vault_repo.query("import", v0, "--dry-run", env=other)
    assert preview.code == 0, preview.stderr
    assert preview.summary["preview"]["format_version"] == 0
    imported = vault_repo.query("import", v0, env=other)
    assert imported.code == 0, imported.stderr
    target = tmp_path / "restored"
    vault_repo.restore(imported.summary["snapshot_id"], "--target", target, env=other)
    fs.assert_same_tree(src, fs.restored_path(target, src))


def test_an_export_names_no_plaintext_in_its_header(vault_repo: VaultCLI, tmp_path: Path) -> None:
    """Encrypted: only the format, creation time and scrypt parameters are readable."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "secret-name.txt").write_text("payload")
    vault_repo.backup(tmp_path / "d")
    pw = tmp_path / "pw"
    pw.write_text("p")
    pw.chmod(0o600)
    out = tmp_path / "e.vault"
    assert vault_repo.query("export", "latest", "-o", out, "--password-file", pw).code == 0
    export = open_export(out)
    assert export.encrypted and set(export.header) == {"format", "version", "created",
                                                       "encryption"}
    raw = out.read_bytes()
    assert b"secret-name" not in raw and b"payload" not in raw


def test_a_tampered_encrypted_export_with_a_fixed_checksum_is_refused(
        vault_repo: VaultCLI, fs: FsTools, tmp_path: Path) -> None:
    """The SHA-256 catches damage; against someone who recomputes it, an encrypted
    export's records are authenticated (AES-GCM, bound to their kind and position)."""
    fs.write_random(tmp_path / "d" / "r.bin", 200_000, seed=4)
    vault_repo.backup(tmp_path / "d")
    pw = tmp_path / "pw"
    pw.write_text("p")
    pw.chmod(0o600)
    out = tmp_path / "e.vault"
    assert vault_repo.query("export", "latest", "-o", out, "--password-file", pw).code == 0
    data = bytearray(out.read_bytes()[:-40])
    data[len(data) // 2] ^= 1
    forged = tmp_path / "forged.vault"
    forged.write_bytes(bytes(data) + END_MAGIC + hashlib.sha256(data).digest())
    repo_files = sorted(p for p in vault_repo.env.repo.rglob("*") if p.is_file())
    result = vault_repo.query("import", forged, "--password-file", pw)
    assert (result.code, result.last["error"]) == (1, "ExportCorrupted"), result.last
    # Every record is authenticated before anything is stored: not even a pack was written.
    assert sorted(p for p in vault_repo.env.repo.rglob("*") if p.is_file()) == repo_files
    assert "fails authentication" in result.last["message"]
    assert vault_repo.query("snapshots").summary["snapshots"][-1]["source"].get(
        "imported") is None


def test_a_record_declaring_a_huge_size_is_refused_before_allocating() -> None:
    bomb = zstandard.ZstdCompressor(write_content_size=True).compress(b"\0" * (100 << 20))
    with pytest.raises(FormatError, match="declares"):
        unpack_payload(bomb)
    assert unpack_payload(zstandard.ZstdCompressor().compress(b"ok")) == b"ok"
