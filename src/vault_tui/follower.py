"""Following the journal live from another process's commits.

A thread with its own read-only connection polls `PRAGMA data_version`, which changes only
when *another* connection commits, so an idle journal costs one tiny query per poll and no
reads of the events table. When it changed and the head `seq` moved, the app gets one
`JournalChanged`; a newer one replaces an older one still waiting in the queue, so a burst
of progress events refreshes each screen once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from vault.foundation.sqlite_readonly import open_read_only

#: seconds between two looks at the journal (the issue asks for 250-500 ms)
POLL_SECONDS = 0.3


class JournalChanged(Message):
    """The journal's head moved to `head_seq` (or the journal appeared or went away)."""

    def __init__(self, head_seq: int, available: bool = True) -> None:
        super().__init__()
        self.head_seq = head_seq
        self.available = available

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JournalChanged)


class JournalFollower:
    """Calls `notify(JournalChanged)` from its thread whenever the head moves."""

    def __init__(self, journal_path: Path, notify: Callable[[JournalChanged], object],
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.journal_path = journal_path
        self.notify = notify
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vault-journal-follower",
                                        daemon=True)
        self.head_seq = -1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        version: int | None = None
        try:
            while not self._stop.is_set():
                try:
                    if conn is None:
                        conn = self._connect()
                        version = None
                    if conn is not None:
                        now = int(conn.execute("PRAGMA data_version").fetchone()[0])
                        if now != version:
                            version = now
                            self._look(conn)
                except sqlite3.Error:
                    # The journal went away or is being replaced: say so once and retry.
                    if conn is not None:
                        conn.close()
                        conn = None
                    if self.head_seq != -1:
                        self.head_seq = -1
                        self.notify(JournalChanged(-1, available=False))
                self._stop.wait(self.poll_seconds)
        finally:
            if conn is not None:
                conn.close()

    def _connect(self) -> sqlite3.Connection | None:
        if not self.journal_path.exists():
            return None
        return open_read_only(self.journal_path, timeout=5, check_same_thread=True)

    def _look(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        head = int(row[0])
        if head != self.head_seq:
            self.head_seq = head
            self.notify(JournalChanged(head))
