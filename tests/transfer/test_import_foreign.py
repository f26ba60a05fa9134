"""`vault import` of tar and ZIP archives (hostile members refused) and SQLite files."""

from __future__ import annotations

import io
import os
import sqlite3
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from vault.transfer.archives import Member, clean_member_path, link_reason, plan_members

VaultCLI = Any  # the conftest fixtures (conftest modules are not imported)


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE,
             link: str = "", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, link, mode, 1_700_000_000
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _hostile_tar(path: Path) -> None:
    with tarfile.open(path, "w:gz") as tf:
        _tar_add(tf, "./app/", kind=tarfile.DIRTYPE, mode=0o755)
        _tar_add(tf, "./app/config.ini", b"[main]\nx = 1\n", mode=0o600)
        _tar_add(tf, "app/data/blob.bin", bytes(range(256)) * 40)
        _tar_add(tf, "/etc/evil-absolute", b"absolute")
        _tar_add(tf, "app/../../evil-dotdot", b"dotdot")
        _tar_add(tf, "escape", kind=tarfile.SYMTYPE, link="/etc")
        _tar_add(tf, "escape/passwd", b"through the symlink")  # stored under escape/ only
        _tar_add(tf, "app/up", kind=tarfile.SYMTYPE, link="../../outside")
        _tar_add(tf, "app/hard", kind=tarfile.LNKTYPE, link="/etc/shadow")
        _tar_add(tf, "dev", kind=tarfile.CHRTYPE)
        _tar_add(tf, "app/twice.txt", b"first")
        _tar_add(tf, "app/twice.txt", b"second wins")


def _hostile_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("site/index.html", "<h1>hello</h1>\n" * 50)
        zf.writestr("site/img/logo.png", bytes(range(256)) * 10)
        zf.writestr("/abs.txt", "absolute")
        zf.writestr("../../zip-dotdot.txt", "dotdot")
        link = zipfile.ZipInfo("site/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")


def _files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_hostile_archive_import_refuses_members_and_writes_nothing_outside(
        vault_repo: VaultCLI, tmp_path: Path, kind: str) -> None:
    sandbox = tmp_path / "sandbox"
    archive = sandbox / "in" / f"upload.{'tar.gz' if kind == 'tar' else 'zip'}"
    archive.parent.mkdir(parents=True)
    (_hostile_tar if kind == "tar" else _hostile_zip)(archive)
    before = _files_under(sandbox)

    result = vault_repo.json("import", archive)
    assert result.code == 3, result.stderr  # partial: some members were refused
    summary = result.summary
    refused = {r["path"]: r["error"] for r in summary["refused"]}
    if kind == "tar":
        assert set(refused) == {"/etc/evil-absolute", "app/../../evil-dotdot", "escape",
                                "app/up", "app/hard", "dev", "app/twice.txt"}
        assert "absolute path" in refused["/etc/evil-absolute"]
        assert "'..'" in refused["app/../../evil-dotdot"]
        assert "escapes" in refused["escape"] and "escapes" in refused["app/up"]
        assert "hard link" in refused["app/hard"]
        assert "replaced by a later member" in refused["app/twice.txt"]
        want = {"app/config.ini": b"[main]\nx = 1\n", "app/data/blob.bin":
                bytes(range(256)) * 40, "app/twice.txt": b"second wins",
                "escape/passwd": b"through the symlink"}
    else:
        assert set(refused) == {"/abs.txt", "../../zip-dotdot.txt", "site/link"}
        assert "escapes" in refused["site/link"]
        want = {"site/index.html": b"<h1>hello</h1>\n" * 50,
                "site/img/logo.png": bytes(range(256)) * 10}
    assert summary["files"] == len(want)
    # Nothing was extracted anywhere by the import itself.
    assert _files_under(sandbox) == before

    target = sandbox / "restore"
    vault_repo.restore(summary["snapshot_id"], "--target", target)
    assert _files_under(target) == want
    assert _files_under(sandbox) == {**before, **{
        str((target / p).relative_to(sandbox)): data for p, data in want.items()}}
    for outside in (tmp_path, tmp_path.parent):
        assert not (outside / "evil-dotdot").exists()
    assert not any(p.is_symlink() for p in target.rglob("*"))
    if kind == "tar":
        assert stat.S_IMODE((target / "app" / "config.ini").stat().st_mode) == 0o600
    event = vault_repo.events("SnapshotImported")[-1]["payload"]
    assert event["format"] == kind and {p["path"] for p in event["refused"]} == set(refused)


