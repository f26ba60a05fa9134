"""`vault export` -> `vault import` between two repositories, through the real command."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest

VaultCLI = Any  # the conftest fixtures (conftest modules are not imported)
FsTools = Any

OTHER = "another passphrase entirely 19c2"


def _source_tree(root: Path, fs: FsTools) -> Path:
    src = root / "src"
    fs.write_random(src / "big.bin", 3_000_000, seed=1)
    fs.write_compressible(src / "logs" / "app.log", 400_000, seed=2)
    (src / "logs" / "empty").write_bytes(b"")
    (src / "deep" / "a" / "b" / "c").mkdir(parents=True)
    (src / "deep" / "a" / "b" / "c" / "leaf.txt").write_text("leaf\n")
    (src / "same1").mkdir()
    (src / "same2").mkdir()
    for d in ("same1", "same2"):  # identical directories: one tree, exported once
        (src / d / "x.txt").write_text("identical\n")
    os.symlink("big.bin", src / "link")
    os.chmod(src / "logs" / "app.log", 0o640)
    return src


def _secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def _second_repo(vault: VaultCLI, root: Path) -> tuple[Path, dict[str, str]]:
    repo2 = root / "repo2"
    env = {"VAULT_PASSWORD": OTHER, "VAULT_REPOSITORY": str(repo2)}
    vault.ok("init", env=env)
    return repo2, env


def test_export_import_restore_equals_source(vault_repo: VaultCLI, fs: FsTools,
                                             tmp_path: Path) -> None:
    src = _source_tree(tmp_path, fs)
    snap = vault_repo.backup(src)["snapshot_id"]
    pw = _secret_file(tmp_path / "export.pw", "export passphrase 55")
    out = tmp_path / "snap.vault"
    exported = vault_repo.json("export", snap[:8], "-o", out, "--password-file", pw)
    assert exported.code == 0, exported.stderr
    assert exported.summary["encrypted"] is True
    assert exported.summary["bytes_written"] == out.stat().st_size
    assert b"identical" not in out.read_bytes()  # encrypted, not just compressed

    _repo2, env = _second_repo(vault_repo, tmp_path)
    preview = vault_repo.json("import", out, "--password-file", pw, "--dry-run", env=env)
    assert preview.code == 0, preview.stderr
    assert preview.summary["preview"]["snapshot_id"] == snap
    assert preview.summary["preview"]["files"] == 6
    assert vault_repo.query("snapshots", env=env).summary["snapshots"] == []

    imported = vault_repo.json("import", out, "--password-file", pw, env=env)
    assert imported.code == 0, imported.stderr
    assert any(r["type"] == "progress" for r in imported.records)
    new_id = imported.summary["snapshot_id"]
    assert new_id != snap and imported.summary["bytes_new"] > 3_000_000

    target = tmp_path / "restored"
    vault_repo.restore(new_id, "--target", target, env=env)
    fs.assert_same_tree(src, fs.restored_path(target, src))

    snaps = vault_repo.query("snapshots", env=env).summary["snapshots"]
    assert [s["id"] for s in snaps] == [new_id]
    # Dedup applies: the same export again stores nothing new.
    again = vault_repo.json("import", out, "--password-file", pw, "--tag", "again", env=env)
    assert again.code == 0 and again.summary["bytes_new"] == 0, again.stderr

    exported_ev = vault_repo.events("SnapshotExported")
    assert [e["payload"]["snapshot_id"] for e in exported_ev] == [snap]
    assert exported_ev[0]["payload"]["encrypted"] is True
    imported_ev = vault_repo.query("journal", "--type", "SnapshotImported", env=env)
    payloads = [e["payload"] for e in imported_ev.summary["events"]]
    assert [p["snapshot_id"] for p in payloads] == [new_id, again.summary["snapshot_id"]]
    assert all(p["source_snapshot_id"] == snap and p["format"] == "vault" for p in payloads)


def test_wrong_or_missing_export_passphrase(vault_repo: VaultCLI, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    vault_repo.backup(tmp_path / "d")
    out = tmp_path / "e.vault"
    vault_repo.ok("export", "latest", "-o", out, "--password-file",
                  _secret_file(tmp_path / "pw", "right"))
    wrong = vault_repo.json("import", out, "--password-file",
                            _secret_file(tmp_path / "pw2", "wrong"))
    assert (wrong.code, wrong.last["error"]) == (2, "ExportPassphraseWrong")
    missing = vault_repo.json("import", out)
    assert (missing.code, missing.last["error"]) == (2, "ExportPassphraseNeeded")
    assert "--password-file" in missing.last["message"]
    # An existing output file is never overwritten.
    again = vault_repo.json("export", "latest", "-o", out)
    assert (again.code, again.last["error"]) == (2, "ExportTargetExists")


@pytest.fixture
def exported(vault_repo: VaultCLI, fs: FsTools, tmp_path: Path) -> Path:
    src = tmp_path / "data"
    fs.write_random(src / "r.bin", 600_000, seed=3)
    (src / "t.txt").write_text("text\n" * 1000)
    vault_repo.backup(src)
    out = tmp_path / "plain.vault"
    vault_repo.ok("export", "latest", "-o", out, "--no-encrypt")
    return out


def _refused(vault: VaultCLI, path: Path) -> dict[str, Any]:
    """Import `path` (in-process: refusals come before any work) and insist it failed
    without adding a snapshot; the error record."""
    before = vault.query("snapshots").summary["snapshots"]
    result = vault.query("import", path)
    assert result.code != 0, "a damaged export was imported"
    assert vault.query("snapshots").summary["snapshots"] == before
    return result.last


def test_a_bit_flip_anywhere_is_refused(vault_repo: VaultCLI, exported: Path,
                                        tmp_path: Path) -> None:
    data = exported.read_bytes()
    for offset in (20, len(data) // 3, len(data) // 2, len(data) - 45, len(data) - 1):
        flipped = bytearray(data)
        flipped[offset] ^= 0x10
        damaged = tmp_path / f"damaged-{offset}.vault"
        damaged.write_bytes(bytes(flipped))
        error = _refused(vault_repo, damaged)
        assert error["error"] == "ExportCorrupted", (offset, error)
        assert "damaged" in error["message"] and "checksum" in error["message"]


def test_a_truncated_export_is_refused(vault_repo: VaultCLI, exported: Path,
                                       tmp_path: Path) -> None:
    data = exported.read_bytes()
    for keep in (9, 100, len(data) // 2, len(data) - 1):
        cut = tmp_path / f"cut-{keep}.vault"
        cut.write_bytes(data[:keep])
        error = _refused(vault_repo, cut)
        assert error["error"] == "ExportTruncated", (keep, error)
        assert "truncated" in error["message"]


def test_foreign_and_future_files_are_refused(vault_repo: VaultCLI, exported: Path,
                                              tmp_path: Path) -> None:
    foreign = tmp_path / "notes.vault"
    foreign.write_bytes(b"%PDF-1.7 not a vault file at all\n" * 10)
    error = _refused(vault_repo, foreign)
    assert error["error"] == "NotAnExport" and error["exit_code"] == 2
    assert "not a vault export" in error["message"]

    future = tmp_path / "future.vault"
    data = bytearray(exported.read_bytes())
    data[8:10] = struct.pack(">H", 99)
    future.write_bytes(bytes(data))
    error = _refused(vault_repo, future)
    assert error["error"] == "UnsupportedExportVersion"
    assert "version 99" in error["message"] and "up to 2" in error["message"]
