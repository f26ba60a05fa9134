"""repository.quota: a backup that would pass it is refused before writing; crossing
warn_at journals StorageLow once, and StorageRecovered after forget and prune."""

from __future__ import annotations

import sqlite3
from pathlib import Path

STORED = ("data", "index", "snapshots")


def stored_files(repo: Path) -> dict[str, int]:
    """Every pack, index and snapshot object with its size."""
    return {str(p.relative_to(repo)): p.stat().st_size
            for kind in STORED for p in (repo / kind).rglob("*") if p.is_file()}


def set_quota(vault, quota: str, warn_at: str = "80%") -> None:
    """Write the test's default config file (XDG_CONFIG_HOME/vault/vault.toml)."""
    path = vault.env.home / "config" / "vault" / "vault.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[repository]\nquota = "{quota}"\nwarn_at = "{warn_at}"\n')


def test_a_backup_over_the_quota_is_refused_and_writes_nothing(vault_repo, fs,
                                                                tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = fs.write_random(src / "a.bin", 300_000, seed=1)
    first = vault_repo.backup(src)["snapshot_id"]
    before = stored_files(vault_repo.env.repo)
    used = sum(before.values())
    set_quota(vault_repo, f"{used + 100_000}")
    fs.write_random(src / "b.bin", 300_000, seed=2)  # ~300 KB new > 100 KB left

    result = vault_repo.json("backup", src)
    assert result.code == 1, result.last
    assert result.last["error"] == "QuotaExceeded"
    assert "backup would exceed the repository quota" in result.last["message"]
    assert "KiB used + ~" in result.last["message"]
    assert stored_files(vault_repo.env.repo) == before  # no pack, index or snapshot
    failed = vault_repo.events("BackupFailed")
    assert [e["payload"]["error_kind"] for e in failed] == ["QuotaExceeded"]

    target = tmp_path / "out"
    vault_repo.restore(first, "--target", target)
    restored = fs.restored_path(target, original)
    assert restored.read_bytes() == original.read_bytes()
    assert not restored.with_name("b.bin").exists()

    # The same backup fits a larger quota, and an unchanged source costs ~nothing.
    set_quota(vault_repo, f"{used + 2_000_000}")
    assert vault_repo.backup(src)["status"] == "completed"


def make_db(path: Path, rows: int) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)",
                         [(bytes([i % 251]) * 1000 + i.to_bytes(4, "big"),) for i in
                          range(rows)])
    conn.close()
    return path


def test_quota_for_a_sqlite_source(vault_repo, tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db", 300)  # ~330 KB: the first backup's estimate
    url = f"sqlite://{db}"
    set_quota(vault_repo, "64K")
    result = vault_repo.json("backup", url)
    assert result.code == 1 and result.last["error"] == "QuotaExceeded", result.last
    assert stored_files(vault_repo.env.repo) == {}

    set_quota(vault_repo, "10M")
    summary = vault_repo.backup(url)
    assert summary["status"] == "completed"
    stored = sum(stored_files(vault_repo.env.repo).values())
    assert 0 < stored < 10 << 20
    # The next backup is expected to add what the first one stored: refused when the
    # quota leaves less room than that, allowed when it leaves more.
    set_quota(vault_repo, str(stored + 1000))
    again = vault_repo.json("backup", url)
    assert again.code == 1 and again.last["error"] == "QuotaExceeded", again.last
    status = vault_repo.json("status").summary
    [source] = status["sources"]
    assert (source["label"], source["source_type"], source["status"]) == (url, "sqlite",
                                                                          "failed")
    [completed] = vault_repo.events("BackupCompleted")
    assert source["last_snapshot_id"] == completed["payload"]["snapshot_id"]


def test_storage_low_once_per_crossing_and_recovered_after_prune(vault_repo, fs,
                                                                 tmp_path: Path) -> None:
    src = tmp_path / "src"
    fs.write_random(src / "a.bin", 600_000, seed=3)
    set_quota(vault_repo, "1M", warn_at="50%")
    first = vault_repo.backup(src)["snapshot_id"]
    [low] = vault_repo.events("StorageLow")
    used = sum(stored_files(vault_repo.env.repo).values())
    assert low["payload"]["used_bytes"] == used and low["payload"]["quota_bytes"] == 1 << 20
    assert low["payload"]["warn_percent"] == 50.0
    assert low["payload"]["percent"] == round(100 * used / (1 << 20), 2)

    second = vault_repo.backup(src)["snapshot_id"]  # still above: no new one
    assert len(vault_repo.events("StorageLow")) == 1
    assert vault_repo.events("StorageRecovered") == []
    status = vault_repo.json("status").summary
    assert status["storage"]["low"] is True and status["storage"]["storage_low_journaled"]
    assert [a["kind"] for a in status["alerts"]] == ["storage_low"]

    assert vault_repo.json("forget", first, second).code == 0
    assert vault_repo.json("prune").code == 0
    [recovered] = vault_repo.events("StorageRecovered")
    assert recovered["payload"]["used_bytes"] < (1 << 20) // 2
    assert len(vault_repo.events("StorageLow")) == 1
    assert vault_repo.json("status").summary["alerts"] == []

    vault_repo.backup(src, "--force")  # crossing again: a second StorageLow
    assert len(vault_repo.events("StorageLow")) == 2


def test_crossing_warn_at_notifies_low_storage(vault_repo, fs, tmp_path: Path) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        set_quota(vault_repo, "1M", warn_at="50%")
        path = vault_repo.env.home / "config" / "vault" / "vault.toml"
        path.write_text(path.read_text() + (
            f'[[notifications]]\ntype = "webhook"\nname = "ops"\n'
            f'url = "http://127.0.0.1:{server.server_address[1]}/hook"\n'))
        src = tmp_path / "src"
        fs.write_random(src / "a.bin", 600_000, seed=4)
        vault_repo.backup(src)
        vault_repo.backup(src)  # still above the threshold: no second notice
    finally:
        server.shutdown()
        server.server_close()
    [notice] = received
    [low] = vault_repo.events("StorageLow")
    assert notice["trigger"] == "low_storage"
    assert notice["details"]["used_bytes"] == low["payload"]["used_bytes"]
    assert notice["details"]["quota_bytes"] == 1 << 20
    [sent] = vault_repo.events("NotificationSent")
    assert sent["payload"]["trigger"] == "low_storage"
