"""`vault backup`: back up files and directories."""

from __future__ import annotations

import os
from pathlib import Path

import click

from vault.cli.common import reporter_for
from vault.cli.main import CliState, output_options, pass_state
from vault.cli.output import format_duration
from vault.errors import EXIT_PARTIAL, UsageError
from vault.filters import read_exclude_file
from vault.operations.backup import BackupRequest, estimate_backup, run_backup
from vault.units import human_bytes, parse_bytes


def _request(state: CliState, paths: tuple[str, ...], exclude: tuple[str, ...],
             exclude_file: tuple[Path, ...], include: tuple[str, ...],
             exclude_larger_than: str | None, one_file_system: bool, tag: tuple[str, ...],
             force: bool, dry_run: bool) -> BackupRequest:
    defaults = state.vault().config.backup
    excludes = list(defaults.exclude) + list(exclude)
    for f in [*([defaults.exclude_file] if defaults.exclude_file else []), *exclude_file]:
        try:
            excludes += read_exclude_file(Path(f).read_text().splitlines())
        except OSError as exc:
            raise UsageError(f"cannot read exclude file {f}: {exc.strerror}") from exc
    limit = defaults.exclude_larger_than
    if exclude_larger_than:
        try:
            limit = parse_bytes(exclude_larger_than)
        except ValueError as exc:
            raise UsageError(f"--exclude-larger-than {exclude_larger_than}: {exc}") from exc
    return BackupRequest(
        paths=list(paths), excludes=excludes, includes=list(include),
        exclude_larger_than=limit, one_file_system=one_file_system or defaults.one_file_system,
        tags=list(defaults.tags) + list(tag), force=force, dry_run=dry_run)


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-e", "--exclude", multiple=True, help="Skip paths matching this glob.")
@click.option("--exclude-file", multiple=True, type=click.Path(path_type=Path),
              help="Read exclude globs from a file (one per line, # comments).")
@click.option("-i", "--include", multiple=True,
              help="Back up only files matching this glob (directories are still walked).")
@click.option("--exclude-larger-than", metavar="SIZE", help="Skip files larger than SIZE.")
@click.option("-x", "--one-file-system", is_flag=True, help="Stay on each path's file system.")
@click.option("-t", "--tag", multiple=True, help="Tag the snapshot (repeatable).")
@click.option("--force", is_flag=True, help="Reread every file (ignore the files cache).")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be stored; write nothing.")
@click.option("--estimate", is_flag=True, help="Estimate size and duration; read no file.")
@click.option("--queue", "queued", is_flag=True,
              help="Queue the backup for `vault worker`; print its job id and return.")
@output_options
@pass_state
def backup(state: CliState, paths: tuple[str, ...], exclude: tuple[str, ...],
           exclude_file: tuple[Path, ...], include: tuple[str, ...],
           exclude_larger_than: str | None, one_file_system: bool, tag: tuple[str, ...],
           force: bool, dry_run: bool, estimate: bool, queued: bool) -> None:
    """Back up PATHS into a new snapshot.

    Incremental: unchanged files (same size, mtime, ctime, inode) are not read again.
    Files that cannot be read are reported and the snapshot is marked partial (exit 3).
    """
    req = _request(state, paths, exclude, exclude_file, include, exclude_larger_than,
                   one_file_system, tag, force, dry_run)
    if queued:
        _enqueue(state, req, dry_run=dry_run, estimate=estimate)
        return
    out = state.output()
    if estimate:
        est = estimate_backup(state.vault(), req)
        eta = format_duration(est.estimated_seconds) if est.estimated_seconds is not None \
            else "unknown (no earlier backup to learn from)"
        out.line(f"{est.files} files, {human_bytes(est.bytes_total)}; "
                 f"{est.files_to_read} new or changed ({human_bytes(est.bytes_to_read)} to read)")
        out.line(f"estimated new data: ~{human_bytes(est.estimated_new_bytes)} "
                 f"(~{human_bytes(est.estimated_stored_bytes)} stored), duration ~{eta}")
        out.summary(**vars(est))
        return
    outcome = run_backup(state.vault(), req, reporter_for(out))
    s = outcome.summary
    for p in outcome.problems:
        out.info(f"warning: {p.path}: {p.error}")
    head = "would store" if outcome.dry_run else f"snapshot {outcome.snapshot.short_id} saved" \
        if outcome.snapshot else ""
    out.line(f"{head}: {s.files_new} new, {s.files_changed} changed, "
             f"{s.files_unmodified} unchanged files, {s.dirs} dirs")
    out.line(f"  {human_bytes(s.bytes_raw)} processed, {human_bytes(s.bytes_new)} new data, "
             f"{human_bytes(s.bytes_stored)} added to the repository, "
             f"{s.duration_seconds:.1f}s")
    if outcome.partial:
        out.line(f"  partial: {len(outcome.problems)} file(s) could not be read")
    snap = outcome.snapshot
    out.summary(job_id=outcome.job_id, snapshot_id=snap.id if snap else None,
                status=snap.status if snap else "dry-run", dry_run=outcome.dry_run,
                **s.model_dump(), problems=[p.model_dump() for p in outcome.problems])
    if outcome.partial:
        raise click.exceptions.Exit(EXIT_PARTIAL)


def _enqueue(state: CliState, req: BackupRequest, *, dry_run: bool, estimate: bool) -> None:
    from vault.cli.jobs_cmd import absolute, enqueue, refuse_with_queue
    from vault.jobs.commands import BackupArgs

    refuse_with_queue(True, dry_run=dry_run, estimate=estimate)
    paths = [absolute(p) for p in req.paths]
    if not any(os.path.lexists(p) for p in paths):
        raise UsageError(f"no such file or directory: {', '.join(paths)}")
    enqueue(state, BackupArgs(paths=paths, excludes=req.excludes, includes=req.includes,
                              exclude_larger_than=req.exclude_larger_than,
                              one_file_system=req.one_file_system, tags=req.tags,
                              force=req.force))


COMMANDS = [backup]
