"""`vault backup` of several things at once: paths, source URLs, configured sources, groups.

What to back up is planned first (`plan_targets`, no I/O beyond building source objects),
then each target is backed up as its own job. When more than one target is backed up,
they share a group id and time, so a restore can bring them back to one point in time:
every database source's consistent point is taken at the same moment, before any member
is streamed (vault.operations.group_capture), and files members are read first. A
target that fails does not stop the others: the group is then `partial`, each failure is
journaled with its reason, and `BackupGroupCompleted` lists what became of every source.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from vault.config.model import FilesSourceConfig, SourceConfig, VaultConfig
from vault.errors import OperationFailed, UsageError, VaultError
from vault.foundation.progress import ProgressReporter
from vault.journal import events as ev
from vault.operations.backup import BackupOutcome, BackupRequest, run_backup
from vault.operations.group_capture import GroupCaptures, HeldCapture
from vault.operations.source_backup import SourceBackupRequest, run_source_backup
from vault.runtime.app import Vault
from vault.runtime.jobrun import new_job_id
from vault.sources.base import EntitySelectable, Source
from vault.sources.registry import is_source_url, source_from_config, source_from_url


def display_url(url: str) -> str:
    """`url` without its password (user and host stay: they say what was backed up)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass
class BackupTarget:
    """One snapshot to take: files at `paths`, or a database/settings `source`."""

    label: str | None
    paths: list[str] = field(default_factory=list)
    files: FilesSourceConfig | None = None
    source: Source | None = None
    adhoc_url: str | None = None
    url_had_password: bool = False

    @property
    def kind(self) -> str:
        return self.source.type if self.source is not None else "files"

    @property
    def name(self) -> str:
        return self.label or " ".join(self.paths)


def select_entity(targets: list[BackupTarget], entity: str,
                  ids: tuple[str, ...]) -> list[BackupTarget]:
    """Narrow the targets to one entity (and everything below it in the hierarchy): only
    sources that declare entities can be narrowed, so exactly those must be given."""
    if any(t.source is None or not isinstance(t.source, EntitySelectable) for t in targets):
        raise UsageError("--entity applies to sources with an entity hierarchy "
                         "([[sources.entities]]); name such a source with --source")
    narrowed: list[BackupTarget] = []
    for target in targets:
        assert isinstance(target.source, EntitySelectable)
        narrowed.append(replace(target, source=target.source.select_entity(entity, ids)))
    return narrowed


def plan_targets(config: VaultConfig, arguments: list[str], source_names: list[str],
                 group: str | None) -> list[BackupTarget]:
    """What a `vault backup` invocation backs up, in order.

    Plain paths together make one files snapshot; each `scheme://` argument is a source;
    `--source` and `--group` name configured ones; with nothing given, every configured
    source is backed up."""
    targets: list[BackupTarget] = []
    paths: list[str] = []
    for argument in arguments:
        if is_source_url(argument):
            targets.append(url_target(argument))
        else:
            paths.append(argument)
    if paths:
        targets.insert(0, BackupTarget(label=None, paths=paths))
    configured: list[SourceConfig] = [config.source(name) for name in source_names]
    if group is not None:
        configured += config.group(group)
    if not arguments and not configured:
        configured = list(config.sources)
        if not configured:
            raise UsageError("nothing to back up: give paths or source URLs, or configure "
                             "[[sources]] in vault.toml")
    seen: set[str] = set()
    for entry in configured:
        if entry.name in seen:
            continue
        seen.add(entry.name)
        targets.append(target_for(entry))
    return targets


def url_target(url: str) -> BackupTarget:
    """The target for a source given as a URL (a plain path is refused here)."""
    source = source_from_url(url)
    if source is None:
        raise UsageError(f"not a source URL: {url}")
    shown = display_url(url)
    return BackupTarget(label=shown, source=source, adhoc_url=shown,
                        url_had_password=shown != url)


def target_for(entry: SourceConfig) -> BackupTarget:
    if isinstance(entry, FilesSourceConfig):
        return BackupTarget(label=entry.name, paths=[str(p) for p in entry.paths], files=entry)
    return BackupTarget(label=entry.name, source=source_from_config(entry))


@dataclass
class TargetOutcome:
    target: BackupTarget
    outcome: BackupOutcome | None
    job_id: str | None = None
    error: VaultError | None = None

    @property
    def status(self) -> Literal["completed", "partial", "failed"]:
        if self.outcome is None or self.outcome.snapshot is None:
            return "failed"
        return "partial" if self.outcome.partial else "completed"


@dataclass
class GroupOutcome:
    group_id: str | None
    results: list[TargetOutcome]

    @property
    def status(self) -> Literal["completed", "partial", "failed"]:
        statuses = {r.status for r in self.results}
        if statuses == {"completed"}:
            return "completed"
        return "failed" if statuses == {"failed"} else "partial"


