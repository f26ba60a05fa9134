"""Events kept aside while the journal cannot be written, appended once it can.

A restore is what people run when a disk is full; a full (or read-only) state directory
must not stop it, nor lose the record of what it did. So when an append fails for want
of space or permission, the `Journal` writes the events, fully serialised, as JSON lines
into a spool file on *another* file system, and the next `Journal` opened for writing on
this host appends them (original `recorded_at` kept, hash chain extended as for any
append) followed by one `JournalSpoolReplayed` event. docs/journal.md#the-spool.

Where: the first usable of `$XDG_RUNTIME_DIR/vault`, `/dev/shm/vault-<uid>` and
`<tmp>/vault-<uid>` (memory-backed on most systems, so writable when the disk is full);
each must be a directory owned by this user with no group or other access, else it is
skipped. The risk, documented: a reboot before the next command empties those, and the
spooled events are then lost (the command said so when it spooled them).

One spool file per process and journal: `<journal key>-<pid>-<random>.jsonl`. A file is
replayed only once its process has ended (it may still be writing), and is first renamed
(`.replaying-<pid>`) so two replayers never share one; a replay interrupted after its
commit is recognised by its `spool_id` and not appended twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vault.errors import JournalError
from vault.foundation.processes import process_alive
from vault.journal.events import JournalSpoolReplayed

if TYPE_CHECKING:
    from vault.journal.store import Journal

_SUFFIX = ".jsonl"
_REPLAYING = ".replaying-"


@dataclass(frozen=True)
class SpooledRow:
    """One event as it was to be appended."""

    stream_id: str
    type: str
    schema_version: int
    payload: Any
    recorded_at: str
    #: the journal error that sent it here
    reason: str = ""


def default_spool_dirs() -> list[Path]:
    uid = os.getuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    dirs = [Path(runtime) / "vault"] if runtime and os.path.isabs(runtime) else []
    return [*dirs, Path("/dev/shm") / f"vault-{uid}",
            Path(tempfile.gettempdir()) / f"vault-{uid}"]


def _private_dir(path: Path) -> bool:
    """Make `path` (0700) or accept it only if it is ours, a real directory, private."""
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        path.mkdir(mode=0o700)
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & 0o077)


class JournalSpool:
    """The spool of one journal file, shared by every `Journal` of this process."""

    def __init__(self, journal_path: Path, directories: Sequence[Path] | None = None) -> None:
        self.journal_path = Path(journal_path)
        self.directories = list(directories or default_spool_dirs())
        resolved = os.path.abspath(self.journal_path)
        self.key = "journal-" + hashlib.sha256(resolved.encode()).hexdigest()[:16]
        #: the journal error that made this process spool; once set, every append of
        #: this process goes to the spool too, so the journal keeps the events' order
        self.reason: str | None = None
        self.count = 0
        self.file: Path | None = None
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.reason is not None

    def keep(self, rows: Sequence[SpooledRow], reason: str) -> Path:
        """Write `rows` (fsynced) to this process's spool file; JournalError if no spool
        directory is usable, so the caller fails as loudly as without a spool."""
        with self._lock:
            self.reason = self.reason or reason
            path = self.file or self._new_file()
            lines = b"".join(json.dumps(row.__dict__, sort_keys=True).encode() + b"\n"
                             for row in rows)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                             0o600)
                try:
                    os.write(fd, lines)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise JournalError(path=str(self.journal_path),
                                   detail=f"{reason}; and the spool {path} failed: {exc}"
                                   ) from exc
            self.file = path
            self.count += len(rows)
            return path

    def _new_file(self) -> Path:
        name = f"{self.key}-{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
        for directory in self.directories:
            if _private_dir(directory):
                return directory / name
        raise JournalError(path=str(self.journal_path),
                           detail=f"{self.reason}; and no spool directory is usable "
                                  f"({', '.join(map(str, self.directories))})")

    # --- replaying ------------------------------------------------------------------------

    def claimable(self) -> Iterator[Path]:
        """Spool files of this journal whose writer (or interrupted replayer) has ended."""
        for directory in self.directories:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                if name.startswith(self.key + "-") and _finished(name):
                    yield directory / name

    def claim(self, path: Path) -> Path | None:
        """Rename `path` for this replayer; None when another one took it first."""
        base = path.name.split(_REPLAYING)[0]
        claimed = path.with_name(f"{base}{_REPLAYING}{os.getpid()}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    @staticmethod
    def spool_id(path: Path) -> str:
        return path.name.split(_REPLAYING)[0].removesuffix(_SUFFIX)

    @staticmethod
    def read(path: Path) -> list[SpooledRow]:
        """The rows of a spool file; a torn last line (killed mid-write) is left out."""
        rows: list[SpooledRow] = []
        for line in path.read_bytes().splitlines():
            try:
                rows.append(SpooledRow(**json.loads(line)))
            except (ValueError, TypeError):
                continue
        return rows


def replay_spool(journal: Journal, spool: JournalSpool) -> int:
    """Append the events of every finished spool file of this journal; returns how many.

    A file that cannot be appended now (the journal failed again) is left for the next
    command, renamed back; one whose `spool_id` is already journaled was appended by a
    replayer that died before removing it, and is only removed."""
    appended = 0
    for path in list(spool.claimable()):
        claimed = spool.claim(path)
        if claimed is None:
            continue
        spool_id = spool.spool_id(claimed)
        rows = spool.read(claimed)
        if rows and not _already_replayed(journal, spool_id):
            try:
                journal.append_spooled(rows, JournalSpoolReplayed(
                    spool_id=spool_id, events=len(rows), first_recorded_at=rows[0].recorded_at,
                    reason=rows[0].reason))
            except JournalError:
                with contextlib.suppress(OSError):
                    os.rename(claimed, claimed.with_name(spool_id + _SUFFIX))
                return appended
            appended += len(rows)
        with contextlib.suppress(OSError):
            os.unlink(claimed)
    return appended


def _already_replayed(journal: Journal, spool_id: str) -> bool:
    return any(isinstance(r.event, JournalSpoolReplayed) and r.event.spool_id == spool_id
               for r in journal.iter_events(types=["JournalSpoolReplayed"]))


def _finished(name: str) -> bool:
    """Whether the process named in a spool file's name is gone (so it may be replayed)."""
    base, _, replayer = name.partition(_REPLAYING)
    if replayer:
        return replayer.isdigit() and not process_alive(int(replayer))
    if not base.endswith(_SUFFIX):
        return False
    parts = base.removesuffix(_SUFFIX).split("-")
    return len(parts) == 4 and parts[2].isdigit() and not process_alive(int(parts[2]))
