"""tar and ZIP archives as snapshot items, refusing members that could escape a target.

Members are classified before anything is stored (so the preview can show what will be
refused): regular files with a safe relative path become items; directories are implied
by their files; absolute paths, `..` components, links of any kind (a symlink can point
anywhere; the classic attack is `link -> /etc` followed by `link/passwd`), devices and
FIFOs are refused, each with its reason. Nothing is ever extracted to disk: members are
streamed from the archive into the repository.
"""

from __future__ import annotations

import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO, Literal

from vault.errors import ArchiveUnreadable
from vault.sources.base import SourceItem

ArchiveKind = Literal["tar", "zip"]
#: what reading a damaged archive raises (gzip/bzip2 raise OSError or EOFError)
_READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError,
                zipfile.BadZipFile)
MemberKind = Literal["file", "dir", "symlink", "hardlink", "other"]


class HostileMember(Exception):
    """A member path that could climb out of the directory it is restored into."""


def clean_member_path(name: str) -> str:
    """The member's path relative to the archive root, or HostileMember."""
    if "\x00" in name:
        raise HostileMember("the name holds a NUL byte")
    if name.startswith("/"):
        raise HostileMember("absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise HostileMember("the path climbs out with '..'")
    if not parts:
        raise HostileMember("empty path")
    return "/".join(parts)


def link_reason(member_path: str, target: str) -> str:
    """Why a link member is refused: escaping links are named as such."""
    if target.startswith("/"):
        return f"symlink to the absolute path {target!r} (escapes the target)"
    depth = len(member_path.split("/")) - 1
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return f"symlink to {target!r} climbs out of the archive (escapes the target)"
        elif part not in ("", "."):
            depth += 1
    return f"symlink to {target!r} (links are not imported)"


@dataclass(frozen=True)
class Member:
    """A raw archive entry, whatever the archive format."""

    name: str
    kind: MemberKind
    mode: int
    mtime_ns: int
    size: int
    link_target: str = ""
    encrypted: bool = False
    handle: object = None  # the TarInfo or ZipInfo to open it by


@dataclass
class MemberPlan:
    """Which members become items (path -> member) and which are refused (name, why)."""

    accepted: dict[str, Member] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)
    dirs: int = 0

    @property
    def bytes_total(self) -> int:
        return sum(m.size for m in self.accepted.values())


def plan_members(members: list[Member]) -> MemberPlan:
    """Pure: classify every member. A later member of the same path replaces an earlier
    one (as tar extraction would); a path that is both a file and a directory is refused."""
    plan = MemberPlan()
    for member in members:
        try:
            path = clean_member_path(member.name)
        except HostileMember as exc:
            plan.refused.append((member.name, str(exc)))
            continue
        if member.kind == "dir":
            plan.dirs += 1
            continue
        if member.kind == "symlink":
            plan.refused.append((member.name, link_reason(path, member.link_target)))
            continue
        if member.kind == "hardlink":
            plan.refused.append((member.name, f"hard link to {member.link_target!r} "
                                              "(links are not imported)"))
            continue
        if member.kind == "other":
            plan.refused.append((member.name, "device, FIFO or other special file"))
            continue
        if member.encrypted:
            plan.refused.append((member.name, "encrypted member"))
            continue
        if path in plan.accepted:
            plan.refused.append((plan.accepted[path].name, "replaced by a later member "
                                                           "of the same name"))
        plan.accepted[path] = member
    parents = {"/".join(p.split("/")[:i]) for p in plan.accepted
               for i in range(1, p.count("/") + 1)}
    for path in sorted(parents & set(plan.accepted)):
        plan.refused.append((plan.accepted.pop(path).name, "is both a file and a directory"))
    return plan


# --- reading archives ---------------------------------------------------------------------


class Archive:
    """An open tar or ZIP file: its members, and a way to stream one."""

    def __init__(self, path: Path, kind: ArchiveKind) -> None:
        self.path, self.kind = path, kind
        try:
            if kind == "tar":
                # Closed by close(): the archive stays open while its items are read.
                self._tar: tarfile.TarFile | None = tarfile.open(path, "r:*")  # noqa: SIM115
                self._zip: zipfile.ZipFile | None = None
            else:
                self._tar, self._zip = None, zipfile.ZipFile(path)
        except _READ_ERRORS as exc:
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: BaseException) -> ArchiveUnreadable:
        return ArchiveUnreadable(path=str(self.path), kind=self.kind, detail=str(exc))

    def members(self) -> list[Member]:
        try:
            if self._tar is not None:
                return [_tar_member(info) for info in self._tar.getmembers()]
            assert self._zip is not None
            return [self._zip_member(info) for info in self._zip.infolist()]
        except _READ_ERRORS as exc:
            raise self._unreadable(exc) from exc

    def _zip_member(self, info: zipfile.ZipInfo) -> Member:
        unix_mode = info.external_attr >> 16
        # Archivers that are not Unix store no file type bits: a plain file then.
        regular = stat.S_IFMT(unix_mode) == 0 or stat.S_ISREG(unix_mode)
        kind: MemberKind = "file" if regular else "other"
        target = ""
        if info.is_dir():
            kind = "dir"
        elif stat.S_ISLNK(unix_mode):
            assert self._zip is not None
            kind, target = "symlink", self._zip.read(info).decode("utf-8", "replace")
        try:
            mtime = datetime(*info.date_time, tzinfo=UTC).timestamp()
        except ValueError:  # a date no calendar has (month 0): keep the file, not its time
            mtime = 0
        return Member(info.filename, kind, unix_mode & 0o7777 or 0o644, int(mtime) * 10**9,
                      info.file_size, target, bool(info.flag_bits & 1), info)

    def items(self, plan: MemberPlan) -> Iterator[SourceItem]:
        for path, member in plan.accepted.items():
            yield SourceItem(path=path, open=self._opener(member), size_hint=member.size,
                             mode=0o100000 | (member.mode & 0o777), mtime_ns=member.mtime_ns)

    def _opener(self, member: Member) -> Callable[[], AbstractContextManager[BinaryIO]]:
        @contextmanager
        def open_member() -> Iterator[BinaryIO]:
            try:
                if self._tar is not None:
                    assert isinstance(member.handle, tarfile.TarInfo)
                    stream: IO[bytes] | None = self._tar.extractfile(member.handle)
                    if stream is None:
                        raise ArchiveUnreadable(path=str(self.path), kind=self.kind,
                                                detail=f"{member.name} has no data")
                else:
                    assert self._zip is not None
                    assert isinstance(member.handle, zipfile.ZipInfo)
                    stream = self._zip.open(member.handle)
                with stream:
                    yield stream  # type: ignore[misc]  # IO[bytes] is what BinaryIO means
            except _READ_ERRORS as exc:
                raise self._unreadable(exc) from exc

        return open_member

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        if self._zip is not None:
            self._zip.close()


def _tar_member(info: tarfile.TarInfo) -> Member:
    kind: MemberKind = "file" if info.isfile() else "other"
    if info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    return Member(info.name, kind, info.mode & 0o7777, int(info.mtime) * 10**9, info.size,
                  info.linkname, False, info)
