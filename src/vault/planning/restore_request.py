"""One restore request, whoever asks for it (the CLI, the TUI, a queued job), and the rules
it must satisfy before anything is read.

Pure. `RestoreRequest` says what to restore and how; which of its fields apply depends on
what the snapshot holds (files, or a database or settings source), so the rules come in
two steps: `RestoreRequest` checks what it can on its own (a contradiction between its
fields), and `check_request` checks it against the snapshot's kind once that is known.
Every message is the one-line usage error the CLI prints (exit 2).

Old option names (`--mode new|replace` for files, `--overwrite`) are the CLI's business:
`vault.cli.restore_options` turns them into these fields.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from vault.errors import UsageError
from vault.planning.restore_plan import Mode, OnConflict, default_on_conflict

__all__ = ["COPY_MODES", "FILES", "RestoreMode", "RestoreRequest", "check_copy",
           "check_copy_mode", "check_request",
           "check_target_given",
           "parse_query", "query_of"]

#: the kind of a snapshot of files (any other kind is a source type: sqlite, settings, ...)
FILES = "files"


_PLAN_MODES: dict[str, Mode] = {"overwrite": "overwrite", "merge": "merge",
                                 "new-target": "new-target"}


class RestoreMode(StrEnum):
    """How the snapshot's items meet what the target holds (`planning.restore_plan`).

    REPLACE is the databases' whole-table (whole-file) swap, planned without a per-record
    plan; for files it is the old name of OVERWRITE."""

    OVERWRITE = "overwrite"
    MERGE = "merge"
    NEW_TARGET = "new-target"
    REPLACE = "replace"

    @property
    def plan_mode(self) -> Mode:
        """The mode of the per-item plan (`RestorePlan.mode`)."""
        return "overwrite" if self is RestoreMode.REPLACE else _PLAN_MODES[self.value]



#: the modes a database may be restored in without a --target (into the place it was
#: taken from: only a mode that says it changes what is there)
IN_PLACE_MODES = ("overwrite", "merge", "replace")


class RestoreRequest(BaseModel):
    """What to restore and how. `mode` None is the default of the snapshot's kind: files
    merge, conflicts overwritten; a database goes into a new target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_ref: str  # "latest", an id prefix, optionally ":sub/dir"
    target: str | None = None  # a directory; a database file, name or URL; None: its own
    # files: subtrees (inside the snapshot) and globs
    paths: list[str] = []
    includes: list[str] = []
    excludes: list[str] = []
    mode: RestoreMode | None = None
    on_conflict: OnConflict | None = None
    trust_mtime: bool = False  # files: equal size and mtime count as unchanged
    dry_run: bool = False
    # databases and settings: tables/collections, records, a copy with new ids
    only: list[str] = []
    query: dict[str, Any] | None = None
    remap_ids: bool = False
    rename: dict[str, str] = {}  # the copy's top records take these field values
    settings: bool = False  # settings: re-import into the live settings
    safety_copy: bool = True  # back up what a destructive restore changes, for undo
    hooks: bool = True  # run the [restore] pre_hook/post_hook (an undo does not)
    threads: int = 4

    @property
    def files_mode(self) -> Mode:
        """A files restore's mode (files merge unless told otherwise)."""
        return "merge" if self.mode is None else self.mode.plan_mode

    @property
    def files_on_conflict(self) -> OnConflict:
        """A files restore's conflict policy: without one, what differs is overwritten
        (what `vault restore` always did), also in mode merge."""
        if self.on_conflict is not None:
            return self.on_conflict
        return "overwrite" if self.mode is None else default_on_conflict(self.files_mode)

    @property
    def source_mode(self) -> RestoreMode:
        """A database restore's mode (a new target unless told otherwise)."""
        return self.mode or RestoreMode.NEW_TARGET


