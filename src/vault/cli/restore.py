"""`vault restore` (with `undo` and `preview`) and `vault dump`: get data back out of a
snapshot. Parse, call the one restore pipeline (`vault.operations.restore`), render."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any

import click

from vault.cli.common import (
    latest_options,
    parse_entity_option,
    parse_time,
    pinned_ref,
    reporter_for,
    snapshot_criteria,
)
from vault.cli.main import CliState, output_options, pass_state
from vault.cli.restore_options import (
    DefaultCommandGroup,
    confirmer,
    legacy_mode,
    restore_options,
)
from vault.cli.restore_output import plan_record, render_files, render_source, say_warnings
from vault.errors import EXIT_PARTIAL, SnapshotNotFound, UsageError
from vault.operations.restore import RestoreOutcome, confirmation_plan, run_restore
from vault.operations.restore_source import OWN_LOCATION
from vault.planning.restore_request import (
    FILES,
    RestoreRequest,
    check_request,
    check_target_given,
    query_of,
)
from vault.restore.dump import dump_file
from vault.restore.snapshot_path import split_ref
from vault.sources.entities import field_values
from vault.sources.registry import restores_into_path


@restore_options
@pass_state
def restore_snapshot(state: CliState, snapshot: str, paths: tuple[str, ...],
                     target: str | None, include: tuple[str, ...], exclude: tuple[str, ...],
                     mode: str | None, on_conflict: Any, overwrite: str | None,
                     dry_run: bool, verbose: bool, only: tuple[str, ...], query: str | None,
                     at: str | None, entity: str | None, new_ids: bool,
                     rename: tuple[str, ...], settings: bool, queued: bool, yes: bool,
                     pick_source: str | None, pick_path: str | None, pick_host: str | None,
                     no_safety_copy: bool) -> None:
    """Restore SNAPSHOT (`latest`, an id, or `ID:sub/dir`) into --target.

    `latest` is the newest snapshot of one source: with several sources in the
    repository, pick one with --source, --path or --host (`latest:sub/dir`: the newest
    snapshot holding that directory).

    PATHS (inside the snapshot) restrict the restore to those subtrees. Nothing is ever
    written outside the target: hostile names and symlinked parents are refused.
    `vault restore preview SNAPSHOT ...` is `vault restore SNAPSHOT ... --dry-run`.
    A database or settings snapshot is restored through its source: into --target or,
    without it, into the database it was taken from (with --mode overwrite or merge).
    """
    parsed = query_of(parse_entity_option(entity) if entity is not None else None, query)
    resolved, conflict_policy, trust_mtime = legacy_mode(mode, on_conflict, overwrite)
    if at is not None:
        moment = parse_time(at, "--at")
        assert moment is not None
        if snapshot in {g.name for g in state.vault().config.groups}:
            _restore_group_at(state, snapshot, moment, resolved, conflict_policy, dry_run,
                              yes)
            return
        snapshot = _snapshot_at(state, snapshot, moment)
    check_target_given(target, settings, mode)
    one_path = paths[0] if len(paths) == 1 and ":" not in snapshot else None
    found, snapshot = pinned_ref(state.vault().repository(), snapshot,
                                 snapshot_criteria(pick_source, pick_path, pick_host, one_path))
    kind = str(found.source.get("type", FILES))
    request = RestoreRequest(
        snapshot_ref=snapshot, target=target, paths=list(paths), includes=list(include),
        excludes=list(exclude), mode=resolved, on_conflict=conflict_policy,
        trust_mtime=trust_mtime, dry_run=dry_run, only=list(only), query=parsed,
        remap_ids=new_ids, rename=field_values(rename), settings=settings,
        safety_copy=not no_safety_copy)
    check_request(request, kind, short_id=found.short_id, queued=queued,
                  file_options=overwrite is not None)
    name = _confirmation_name(request, kind, found.source)
    if queued:
        _queue(state, request, kind, name, yes)
        return
    confirm = None if dry_run or yes else confirmer(_where(request, kind), name)
    out = state.output()
    outcome = run_restore(state.vault(), request, reporter=reporter_for(out), confirm=confirm)
    _render(state, outcome, verbose=verbose)


def _where(request: RestoreRequest, kind: str) -> str:
    """The target as a confirmation names it."""
    if kind == FILES:
        return os.path.abspath(request.target or "")
    return request.target or OWN_LOCATION


def _confirmation_name(request: RestoreRequest, kind: str, source: dict[str, Any]) -> str:
    """What the operator types to go ahead: the target directory's name; a database
    target, or its source's name for its own location."""
    if kind == FILES:
        where = _where(request, kind)
        return os.path.basename(where.rstrip("/")) or where
    return request.target or str(source.get("label") or source.get("name") or "")


