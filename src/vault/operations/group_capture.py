"""Taking a group's consistent points together, before any member is streamed.

A group backs up each source as its own job, one after another; a capture opened only
when its job starts would put each database's point in time after the previous members
were streamed (minutes for a large one). So `GroupCaptures` opens every database or
settings source's capture at once, one thread each, and each job then streams from the
capture already open. Files have no consistent point to take: a files member's time is
when its reading begins, and a group reads its files members first, while the captures
open.

A capture that fails to open is held as its error, which fails that member's job (and
only it), journaled as any failed backup is.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vault.repository.repository import Repository
from vault.repository.snapshot import FileProblem
from vault.runtime.app import Vault
from vault.sources.base import Capture, CaptureContext, SecretSealer, Source


@dataclass
class HeldCapture:
    """A source's open capture (or the error opening it), the moment its consistent point
    was taken, and the problems the source reported through its context."""

    capture: Capture | None
    captured_at: datetime
    problems: list[FileProblem]
    error: Exception | None = None
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def close(self) -> None:
        """End the capture (its read transaction, snapshot, scratch copy); idempotent."""
        self._stack.close()


class RepositorySealer:
    """Seals settings secrets with the repository's key (see SecretSealer)."""

    _AAD = b"vault settings secret v1"

    def __init__(self, repo: Repository) -> None:
        self._cipher = repo.cipher

    def seal(self, plaintext: bytes) -> bytes:
        return self._cipher.seal(plaintext, self._AAD)

    def unseal(self, sealed: bytes) -> bytes:
        return self._cipher.open(sealed, self._AAD)


def sealer_for(repo: Repository) -> SecretSealer:
    return RepositorySealer(repo)


def capture_context(vault: Vault, repo: Repository,
                    problems: list[FileProblem]) -> CaptureContext:
    """What a source's capture is given: problems go to `problems` (the snapshot is then
    partial), scratch space in the cache dir, the repository's sealer for secrets."""
    scratch = vault.cache_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    return CaptureContext(
        warn=lambda where, message: problems.append(FileProblem(path=where, error=message)),
        scratch_dir=str(scratch), sealer=sealer_for(repo))


def open_capture(source: Source, context: CaptureContext,
                 problems: list[FileProblem]) -> HeldCapture:
    """Open `source`'s capture now. Its time is the source's own `taken_at`, else the
    moment it was asked for (every source takes its point as its capture opens)."""
    stack = ExitStack()
    asked = datetime.now(UTC)
    try:
        capture = stack.enter_context(source.capture(context))
    except Exception as exc:  # the member's job raises it, journaled there
        stack.close()
        return HeldCapture(None, asked, problems, exc)
    return HeldCapture(capture, capture.taken_at or asked, problems, _stack=stack)


@contextmanager
def held_capture(source: Source, context: CaptureContext, problems: list[FileProblem],
                 held: HeldCapture | None) -> Iterator[HeldCapture]:
    """The capture a backup job streams: `held` (opened with its group), else one opened
    now; closed when the job is done with it. A capture that failed to open raises."""
    current = held if held is not None else open_capture(source, context, problems)
    try:
        if current.error is not None:
            raise current.error
        yield current
    finally:
        current.close()


class GroupCaptures:
    """Every source's capture of a group, opened at the same moment in the background (a
    thread each), keyed as given; `get` waits for one. The files members are read while
    the captures open, so their reading begins with the databases' points.

    Nothing is opened ahead when the repository cannot be opened (a wrong passphrase):
    each member's job then fails on that, as it would alone."""

    def __init__(self, vault: Vault, sources: dict[int, Source]) -> None:
        self._futures: dict[int, Future[HeldCapture]] = {}
        self._pool: ThreadPoolExecutor | None = None
        if not sources:
            return
        try:
            repo = vault.repository()
        except Exception:  # each member's job reports it
            return
        self._pool = ThreadPoolExecutor(max_workers=len(sources),
                                        thread_name_prefix="vault-capture")
        for key, source in sources.items():
            problems: list[FileProblem] = []
            context = capture_context(vault, repo, problems)
            self._futures[key] = self._pool.submit(open_capture, source, context, problems)

    def get(self, key: int) -> HeldCapture | None:
        """The member's capture (waiting until it is open), or None: open it yourself."""
        future = self._futures.get(key)
        return future.result() if future is not None else None

    def close(self) -> None:
        """End every capture, also those whose member never ran (an interrupted group)."""
        for future in self._futures.values():
            future.result().close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
