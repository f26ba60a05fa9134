"""What goes on the queue: one `JobCommand` per job, plain data that pickles to nothing odd.

A command names the job (its id is also the Huey task id), the request's fields, and the
config file plus overrides the enqueuing CLI ran with. It never carries a passphrase or any
other secret: the worker reads the repository passphrase from its own environment or
config, exactly as an inline command would.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vault.journal import events as ev
from vault.journal.events import secret_keys
from vault.operations.backup import BackupRequest
from vault.operations.restore_checks import Confirm, refuse_unconfirmed
from vault.planning.restore_request import RestoreRequest


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackupArgs(_Frozen):
    kind: Literal["backup"] = "backup"
    paths: list[str]  # absolute: the worker may run in another directory
    excludes: list[str] = []
    includes: list[str] = []
    exclude_larger_than: int | None = None
    one_file_system: bool = False
    tags: list[str] = []
    force: bool = False
    # A configured source (by name) or an ad-hoc source URL (without password) instead
    # of paths; jobs queued together share a group.
    source: str | None = None
    source_url: str | None = None
    group_id: str | None = None
    group_time: str | None = None  # ISO 8601

    def request(self) -> BackupRequest:
        return BackupRequest(paths=self.paths, excludes=self.excludes, includes=self.includes,
                             exclude_larger_than=self.exclude_larger_than,
                             one_file_system=self.one_file_system, tags=self.tags,
                             force=self.force, label=self.source, group_id=self.group_id,
                             group_time=datetime.fromisoformat(self.group_time)
                             if self.group_time else None)

    def describe(self) -> str:
        return self.source or self.source_url or " ".join(self.paths)


class RestoreArgs(RestoreRequest):
    """A queued restore: the request (`target` absolute: the worker may run in another
    directory) and what the queue adds."""

    kind: Literal["restore"] = "restore"
    database: bool = False  # a database or settings snapshot (restored through its source)
    # --yes at enqueue time: the worker may carry out a destructive plan; without it the
    # worker refuses one (nobody is there to ask)
    yes: bool = False
    # `vault restore undo JOB` as a job: put the target of restore job `undo_of` back as
    # it was (snapshot_ref then names that restore's pre-restore safety copy, for the record)
    undo_of: str | None = None

    def request(self) -> RestoreRequest:
        return RestoreRequest(**{name: getattr(self, name)
                                 for name in RestoreRequest.model_fields})

    def confirm(self) -> Confirm | None:
        """What the worker asks before a destructive plan: nobody, so without --yes it
        refuses."""
        return None if self.yes else refuse_unconfirmed

    def options(self) -> dict[str, Any]:
        if self.undo_of is not None:
            return {"undo_of": self.undo_of}
        return {"mode": self.mode.value if self.mode else None,
                "on_conflict": self.on_conflict, "trust_mtime": self.trust_mtime,
                "database": self.database, "only": self.only,
                "query": self.query is not None, "remap_ids": self.remap_ids,
                "yes": self.yes}

    def describe(self) -> str:
        if self.undo_of is not None:
            return f"undo of {self.undo_of}"
        return f"{self.snapshot_ref} -> {self.target or '(its own location)'}"


class VerifyArgs(_Frozen):
    kind: Literal["verify"] = "verify"
    read_data: bool = False
    subset: str | None = None
    schedule: str | None = None  # the schedule that queued it (its notices name it)

    def describe(self) -> str:
        return "read data" + (f" ({self.subset})" if self.subset else "") \
            if self.read_data or self.subset else "structure"


class PruneArgs(_Frozen):
    """`vault prune --queue`: garbage collection run by the worker (never a dry run: a
    plan is shown inline, by `vault prune --dry-run`)."""

    kind: Literal["prune"] = "prune"
    max_unused: float = 0.05  # a share, 0..1: repack a pack when more of it is unused

    def describe(self) -> str:
        return f"unused data (repack above {self.max_unused:.0%} unused)"


JobArgs = Annotated[BackupArgs | RestoreArgs | VerifyArgs | PruneArgs,
                    Field(discriminator="kind")]


class JobCommand(_Frozen):
    """One queued job. `attempt` counts from 1; a retry is the same command, attempt + 1."""

    job_id: str
    args: JobArgs
    repository: str
    config_path: str | None = None
    overrides: dict[str, Any] = {}
    attempt: int = 1

    @model_validator(mode="after")
    def _no_secrets(self) -> JobCommand:
        bad = secret_keys(self.model_dump(mode="json"))
        if bad:
            raise ValueError(f"a job command must not carry secrets (keys {bad})")
        return self

    @property
    def kind(self) -> Literal["backup", "restore", "verify", "prune"]:
        return self.args.kind

    def summary(self) -> str:
        return f"{self.kind} {self.args.describe()}"

    def retry(self) -> JobCommand:
        return self.model_copy(update={"attempt": self.attempt + 1})

    def requested_event(self) -> ev.Event:
        """The `<Kind>Requested` event, shaped as the inline operation journals it."""
        a = self.args
        if isinstance(a, BackupArgs):
            return ev.BackupRequested(job_id=self.job_id, repository=self.repository,
                                      paths=a.paths or [a.describe()], tags=a.tags,
                                      options=a.request().options(),
                                      source=a.source or a.source_url, group_id=a.group_id)
        if isinstance(a, RestoreArgs):
            return ev.RestoreRequested(job_id=self.job_id, repository=self.repository,
                                       snapshot_ref=a.snapshot_ref,
                                       target=a.target or "(the source's own location)",
                                       paths=a.paths or a.only, include=a.includes,
                                       exclude=a.excludes, options=a.options())
        if isinstance(a, PruneArgs):
            return ev.PruneRequested(job_id=self.job_id, repository=self.repository,
                                     max_unused=a.max_unused, dry_run=False)
        return ev.VerifyRequested(job_id=self.job_id, repository=self.repository,
                                  read_data=a.read_data, subset=a.subset)
