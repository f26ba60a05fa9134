"""Reading a settings file, and replacing it so that nothing can be half-written or lost.

The new file is written beside the old one, fsynced and renamed over it (a crash leaves
either the old file or the new one), with the old file's mode and owner. The old file is
first copied to `<name>.vault-undo-<UTC time>` so a re-import can be undone with `mv`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from vault.sources.settings.errors import SettingsUnreadable

__all__ = ["read_settings_file", "replace_settings_file", "undo_path"]

NEW_FILE_MODE = 0o600  # settings hold secrets: a re-created file is private by default


def read_settings_file(path: str) -> tuple[bytes, int] | None:
    """The file's bytes and permission bits, or None when there is no such file."""
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno()).st_mode & 0o7777
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsUnreadable(exc.strerror or type(exc).__name__, path=path) from None


def undo_path(path: Path, now: datetime | None = None) -> Path:
    """`<name>.vault-undo-<UTC time>` beside `path`, not yet taken."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.vault-undo-{stamp}")
    counter = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.vault-undo-{stamp}-{counter}")
        counter += 1
    return candidate


def replace_settings_file(path: str, data: bytes, mode: int | None) -> str | None:
    """Write `data` to `path` atomically; return where the replaced file was kept (None
    when there was none). `mode` is used for a new file; an existing one keeps its own.
    A symbolic link is followed: the file it points to is replaced and the link stays."""
    target = Path(os.path.realpath(path))  # a symlinked file is replaced, not its link
    try:
        stat = target.stat()
    except FileNotFoundError:
        stat = None
    undo: str | None = None
    if stat is not None:
        kept = undo_path(target)
        shutil.copy2(target, kept)  # mode and times too
        _fsync_file(kept)
        undo = str(kept)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".vault-tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, (stat.st_mode & 0o7777) if stat else (mode or NEW_FILE_MODE))
        if stat is not None and os.geteuid() == 0:
            os.chown(temp, stat.st_uid, stat.st_gid)  # the application must still read it
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return undo


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
