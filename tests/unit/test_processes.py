"""One liveness rule (`vault.foundation.processes`) for locks, worker claims and inline claims,
judged on real processes: this one, a running child, a zombie, a reaped child, a reused pid."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from vault.foundation.processes import (
    proc_stat,
    process_alive,
    process_start_time,
    this_pid_namespace,
)
from vault.jobs.worker import claimant_alive
from vault.journal import events as ev
from vault.repository.lock import LockInfo, is_stale
from vault.runtime.inline_jobs import claimant_gone, inline_claim

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _zombie(proc: subprocess.Popen[bytes]) -> None:
    """Kill `proc` and leave it unreaped until /proc shows it as a zombie."""
    proc.kill()
    deadline = time.monotonic() + 10
    while (stat := proc_stat(proc.pid)) is not None and stat.state != "Z":
        assert time.monotonic() < deadline, "the child never became a zombie"
        time.sleep(0.01)


@needs_proc
def test_a_running_process_with_its_start_time_is_alive(child: subprocess.Popen[bytes]) -> None:
    started = process_start_time(child.pid)
    assert started is not None and started >= (process_start_time(os.getpid()) or 0)
    assert process_alive(child.pid, started)
    assert process_alive(child.pid)  # no start time recorded: the pid is all we know


@needs_proc
def test_a_reused_pid_is_another_process(child: subprocess.Popen[bytes]) -> None:
    started = process_start_time(child.pid)
    assert started is not None
    assert not process_alive(child.pid, started - 1)


@needs_proc
def test_a_zombie_and_a_reaped_child_have_ended(child: subprocess.Popen[bytes]) -> None:
    started = process_start_time(child.pid)
    _zombie(child)
    assert not process_alive(child.pid, started)
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid, started)


def test_pids_that_name_no_process() -> None:
    assert not process_alive(0) and not process_alive(-1)
    assert process_alive(1)  # init: another user's (when not root) but alive


def _claim(pid: int, started: int | None, host: str | None = None) -> ev.JobClaimed:
    return inline_claim("job-1", "backup").model_copy(
        update={"pid": pid, "pid_started": started, "host": host or socket.gethostname()})


def _lock(pid: int, started: int | None) -> LockInfo:
    now = datetime.now(UTC)
    return LockInfo(lock_id="ab" * 32, exclusive=False, host=socket.gethostname(), pid=pid,
                    user="u", created=now, heartbeat=now, lease_seconds=300.0,
                    operation="backup", pid_namespace=this_pid_namespace(),
                    pid_started=started)


def _verdicts(pid: int, started: int | None) -> tuple[bool, bool, bool]:
    """(worker: claimant alive, inline: claimant gone, lock: stale) for one process."""
    claim = _claim(pid, started)
    stale = is_stale(_lock(pid, started), datetime.now(UTC), socket.gethostname(),
                     this_pid_namespace=this_pid_namespace())
    return claimant_alive(claim), claimant_gone(claim), stale


@needs_proc
def test_locks_worker_and_inline_claims_judge_alike(child: subprocess.Popen[bytes]) -> None:
    started = process_start_time(child.pid)
    assert started is not None
    assert _verdicts(child.pid, started) == (True, False, False)
    assert _verdicts(child.pid, started + 1) == (False, True, True)  # pid reused
    _zombie(child)
    assert _verdicts(child.pid, started) == (False, True, True)
    child.wait()
    assert _verdicts(child.pid, started) == (False, True, True)


def test_a_claim_from_another_host_counts_as_running() -> None:
    claim = _claim(999_999_999, None, host="elsewhere.example")
    assert claimant_alive(claim) and not claimant_gone(claim)
