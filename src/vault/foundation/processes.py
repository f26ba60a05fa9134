"""Whether a process is still running: the one rule behind every such question in vault
(a repository lock's holder, the worker or command that claimed a job, a journal spool's
writer).

A process is named by its pid and, where the kernel tells (Linux `/proc`), its start time
in clock ticks after boot, recorded when the claim or lock was made: pids are reused, and
the same pid started at another time is another process, so ours has ended. The rule:

- a pid <= 0 names no process (`kill(0)` and `kill(-1)` would probe process groups);
- no such pid (`ESRCH`): ended;
- another user's process (`EPERM`) exists: judged like our own from `/proc`;
- a zombie has ended (only its exit status is left for its parent);
- a recorded start time that differs from the live one: ended (pid reused);
- otherwise running; so is everything we cannot see (no `/proc`, as on macOS, or a pid
  whose `/proc` entry is hidden): when in doubt a process is alive, because calling a
  live holder dead breaks its lock or runs its job twice.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

__all__ = ["ProcStat", "claimant_alive", "process_alive", "process_start_time",
           "this_pid_namespace"]


@dataclass(frozen=True, slots=True)
class ProcStat:
    state: str  # one letter: R running, S sleeping, Z zombie, ...
    start_time: int  # clock ticks after boot


def proc_stat(pid: int) -> ProcStat | None:
    """`pid`'s state and start time from `/proc/<pid>/stat`, or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # "pid (comm) S ...": comm may contain spaces or ")", so split after the last ")".
    fields = text.rpartition(b")")[2].split()
    try:
        return ProcStat(state=fields[0].decode(), start_time=int(fields[19]))
    except (IndexError, ValueError):
        return None


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks after boot (Linux), or None where unknown."""
    found = proc_stat(pid)
    return None if found is None else found.start_time


def process_alive(pid: int, started: int | None = None) -> bool:
    """Whether process `pid` (started at `started`, when that was recorded) still runs on
    this host; the module docstring has the rule."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists; it belongs to another user
    found = proc_stat(pid)
    if found is None:
        return True
    if found.state == "Z":
        return False
    return started is None or found.start_time == started


def claimant_alive(host: str, pid: int, started: int | None) -> bool:
    """Whether the process that claimed something from `host` still runs; a process on
    another host cannot be looked at from here, so it counts as running."""
    return host != socket.gethostname() or process_alive(pid, started)


def this_pid_namespace() -> str | None:
    """This process's pid namespace (an inode number), None where unknown: a pid means
    nothing in another namespace (two containers may share a host name)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return None
