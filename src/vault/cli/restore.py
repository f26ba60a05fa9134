"""`vault restore` and `vault dump`: get files back out of a snapshot."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
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
from vault.cli.output import Output
from vault.errors import EXIT_PARTIAL, SnapshotNotFound, UsageError
from vault.foundation.progress import NullReporter
from vault.foundation.units import human_bytes
from vault.operations.restore import RestoreOutcome, RestoreRequest, run_restore, split_ref
from vault.operations.restore_checks import Confirm
from vault.planning.restore_plan import RestorePlan
from vault.restore.dump import dump_file
from vault.restore.report import COUNTS, RestoreReport
from vault.sources.entities import check_copy_mode, field_values


@click.command()
@click.argument("snapshot")
@click.argument("paths", nargs=-1)
@click.option("-t", "--target",
              help="Directory to restore files into; for a database, the file, database "
                   "name or URL to restore into (default: the source's own location).")
@click.option("-i", "--include", multiple=True, help="Restore only paths matching this glob.")
@click.option("-e", "--exclude", multiple=True, help="Skip paths matching this glob.")
@click.option("--mode", type=click.Choice(["overwrite", "merge", "new-target", "new",
                                           "replace"]),
              help="overwrite: the target's selection becomes the snapshot's (extra files "
                   "deleted); merge: add what is missing, keep what exists; new-target: "
                   "only into a new or empty target. (new/replace: old names of "
                   "new-target/overwrite.)  [files default: merge, conflicts overwritten; "
                   "databases: new-target]")
@click.option("--on-conflict", "on_conflict",
              type=click.Choice(["skip", "overwrite", "rename", "fail"]),
              help="Items on both sides that differ: keep the target's (skip), take the "
                   "snapshot's (overwrite), keep both (rename: NAME.restored-ID) or refuse "
                   "the whole restore (fail).  [default: skip for merge, else overwrite]")
@click.option("--overwrite", type=click.Choice(["always", "if-changed", "never"]),
              help="Deprecated: always = --mode merge --on-conflict overwrite; never = "
                   "--on-conflict skip; if-changed = overwrite unless size and mtime match.")
@click.option("-n", "--dry-run", "--preview", "dry_run", is_flag=True,
              help="Print the plan (per directory: created, overwritten, skipped, renamed, "
                   "deleted, conflicts); write nothing.")
@click.option("-v", "--verbose", is_flag=True, help="With --dry-run: list every item.")
@click.option("--only", multiple=True, metavar="NAME",
              help="Database snapshots: restore only this table or collection (repeatable).")
@click.option("--query", metavar="JSON",
              help="Database snapshots: restore only some records: MongoDB "
                   "'{\"ids\": [...]}' or '{\"filter\": {...}}'; MongoDB, SQLite and "
                   "PostgreSQL '{\"entity\": \"project\", \"ids\": [...]}' (with what lies "
                   "below).")
@click.option("--at", "at", metavar="TIME",
              help="Point in time (e.g. '2026-11-20 14:00+01:00'; local time without an "
                   "offset): SNAPSHOT then names a source, a backed-up path or a configured "
                   "group, and its newest completed snapshot at or before TIME is restored.")
@click.option("--entity", metavar="NAME=ID[,ID...]",
              help="Database snapshots: restore only these entities of the hierarchy and "
                   "everything below them (e.g. project=2: its sessions and messages too); "
                   "the same as --query '{\"entity\": NAME, \"ids\": [...]}'.")
@click.option("--new-ids", is_flag=True,
              help="Database snapshots: restore the selection (e.g. --query '{\"entity\": "
                   "\"project\", \"ids\": [...]}') as a new copy with new ids; references "
                   "in the entity hierarchy are rewritten.")
@click.option("--rename", "rename", multiple=True, metavar="FIELD=VALUE",
              help="With --new-ids: the copy's top entity takes VALUE in FIELD (a column "
                   "or field), e.g. --rename name='Website (copy)' (repeatable).")
@click.option("--settings", "settings", is_flag=True,
              help="Settings snapshots: re-import into the live settings (redacted secrets "
                   "keep their live values).")
@click.option("--queue", "queued", is_flag=True,
              help="Queue the restore for `vault worker`; print its job id and return. "
                   "A destructive queued restore needs --yes now: the worker cannot ask.")
@click.option("-y", "--yes", "yes", is_flag=True,
              help="Go ahead with a destructive restore (one that overwrites or deletes "
                   "what the target holds) without asking. Without it a terminal asks you "
                   "to type the target's name; a script is refused (exit 2).")
@click.option("--no-safety-copy", "no_safety_copy", is_flag=True,
              help="Files: keep no safety copy of what a destructive restore overwrites "
                   "or deletes (no undo); for a repository that is full or read-only.")
@latest_options
@output_options
@pass_state
def restore(state: CliState, snapshot: str, paths: tuple[str, ...], target: str | None,
            include: tuple[str, ...], exclude: tuple[str, ...], mode: str | None,
            on_conflict: str | None, overwrite: str | None, dry_run: bool, verbose: bool,
            only: tuple[str, ...], query: str | None, at: str | None, entity: str | None,
            new_ids: bool, rename: tuple[str, ...], settings: bool, queued: bool,
            yes: bool, pick_source: str | None, pick_path: str | None,
            pick_host: str | None, no_safety_copy: bool) -> None:
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
    if entity is not None:
        if query is not None:
            raise UsageError("give --entity or --query, not both")
        name, ids = parse_entity_option(entity)
        query = json.dumps({"entity": name, "ids": list(ids)})
    if snapshot == "undo":  # `vault restore undo JOB_ID`
        if len(paths) != 1:
            raise UsageError("vault restore undo RESTORE_JOB_ID: give one restore job id")
        _undo(state, paths[0], queued=queued)
        return
    if snapshot == "preview":  # no snapshot ref is spelled so (refs are hex or "latest")
        if not paths:
            raise UsageError("vault restore preview SNAPSHOT [PATHS]...: give a snapshot")
        snapshot, paths, dry_run = paths[0], paths[1:], True
    if at is not None:
        moment = parse_time(at, "--at")
        assert moment is not None
        if snapshot in {g.name for g in state.vault().config.groups}:
            _restore_group_at(state, snapshot, moment, mode, on_conflict, dry_run, yes)
            return
        snapshot = _snapshot_at(state, snapshot, moment)
    if not target and not settings and mode not in ("replace", "overwrite", "merge"):
        raise UsageError("give --target (a directory for files; a file, database or URL for "
                         "a database), or --mode overwrite|merge to restore a database into "
                         "its own location")
    one_path = paths[0] if len(paths) == 1 and ":" not in snapshot else None
    _, snapshot = pinned_ref(state.vault().repository(), snapshot,
                             snapshot_criteria(pick_source, pick_path, pick_host, one_path))
    if _is_source_snapshot(state, snapshot):
        check_copy_mode(new_ids, mode)  # before --queue hands it to a worker
        if paths or include or exclude or overwrite:
            raise UsageError("database snapshots take --target, --only, --query, --mode, "
                             "--on-conflict, --dry-run, --settings and --queue (not PATHS, "
                             "-i, -e or --overwrite)")
        if queued and settings:
            raise UsageError("--settings re-imports into the live settings: run it inline, "
                             "not with --queue")
        _restore_source(state, snapshot, target, only, query, mode or "new", on_conflict,
                        dry_run, settings, verbose, new_ids, yes=yes, queued=queued,
                        rename=field_values(rename))
        return
    if only or query or settings or new_ids or rename:
        raise UsageError("--only, --query, --new-ids, --rename and --settings apply to "
                         "database and settings snapshots")
    if not target:
        raise UsageError("give a --target directory to restore into")
    req = RestoreRequest(snapshot_ref=snapshot, target=target, paths=list(paths),
                         includes=list(include), excludes=list(exclude),
                         overwrite=overwrite,  # type: ignore[arg-type]
                         dry_run=dry_run, mode=mode,
                         on_conflict=on_conflict,  # type: ignore[arg-type]
                         safety_copy=not no_safety_copy)
    req.policy()  # a contradictory combination is a usage error before anything runs
    if queued:
        _queue(state, req, yes)
        return
    out = state.output()
    if not dry_run and not yes:
        req.confirm = confirmer(os.path.abspath(target))
    outcome = run_restore(state.vault(), req, reporter_for(out))
    render_restore(out, req, outcome, verbose=verbose,
                   undo=_undo_hint(state, outcome.job_id))
    if outcome.stats.problems:
        raise click.exceptions.Exit(EXIT_PARTIAL)


def _queue(state: CliState, req: RestoreRequest, yes: bool) -> None:
    from vault.cli.jobs import absolute, enqueue, refuse_with_queue
    from vault.jobs.commands import RestoreArgs

    refuse_with_queue(True, dry_run=req.dry_run)
    target = absolute(req.target)
    if not yes:  # the worker cannot ask: decide now, on what the target holds now
        planned = run_restore(state.vault(), replace(req, dry_run=True), NullReporter())
        if planned.plan.destructive:
            confirmer(target)(target, planned.plan.to_json(items=False))
            yes = True
    enqueue(state, RestoreArgs(snapshot_ref=req.snapshot_ref, target=target,
                               paths=req.paths, includes=req.includes,
                               excludes=req.excludes, overwrite=req.overwrite,
                               mode=req.mode, on_conflict=req.on_conflict, yes=yes))


def confirmer(target: str, name: str | None = None) -> Confirm:
    """The `Confirm` of an interactive command: on a terminal, show what would change and
    ask for the target's name (or "yes"); elsewhere refuse, naming --yes."""
    from vault.operations.restore_checks import RestoreNotConfirmed, plan_changes

    expected = name or os.path.basename(target.rstrip("/")) or target

    def confirm(where: str, plan: dict[str, Any]) -> None:
        changes = plan_changes(plan)
        if not sys.stdin.isatty():
            raise RestoreNotConfirmed(target=where, changes=changes,
                                      how="pass --yes to go ahead (no terminal to ask)")
        click.echo(f"restore into {where} will change what is there: {changes}", err=True)
        answer = click.prompt(f"type {expected!r} (or 'yes') to go on", default="",
                              show_default=False, err=True)
        if answer.strip() not in {expected, where, "yes"}:
            raise RestoreNotConfirmed(target=where, changes=changes,
                                      how="not confirmed")

    return confirm


