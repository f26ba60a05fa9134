"""Which workers are running: each `vault worker` keeps a small file in the state
directory fresh while it runs, so `vault status` and the TUI can say "no worker is
running, queued jobs wait" instead of leaving an operator to wonder.

Not journaled: a heartbeat every few seconds would fill the append-only journal with
noise. The file is private (0600 in the 0700 state dir) and holds no secret.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vault.foundation.paths import ensure_private_dir

#: how often a worker refreshes its file, in seconds
BEAT_EVERY = 5.0
#: a file not refreshed for this long belongs to a worker that is gone (killed -9)
GONE_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class WorkerPresence:
    host: str
    pid: int
    started_at: str  # ISO 8601, UTC
    beat_at: str
    queue: str  # where it takes jobs from, without credentials
    threads: int

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}"

    def beat(self) -> datetime:
        return datetime.fromisoformat(self.beat_at)


def _directory(state_dir: Path) -> Path:
    return state_dir / "workers"


class PresenceFile:
    """The running worker's own file: written at start, refreshed by `beat()`, removed
    on a clean stop."""

    def __init__(self, state_dir: Path, queue: str, threads: int) -> None:
        now = datetime.now(UTC).isoformat()
        self.presence = WorkerPresence(host=socket.gethostname(), pid=os.getpid(),
                                       started_at=now, beat_at=now, queue=queue,
                                       threads=threads)
        self.path = ensure_private_dir(_directory(state_dir)) / \
            f"{self.presence.host}-{self.presence.pid}.json"

    def beat(self) -> None:
        presence = WorkerPresence(**{**asdict(self.presence),
                                     "beat_at": datetime.now(UTC).isoformat()})
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(presence), out)
        os.replace(temporary, self.path)  # a reader never sees half a file

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def live_workers(state_dir: Path, now: datetime) -> list[WorkerPresence]:
    """The workers whose file is fresh, oldest first. A stale file (a worker killed
    with -9 leaves one) is ignored, not deleted: reading must not need write access."""
    found = []
    directory = _directory(state_dir)
    if not directory.is_dir():
        return []
    for path in sorted(directory.glob("*.json")):
        try:
            presence = WorkerPresence(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # being replaced, or not ours
        if now - presence.beat() <= GONE_AFTER:
            found.append(presence)
    return sorted(found, key=lambda p: p.started_at)
