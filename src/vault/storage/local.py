"""A repository in a local directory (or anything mounted as one: NFS, USB disk, sshfs).

Layout (every directory 0700, every file 0600, whatever the umask)::

    <root>/config
    <root>/keys/<id>
    <root>/data/<id[:2]>/<id>        256 fan-out dirs, made by create()
    <root>/index/<id>
    <root>/snapshots/<id>
    <root>/condemned/<id>            packs prune has condemned (made on first save)
    <root>/locks/<id>

A save writes ``<dir>/.tmp-<random>``, fsyncs it, renames it over the final name and
fsyncs the directory: after a crash the object is either complete or absent, and the
only debris is a temp file that ``list`` ignores and ``cleanup_temp_files`` reclaims.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from vault.errors import (
    NotEnoughSpace,
    ObjectNotFound,
    RepositoryExists,
    StorageError,
    TransientStorageError,
    UsageError,
)
from vault.foundation.failpoints import reached
from vault.foundation.units import human_bytes
from vault.storage.base import (
    CONFIG_NAME,
    KINDS,
    ObjectInfo,
    ObjectKind,
    Storage,
    object_dir,
    validate_name,
    validate_range,
)
from vault.storage.registry import register

if TYPE_CHECKING:
    from vault.config.model import RepositoryConfig

TEMP_PREFIX = ".tmp-"
DIR_MODE = 0o700
FILE_MODE = 0o600

# Out of space on the device (ENOSPC) or in the user's quota (EDQUOT): both mean "free
# some space", which is what NotEnoughSpace tells the user.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
# Errors a second attempt can plausibly cure (busy NFS server, interrupted mount).
_TRANSIENT = frozenset({errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.EINTR})

_READ_CHUNK = 8 * 1024 * 1024


class LocalStorage:
    """Storage in a directory tree; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.location = str(self.root)

    # --- layout ---------------------------------------------------------------------

    def _dir(self, kind: ObjectKind, name: str) -> Path:
        return self.root.joinpath(*object_dir(kind, name))

    def _path(self, kind: ObjectKind, name: str) -> Path:
        validate_name(kind, name, self.location)
        return self._dir(kind, name) / name

    def create(self) -> None:
        if (self.root / CONFIG_NAME).exists():
            raise RepositoryExists(repo=self.location)
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            for directory in self._layout_dirs():
                directory.mkdir(exist_ok=True)
                # mkdir's mode is filtered by the umask; chmod makes 0700 certain.
                os.chmod(directory, DIR_MODE)
        except OSError as exc:
            raise self._translate(exc, "create the layout", 0) from exc

    def _layout_dirs(self) -> Iterator[Path]:
        yield self.root
        for kind in KINDS:
            if kind == "config":
                continue
            yield self.root / kind
            if kind == "data":
                for prefix in range(256):
                    yield self.root / "data" / f"{prefix:02x}"

    # --- reading --------------------------------------------------------------------

    def exists(self, kind: ObjectKind, name: str) -> bool:
        path = self._path(kind, name)
        try:
            return stat.S_ISREG(os.stat(path).st_mode)
        except FileNotFoundError:
            return False
        except OSError as exc:  # e.g. EACCES: "don't know" must not read as "absent"
            raise self._translate(exc, f"check {kind}/{name}", 0) from exc

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        path = self._path(kind, name)
        validate_range(offset, length, self.location, f"{kind}/{name}")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ObjectNotFound(where=self.location, name=f"{kind}/{name}") from None
        except OSError as exc:
            raise self._translate(exc, f"open {kind}/{name}", 0) from exc
        try:
            size = os.fstat(fd).st_size
            want = size - offset if length is None else length
            if offset > size or offset + want > size:
                # A short read means a stale index or a truncated object; say so rather
                # than hand back fewer bytes than the caller's offsets promise.
                raise StorageError(
                    where=self.location,
                    detail=f"{kind}/{name} has {size} bytes; cannot read {want} at {offset}",
                )
            return _pread_exactly(fd, want, offset, self.location)
        except OSError as exc:
            raise self._translate(exc, f"read {kind}/{name}", 0) from exc
        finally:
            os.close(fd)

    def stat(self, kind: ObjectKind, name: str) -> ObjectInfo:
        path = self._path(kind, name)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise ObjectNotFound(where=self.location, name=f"{kind}/{name}") from None
        except OSError as exc:
            raise self._translate(exc, f"stat {kind}/{name}", 0) from exc
        return ObjectInfo(kind=kind, name=name, size=info.st_size)

    def list(self, kind: ObjectKind) -> Iterator[ObjectInfo]:
        if kind == "config":
            directories = [self.root]
        elif kind == "data":
            directories = sorted(self._subdirs(self.root / "data"))
        else:
            directories = [self.root / kind]
        for directory in directories:
            yield from self._list_dir(kind, directory)

    def _subdirs(self, directory: Path) -> Iterator[Path]:
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False) and len(entry.name) == 2:
                        yield Path(entry.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._translate(exc, "list data", 0) from exc

    def _list_dir(self, kind: ObjectKind, directory: Path) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as entries:
                found = [e for e in entries if e.is_file(follow_symlinks=False)]
        except FileNotFoundError:
            return  # an absent kind dir simply holds no objects
        except OSError as exc:
            raise self._translate(exc, f"list {kind}", 0) from exc
        for entry in found:
            if not _is_object_name(kind, entry.name):
                continue  # temp files, editor debris, anything not ours
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue  # removed by someone else since the scan
            yield ObjectInfo(kind=kind, name=entry.name, size=size)

    # --- writing --------------------------------------------------------------------

    def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
        final = self._path(kind, name)
        view = memoryview(data).cast("B")
        try:
            self._save_atomically(final, view)
        except OSError as exc:
            raise self._translate(exc, f"save {kind}/{name}", view.nbytes) from exc

    def _save_atomically(self, final: Path, view: memoryview) -> None:
        directory = final.parent
        temp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            # Opened inside the try: a Ctrl-C landing just after the file is created must
            # still find it removed.
            fd = self._open_temp(temp)
            try:
                os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is filtered by the umask
                _write_all(fd, view)
                os.fsync(fd)
            finally:
                os.close(fd)
            reached("local", "temp-written")  # a kill here leaves the temp file behind
            os.replace(temp, final)
        except BaseException:
            # Whatever went wrong (ENOSPC, KeyboardInterrupt), leave no partial file; a
            # failure to unlink must not hide the error that brought us here.
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        _fsync_dir(directory)

    def _open_temp(self, temp: Path) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            return os.open(temp, flags, FILE_MODE)
        except FileNotFoundError:
            # A fan-out dir can go missing (rsync --prune-empty-dirs, a manual tidy-up);
            # recreate it, but only inside an existing repository root.
            if not self.root.is_dir():
                raise
            temp.parent.mkdir(mode=DIR_MODE, exist_ok=True)
            os.chmod(temp.parent, DIR_MODE)
            return os.open(temp, flags, FILE_MODE)

    def remove(self, kind: ObjectKind, name: str) -> None:
        path = self._path(kind, name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ObjectNotFound(where=self.location, name=f"{kind}/{name}") from None
        except OSError as exc:
            raise self._translate(exc, f"remove {kind}/{name}", 0) from exc

    # --- housekeeping ---------------------------------------------------------------

    def free_space(self) -> int | None:
        try:
            vfs = os.statvfs(self.root)
        except OSError:
            return None
        return vfs.f_bavail * vfs.f_frsize  # f_bavail: what an unprivileged writer gets

    def volume_size(self) -> int | None:
        try:
            vfs = os.statvfs(self.root)
        except OSError:
            return None
        return vfs.f_blocks * vfs.f_frsize

    def cleanup_temp_files(self, max_age_seconds: float) -> builtins.list[Path]:
        """Remove temp files older than ``max_age_seconds``; return what was removed.

        A killed process leaves its ``.tmp-*`` behind. The age threshold protects saves
        that are still running in other processes, so pick it well above the longest save.
        """
        cutoff = time.time() - max_age_seconds
        removed: builtins.list[Path] = []
        for directory in self._layout_dirs():
            try:
                with os.scandir(directory) as entries:
                    stale = [
                        Path(e.path)
                        for e in entries
                        if e.name.startswith(TEMP_PREFIX)
                        and e.is_file(follow_symlinks=False)
                        and e.stat(follow_symlinks=False).st_mtime < cutoff
                    ]
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._translate(exc, "clean up temp files", 0) from exc
            removed.extend(path for path in stale if _unlink_quietly(path))
        return removed

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own file descriptors."""

    # --- errors ---------------------------------------------------------------------

    def _translate(self, exc: OSError, action: str, need: int) -> Exception:
        if exc.errno in _NO_SPACE:
            free = self.free_space()
            return NotEnoughSpace(
                where=self.location,
                need=human_bytes(need),
                have="unknown" if free is None else human_bytes(free),
            )
        detail = f"cannot {action}: {exc.strerror or exc}"
        if exc.errno in _TRANSIENT:
            return TransientStorageError(where=self.location, detail=detail)
        return StorageError(where=self.location, detail=detail)


def _is_object_name(kind: ObjectKind, name: str) -> bool:
    if name.startswith(TEMP_PREFIX):
        return False
    try:
        validate_name(kind, name, "")
    except StorageError:
        return False
    return True


def _write_all(fd: int, view: memoryview) -> None:
    written = 0
    while written < view.nbytes:
        written += os.write(fd, view[written:])


def _pread_exactly(fd: int, length: int, offset: int, where: str) -> bytes:
    # A regular file answers a pread in full (Linux reads up to 2 GiB at once), so the
    # common case is one call and one buffer; joining pieces held every range twice.
    first = os.pread(fd, length, offset)
    if len(first) == length:
        return first
    parts = [first]
    done = len(first)
    while done < length:
        chunk = os.pread(fd, min(length - done, _READ_CHUNK), offset + done)
        if not chunk:
            raise StorageError(where=where, detail=f"object shrank while reading at "
                                                   f"{offset + done}")
        parts.append(chunk)
        done += len(chunk)
    return b"".join(parts)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable: without it a crash can forget the new directory entry."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def open_local(url: str, settings: RepositoryConfig | None = None) -> Storage:
    """Factory for plain paths ("/srv/repo", "repo") and ``file://`` URLs."""
    if "://" not in url:
        return LocalStorage(url)
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"file:// URLs name a local path; remote host {parts.netloc!r} given")
    if not parts.path:
        raise UsageError("file:// URL without a path")
    return LocalStorage(unquote(parts.path))


register("file", open_local)