def _render(state: CliState, outcome: RestoreOutcome, *, verbose: bool) -> None:
    out = state.output()
    undo = None if outcome.request.dry_run else _undo_hint(state, outcome.job_id)
    if outcome.applied.files is None:
        render_source(out, outcome, verbose=verbose, undo=undo)
        return
    render_files(out, outcome, verbose=verbose, undo=undo)
    if outcome.stats.problems:
        raise click.exceptions.Exit(EXIT_PARTIAL)


def _queue(state: CliState, request: RestoreRequest, kind: str, name: str,
           yes: bool) -> None:
    """Queue the restore for the worker; a destructive one is confirmed (or refused) now,
    on what the target holds now: the worker cannot ask."""
    from vault.cli.jobs import enqueue, refuse_with_queue
    from vault.jobs.commands import RestoreArgs

    refuse_with_queue(True, dry_run=request.dry_run)
    target = request.target
    if target and (kind == FILES or (restores_into_path(kind) and "://" not in target)):
        target = os.path.abspath(target)  # the worker may run in another directory
    request = request.model_copy(update={"target": target})
    if not yes:
        planned = confirmation_plan(state.vault(), request)
        if planned is not None and planned.destructive:
            where = _where(request, kind)
            confirmer(where, name)(where, planned.summary)
            yes = True
    enqueue(state, RestoreArgs(**request.model_dump(), database=kind != FILES, yes=yes))


def _snapshot_at(state: CliState, name: str, moment: datetime) -> str:
    """The id of the newest completed snapshot of `name` at or before `moment` (said)."""
    from vault.restore.point_in_time import snapshot_at

    picked = snapshot_at(state.vault().repository().snapshots(), name, moment)
    if picked is None:
        raise UsageError(f"no completed snapshot of {name!r} at or before {moment.isoformat()}")
    state.output().info(f"--at {moment.isoformat()}: snapshot {picked.short_id} of {name}, "
                        f"taken {picked.time.astimezone().isoformat(timespec='seconds')}")
    return picked.id


def _restore_group_at(state: CliState, group: str, moment: datetime, mode: Any,
                      on_conflict: Any, dry_run: bool, yes: bool) -> None:
    """Every source of a configured group back to the same point in time, each into its
    own place (`vault.operations.restore_group`)."""
    from vault.operations.restore_group import group_restore_at

    vault = state.vault()
    chosen = group_restore_at(vault, group, moment, mode, on_conflict, dry_run)
    out = state.output()
    undo: list[str] = []
    for member in chosen.members:
        snap = member.snapshot
        out.line(f"{member.name}: snapshot {snap.short_id} "
                 f"({snap.time.astimezone().isoformat(timespec='seconds')})")
        outcome = run_restore(vault, member.request, reporter=reporter_for(out),
                              confirm=None if yes else confirmer(member.name, member.name))
        say_warnings(out, outcome.warnings)
        hint = None if dry_run else _undo_hint(state, outcome.job_id)
        if hint:
            undo.append(hint)
        out.record("source", label=member.name, snapshot_id=snap.id,
                   job_id=outcome.job_id or None, dry_run=dry_run,
                   plan=plan_record(outcome), undo=hint, warnings=outcome.warnings)
    out.summary(group=group, at=moment.isoformat(), group_id=chosen.group_id,
                snapshots={m.name: m.snapshot.id for m in chosen.members}, dry_run=dry_run,
                undo=undo)


