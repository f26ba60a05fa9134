"""The facts vault records: one pydantic model per event type, named in the past tense.

The type name stored in the journal is the class name, and its shape is frozen once
shipped. To change a type, bump its `schema_version` and register an upcaster that turns a
stored payload of the old version into the next one; events are upcast on read, so the
rest of vault only ever sees the newest shape:

    class BackupStarted(Event):
        schema_version: ClassVar[int] = 2
        ...

    @register_upcaster("BackupStarted", from_version=1)
    def upcast_v1_v2(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "new_field": None}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from vault.errors import UnknownEventType
from vault.foundation.actor import Actor

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

EVENT_TYPES: dict[str, type[Event]] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}

# Substrings that mark a key as secret. Defence in depth: no secret should ever reach an
# event, and a journal is readable by whoever can read the state directory.
SECRET_KEY_MARKERS = (
    "password",
    "passphrase",
    "secret",
    "token",
    "key_material",
    "api_key",
    "apikey",
    "private_key",
)


def canonical_json(value: Any) -> str:
    """The one JSON spelling of `value` that the hash chain and the projections use."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def utf8_text(value: Any) -> Any:
    """`value` with every string made valid UTF-8.

    File names need not be UTF-8: Python carries their undecodable bytes as lone
    surrogates, which no UTF-8 text (the journal, its hashes) can hold. In events they are
    shown as `\\xNN` escapes; the snapshot itself keeps the exact name.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, dict):
        return {k: utf8_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [utf8_text(v) for v in value]
    if isinstance(value, BaseModel):
        return utf8_text(value.model_dump())
    return value


def secret_keys(value: Any, where: str = "") -> list[str]:
    """Dotted paths of every dict key in `value` (recursively) that looks like a secret."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if any(marker in str(key).lower() for marker in SECRET_KEY_MARKERS):
                found.append(path)
            found.extend(secret_keys(item, path))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(secret_keys(item, f"{where}[{index}]"))
    return found


class Event(BaseModel):
    """Base of every journal event. Subclasses register themselves under their class name."""

    # Spelled out (not a shared constant) so the pydantic mypy plugin sees extra/frozen.
    # allow_inf_nan=False: JSON has no infinity, and pydantic would store it as null, which
    # the field then refuses on read. hide_input_in_errors: a refused secret must not
    # reappear in the error's text.
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )

    schema_version: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # pydantic's hook (rather than __init_subclass__) runs once the fields are built.
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__name__
        if name in EVENT_TYPES:
            raise TypeError(f"event type {name} is defined twice")
        EVENT_TYPES[name] = cls

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    @model_validator(mode="before")
    @classmethod
    def _utf8_text(cls, data: Any) -> Any:
        return utf8_text(data)

    @model_validator(mode="after")
    def _refuse_secrets(self) -> Event:
        bad = secret_keys(self.model_dump(mode="json"))
        if bad:
            raise ValueError(
                f"{type(self).__name__} would record secret-looking key(s) {bad}: "
                "secrets never belong in journal events"
            )
        return self


def register_upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register `fn` to turn a `type_name` payload of `from_version` into `from_version + 1`."""

    def register(fn: Upcaster) -> Upcaster:
        key = (type_name, from_version)
        if key in _UPCASTERS:
            raise ValueError(f"an upcaster for {type_name} v{from_version} already exists")
        _UPCASTERS[key] = fn
        return fn

    return register


def missing_upcasters() -> list[str]:
    """Every `Type vN` that has no upcaster to vN+1; a test keeps this empty."""
    return [
        f"{name} v{version}"
        for name, cls in EVENT_TYPES.items()
        for version in range(1, cls.schema_version)
        if (name, version) not in _UPCASTERS
    ]


def parse_event(type_name: str, schema_version: int, payload: Payload) -> Event:
    """Build the current model of a stored event, upcasting old payloads first."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None or schema_version > cls.schema_version:
        # A newer vault wrote it; guessing at its meaning would be worse than stopping.
        raise UnknownEventType(type=type_name, schema_version=schema_version)
    for version in range(schema_version, cls.schema_version):
        upcast = _UPCASTERS.get((type_name, version))
        if upcast is None:
            raise UnknownEventType(type=type_name, schema_version=version)
        payload = upcast(payload)
    return cls.model_validate(payload)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its place in the journal plus the parsed, upcast model.

    `payload` and `schema_version` are what the row holds (and what the hash covers);
    `event` is the current shape of the same fact.
    """

    seq: int
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    payload: Payload
    event: Event
    recorded_at: datetime
    actor: Actor
    prev_hash: str
    hash: str


# --- shared shapes ----------------------------------------------------------------------


class FileProblem(BaseModel):
    """A file that could not be read or written; the job went on without it."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )

    path: str
    error: str


