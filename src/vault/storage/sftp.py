"""A repository on an SSH server, over SFTP, through asyncssh behind a synchronous facade.

URL: ``sftp://user@host:port/absolute/path`` (port 22 by default). The host key must be in
``known_hosts`` (``[repository.sftp] known_hosts``, default ``~/.ssh/known_hosts``): an
unknown or changed key is refused with a clear error, never accepted silently. Login is by
key (``identity_file``, else the ssh agent and ``~/.ssh/id_*``) or a password given as a
secret reference.

The layout and the atomic save are the local backend's: write ``.tmp-<random>`` (mode
0600), fsync it (``fsync@openssh.com``), rename it over the final name
(``posix-rename@openssh.com``, which replaces atomically). asyncssh pipelines reads and
writes (many requests in flight), which is what makes SFTP fast on a long link; its
asyncio loop runs in one daemon thread per storage, and the repository's worker threads
hand it coroutines (``_call``) and wait for their answers.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import secrets
import threading
import time
import warnings
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from vault.errors import (
    NotEnoughSpace,
    ObjectNotFound,
    RepositoryExists,
    StorageError,
    TransientStorageError,
    VaultError,
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
    validate_kind,
    validate_name,
    validate_range,
)
from vault.storage.local import DIR_MODE, FILE_MODE, TEMP_PREFIX
from vault.storage.registry import register
from vault.storage.sftp_settings import SftpSettings, from_restic_form, settings_from

if TYPE_CHECKING:
    from vault.config.model import RepositoryConfig

T = TypeVar("T")
_CALL_TIMEOUT = 600.0  # one SFTP call (a 128 MiB pack on a slow link included)


def _asyncssh() -> Any:
    # asyncssh imports DSA support that cryptography deprecates; the warning would land
    # on every command's stderr, and vault never uses DSA.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import asyncssh
    return asyncssh


class SftpStorage:
    """Storage in a directory on an SSH server; see the module docstring."""

    def __init__(self, settings: SftpSettings) -> None:
        self._ssh = _asyncssh()
        self.settings = settings
        self.root = settings.root
        self.location = f"sftp://{settings.user}@{settings.host}:{settings.port}{settings.root}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="vault-sftp")
        self._thread.start()
        self._connection: Any = None
        self._sftp: Any = None
        self._connect_lock = asyncio.Lock()

    # --- the facade: run a coroutine on the loop thread, translate its errors --------

    def _call(self, coroutine: Coroutine[Any, Any, T], action: str, need: int = 0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=_CALL_TIMEOUT)
        except VaultError:
            raise
        except Exception as exc:
            raise self._translate(exc, action, need) from exc

    async def _client(self) -> Any:
        async with self._connect_lock:
            if self._sftp is None:
                s = self.settings
                options: dict[str, Any] = {
                    "username": s.user, "known_hosts": str(s.known_hosts),
                    "connect_timeout": 30, "keepalive_interval": 30,
                }
                if s.identity_file is not None:
                    options["client_keys"] = [str(s.identity_file)]
                if s.key_passphrase is not None:
                    options["passphrase"] = str(s.key_passphrase)
                if s.password is not None:
                    options["password"] = str(s.password)
                self._connection = await self._ssh.connect(s.host, s.port, **options)
                self._sftp = await self._connection.start_sftp_client()
            return self._sftp

    # --- layout ---------------------------------------------------------------------

    def _dir(self, kind: ObjectKind, name: str) -> PurePosixPath:
        return self.root.joinpath(*object_dir(kind, name))

    def _path(self, kind: ObjectKind, name: str) -> str:
        validate_name(kind, name, self.location)
        return str(self._dir(kind, name) / name)

    def create(self) -> None:
        self._call(self._create(), "create the layout")

    async def _create(self) -> None:
        sftp = await self._client()
        if await sftp.exists(str(self.root / CONFIG_NAME)):
            raise RepositoryExists(repo=self.location)
        await sftp.makedirs(str(self.root.parent), exist_ok=True)
        dirs = [self.root] + [self.root / k for k in KINDS if k != "config"]
        dirs += [self.root / "data" / f"{n:02x}" for n in range(256)]
        for directory in dirs[:len(KINDS)]:
            await self._mkdir_private(sftp, directory)
        await asyncio.gather(*(self._mkdir_private(sftp, d) for d in dirs[len(KINDS):]))

    async def _mkdir_private(self, sftp: Any, directory: PurePosixPath) -> None:
        if not await sftp.isdir(str(directory)):
            await sftp.mkdir(str(directory))
        # mkdir's mode is filtered by the server's umask; chmod makes 0700 certain.
        await sftp.chmod(str(directory), DIR_MODE)

    # --- reading --------------------------------------------------------------------

    def exists(self, kind: ObjectKind, name: str) -> bool:
        return self._call(self._exists(self._path(kind, name)), f"check {kind}/{name}")

    async def _exists(self, path: str) -> bool:
        return bool(await (await self._client()).isfile(path))

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        path = self._path(kind, name)
        validate_range(offset, length, self.location, f"{kind}/{name}")
        return self._call(self._load(path, f"{kind}/{name}", offset, length),
                          f"read {kind}/{name}")

    async def _load(self, path: str, what: str, offset: int, length: int | None) -> bytes:
        sftp = await self._client()
        async with sftp.open(path, "rb") as handle:
            size = (await handle.stat()).size or 0
            want = size - offset if length is None else length
            if offset > size or offset + want > size:
                raise StorageError(where=self.location,
                                   detail=f"{what} has {size} bytes; cannot read {want} at "
                                          f"{offset}")
            data = await handle.read(want, offset) if want else b""
        if len(data) != want:
            raise StorageError(where=self.location, detail=f"{what} shrank while reading")
        return bytes(data)

    def stat(self, kind: ObjectKind, name: str) -> ObjectInfo:
        path = self._path(kind, name)
        attrs = self._call(self._stat(path), f"stat {kind}/{name}")
        return ObjectInfo(kind=kind, name=name, size=attrs.size or 0)

    async def _stat(self, path: str) -> Any:
        return await (await self._client()).stat(path)

    def list(self, kind: ObjectKind) -> Iterator[ObjectInfo]:
        validate_kind(kind, self.location)
        found = self._call(self._list(kind), f"list {kind}")
        yield from (ObjectInfo(kind=kind, name=n, size=size) for n, size in found)

    async def _list(self, kind: ObjectKind) -> builtins.list[tuple[str, int]]:
        sftp = await self._client()
        if kind == "config":
            directories = [self.root]
        elif kind == "data":
            names = await self._entries(sftp, self.root / "data")
            directories = [self.root / "data" / e.filename for e in names
                           if len(e.filename) == 2 and e.attrs.type == 2]
        else:
            directories = [self.root / kind]
        listed = await asyncio.gather(*(self._entries(sftp, d) for d in directories))
        return [(e.filename, e.attrs.size or 0) for entries in listed for e in entries
                if e.attrs.type == 1 and _is_object_name(kind, e.filename)]

    async def _entries(self, sftp: Any, directory: PurePosixPath) -> builtins.list[Any]:
        try:
            return [entry async for entry in sftp.scandir(str(directory))]
        except self._ssh.SFTPNoSuchFile:
            return []  # an absent kind dir simply holds no objects

    # --- writing --------------------------------------------------------------------

    def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
        path = self._path(kind, name)
        payload = bytes(data)
        self._call(self._save_bytes(path, payload), f"save {kind}/{name}", len(payload))

    async def _save_bytes(self, final: str, payload: bytes) -> None:
        sftp = await self._client()
        directory = str(PurePosixPath(final).parent)
        temp = f"{directory}/{TEMP_PREFIX}{secrets.token_hex(8)}"
        attrs = self._ssh.SFTPAttrs(permissions=FILE_MODE)
        try:
            if not await sftp.isdir(directory) and await sftp.isdir(str(self.root)):
                await self._mkdir_private(sftp, PurePosixPath(directory))
            async with sftp.open(temp, "wb", attrs) as handle:
                await handle.chmod(FILE_MODE)  # the open's mode is filtered by the umask
                await handle.write(payload, 0)
                await handle.fsync()
            reached("sftp", "temp-written")  # where a kill leaves debris
            await sftp.posix_rename(temp, final)
        except BaseException:
            # The temp may not exist; the original error is what matters.
            with contextlib.suppress(Exception):
                await sftp.remove(temp)
            raise

    def remove(self, kind: ObjectKind, name: str) -> None:
        path = self._path(kind, name)
        self._call(self._remove(path), f"remove {kind}/{name}")

    async def _remove(self, path: str) -> None:
        await (await self._client()).remove(path)

    # --- housekeeping ---------------------------------------------------------------

    def cleanup_temp_files(self, max_age_seconds: float) -> builtins.list[str]:
        """Remove the ``.tmp-*`` files of killed saves whose time on the server is older
        than ``max_age_seconds``; return their paths. As for the local backend, the age
        protects saves still running in other processes (the lease is long enough to
        cover a clock difference between this client and the server)."""
        cutoff = time.time() - max_age_seconds
        return self._call(self._cleanup_temp_files(cutoff), "clean up temp files")

    async def _cleanup_temp_files(self, cutoff: float) -> builtins.list[str]:
        sftp = await self._client()
        directories = [self.root] + [self.root / k for k in KINDS if k != "config"]
        fan_out = await self._entries(sftp, self.root / "data")
        directories += [self.root / "data" / e.filename for e in fan_out
                        if len(e.filename) == 2 and e.attrs.type == 2]
        listed = await asyncio.gather(*(self._entries(sftp, d) for d in directories))
        stale = [str(directory / e.filename)
                 for directory, entries in zip(directories, listed, strict=True)
                 for e in entries
                 if e.filename.startswith(TEMP_PREFIX) and e.attrs.type == 1
                 and e.attrs.mtime is not None and e.attrs.mtime < cutoff]
        removed = await asyncio.gather(*(self._remove_if_there(sftp, p) for p in stale))
        return [path for path, gone in zip(stale, removed, strict=True) if gone]

    async def _remove_if_there(self, sftp: Any, path: str) -> bool:
        try:
            await sftp.remove(path)
        except self._ssh.SFTPNoSuchFile:
            return False  # another cleaner, or the save's own rename, got there first
        return True

    def free_space(self) -> int | None:
        vfs = self._statvfs()
        return None if vfs is None else int(vfs.bavail * vfs.frsize)

    def volume_size(self) -> int | None:
        vfs = self._statvfs()
        return None if vfs is None else int(vfs.blocks * vfs.frsize)

    def _statvfs(self) -> Any:
        async def ask() -> Any:
            return await (await self._client()).statvfs(str(self.root))

        try:
            return self._call(ask(), "ask for free space")
        except StorageError:
            return None  # a server without statvfs@openssh.com cannot tell

    def close(self) -> None:
        async def shut() -> None:
            if self._connection is not None:
                self._connection.close()
                await self._connection.wait_closed()
            self._connection = self._sftp = None

        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    # --- errors ---------------------------------------------------------------------

    def _translate(self, exc: BaseException, action: str, need: int) -> Exception:
        ssh = self._ssh
        if isinstance(exc, (ssh.SFTPNoSuchFile, ssh.SFTPNoSuchPath)):
            return ObjectNotFound(where=self.location, name=action.split(" ", 1)[-1])
        if isinstance(exc, ssh.HostKeyNotVerifiable):
            return StorageError(
                where=self.location,
                detail=f"the host key of {self.settings.host} is not in "
                       f"{self.settings.known_hosts} (or differs from it): check its "
                       "fingerprint, then add it (ssh-keyscan, or log in once with ssh)")
        if isinstance(exc, ssh.PermissionDenied):
            return StorageError(where=self.location,
                                detail=f"cannot {action}: login as {self.settings.user} "
                                       "refused (key, agent or password)")
        if (isinstance(exc, ssh.SFTPError) and need and not isinstance(
                exc, (ssh.SFTPConnectionLost, ssh.SFTPNoConnection))
                and self._out_of_space(need)):
            return NotEnoughSpace(where=self.location, need=human_bytes(need),
                                  have=human_bytes(self.free_space() or 0))
        detail = f"cannot {action}: {getattr(exc, 'reason', '') or exc or type(exc).__name__}"
        if isinstance(exc, (OSError, ssh.DisconnectError, ssh.ConnectionLost,
                            ssh.SFTPConnectionLost, ssh.SFTPNoConnection,
                            ssh.ChannelOpenError, asyncio.TimeoutError, TimeoutError)):
            self._forget_connection()
            return TransientStorageError(where=self.location, detail=detail)
        return StorageError(where=self.location, detail=detail)

    def _out_of_space(self, need: int) -> bool:
        # SFTP v3 reports ENOSPC as a bare "Failure"; the free space tells what it was.
        free = self.free_space()
        return free is not None and free < need + 64 * 1024

    def _forget_connection(self) -> None:
        """After a lost connection, the next call logs in again."""
        self._sftp = None
        connection, self._connection = self._connection, None
        if connection is not None:
            self._loop.call_soon_threadsafe(connection.abort)


def _is_object_name(kind: ObjectKind, name: str) -> bool:
    if name.startswith(TEMP_PREFIX):
        return False
    try:
        validate_name(kind, name, "")
    except StorageError:
        return False
    return True


def open_sftp(url: str, settings: RepositoryConfig | None = None) -> Storage:
    """Factory for ``sftp://user@host:port/path``, wrapped in ``RetryingStorage``: an SSH
    connection that drops (a server restart, a NAT timeout) is a transient error, and the
    next attempt logs in again."""
    from vault.storage.retry import RetryingStorage

    return RetryingStorage(SftpStorage(settings_from(url, settings.sftp if settings else None)))


register("sftp", open_sftp)

__all__ = ["SftpSettings", "SftpStorage", "from_restic_form", "open_sftp", "settings_from"]