def test_archive_preview_and_nothing_to_import(vault_repo: VaultCLI, tmp_path: Path) -> None:
    archive = tmp_path / "only-links.tar"
    with tarfile.open(archive, "w") as tf:
        _tar_add(tf, "a", kind=tarfile.SYMTYPE, link="/etc/passwd")
    result = vault_repo.query("import", archive)
    assert (result.code, result.last["error"]) == (2, "NothingToImport")
    archive = tmp_path / "ok.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "A")
    preview = vault_repo.query("import", archive, "--dry-run")
    assert preview.code == 0 and preview.summary["preview"]["files"] == 1
    assert vault_repo.query("snapshots").summary["snapshots"] == []


def test_sqlite_file_import_is_a_sqlite_snapshot(vault_repo: VaultCLI, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB, r REAL)")
    rows = [(i, f"row {i}", os.urandom(50), i / 7) for i in range(1, 300)]
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    result = vault_repo.json("import", db)
    assert result.code == 0, result.stderr
    snap = result.summary["snapshot_id"]
    listed = vault_repo.query("snapshots").summary["snapshots"]
    assert [s["source"]["type"] for s in listed if s["id"] == snap] == ["sqlite"]
    restored = tmp_path / "restored.db"
    vault_repo.restore(snap, "--target", restored)
    conn = sqlite3.connect(restored)
    assert conn.execute("SELECT * FROM t ORDER BY id").fetchall() == rows
    conn.close()

    # A database snapshot travels too: export it, import it elsewhere, restore from there.
    export = tmp_path / "db.vault"
    assert vault_repo.query("export", snap, "-o", export).code == 0
    other = {"VAULT_REPOSITORY": str(tmp_path / "repo2"), "VAULT_PASSWORD": "second pw"}
    vault_repo.ok("init", env=other)
    # Encrypted by default with the first repository's passphrase: given for the file here.
    moved = vault_repo.query("import", export,
                             env={**other, "VAULT_EXPORT_PASSWORD": vault_repo.env.password})
    assert moved.code == 0, moved.stderr
    again = tmp_path / "again.db"
    vault_repo.restore(moved.summary["snapshot_id"], "--target", again, env=other)
    conn = sqlite3.connect(again)
    assert conn.execute("SELECT * FROM t ORDER BY id").fetchall() == rows
    conn.close()


# --- pure member classification -----------------------------------------------------------


@pytest.mark.parametrize(("name", "clean"), [
    ("./a/b", "a/b"), ("a//b/./c", "a/b/c"), ("a/", "a"),
])
def test_clean_member_paths(name: str, clean: str) -> None:
    assert clean_member_path(name) == clean


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../b", "a/..", "", "./", "a\0b"])
def test_hostile_member_paths(name: str) -> None:
    assert plan_members([Member(name, "file", 0o644, 0, 1)]).refused


@pytest.mark.parametrize(("member", "target", "escapes"), [
    ("a/link", "../b", False), ("a/link", "../../b", True), ("link", "/etc", True),
    ("a/b/link", "../../c/../d", False), ("link", "x/../../y", True),
])
def test_link_reasons(member: str, target: str, escapes: bool) -> None:
    assert ("escapes" in link_reason(member, target)) is escapes


def test_a_path_both_file_and_directory_is_refused() -> None:
    plan = plan_members([Member("a", "file", 0o644, 0, 1), Member("a/b", "file", 0o644, 0, 1)])
    assert list(plan.accepted) == ["a/b"]
    assert plan.refused == [("a", "is both a file and a directory")]


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_damaged_archive_is_refused_without_a_snapshot(vault_repo: VaultCLI, tmp_path: Path,
                                                         kind: str) -> None:
    archive = tmp_path / f"a.{kind}"
    payload = os.urandom(300_000)
    if kind == "zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("r.bin", payload)
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0xFF  # inside the member: its CRC no longer matches
    else:
        with tarfile.open(archive, "w:gz") as tf:
            _tar_add(tf, "r.bin", payload)
        data = bytearray(archive.read_bytes()[: archive.stat().st_size // 2])
    archive.write_bytes(bytes(data))
    result = vault_repo.json("import", archive)
    assert result.code == 1, result.last
    assert result.last["error"] == "ArchiveUnreadable", result.last
    assert vault_repo.query("snapshots").summary["snapshots"] == []