def query_of(entity: tuple[str, tuple[str, ...]] | None,
             query: str | None) -> dict[str, Any] | None:
    """The records a restore selects: `--entity NAME=IDS` is `--query '{"entity": NAME,
    "ids": IDS}'`; one or the other."""
    if entity is None:
        return parse_query(query)
    if query is not None:
        raise UsageError("give --entity or --query, not both")
    name, ids = entity
    return {"entity": name, "ids": list(ids)}


def parse_query(text: str | None) -> dict[str, Any] | None:
    """`--query JSON`: a JSON object, or a usage error."""
    import json

    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--query is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise UsageError("--query must be a JSON object")
    return parsed


def check_target_given(target: str | None, settings: bool, mode: str | None) -> None:
    """Without --target only a database restored in place (a --mode that says so) or live
    settings have somewhere to go; checked before the snapshot is looked up."""
    if target or settings:
        return
    if mode not in IN_PLACE_MODES:
        raise UsageError("give --target (a directory for files; a file, database or URL for "
                         "a database), or --mode overwrite|merge to restore a database into "
                         "its own location")


def check_request(request: RestoreRequest, kind: str, *, short_id: str = "",
                  queued: bool = False, file_options: bool = False) -> None:
    """The rules of a request for a snapshot of `kind` (FILES or a source type), which a
    front end checks once it knows the snapshot (a files restore checks them itself).
    `file_options`: options only files take were given that the request does not carry
    (the CLI's deprecated --overwrite)."""
    if kind == FILES:
        _check_files(request)
    else:
        _check_copy_mode(request)
        _check_source(request, kind, short_id=short_id, queued=queued,
                      file_options=file_options)
        check_copy(request)


def check_copy(request: RestoreRequest) -> None:
    """A copy with new ids adds records beside the originals: it goes with a mode that
    adds, and only a copy's records are renamed. Checked first of all (before the
    repository is opened) by every restore, and in `check_request`."""
    _check_copy_mode(request)
    if request.rename and not (request.remap_ids and request.query):
        raise UsageError("--rename FIELD=VALUE names a new copy of an entity: give it "
                         "with --new-ids and --query '{\"entity\": NAME, \"ids\": [...]}'")


def _check_copy_mode(request: RestoreRequest) -> None:
    check_copy_mode(request.remap_ids, request.mode)


#: restore modes that add records: the only ones a copy with new ids goes with ("new" is
#: new-target's old name)
COPY_MODES = ("new", "merge", "new-target")


def check_copy_mode(remap_ids: bool, mode: str | None) -> None:
    """A copy with new ids (`--new-ids`) adds records beside the originals: it goes with
    a mode that adds (merge, new-target; None: the default, new-target), never overwrite."""
    if remap_ids and mode is not None and mode not in COPY_MODES:
        raise UsageError("--new-ids adds a copy: use mode merge or new-target")


def _check_files(request: RestoreRequest) -> None:
    if request.only or request.query or request.settings or request.remap_ids \
            or request.rename:
        raise UsageError("--only, --query, --new-ids, --rename and --settings apply to "
                         "database and settings snapshots")
    if not request.target:
        raise UsageError("give a --target directory to restore into")


def _check_source(request: RestoreRequest, kind: str, *, short_id: str, queued: bool,
                  file_options: bool) -> None:
    if request.paths or request.includes or request.excludes or file_options \
            or request.trust_mtime:
        raise UsageError("database snapshots take --target, --only, --query, --mode, "
                         "--on-conflict, --dry-run, --settings and --queue (not PATHS, "
                         "-i, -e or --overwrite)")
    if queued and request.settings:
        raise UsageError("--settings re-imports into the live settings: run it inline, "
                         "not with --queue")
    if kind == "settings" and not request.settings and request.target is None:
        raise UsageError("give --settings to re-import settings into the live file, or "
                         "--target FILE to write them elsewhere")
    if request.settings and kind != "settings":
        raise UsageError(f"--settings applies to settings snapshots; {short_id} is "
                         f"of a {kind} source")
