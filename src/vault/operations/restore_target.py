"""What the restore pipeline (`operations.restore`) asks of a target: a directory of
files (`restore_files.FilesTarget`) or a database through its source
(`restore_source.SourceTarget`), and what a target answers."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from vault.foundation.progress import ProgressReporter
from vault.journal import events as ev
from vault.planning.restore_plan import RestorePlan
from vault.repository.snapshot import Snapshot
from vault.restore.files import RestoreStats
from vault.restore.report import RestoreReport
from vault.sources.base import SourceRestoreResult

__all__ = ["Applied", "Planned", "RestoreTarget"]


@dataclass(frozen=True)
class Planned:
    """A target's plan as the pipeline needs it: the per-item plan (None: the target has
    none, e.g. a whole-table swap), whether carrying it out changes or removes what the
    target holds, and what a confirmation shows (the plan without its items)."""

    plan: RestorePlan | None
    destructive: bool
    summary: dict[str, Any]

    @property
    def conflicted(self) -> bool:
        """A plan with conflicts (--on-conflict fail) is refused by the target before
        anything is written: nobody is asked about it."""
        return bool(self.summary.get("totals", {}).get("conflict"))


@dataclass
class Applied:
    """What a target's write did, for the report and `RestoreCompleted`."""

    items: int
    bytes: int
    skipped: int = 0
    dirs: int = 0
    problems: list[ev.FileProblem] = field(default_factory=list)
    #: warning records of the write itself ({"kind": "damage_not_recorded", ...})
    warnings: list[dict[str, Any]] = field(default_factory=list)
    files: RestoreStats | None = None
    result: SourceRestoreResult | None = None


class RestoreTarget(Protocol):
    """Where a restore writes: a directory of files, or a database through its source."""

    snapshot: Snapshot
    #: the target as journaled and confirmed ("(the source's own location)" for none)
    where: str
    #: the check's warning records ({"kind": "older_version", ...})
    warnings: list[dict[str, Any]]

    def job_fields(self) -> dict[str, Any]: ...

    def lock(self) -> AbstractContextManager[object | None]: ...

    def prepare(self) -> None: ...

    def plan(self, *, asking: bool) -> Planned | None: ...

    def safety_copy(self, planned: Planned | None, job_id: str,
                    lock: object | None) -> ev.RestoreUndoable | None: ...

    def apply(self, planned: Planned | None, reporter: ProgressReporter,
              job_id: str) -> Applied: ...

    def report(self, planned: Planned | None, applied: Applied, duration: float,
               warnings: list[dict[str, Any]]) -> tuple[RestorePlan, RestoreReport,
                                                        dict[str, dict[str, str]]]: ...

    def preview(self) -> tuple[Planned | None, Applied, RestoreReport | None]: ...

    def confirmation(self) -> Planned | None: ...