def run_targets(vault: Vault, targets: list[BackupTarget], base: BackupRequest,
                reporter: ProgressReporter, *, group_name: str | None = None,
                job_ids: list[str] | None = None) -> GroupOutcome:
    """Back up each target as its own job; `base` carries the options given for files
    (excludes, tags, force). One target's failure is recorded and the rest go on; with a
    single target its error is raised as it is."""
    grouped = len(targets) > 1 or group_name is not None
    group_id = f"group-{uuid.uuid4().hex[:16]}" if grouped else None
    group_time = datetime.now(UTC) if grouped else None
    members = [MemberJob(target, base, job_ids[index] if job_ids else new_job_id("backup"))
               for index, target in enumerate(targets)]
    if grouped:
        ran = back_up_together(vault, members, reporter, group_id, group_time)
    else:  # one target, alone: its error is raised as it is
        ran = [run_target(vault, m.target, base, reporter, None, None, m.job_id)
               for m in members]
    results: list[TargetOutcome] = []
    for member, outcome in zip(members, ran, strict=True):
        if isinstance(outcome, Exception):  # journaled by the job; the others went on
            error = outcome if isinstance(outcome, VaultError) \
                else OperationFailed(detail=str(outcome))
            results.append(TargetOutcome(member.target, None, member.job_id, error))
        else:
            results.append(TargetOutcome(member.target, outcome, member.job_id))
    result = GroupOutcome(group_id, results)
    if group_id is not None:
        vault.journal.append(group_id, ev.BackupGroupCompleted(
            group_id=group_id, group=group_name, status=result.status,
            sources=[ev.GroupMember(
                label=r.target.name, source_type=r.target.kind, status=r.status,
                job_id=r.job_id,
                snapshot_id=r.outcome.snapshot.id if r.outcome and r.outcome.snapshot else None,
                error=r.error.message if r.error else None) for r in results]))
    return result


@dataclass
class MemberJob:
    """One target of a group, the options it is backed up with, and its job id."""

    target: BackupTarget
    base: BackupRequest
    job_id: str


def back_up_together(vault: Vault, members: list[MemberJob], reporter: ProgressReporter,
                     group_id: str | None, group_time: datetime | None,
                     ) -> list[BackupOutcome | Exception]:
    """Back up a group's members, each as its own job, from one moment: every source's
    capture is opened at once before any member streams, files members stream first. A
    member that fails (its error journaled by its job) fails alone; the outcomes are
    returned in the members' order. Used inline and by the worker for a queued group."""
    captures = GroupCaptures(vault, {i: m.target.source for i, m in enumerate(members)
                                     if m.target.source is not None})
    outcomes: dict[int, BackupOutcome | Exception] = {}
    try:
        for index in streaming_order([m.target for m in members]):
            member = members[index]
            try:
                outcomes[index] = run_target(vault, member.target, member.base, reporter,
                                             group_id, group_time, member.job_id,
                                             held=captures.get(index))
            except Exception as exc:  # the job journaled it; the other members go on
                outcomes[index] = exc
    finally:
        captures.close()
    return [outcomes[index] for index in range(len(members))]


def streaming_order(targets: list[BackupTarget]) -> list[int]:
    """The order a group's members are streamed in: files first (their time is when their
    reading begins, while the sources' captures open), then the sources."""
    return sorted(range(len(targets)), key=lambda i: targets[i].source is not None)


def run_target(vault: Vault, target: BackupTarget, base: BackupRequest,
               reporter: ProgressReporter, group_id: str | None, group_time: datetime | None,
               job_id: str | None, *, held: HeldCapture | None = None) -> BackupOutcome:
    """Back up one target as one job (`base` carries the files options and tags); a source
    streams from `held`, its capture opened with the rest of its group, if given."""
    if target.source is not None:
        source_request = SourceBackupRequest(
            source=target.source, label=target.name, adhoc_url=target.adhoc_url,
            tags=base.tags, group_id=group_id, group_time=group_time, threads=base.threads,
            held=held)
        return run_source_backup(vault, source_request, reporter, job_id=job_id)
    files = target.files
    request = BackupRequest(
        paths=target.paths,
        excludes=base.excludes + (files.exclude if files else []),
        includes=base.includes + (files.include if files else []),
        exclude_larger_than=base.exclude_larger_than, one_file_system=base.one_file_system,
        tags=base.tags, force=base.force, dry_run=base.dry_run, threads=base.threads,
        label=target.label, group_id=group_id, group_time=group_time)
    return run_backup(vault, request, reporter, job_id=job_id)
