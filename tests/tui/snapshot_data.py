"""A repository and a journal that come out byte for byte the same on every run and every
machine, for the TUI's snapshot tests (test_tui_snapshots.py).

Why not `vault backup` of real files: a snapshot made from a temporary directory holds
the machine in it, in every field an id is hashed from: the host and user, every parent
directory of the temporary path (with /tmp's ever-changing time), the owner's uid, the
duration, and random keys, nonces and ids. Its id, its sizes and its times would change on
each run. So, only while the data is built (`pinned`):

* vault's randomness is drawn from a seeded generator: `os.urandom` (nonces, uuids) and
  `random._urandom`, which `secrets` uses (keys, salts, repository and lock ids);
* vault's clock is frozen at moments the builder sets: `datetime` in every loaded vault
  module is a subclass whose `now()` answers the frozen moment;
* the host and user that key files record are fixed.

The snapshots are written with the core's own calls (Repository.init, the chunker,
BlobSaver, encode_tree, Snapshot, save_snapshot, record_storage_usage) from a fixed
description of the files (names, seeded bytes, modes, times, owners), and each job is
journaled through JobRun and `completed_event`, as `run_backup` journals it. Everything
lives under ROOT, a fixed path (it is shown on screen); `built()` holds a lock on it so
that parallel test workers take turns.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import random
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import pytest

from vault.config.model import load_config
from vault.errors import VaultError
from vault.foundation.actor import Actor
from vault.journal import events as ev
from vault.operations.backup import completed_event
from vault.operations.manage import init_repository
from vault.operations.quota import record_storage_usage
from vault.repository.blob import BlobType
from vault.repository.chunker import Chunker
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import FileProblem, Snapshot, SnapshotSummary
from vault.repository.tree import Node, encode_tree
from vault.runtime.app import PassphraseOptions, Vault
from vault.runtime.jobrun import JobRun

#: where the snapshot tests' vault lives (fixed: the dashboard shows the repository)
ROOT = Path("/tmp/vault-tui-snapshots")
PASSWORD = "snapshot tests, not a secret"
#: "now" for the app under test
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
HOST, USER, UID = "app-server", "backup", 1000
ACTOR = Actor(user="operator", uid=1000, host="backup-host")
#: what snapshots record as the vault that made them (the real version would change
#: every snapshot id at each release)
VAULT_VERSION = "0.0.0+snapshot-test"
SEED = 20260302

CONFIG = f"""\
state_dir = "{ROOT / 'state'}"
cache_dir = "{ROOT / 'cache'}"

[repository]
url = "{ROOT / 'repo'}"
quota = "1 MiB"
chunk_avg_kib = 64

[[sources]]
type = "files"
name = "docs"
paths = ["/srv/app/docs"]

[[sources]]
type = "files"
name = "photos"
paths = ["/srv/app/photos"]

[[sources]]
type = "files"
name = "mail"
paths = ["/srv/app/mail"]

[[schedules]]
name = "nightly"
cron = "0 2 * * *"
sources = ["docs", "mail"]

