"""Repository locks between real processes: conflicts, kill -9 recovery, heartbeats."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vault.errors import RepositoryLocked
from vault.repository.lock import (
    LockLost,
    RepositoryLock,
    break_lock,
    list_locks,
    process_alive,
)
from vault.storage.local import LocalStorage

HOLDER = """
import sys, time
from vault.storage.local import LocalStorage
from vault.repository.lock import RepositoryLock
lock = RepositoryLock.acquire(
    LocalStorage(sys.argv[1]), exclusive=sys.argv[2] == "exclusive", operation=sys.argv[3]
)
print(lock.info.lock_id, flush=True)
time.sleep(600)
"""

Spawn = Callable[[bool, str], tuple[subprocess.Popen[str], str]]


@pytest.fixture
def repo(tmp_path: Path) -> LocalStorage:
    storage = LocalStorage(tmp_path / "repo")
    storage.create()
    return storage


@pytest.fixture
def spawn_holder(repo: LocalStorage) -> Iterator[Spawn]:
    """Start a separate process that takes a lock and keeps it until killed."""
    children: list[subprocess.Popen[str]] = []

    def spawn(exclusive: bool, operation: str) -> tuple[subprocess.Popen[str], str]:
        mode = "exclusive" if exclusive else "shared"
        child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(repo.root), mode, operation],
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        lock_id = child.stdout.readline().strip()
        assert lock_id, "the holder process did not get its lock"
        return child, lock_id

    yield spawn
    for child in children:
        child.kill()
        child.wait()


def lock_ids(repo: LocalStorage) -> set[str]:
    return {info.name for info in repo.list("locks")}


def write_foreign_lock(repo: LocalStorage, lock_id: str, heartbeat_age: timedelta) -> None:
    """A lock from another machine, written the way that machine's vault would."""
    beat = datetime.now(UTC) - heartbeat_age
    record = {
        "lock_id": lock_id, "exclusive": True, "host": "nas.elsewhere", "pid": 999_999,
        "user": "bob", "created": (beat - timedelta(hours=1)).isoformat(),
        "heartbeat": beat.isoformat(), "lease_seconds": 300, "operation": "prune",
    }  # fmt: skip
    repo.save("locks", lock_id, json.dumps(record).encode())


# --- coexistence and conflicts ----------------------------------------------------------


def test_shared_locks_coexist(repo: LocalStorage, spawn_holder: Spawn) -> None:
    _, child_id = spawn_holder(False, "backup")
    with (
        RepositoryLock.acquire(repo, exclusive=False, operation="verify") as mine,
        RepositoryLock.acquire(repo, exclusive=False, operation="restore") as also,
    ):
        assert lock_ids(repo) == {child_id, mine.info.lock_id, also.info.lock_id}
        assert [info.state for info in list_locks(repo)] == ["active"] * 3
    assert lock_ids(repo) == {child_id}


def test_exclusive_is_refused_while_a_shared_lock_is_held(
    repo: LocalStorage, spawn_holder: Spawn
) -> None:
    child, child_id = spawn_holder(False, "backup")
    with pytest.raises(RepositoryLocked) as caught:
        RepositoryLock.acquire(repo, exclusive=True, operation="prune")
    message = str(caught.value)
    assert f"@{socket.gethostname()} pid {child.pid} (backup)" in message
    assert message.startswith(f"repository {repo.location} is locked by ")
    assert lock_ids(repo) == {child_id}  # our attempt left nothing behind


def test_shared_is_refused_while_an_exclusive_lock_is_held(
    repo: LocalStorage, spawn_holder: Spawn
) -> None:
    child, child_id = spawn_holder(True, "forget")
    with pytest.raises(RepositoryLocked, match=re.escape(f"pid {child.pid} (forget)")):
        RepositoryLock.acquire(repo, exclusive=False, operation="backup")
    assert lock_ids(repo) == {child_id}


def test_waiting_gives_up_after_wait_seconds(repo: LocalStorage, spawn_holder: Spawn) -> None:
    spawn_holder(True, "prune")
    started = time.monotonic()
    with pytest.raises(RepositoryLocked):
        RepositoryLock.acquire(
            repo, exclusive=False, operation="backup", wait_seconds=0.5, poll_seconds=0.1
        )
    assert time.monotonic() - started >= 0.5


def test_waiting_gets_the_lock_once_the_holder_releases(repo: LocalStorage) -> None:
    holder = RepositoryLock.acquire(repo, exclusive=True, operation="prune")
    threading.Timer(0.3, holder.release).start()
    with RepositoryLock.acquire(
        repo, exclusive=False, operation="backup", wait_seconds=30, poll_seconds=0.05
    ) as mine:
        assert lock_ids(repo) == {mine.info.lock_id}


# --- recovering from dead holders -------------------------------------------------------


def test_a_lock_of_a_killed_process_is_removed_and_reported(
    repo: LocalStorage, spawn_holder: Spawn
) -> None:
    child, child_id = spawn_holder(True, "prune")
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert [info.state for info in list_locks(repo)] == ["stale"]
    with RepositoryLock.acquire(repo, exclusive=True, operation="prune") as mine:
        assert [(s.lock_id, s.pid, s.state) for s in mine.stale_removed] == [
            (child_id, child.pid, "stale")
        ]
        assert lock_ids(repo) == {mine.info.lock_id}


