"""The files cache: skip reading files that have not changed since the last backup.

Keyed by absolute path; a file is unchanged when size, mtime, ctime and inode all match
and every chunk it lists is still in the repository's index. xxhash would do for a
fingerprint, but we do not even need one: the stat tuple is the fingerprint, as in git,
restic and borg. `--force` ignores the cache.

One SQLite file per repository under the cache dir; it is only a cache: deleting it costs
one slower backup, never data.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from vault.foundation.paths import ensure_private_dir

StatKey = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class FilesCache:
    def __init__(self, cache_dir: Path, repo_id: str) -> None:
        directory = ensure_private_dir(cache_dir / repo_id[:16])
        self.path = directory / "files.db"
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Paths are the file system's bytes (a name need not be valid UTF-8).
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files_v2 (path BLOB PRIMARY KEY, size INTEGER,"
            " mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, content BLOB)"
        )
        os.chmod(self.path, 0o600)
        self._entries: dict[str, tuple[StatKey, bytes]] | None = None
        self._updates: dict[str, tuple[StatKey, bytes]] = {}

    def _load(self) -> dict[str, tuple[StatKey, bytes]]:
        if self._entries is None:
            rows = self._db.execute("SELECT path, size, mtime_ns, ctime_ns, inode, content "
                                    "FROM files_v2")
            self._entries = {os.fsdecode(r[0]): ((r[1], r[2], r[3], r[4]), r[5]) for r in rows}
        return self._entries

    def lookup(self, path: str, key: StatKey) -> list[bytes] | None:
        hit = self._load().get(path)
        if hit is None or hit[0] != key:
            return None
        blob = hit[1]
        return [blob[i : i + 32] for i in range(0, len(blob), 32)]

    def known_path(self, path: str) -> bool:
        return path in self._load()

    def remember(self, path: str, key: StatKey, content: list[bytes]) -> None:
        self._updates[path] = (key, b"".join(content))

    def commit(self) -> None:
        """Persist what this backup learned; call only after its snapshot is saved."""
        if not self._updates:
            return
        rows = [(os.fsencode(p), *k, c) for p, (k, c) in self._updates.items()]
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO files_v2 VALUES (?,?,?,?,?,?)", rows)
        self._db.execute("COMMIT")
        self._load().update(self._updates)
        self._updates = {}

    def close(self) -> None:
        self._db.close()