[[schedules]]
name = "weekly"
cron = "0 3 * * 0"
sources = ["photos"]
"""


# --- pinning randomness and time ------------------------------------------------------------


class FrozenClock:
    """The moment vault's `datetime.now()` answers while pinned; the builder moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def datetime_class(self) -> type[datetime]:
        clock = self

        class FrozenDatetime(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> FrozenDatetime:  # type: ignore[override]
                return cls.fromtimestamp(clock.at.timestamp(), tz)

        return FrozenDatetime


@contextmanager
def pinned(clock: FrozenClock, seed: int = SEED) -> Iterator[None]:
    """Seeded randomness, a frozen clock and a fixed host and user for vault, until exit."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def urandom(size: int) -> bytes:
        with lock:  # one stream, drawn in call order (the build is single-threaded)
            return rng.randbytes(size)

    frozen = clock.datetime_class()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "urandom", urandom)
        patch.setattr(random, "_urandom", urandom)
        patch.setattr(socket, "gethostname", lambda: HOST)
        patch.setattr(getpass, "getuser", lambda: USER)
        patch.setenv("VAULT_KDF_N", "1024")  # the key file records it (and it is quick)
        for module in _vault_modules_with_a_clock():
            patch.setattr(module, "datetime", frozen)
        yield
        # A module vault first imported during the build read the real clock.
        late = [m.__name__ for m in _vault_modules_with_a_clock()]
        assert not late, f"import these in snapshot_data before pinning: {late}"


def _vault_modules_with_a_clock() -> list[Any]:
    return [module for name, module in list(sys.modules.items())
            if (name == "vault" or name.startswith("vault."))
            and getattr(module, "datetime", None) is datetime]


# --- what the snapshots hold ----------------------------------------------------------------


@dataclass(frozen=True)
class FakeFile:
    """A file of `size` seeded bytes (incompressible: sizes do not hang on zstd)."""

    name: str
    size: int
    seed: int
    mode: int = 0o100644
    mtime: datetime = datetime(2026, 2, 27, 14, 5, tzinfo=UTC)

    def data(self) -> bytes:
        return random.Random(self.seed).randbytes(self.size)


@dataclass(frozen=True)
class FakeDir:
    name: str
    children: list[FakeFile | FakeDir] = field(default_factory=list)
    mode: int = 0o40755
    mtime: datetime = datetime(2026, 2, 27, 14, 5, tzinfo=UTC)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


class TreeWriter:
    """Stores a FakeDir as the archiver stores a directory: chunks, then trees."""

    def __init__(self, repo: Repository, saver: BlobSaver) -> None:
        self.saver = saver
        self.chunker = Chunker(repo.chunker_params, repo.chunker_seed)
        self.summary = SnapshotSummary()

    def root(self, path: str, top: FakeDir) -> bytes:
        """The root tree of a snapshot of `top` at the absolute `path`."""
        node = self.directory(top)
        for name in reversed(path.strip("/").split("/")[:-1]):
            node = self._node(FakeDir(name), subtree=self.save_tree([node]))
        return self.save_tree([node])

    def directory(self, d: FakeDir) -> Node:
        self.summary.dirs += 1
        children = [self.directory(c) if isinstance(c, FakeDir) else self.file(c)
                    for c in d.children]
        return self._node(d, subtree=self.save_tree(children))

    def file(self, f: FakeFile) -> Node:
        data = f.data()
        node = Node(name=f.name, type="file", mode=f.mode, mtime_ns=_ns(f.mtime), uid=UID,
                    gid=UID, size=len(data))
        node.content = [self.saver.save(BlobType.DATA, bytes(chunk))[0]
                        for chunk in self.chunker.cut_buffer(data)]
        self.summary.files_new += 1
        self.summary.bytes_raw += len(data)
        self.summary.bytes_read += len(data)
        return node

    def save_tree(self, nodes: list[Node]) -> bytes:
        return self.saver.save(BlobType.TREE, encode_tree(nodes))[0]

    @staticmethod
    def _node(d: FakeDir, subtree: bytes) -> Node:
        return Node(name=d.name, type="dir", mode=d.mode, mtime_ns=_ns(d.mtime), uid=UID,
                    gid=UID, subtree=subtree)


# --- the builder ---------------------------------------------------------------------------


class Builder:
    """Writes the snapshot tests' vault under ROOT, one journaled step at a time."""

    def __init__(self, root: Path, clock: FrozenClock) -> None:
        self.clock = clock
        self.config_path = root / "vault.toml"
        self.config_path.write_text(CONFIG)
        self.vault = Vault(load_config(self.config_path),
                           PassphraseOptions(password_command=None, password_file=None,
                                             prompt=lambda: PASSWORD), actor=ACTOR)
        self.repo = init_repository(self.vault, PASSWORD, 64 << 10)
        self.vault._repository = self.repo  # the one just made, as `vault init` leaves it

    def at(self, moment: datetime) -> Builder:
        self.clock.at = moment
        return self

    def backup(self, label: str, path: str, top: FakeDir, *, took: float,
               problems: list[FileProblem] | None = None, tags: list[str] | None = None
               ) -> Snapshot:
        """A backup of `top` as source `label`, finished `took` seconds after it started."""
        started = self.clock.at
        run = JobRun.start(self.vault.journal, "backup", None, repository=self.repo.location,
                           paths=[path], tags=tags or [], options={}, source=label)
        with run:
            parents = [s for s in self.repo.snapshots() if s.paths == [path]]
            parent = parents[-1] if parents else None
            run.record(ev.BackupStarted(job_id=run.job_id, repo_id=self.repo.id,
                                        parent=parent.id if parent else None))
            saver = BlobSaver(self.repo, compression_level=3)
            writer = TreeWriter(self.repo, saver)
            tree = writer.root(path, top)
            saver.flush()
            summary = writer.summary
            summary.bytes_new, summary.bytes_stored = saver.stats.bytes_new, \
                saver.stats.bytes_stored
            summary.blobs_new, summary.duration_seconds = saver.stats.blobs_new, took
            self.at(started + timedelta(seconds=took))
            snapshot = Snapshot(
                time=started, host=HOST, user=USER, uid=UID, paths=[path],
                tags=sorted(tags or []), tree=tree.hex(),
                parent=parent.id if parent else None,
                backup_type="incremental" if parent else "full",
                status="partial" if problems else "completed",
                source={"type": "files", "name": label, "label": label}, summary=summary,
                errors=problems or [], vault_version=VAULT_VERSION, job_id=run.job_id)
            snapshot.id = self.repo.save_snapshot(snapshot)
            run.complete(completed_event(run.job_id, self.repo, snapshot))
        record_storage_usage(self.vault, self.repo)
        return snapshot

    def failed(self, label: str, path: str, error: VaultError) -> str:
        """A backup that fails after it started, journaled by JobRun as any failure."""
        run = JobRun.start(self.vault.journal, "backup", None, repository=self.repo.location,
                           paths=[path], tags=[], options={}, source=label)
        try:
            with run:
                run.record(ev.BackupStarted(job_id=run.job_id, repo_id=self.repo.id,
                                            parent=None))
                raise error
        except VaultError:
            pass  # journaled as BackupFailed: that is the point
        return run.job_id

    def running(self, label: str, path: str, *, done: int, total: int, files: int,
                of_files: int, rate: float) -> str:
        """A backup a worker is running now: requested, started, progressed."""
        run = JobRun.start(self.vault.journal, "backup", None, repository=self.repo.location,
                           paths=[path], tags=[], options={}, source=label)
        self.vault.journal.append(run.job_id, run.requested)
        run.record(ev.BackupStarted(job_id=run.job_id, repo_id=self.repo.id, parent=None))
        run.record(ev.BackupProgressed(
            job_id=run.job_id, phase="files", bytes_done=done, bytes_total=total,
            items_done=files, items_total=of_files, rate_bps=rate,
            eta_seconds=(total - done) / rate, current=f"{path}/2026/03/scan-0142.pdf"))
        return run.job_id

    def close(self) -> None:
        self.vault.journal.close()
        self.repo.storage.close()


DOCS = FakeDir("docs", [
    FakeFile("contract.pdf", 96_000, seed=1),
    FakeFile("minutes.odt", 24_500, seed=2),
    FakeDir("2026", [FakeFile("plan.xlsx", 61_000, seed=3),
                     FakeFile("budget.ods", 12_300, seed=4)]),
])
DOCS_LATER = FakeDir("docs", [*DOCS.children, FakeFile("notes.txt", 3_200, seed=5)])
PHOTOS = FakeDir("photos", [FakeFile(f"IMG_{n:04d}.jpg", 41_000 + 700 * n, seed=100 + n)
                            for n in range(1, 7)])


def build(root: Path) -> Path:
    """The snapshot tests' vault under `root` (emptied first); its vault.toml."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    clock = FrozenClock(datetime(2026, 2, 27, 17, 0, tzinfo=UTC))
    with pinned(clock):
        vault = Builder(root, clock)
        try:
            vault.at(datetime(2026, 3, 1, 2, 0, 3, tzinfo=UTC))
            vault.backup("docs", "/srv/app/docs", DOCS, took=4.2)
            vault.at(datetime(2026, 3, 1, 3, 0, 2, tzinfo=UTC))
            vault.backup("photos", "/srv/app/photos", PHOTOS, took=9.8, tags=["weekly"],
                         problems=[FileProblem(path="/srv/app/photos/IMG_0007.jpg",
                                               error="Permission denied")])
            vault.at(datetime(2026, 3, 2, 2, 0, 1, tzinfo=UTC))
            vault.backup("docs", "/srv/app/docs", DOCS_LATER, took=2.4)
            vault.at(datetime(2026, 3, 2, 2, 0, 9, tzinfo=UTC))
            vault.failed("mail", "/srv/app/mail", VaultError(
                "cannot read /srv/app/mail: permission denied"))
            vault.at(NOW - timedelta(seconds=2))
            vault.running("photos", "/srv/app/photos", done=97_000, total=262_500, files=2,
                          of_files=6, rate=48_500.0)
        finally:
            vault.close()
    return root / "vault.toml"


@contextmanager
def built(root: Path = ROOT) -> Iterator[Path]:
    """Build the vault under `root` and hold it (a file lock) until exit: tests in other
    processes wait their turn. Yields its vault.toml."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{root}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield build(root)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