def _undo_hint(state: CliState, job_id: str | None) -> str | None:
    """`vault restore undo JOB` when the restore kept a safety copy, else None."""
    from vault.journal import events as ev

    if not job_id:
        return None
    stream = state.vault().journal.stream(job_id)
    if any(isinstance(r.event, ev.RestoreUndoable) for r in stream):
        return f"vault restore undo {job_id}"
    return None


restore = DefaultCommandGroup("restore", default=restore_snapshot)


@restore.command("undo")
@click.argument("restore_job_id", metavar="RESTORE_JOB_ID")
@click.option("--queue", "queued", is_flag=True,
              help="Run the undo as a restore job of its own in `vault worker`; print its "
                   "job id and return.")
@output_options
@pass_state
def undo(state: CliState, restore_job_id: str, queued: bool) -> None:
    """Put the target of restore RESTORE_JOB_ID back as it was before that restore wrote
    anything (from the safety copy it kept), and remove what it created."""
    from vault.operations.restore_undo import undo_restore, undoable

    if queued:  # a restore job of its own, run by the worker (as the TUI's undo)
        from vault.cli.jobs import enqueue
        from vault.jobs.commands import RestoreArgs

        mark = undoable(state.vault(), restore_job_id)  # nothing to undo: refused now
        enqueue(state, RestoreArgs(snapshot_ref=mark.undo_snapshot_id, target=mark.target,
                                   undo_of=restore_job_id))
        return
    done = undo_restore(state.vault(), restore_job_id)
    out = state.output()
    out.line(f"restore {restore_job_id} undone: {done.restored} item(s) put back, "
             f"{done.removed} created item(s) removed")
    out.summary(job_id=restore_job_id, undone=True, restored=done.restored,
                removed=done.removed, undo_snapshot_id=done.undo_snapshot_id,
                target=done.target)


#: `vault restore`'s parameters, SNAPSHOT optional (its absence gets a clearer error)
_PREVIEW_PARAMS = [click.Argument(["snapshot"], required=False),
                   *(p for p in restore_snapshot.params if p.name != "snapshot")]


@restore.command("preview", params=_PREVIEW_PARAMS)
@click.pass_context
def preview(ctx: click.Context, /, **options: Any) -> None:
    """Show what `vault restore SNAPSHOT ...` would do (its plan: per directory, table or
    collection, what is created, overwritten, skipped, renamed, deleted, and the
    conflicts); write nothing. The same as `vault restore SNAPSHOT ... --dry-run`."""
    if options["snapshot"] is None:
        raise UsageError("vault restore preview SNAPSHOT [PATHS]...: give a snapshot")
    assert restore_snapshot.callback is not None
    ctx.invoke(restore_snapshot.callback, **{**options, "dry_run": True})


@click.command()
@click.argument("snapshot")
@click.argument("path")
@latest_options
@pass_state
def dump(state: CliState, snapshot: str, path: str, pick_source: str | None,
         pick_path: str | None, pick_host: str | None) -> None:
    """Write one file of SNAPSHOT to stdout (for example `vault dump latest /etc/app.conf`:
    the newest snapshot holding that file)."""
    ref, sub = split_ref(snapshot)
    if sub != "/":
        path = f"{sub}/{path.lstrip('/')}"
    if sys.stdout.isatty():
        raise UsageError("refusing to write file contents to a terminal; redirect stdout")
    repo = state.vault().repository()
    criteria = snapshot_criteria(pick_source, pick_path, pick_host, inside=path)
    try:
        found, _ = pinned_ref(repo, ref, criteria)
    except SnapshotNotFound:
        if ref != "latest" or not repo.snapshots():
            raise
        raise UsageError(f"{path}: no such file in snapshot `latest` (no snapshot "
                         f"matching {criteria.describe()} holds it)") from None
    dump_file(repo, found, path, sys.stdout.buffer)


COMMANDS = [restore, dump]
