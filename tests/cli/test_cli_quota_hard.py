"""repository.quota is hard: a backup whose estimate passed but whose data does not fit
stops before the pack that would pass the quota, keeps what it wrote (indexed), and the
next backup, once the quota is raised, reuses those packs."""

from __future__ import annotations

import threading
from pathlib import Path

MiB = 1 << 20
STORED = ("data", "index", "snapshots")


def stored_size(repo: Path) -> int:
    """The repository's stored size as the quota counts it, measured on disk."""
    return sum(p.stat().st_size for kind in STORED for p in (repo / kind).rglob("*")
               if p.is_file() and not p.name.startswith(".tmp-"))


def write_config(vault, quota: int) -> None:
    path = vault.env.home / "config" / "vault" / "vault.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[repository]\nquota = {quota}\npack_size_mib = 4\n')


class SizeWatcher:
    """Samples the stored size while a backup runs: the quota must hold at every moment,
    not only at the end."""

    def __init__(self, repo: Path) -> None:
        self.repo, self.peak, self._stop = repo, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, stored_size(self.repo))
            except FileNotFoundError:  # an object renamed while listed
                continue
            self._stop.wait(0.01)

    def __enter__(self) -> SizeWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, stored_size(self.repo))


def test_a_backup_stops_before_the_quota_and_the_next_reuses_its_packs(
        vault_repo, fs, tmp_path: Path) -> None:
    src = tmp_path / "src"
    fs.write_random(src / "a.bin", 6 * MiB, seed=1)
    quota = 16 * MiB
    write_config(vault_repo, quota)
    vault_repo.backup(src)
    # Backups that read much and store nothing teach the estimate that little is new
    # (new/read = 0.2): the real new file below is then estimated far below its size.
    for _ in range(4):
        vault_repo.backup(src, "--force")
    used = stored_size(vault_repo.env.repo)
    new_file = fs.write_random(src / "b.bin", 12 * MiB, seed=2)

    with SizeWatcher(vault_repo.env.repo) as watcher:
        done = vault_repo.run("backup", src)
    assert done.returncode == 1, done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vault: error: writing stopped at "
                                                         "the quota (16.0 MiB): "), err
    assert "MiB used + " in err and "MiB written, kept; raise repository.quota" in err, err
    assert watcher.peak <= quota, (watcher.peak, quota)
    kept = stored_size(vault_repo.env.repo) - used
    assert kept >= 4 * MiB, kept  # whole packs were written before the stop
    failed = vault_repo.events("BackupFailed")[-1]["payload"]
    assert failed["error_kind"] == "QuotaReached"
    assert len(vault_repo.json("snapshots").summary["snapshots"]) == 5  # no new snapshot

    write_config(vault_repo, 40 * MiB)
    summary = vault_repo.backup(src)
    assert summary["status"] == "completed"
    [completed] = vault_repo.events("BackupCompleted")[-1:]
    bytes_new = completed["payload"]["bytes_new"]
    # Only what the stopped backup had not written yet is new now.
    assert bytes_new <= 12 * MiB - kept + MiB, (bytes_new, kept)
    out = tmp_path / "out"
    vault_repo.restore(f"latest:{src}", "--target", out)
    assert (out / "b.bin").read_bytes() == new_file.read_bytes()
    fs.assert_same_tree(src, out, include_root=False)
    assert vault_repo.json("verify", "--read-data").code == 0


def test_a_database_backup_stops_before_the_quota_too(vault_repo, tmp_path: Path) -> None:
    """A source's estimate is what its previous snapshot stored: a database that grew
    a lot passes it, and the hard quota stops the backup; raised, the next one reuses."""
    import os
    import sqlite3

    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)")
        conn.execute("INSERT INTO blobs (body) VALUES (?)", (os.urandom(200_000),))
    conn.close()
    url = f"sqlite://{db}"
    write_config(vault_repo, 40 * MiB)
    vault_repo.backup(url)
    with sqlite3.connect(db) as conn:  # grows by 14 MiB of data that does not compress
        conn.executemany("INSERT INTO blobs (body) VALUES (?)",
                         [(os.urandom(MiB),) for _ in range(14)])
    conn.close()
    used = stored_size(vault_repo.env.repo)
    quota = used + 10 * MiB
    write_config(vault_repo, quota)

    with SizeWatcher(vault_repo.env.repo) as watcher:
        stopped = vault_repo.json("backup", url)
    assert stopped.code == 1 and stopped.last["error"] == "QuotaReached", stopped.last
    assert watcher.peak <= quota, (watcher.peak, quota)
    kept = stored_size(vault_repo.env.repo) - used
    assert kept >= 4 * MiB, kept

    write_config(vault_repo, 80 * MiB)
    summary = vault_repo.backup(url)
    assert summary["status"] == "completed"
    bytes_new = vault_repo.events("BackupCompleted")[-1]["payload"]["bytes_new"]
    assert bytes_new <= 15 * MiB - kept, (bytes_new, kept)
    out = tmp_path / "restored.db"
    vault_repo.restore(summary["snapshot_id"][:8], "--target", out)
    assert _rows(out) == _rows(db) and len(_rows(db)) == 15


def _rows(path: Path) -> list[tuple[int, bytes]]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, body FROM blobs ORDER BY id").fetchall()
    finally:
        conn.close()


def test_an_import_stops_before_the_quota_too(vault_repo, fs, tmp_path: Path) -> None:
    """`vault import` of a foreign tar is held to the quota pack by pack, as a backup:
    its estimate (the archive's size) fits, the sealed packs do not."""
    import tarfile

    src = tmp_path / "src"
    for i in range(3):
        fs.write_random(src / f"f{i}.bin", 4 * MiB, seed=40 + i)
    archive = tmp_path / "app.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname="src")
    used = stored_size(vault_repo.env.repo)
    quota = used + 12 * MiB + (32 << 10)  # the raw data fits; packs + reserve do not
    write_config(vault_repo, quota)
    with SizeWatcher(vault_repo.env.repo) as watcher:
        done = vault_repo.run("import", archive)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("vault: error: writing stopped at the quota")
    assert len(done.stderr.strip().splitlines()) == 1
    assert watcher.peak <= quota
    assert vault_repo.events("SnapshotImported") == []