def test_a_killed_but_unreaped_process_counts_as_dead(
    repo: LocalStorage, spawn_holder: Spawn
) -> None:
    child, child_id = spawn_holder(False, "backup")
    child.send_signal(signal.SIGKILL)  # not reaped: it lingers as a zombie
    deadline = time.monotonic() + 10
    while process_alive(child.pid):
        assert time.monotonic() < deadline, "a zombie must not count as alive"
        time.sleep(0.01)
    with RepositoryLock.acquire(repo, exclusive=True, operation="prune") as mine:
        assert [s.lock_id for s in mine.stale_removed] == [child_id]


def test_process_alive_for_live_and_special_pids() -> None:
    assert process_alive(os.getpid())
    assert process_alive(1)  # owned by root or not, init exists
    assert not process_alive(0)
    assert not process_alive(-1)


def test_an_expired_lock_from_another_host_is_removed(repo: LocalStorage) -> None:
    write_foreign_lock(repo, "cd" * 32, heartbeat_age=timedelta(minutes=10))
    with RepositoryLock.acquire(repo, exclusive=True, operation="prune") as mine:
        assert [(s.host, s.user, s.state) for s in mine.stale_removed] == [
            ("nas.elsewhere", "bob", "stale")
        ]
        assert "cd" * 32 not in lock_ids(repo)


def test_a_live_lock_from_another_host_is_respected(repo: LocalStorage) -> None:
    # pid 999999 does not exist here, but it is another host's pid: only the lease counts.
    write_foreign_lock(repo, "cd" * 32, heartbeat_age=timedelta(seconds=5))
    with pytest.raises(RepositoryLocked, match=re.escape("bob@nas.elsewhere pid 999999 (prune)")):
        RepositoryLock.acquire(repo, exclusive=False, operation="backup")
    assert lock_ids(repo) == {"cd" * 32}


def test_an_unreadable_lock_blocks_and_is_listed(repo: LocalStorage) -> None:
    repo.save("locks", "ef" * 32, b"\x00 not json")
    with pytest.raises(RepositoryLocked, match="unreadable lock object"):
        RepositoryLock.acquire(repo, exclusive=False, operation="backup")
    assert [info.state for info in list_locks(repo)] == ["unreadable"]
    break_lock(repo, "ef" * 32)
    with RepositoryLock.acquire(repo, exclusive=True, operation="prune"):
        pass


# --- heartbeat and release --------------------------------------------------------------


def read_heartbeat(repo: LocalStorage, lock_id: str) -> datetime:
    return datetime.fromisoformat(json.loads(repo.load("locks", lock_id))["heartbeat"])


def test_heartbeat_keeps_a_lock_alive_past_its_lease(repo: LocalStorage) -> None:
    with RepositoryLock.acquire(
        repo, exclusive=False, operation="backup", lease_seconds=1.0, heartbeat_seconds=0.1
    ) as lock:
        first = read_heartbeat(repo, lock.info.lock_id)
        time.sleep(1.5)  # longer than the lease
        assert read_heartbeat(repo, lock.info.lock_id) > first
        assert [info.state for info in list_locks(repo)] == ["active"]
        lock.check()


def test_default_heartbeat_is_a_tenth_of_the_lease(repo: LocalStorage) -> None:
    with RepositoryLock.acquire(repo, exclusive=False, operation="backup") as lock:
        assert lock.heartbeat_seconds == 30
        assert lock.info.lease_seconds == 300


def test_a_lock_removed_behind_its_back_is_lost_not_resurrected(repo: LocalStorage) -> None:
    lock = RepositoryLock.acquire(
        repo, exclusive=True, operation="prune", lease_seconds=2.0, heartbeat_seconds=0.05
    )
    break_lock(repo, lock.info.lock_id)
    deadline = time.monotonic() + 10
    while not lock.lost:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(LockLost, match="removed it as stale"):
        lock.check()
    time.sleep(0.2)
    assert lock_ids(repo) == set()
    lock.release()


def test_release_removes_the_lock_and_twice_is_harmless(repo: LocalStorage) -> None:
    lock = RepositoryLock.acquire(repo, exclusive=True, operation="key-add")
    assert lock_ids(repo) == {lock.info.lock_id}
    lock.release()
    lock.release()
    assert lock_ids(repo) == set()
    assert not any(t.name.startswith("vault-lock-") for t in threading.enumerate())


def test_the_context_manager_releases_on_error(repo: LocalStorage) -> None:
    with pytest.raises(KeyError), RepositoryLock.acquire(repo, exclusive=True, operation="prune"):
        raise KeyError("boom")
    assert lock_ids(repo) == set()


@pytest.mark.parametrize(("lease", "beat"), [(0, None), (10, 10), (10, 0), (10, -1)])
def test_impossible_timings_are_refused(
    repo: LocalStorage, lease: float, beat: float | None
) -> None:
    with pytest.raises(ValueError):
        RepositoryLock.acquire(
            repo, exclusive=False, operation="x", lease_seconds=lease, heartbeat_seconds=beat
        )