def _snapshot_at(state: CliState, name: str, moment: datetime) -> str:
    """The id of the newest completed snapshot of `name` at or before `moment` (said)."""
    from vault.restore.point_in_time import snapshot_at

    picked = snapshot_at(state.vault().repository().snapshots(), name, moment)
    if picked is None:
        raise UsageError(f"no completed snapshot of {name!r} at or before {moment.isoformat()}")
    state.output().info(f"--at {moment.isoformat()}: snapshot {picked.short_id} of {name}, "
                        f"taken {picked.time.astimezone().isoformat(timespec='seconds')}")
    return picked.id


def _restore_group_at(state: CliState, group: str, moment: datetime, mode: str | None,
                      on_conflict: str | None, dry_run: bool, yes: bool) -> None:
    """Every source of a configured group back to the same point in time: the newest group
    backup, at or before `moment`, in which all of them completed; each into its own place
    (files under their own paths, databases into their own database)."""
    from vault.operations.source_restore import (
        SourceRestore,
        is_source_snapshot,
        run_source_restore,
    )
    from vault.restore.point_in_time import group_at

    if mode not in ("overwrite", "merge"):
        raise UsageError("restoring a group puts each source back in its own place: give "
                         "--mode overwrite or --mode merge")
    vault = state.vault()
    members = [s.name for s in vault.config.group(group)]
    picks = group_at(vault.repository().snapshots(), members, moment)
    if picks is None:
        raise UsageError(f"no backup of group {group!r} at or before {moment.isoformat()} "
                         f"in which all of {', '.join(members)} completed")
    out = state.output()
    undo: list[str] = []
    for name in members:
        snap = picks[name]
        out.line(f"{name}: snapshot {snap.short_id} "
                 f"({snap.time.astimezone().isoformat(timespec='seconds')})")
        if is_source_snapshot(snap):
            done = run_source_restore(vault, SourceRestore(
                snapshot_ref=snap.id, mode=mode, on_conflict=on_conflict,  # type: ignore[arg-type]
                dry_run=dry_run, confirm=None if yes else confirmer(name, name)))
            job_id: str | None = done.job_id
            detail = done.result.details.get("plan")
            warnings = done.warnings
        else:
            files = run_restore(vault, RestoreRequest(
                snapshot_ref=snap.id, target="/", paths=list(snap.paths), mode=mode,
                on_conflict=on_conflict, dry_run=dry_run,  # type: ignore[arg-type]
                confirm=None if yes else confirmer(name, name)), reporter_for(out))
            job_id, detail = files.job_id, files.plan.to_json(items=False)
            warnings = files.warnings
        _say_warnings(out, warnings)
        hint = None if dry_run else _undo_hint(state, job_id)
        if hint:
            undo.append(hint)
        out.record("source", label=name, snapshot_id=snap.id, job_id=job_id or None,
                   dry_run=dry_run, plan=detail, undo=hint, warnings=warnings)
    out.summary(group=group, at=moment.isoformat(), group_id=picks[members[0]].group_id,
                snapshots={name: picks[name].id for name in members}, dry_run=dry_run,
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


def _undo(state: CliState, job_id: str, *, queued: bool = False) -> None:
    from vault.operations.restore_undo import undo_restore, undoable

    if queued:  # a restore job of its own, run by the worker (as the TUI's undo)
        from vault.cli.jobs import enqueue
        from vault.jobs.commands import RestoreArgs

        mark = undoable(state.vault(), job_id)  # nothing to undo: refused now
        enqueue(state, RestoreArgs(snapshot_ref=mark.undo_snapshot_id, target=mark.target,
                                   undo_of=job_id))
        return
    done = undo_restore(state.vault(), job_id)
    out = state.output()
    out.line(f"restore {job_id} undone: {done.restored} item(s) put back, "
             f"{done.removed} created item(s) removed")
    out.summary(job_id=job_id, undone=True, restored=done.restored, removed=done.removed,
                undo_snapshot_id=done.undo_snapshot_id, target=done.target)


def render_restore(out: Output, req: RestoreRequest, outcome: RestoreOutcome, *,
                   verbose: bool, undo: str | None = None) -> None:
    """The plan (dry run) or the report (real restore), for humans and for --json."""
    st, plan, report = outcome.stats, outcome.plan, outcome.report
    for p in st.problems:
        out.info(f"warning: {p.path}: {p.error}")
    _say_warnings(out, outcome.warnings)
    verb = "would restore" if req.dry_run else "restored"
    deleted = plan.totals()["delete"] if req.dry_run else len(st.deleted)
    out.line(f"{verb} {st.files_restored} files, {st.dirs} dirs, {st.symlinks} symlinks "
             f"({human_bytes(st.bytes_written)}) from snapshot {outcome.snapshot.short_id} "
             f"to {req.target}; {st.files_skipped} skipped, {deleted} deleted, "
             f"{len(st.problems)} problems"
             + ("" if req.dry_run else f", {outcome.duration_seconds:.1f}s"))
    out.line(f"mode {plan.mode}, on conflict {plan.on_conflict}")
    if req.dry_run:
        _render_plan(out, plan, verbose=verbose)
    else:
        _render_report(out, report)
    if undo:
        out.line(f"a safety copy was kept; undo with: {undo}")
    out.summary(undo=undo, job_id=outcome.job_id, snapshot_id=outcome.snapshot.id,
                target=req.target, dry_run=req.dry_run, files_restored=st.files_restored,
                files_skipped=st.files_skipped, dirs=st.dirs, symlinks=st.symlinks,
                bytes_written=st.bytes_written, duration_seconds=outcome.duration_seconds,
                problems=[{"path": p.path, "error": p.error} for p in st.problems],
                plan=plan.to_json(), report=report.to_json(),
                created=st.created, overwritten=st.overwritten, deleted=st.deleted,
                warnings=outcome.warnings)


def _say_warnings(out: Output, warnings: list[dict[str, Any]]) -> None:
    from vault.operations.restore_checks import warning_text

    for record in warnings:
        out.info(f"warning: {warning_text(record)}")


def _render_plan(out: Output, plan: RestorePlan, *, verbose: bool) -> None:
    totals = {a: n for a, n in plan.totals().items() if n}
    out.line("plan: " + (", ".join(f"{a} {n}" for a, n in totals.items()) or "nothing")
             + f"; {human_bytes(plan.bytes_to_write)} to write")
    for group, counts in plan.by_group().items():
        out.line(f"  {group}: " + ", ".join(f"{a} {n}" for a, n in counts.items()))
    if verbose:
        for item in plan.items:
            out.line(f"    {item.action:<9} {item.key}  ({item.reason})")
    if plan.conflicts:
        out.line(f"{len(plan.conflicts)} conflict(s): the restore would be refused "
                 "(--on-conflict fail)")


def _render_report(out: Output, report: RestoreReport) -> None:
    rows = [[group, *(str(counts[c]) for c in COUNTS)]
            for group, counts in report.groups.items()]
    rows.append(["total", *(str(report.totals[c]) for c in COUNTS)])
    out.table(["directory", *COUNTS], rows)


def _is_source_snapshot(state: CliState, ref: str) -> bool:
    from vault.operations.source_restore import is_source_snapshot

    repo = state.vault().repository()
    return is_source_snapshot(repo.find_snapshot(split_ref(ref)[0]))


def _render_plan_json(out: Output, plan: dict[str, Any], verbose: bool) -> None:
    """A database restore's plan (RestorePlan.to_json()): totals, then per table or
    collection, and with -v every record."""
    totals = {a: n for a, n in plan.get("totals", {}).items() if n}
    out.line(f"plan ({plan.get('mode')}, on conflict {plan.get('on_conflict')}): "
             + (", ".join(f"{a} {n}" for a, n in totals.items()) or "nothing to do"))
    for group, counts in plan.get("groups", {}).items():
        out.line(f"  {group}: " + ", ".join(f"{a} {n}" for a, n in counts.items()))
    verb = "written" if plan.get("mode") == "new-target" else "replaced"
    for group, why in (plan.get("whole") or {}).items():
        out.line(f"  {group}: {verb} whole, not row by row: {why}")
    if verbose:
        for item in plan.get("items", []):
            out.line(f"    {item['action']:<9} {item['group']} {item['key']}  ({item['reason']})")


def _restore_source(state: CliState, snapshot: str, target: str | None,
                    only: tuple[str, ...], query: str | None, mode: str,
                    on_conflict: str | None, dry_run: bool, settings: bool,
                    verbose: bool = False, new_ids: bool = False, *, yes: bool = False,
                    queued: bool = False, rename: dict[str, str] | None = None) -> None:
    from vault.operations.source_restore import SourceRestore, run_source_restore

    parsed = None
    if query is not None:
        try:
            parsed = json.loads(query)
        except ValueError as exc:
            raise UsageError(f"--query is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise UsageError("--query must be a JSON object")
    vault = state.vault()
    snap = vault.repository().find_snapshot(split_ref(snapshot)[0])
    kind = snap.source.get("type")
    if kind == "settings" and not settings and target is None:
        raise UsageError("give --settings to re-import settings into the live file, or "
                         "--target FILE to write them elsewhere")
    if settings and kind != "settings":
        raise UsageError(f"--settings applies to settings snapshots; {snap.short_id} is "
                         f"of a {kind} source")
    request = SourceRestore(
        snapshot_ref=snapshot, target=target, only=list(only) or None, query=parsed,
        mode=mode, on_conflict=on_conflict, dry_run=dry_run,  # type: ignore[arg-type]
        remap_ids=new_ids, rename=rename or {})
    name = target or str(snap.source.get("label") or snap.source.get("name") or "")
    if queued:
        _queue_source(state, request, kind, name, yes)
        return
    if not dry_run and not yes:
        request.confirm = confirmer(target or "(the source's own location)", name)
    outcome = run_source_restore(vault, request)
    out = state.output()
    _say_warnings(out, outcome.warnings)
    r = outcome.result
    plan = r.details.get("plan")
    if isinstance(plan, dict):
        _render_plan_json(out, plan, verbose)
    if dry_run:
        out.summary(snapshot_id=snap.id, source_type=kind, target=target, dry_run=True,
                    plan=plan, warnings=outcome.warnings)
        return
    undo = _undo_hint(state, outcome.job_id)
    if undo:
        out.line(f"a safety copy was kept; undo with: {undo}")
    if r.details.get("id_map"):
        out.line("new ids: " + ", ".join(f"{group}: {len(ids)}"
                                         for group, ids in r.details["id_map"].items()))
    out.line(f"restored {kind} {snap.source.get('label')} from snapshot {snap.short_id} "
             f"to {target or 'its own location'}: {r.items} item(s), "
             f"{human_bytes(r.bytes)}, {outcome.duration_seconds:.1f}s")
    out.summary(job_id=outcome.job_id, snapshot_id=snap.id, source_type=kind, undo=undo,
                target=target, items=r.items, bytes_written=r.bytes,
                duration_seconds=outcome.duration_seconds, details=r.details,
                warnings=outcome.warnings)


def _queue_source(state: CliState, req: Any, kind: object, name: str, yes: bool) -> None:
    """Queue a database restore; a destructive one is confirmed (or refused) now."""
    from dataclasses import replace as copy_with

    from vault.cli.jobs import enqueue, refuse_with_queue
    from vault.jobs.commands import RestoreArgs
    from vault.operations.source_restore import run_source_restore

    refuse_with_queue(True, dry_run=req.dry_run)
    target = req.target
    if target and kind in ("sqlite", "settings") and "://" not in target:
        target = os.path.abspath(target)  # the worker may run in another directory
    where = target or "(the source's own location)"
    if not yes:
        if req.mode == "replace":
            confirmer(where, name)(where, {"mode": "replace", "destructive": True})
            yes = True
        else:
            plan = run_source_restore(state.vault(), copy_with(req, dry_run=True)) \
                .result.details.get("plan")
            if isinstance(plan, dict) and plan.get("destructive"):
                confirmer(where, name)(where, {k: v for k, v in plan.items() if k != "items"})
                yes = True
    enqueue(state, RestoreArgs(snapshot_ref=req.snapshot_ref, target=target, database=True,
                               mode=req.mode, on_conflict=req.on_conflict,
                               only=list(req.only or []), query=req.query,
                               remap_ids=req.remap_ids, rename=req.rename, yes=yes))


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
