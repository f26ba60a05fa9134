"""`vault restore` and `vault dump`: get files back out of a snapshot."""

from __future__ import annotations

import json
import sys

import click

from vault.cli.common import reporter_for
from vault.cli.main import CliState, output_options, pass_state
from vault.errors import EXIT_PARTIAL, UsageError
from vault.operations.restore import RestoreRequest, run_restore, split_ref
from vault.restore.dump import dump_file
from vault.units import human_bytes


@click.command()
@click.argument("snapshot")
@click.argument("paths", nargs=-1)
@click.option("-t", "--target",
              help="Directory to restore files into; for a database, the file, database "
                   "name or URL to restore into (default: the source's own location).")
@click.option("-i", "--include", multiple=True, help="Restore only paths matching this glob.")
@click.option("-e", "--exclude", multiple=True, help="Skip paths matching this glob.")
@click.option("--overwrite", type=click.Choice(["always", "if-changed", "never"]),
              default="always", show_default=True,
              help="What to do with files already in the target.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be restored; write nothing.")
@click.option("--only", multiple=True, metavar="NAME",
              help="Database snapshots: restore only this table or collection (repeatable).")
@click.option("--query", metavar="JSON",
              help="MongoDB snapshots: restore only matching documents, e.g. "
                   "'{\"ids\": [...]}' or '{\"filter\": {...}}'.")
@click.option("--mode", type=click.Choice(["new", "replace"]), default="new",
              show_default=True,
              help="Database snapshots: refuse a non-empty target (new) or replace its "
                   "contents (replace).")
@click.option("--settings", "settings", is_flag=True,
              help="Settings snapshots: re-import into the live settings (redacted secrets "
                   "keep their live values).")
@click.option("--queue", "queued", is_flag=True,
              help="Queue the restore for `vault worker`; print its job id and return.")
@output_options
@pass_state
def restore(state: CliState, snapshot: str, paths: tuple[str, ...], target: str | None,
            include: tuple[str, ...], exclude: tuple[str, ...], overwrite: str,
            dry_run: bool, only: tuple[str, ...], query: str | None, mode: str,
            settings: bool, queued: bool) -> None:
    """Restore SNAPSHOT (`latest`, an id, or `ID:sub/dir`) into --target.

    PATHS (inside the snapshot) restrict the restore to those subtrees. Nothing is ever
    written outside the target: hostile names and symlinked parents are refused.
    A database or settings snapshot is restored through its source: into --target or,
    without it, into the database it was taken from (with --mode replace).
    """
    if not target and not settings and mode != "replace":
        raise UsageError("give --target (a directory for files; a file, database or URL for "
                         "a database), or --mode replace to restore a database into its "
                         "own location")
    if _is_source_snapshot(state, snapshot):
        if queued or dry_run or paths or include or exclude:
            raise UsageError("database snapshots take --target, --only, --query, --mode "
                             "and --settings (not PATHS, -i, -e, -n or --queue)")
        _restore_source(state, snapshot, target, only, query, mode, settings)
        return
    if only or query or settings or mode != "new":
        raise UsageError("--only, --query, --mode and --settings apply to database and "
                         "settings snapshots")
    if not target:
        raise UsageError("give a --target directory to restore into")
    req = RestoreRequest(snapshot_ref=snapshot, target=target, paths=list(paths),
                         includes=list(include), excludes=list(exclude),
                         overwrite=overwrite,  # type: ignore[arg-type]
                         dry_run=dry_run)
    if queued:
        from vault.cli.jobs_cmd import absolute, enqueue, refuse_with_queue
        from vault.jobs.commands import RestoreArgs

        refuse_with_queue(True, dry_run=dry_run)
        enqueue(state, RestoreArgs(snapshot_ref=snapshot, target=absolute(target),
                                   paths=list(paths), includes=list(include),
                                   excludes=list(exclude),
                                   overwrite=overwrite))
        return
    out = state.output()
    outcome = run_restore(state.vault(), req, reporter_for(out))
    st = outcome.stats
    for p in st.problems:
        out.info(f"warning: {p.path}: {p.error}")
    verb = "would restore" if dry_run else "restored"
    out.line(f"{verb} {st.files_restored} files, {st.dirs} dirs, {st.symlinks} symlinks "
             f"({human_bytes(st.bytes_written)}) from snapshot {outcome.snapshot.short_id} "
             f"to {req.target}; {st.files_skipped} skipped, {len(st.problems)} problems"
             + ("" if dry_run else f", {outcome.duration_seconds:.1f}s"))
    out.summary(job_id=outcome.job_id, snapshot_id=outcome.snapshot.id, target=req.target,
                dry_run=dry_run, files_restored=st.files_restored,
                files_skipped=st.files_skipped, dirs=st.dirs, symlinks=st.symlinks,
                bytes_written=st.bytes_written, duration_seconds=outcome.duration_seconds,
                problems=[vars(p) for p in st.problems])
    if st.problems:
        raise click.exceptions.Exit(EXIT_PARTIAL)


def _is_source_snapshot(state: CliState, ref: str) -> bool:
    from vault.operations.source_restore import is_source_snapshot

    repo = state.vault().repository()
    return is_source_snapshot(repo.find_snapshot(split_ref(ref)[0]))


def _restore_source(state: CliState, snapshot: str, target: str | None,
                    only: tuple[str, ...], query: str | None, mode: str,
                    settings: bool) -> None:
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
    outcome = run_source_restore(vault, SourceRestore(
        snapshot_ref=snapshot, target=target, only=list(only) or None, query=parsed,
        mode=mode))  # type: ignore[arg-type]
    out = state.output()
    r = outcome.result
    out.line(f"restored {kind} {snap.source.get('label')} from snapshot {snap.short_id} "
             f"to {target or 'its own location'}: {r.items} item(s), "
             f"{human_bytes(r.bytes)}, {outcome.duration_seconds:.1f}s")
    out.summary(job_id=outcome.job_id, snapshot_id=snap.id, source_type=kind,
                target=target, items=r.items, bytes_written=r.bytes,
                duration_seconds=outcome.duration_seconds, details=r.details)


@click.command()
@click.argument("snapshot")
@click.argument("path")
@pass_state
def dump(state: CliState, snapshot: str, path: str) -> None:
    """Write one file of SNAPSHOT to stdout (for example `vault dump latest /etc/app.conf`)."""
    ref, sub = split_ref(snapshot)
    if sub != "/":
        path = f"{sub}/{path.lstrip('/')}"
    if sys.stdout.isatty():
        raise UsageError("refusing to write file contents to a terminal; redirect stdout")
    repo = state.vault().repository()
    dump_file(repo, repo.find_snapshot(ref), path, sys.stdout.buffer)


COMMANDS = [restore, dump]