class Progress(BaseModel):
    """Fields every *Progressed event shares; flushed about once a second, never per chunk."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )

    phase: str
    bytes_done: int
    bytes_total: int | None
    items_done: int
    items_total: int | None
    rate_bps: float
    eta_seconds: float | None
    current: str | None = None


# --- repositories and keys --------------------------------------------------------------


class RepositoryInitialized(Event):
    repo_id: str
    repository: str
    format_version: int
    key_id: str


class KeyAdded(Event):
    repo_id: str
    key_id: str
    label: str | None


class KeyRemoved(Event):
    repo_id: str
    key_id: str


class KeyChanged(Event):
    repo_id: str
    old_key_id: str
    new_key_id: str


class StaleLockRemoved(Event):
    repo_id: str
    lock_id: str
    holder: str


class LockSkipped(Event):
    """A read-only operation ran without a repository lock: the lock object could not be
    written (the repository is full or read-only) and no exclusive lock was held."""

    repo_id: str
    operation: str
    reason: str


class JournalSpoolReplayed(Event):
    """Events kept in a spool file while the journal could not be written were appended.

    They precede this event; `spool_id` names the spool file (a replay is never repeated),
    `reason` is the journal error that made them spooled."""

    spool_id: str
    events: int
    first_recorded_at: str
    reason: str


class StorageLow(Event):
    """The repository's stored size crossed `warn_percent` of its quota (once per
    crossing; StorageRecovered ends it)."""

    repo_id: str
    repository: str
    used_bytes: int
    quota_bytes: int
    percent: float
    warn_percent: float


class StorageRecovered(Event):
    """The stored size dropped below the warning threshold again (after forget/prune, or
    a larger quota)."""

    repo_id: str
    repository: str
    used_bytes: int
    quota_bytes: int
    percent: float
    warn_percent: float


# --- backup jobs ------------------------------------------------------------------------


class BackupRequested(Event):
    job_id: str
    repository: str
    paths: list[str]
    tags: list[str]
    options: dict[str, Any]
    # What is backed up: "files" (paths) or a source's type and name; sources backed up
    # together share a group id.
    source_type: str = "files"
    source: str | None = None
    group_id: str | None = None


class BackupStarted(Event):
    job_id: str
    repo_id: str
    parent: str | None


class BackupProgressed(Event, Progress):
    job_id: str


class BackupCompleted(Event):
    job_id: str
    repo_id: str
    snapshot_id: str
    status: Literal["completed", "partial"]
    backup_type: Literal["full", "incremental"]
    parent: str | None
    paths: list[str]
    tags: list[str]
    host: str
    snapshot_time: str
    files_new: int
    files_changed: int
    files_unmodified: int
    dirs: int
    bytes_raw: int
    bytes_new: int
    bytes_stored: int
    duration_seconds: float
    errors: list[FileProblem]
    source_type: str = "files"
    source: str | None = None
    group_id: str | None = None


class BackupFailed(Event):
    job_id: str
    error_kind: str
    message: str


class GroupMember(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    source_type: str
    status: Literal["completed", "partial", "failed"]
    job_id: str | None
    snapshot_id: str | None
    error: str | None


class BackupGroupCompleted(Event):
    """Several sources backed up together: what became of each (one failing makes the
    group partial; the others' snapshots stand)."""

    group_id: str
    group: str | None
    status: Literal["completed", "partial", "failed"]
    sources: list[GroupMember]


# --- restore jobs -----------------------------------------------------------------------


class RestoreRequested(Event):
    job_id: str
    repository: str
    snapshot_ref: str
    target: str
    paths: list[str]
    include: list[str]
    exclude: list[str]
    options: dict[str, Any]


class RestoreStarted(Event):
    job_id: str
    snapshot_id: str


class RestoreProgressed(Event, Progress):
    job_id: str


class RestoreCompleted(Event):
    job_id: str
    snapshot_id: str
    target: str
    files_restored: int
    files_skipped: int
    dirs: int
    bytes_written: int
    duration_seconds: float
    errors: list[FileProblem]


class RestoreFailed(Event):
    job_id: str
    error_kind: str
    message: str


# --- verify jobs ------------------------------------------------------------------------


class VerifyRequested(Event):
    job_id: str
    repository: str
    read_data: bool
    subset: str | None


class VerifyStarted(Event):
    job_id: str
    repo_id: str


class VerifyProgressed(Event, Progress):
    job_id: str


class VerifyCompleted(Event):
    job_id: str
    repo_id: str
    ok: bool
    snapshots_checked: int
    packs_checked: int
    blobs_checked: int
    bytes_read: int
    problems: list[str]
    unreferenced_packs: int
    duration_seconds: float


class VerifyFailed(Event):
    job_id: str
    error_kind: str
    message: str


# --- the job queue (`vault backup --queue`, `vault worker`) ----------------------------

JobKind = Literal["backup", "restore", "verify", "prune"]


class JobQueued(Event):
    """A job was put on the worker queue: its first submission, or a retry.

    `command` is the queued command itself (request fields, config file, overrides; never a
    secret), so a retry can queue it again from the journal alone.
    """

    job_id: str
    kind: JobKind
    attempt: int
    summary: str
    delay_seconds: float
    command: dict[str, Any]


class JobClaimed(Event):
    """A worker took the job off the queue and runs it now.

    `host`, `pid` and `pid_started` (the process start time in clock ticks after boot, on
    Linux) let the next worker on this host tell a dead worker from a live one, even when
    the pid has been reused.
    """

    job_id: str
    kind: JobKind
    attempt: int
    host: str
    pid: int
    pid_started: int | None


class JobInterrupted(Event):
    """The worker running the job died (e.g. SIGKILL); `will_retry` says if it is queued again."""

    job_id: str
    kind: JobKind
    attempt: int
    reason: str
    will_retry: bool


class JobCancelled(Event):
    """A queued job was cancelled before any worker took it."""

    job_id: str
    kind: JobKind


class JobRejected(Event):
    """A worker dropped a queue message that is not a job vault wrote (a pickle, other
    JSON, a command that does not validate), without running any of it. Stream `queue`.

    `found_in` is where Huey read it (`queue`, `schedule` or `revocation`); the message's
    content is never recorded, only its size and SHA-256, to match it against a copy."""

    queue: str
    found_in: Literal["queue", "schedule", "revocation"]
    reason: str
    size_bytes: int
    sha256: str


# --- snapshots --------------------------------------------------------------------------


class SnapshotCorrupted(Event):
    job_id: str
    repo_id: str
    snapshot_id: str
    reason: str
    paths: list[str]


class SnapshotForgotten(Event):
    job_id: str | None
    repo_id: str
    snapshot_id: str
    reason: str


# --- repair (`vault repair index|packs|snapshots`, docs/repair.md) ------------------------

RepairTarget = Literal["index", "packs", "snapshots"]


class LostData(BaseModel):
    """A path of a snapshot whose data a repair could not get back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_id: str
    path: str


class RepairStarted(Event):
    job_id: str
    repo_id: str
    target: RepairTarget
    dry_run: bool


class RepairCompleted(Event):
    """What a repair did (`changes`: counts by name, e.g. packs_deleted, blobs_salvaged)
    and what is lost for good (`lost`, at most 1000 paths; `lost_count` counts them all)."""

    job_id: str
    repo_id: str
    target: RepairTarget
    dry_run: bool
    changes: dict[str, int]
    lost: list[LostData]
    lost_count: int
    notes: list[str]
    duration_seconds: float


class RepairFailed(Event):
    job_id: str
    target: RepairTarget
    error_kind: str
    message: str


class SnapshotRepaired(Event):
    """`repair snapshots` wrote `snapshot_id` in place of the damaged `original_id`."""

    job_id: str
    repo_id: str
    original_id: str
    snapshot_id: str
    truncated: list[str]
    dropped: list[str]
    dirs_lost: list[str]


# --- the CLI and the journal itself -----------------------------------------------------


class CommandFailed(Event):
    """A CLI command failed before any job existed (e.g. a wrong passphrase)."""

    command: str
    error_kind: str
    message: str


class JournalVerified(Event):
    ok: bool
    events_checked: int
    first_bad_seq: int | None
    reason: str | None


class JournalTamperingDetected(Event):
    """The journal's chain is broken, or it disagrees with the anchors sealed in the
    repository (a truncated tail, a deleted journal, a re-hashed forgery). This event
    opens a fresh segment; nothing before it is changed (docs/journal.md#anchors).
    `found_head_*` is the head as found; `trusted_*` the newest anchor that agreed."""

    repo_id: str | None
    findings: list[str]
    first_bad_seq: int | None
    found_head_seq: int
    found_head_hash: str
    trusted_seq: int | None
    trusted_hash: str | None


class ProjectionsRebuilt(Event):
    projections: list[str]
    events_replayed: int


# --- prune jobs (garbage collection) ----------------------------------------------------


class PruneRequested(Event):
    job_id: str
    repository: str
    max_unused: float
    dry_run: bool


class PruneStarted(Event):
    job_id: str
    repo_id: str


class PruneProgressed(Event, Progress):
    job_id: str


class PruneCompleted(Event):
    """What one prune run did; condemned packs may be deleted by a later run
    (docs/prune.md), so `bytes_freed` is what this run removed minus what it wrote."""

    job_id: str
    repo_id: str
    snapshots: int
    packs_kept: int
    packs_repacked: int
    packs_condemned: int
    packs_written: int
    bytes_written: int
    packs_deleted: int
    bytes_deleted: int
    bytes_freed: int
    blobs_removed: int
    packs_rescued: int
    condemned_pending: int
    condemned_pending_bytes: int
    duration_seconds: float


class PruneFailed(Event):
    job_id: str
    error_kind: str
    message: str


# --- notifications (vault.notify) -------------------------------------------------------

NotifyChannel = Literal["email", "webhook"]
NotifyTrigger = Literal["success", "failure", "partial", "low_storage", "missed"]


class NotificationSent(Event):
    """A notice reached one notification target (`attempts` tries, the last one worked)."""

    target: str
    channel: NotifyChannel
    trigger: NotifyTrigger
    title: str
    job_id: str | None
    schedule: str | None
    attempts: int


class NotificationFailed(Event):
    """A notice could not be delivered to one target; the job it was about is unaffected.

    `error` is vault's one-line message (never a secret: no password, token or URL query).
    """

    target: str
    channel: NotifyChannel
    trigger: NotifyTrigger
    title: str
    job_id: str | None
    schedule: str | None
    attempts: int
    error: str


# --- schedules (`[[schedules]]`, `vault schedule`, the worker's scheduler loop) --------
# Definitions live on stream `schedule-<name>`; each run on `schedule-run-<run key>`,
# whose first event is appended at expected_version=0 so that one worker queues it.


class ScheduleAdded(Event):
    """A schedule came into effect: added with `vault schedule add` (origin "cli"), or a
    `[[schedules]]` entry of vault.toml first seen or changed (origin "config").

    `definition` is the whole schedule as vault.toml would spell it. `since` (ISO 8601,
    UTC) is when it took effect: due times before it are never reported as missed.
    """

    name: str
    origin: Literal["config", "cli"]
    definition: dict[str, Any]
    since: str


class ScheduleRemoved(Event):
    name: str


class SchedulePaused(Event):
    name: str


class ScheduleResumed(Event):
    """`last_due`: the newest due time that passed while paused (skipped, not missed)."""

    name: str
    last_due: str | None


class ScheduleRetentionChanged(Event):
    """The retention policy of a schedule added with `vault schedule add` was replaced
    (from the TUI's schedule editor). `retention` is the new `[schedules.retention]` table
    as vault.toml would spell it; None: the top-level `[retention]` applies again.
    A vault.toml schedule's retention is changed in the file, never by this event."""

    name: str
    retention: dict[str, Any] | None


class ScheduleRunQueued(Event):
    """One run of a schedule: a backup job per source, sharing `group_id`.

    `due` is the due time it stands for (for a manual `vault schedule run`, the moment
    it was asked for); `catch_up` says it is late and stands for missed runs."""

    name: str
    due: str
    run_key: str
    job_ids: list[str]
    sources: list[str]
    group_id: str
    catch_up: bool
    manual: bool = False


class ScheduleRunMissed(Event):
    """Due times that passed with no worker running. `missed` lists the oldest (capped);
    `missed_count` counts them all; `caught_up` says one catch-up run was queued."""

    name: str
    missed: list[str]
    missed_count: int
    caught_up: bool
    last_due: str


class ScheduleRunSkipped(Event):
    """Due times that passed while the schedule was paused: not run, not missed."""

    name: str
    skipped_count: int
    last_due: str


class ScheduleRunCompleted(Event):
    """Every job of a run has ended. `status`: completed, partial (some failed) or failed."""

    name: str
    run_key: str
    status: Literal["completed", "partial", "failed"]
    jobs: dict[str, str]  # job id -> its final status
    error: str | None = None  # why no job could be queued, if none was


class ScheduleRetentionApplied(Event):
    """The schedule's retention policy, applied to its own snapshots after a run."""

    name: str
    run_key: str
    policy: str
    removed: list[str]
    kept: int
    error: str | None = None
    prune_job_id: str | None = None  # the prune queued after it (the schedule's `prune`)


# --- restore reports --------------------------------------------------------------------


class RestoreGroupCounts(BaseModel):
    """One directory's (table's, collection's) line of a restore report."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )

    group: str
    restored: int
    skipped: int
    deleted: int
    failed: int
    conflicts: int


class RestoreReported(Event):
    """What a restore did, per group, recorded just before its RestoreCompleted. Groups
    are a list (not a dict keyed by name): a directory may be called anything."""

    job_id: str
    snapshot_id: str
    target: str
    mode: str
    on_conflict: str
    groups: list[RestoreGroupCounts]
    restored: int
    skipped: int
    deleted: int
    failed: int
    conflicts: int
    bytes_written: int
    duration_seconds: float
    warnings: list[str]
    # a database restore as a new copy: table / collection -> {old id: new id}
    id_map: dict[str, dict[str, str]] = {}


# --- undo (vault.operations.restore_undo) -----------------------------------------------


class RestoreUndoable(Event):
    """Journaled before a destructive restore writes: the safety copy of what it will
    change (`undo_snapshot_id`, tagged pre-restore) and what it may create."""

    job_id: str
    kind: str  # "files" or the source type
    snapshot_id: str  # the snapshot being restored
    undo_snapshot_id: str
    target: str | None
    created: list[str]
    only: list[str]


class RestoreUndone(Event):
    """A restore was undone (`vault restore undo`, or rolled back after it failed)."""

    job_id: str
    undo_snapshot_id: str
    target: str | None
    reason: str
    restored: int
    removed: int


# --- export and import ------------------------------------------------------------------


class SnapshotExported(Event):
    """A snapshot written to an export file (`vault export`)."""

    repo_id: str
    snapshot_id: str
    file: str
    encrypted: bool
    format_version: int
    trees: int
    blobs: int
    bytes_plain: int
    bytes_written: int
    duration_seconds: float


class SnapshotImported(Event):
    """A new snapshot made from an export file or a foreign file (`vault import`).
    `refused` lists archive members left out (hostile paths, links, devices)."""

    repo_id: str
    snapshot_id: str
    file: str
    format: Literal["vault", "sqlite", "tar", "zip", "mongodump", "pgdump"]
    format_version: int | None
    source_snapshot_id: str | None
    files: int
    bytes_raw: int
    bytes_new: int
    refused: list[FileProblem]
    duration_seconds: float


# --- restore hooks (vault.restore.hooks) ------------------------------------------------


class RestoreHookRan(Event):
    """A `[restore]` pre_hook or post_hook command ran around a restore. `output` is the
    tail of what it printed (stdout and stderr); `exit_code` is None when it timed out."""

    job_id: str
    phase: Literal["pre", "post"]
    command: str
    exit_code: int | None
    timed_out: bool
    duration_seconds: float
    output: str


# --- copy jobs (`vault copy`, operations/copy.py) ----------------------------------------


class CopyRequested(Event):
    """`vault copy`: snapshots of `repository` to be copied into `destination`."""

    job_id: str
    repository: str
    destination: str
    destination_name: str | None
    snapshots: list[str]  # the references given (ids, `latest`); empty with --all/--since
    all: bool
    since: str | None
    source: str | None
    dry_run: bool


class SnapshotCopied(Event):
    """One snapshot copied: `from_snapshot_id` in `from_repo_id` is now `to_snapshot_id` in
    `to_repo_id` (whose snapshot names `original_id`). `bytes_stored`: what the copy wrote."""

    job_id: str
    from_repo_id: str
    from_repository: str
    from_snapshot_id: str
    to_repo_id: str
    to_repository: str
    to_name: str | None
    to_snapshot_id: str
    original_id: str
    source: str | None
    snapshot_time: str  # the snapshot's own time, which its copy keeps
    blobs_new: int
    bytes_new: int
    bytes_stored: int


class CopyCompleted(Event):
    """What one `vault copy` did: `failed` holds one line per snapshot that could not be
    copied (damaged source data), which is then not in the destination at all."""

    job_id: str
    from_repo_id: str
    to_repo_id: str
    copied: int
    skipped: int
    failed: list[str]
    bytes_read: int
    bytes_stored: int
    dry_run: bool
    duration_seconds: float


class CopyFailed(Event):
    job_id: str
    error_kind: str
    message: str
