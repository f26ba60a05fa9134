"""`vault backup`: back up files and directories."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from vault.cli.common import parse_entity_option, reporter_for
from vault.cli.main import CliState, output_options, pass_state
from vault.cli.output import format_duration
from vault.errors import EXIT_PARTIAL, UsageError
from vault.foundation.units import human_bytes, parse_bytes
from vault.operations.backup import BackupOutcome, BackupRequest, estimate_backup, run_backup
from vault.operations.group_backup import (
    BackupTarget,
    GroupOutcome,
    plan_targets,
    run_targets,
    select_entity,
)
from vault.operations.source_backup import estimate_source
from vault.planning.filters import read_exclude_file


def _request(state: CliState, paths: tuple[str, ...], exclude: tuple[str, ...],
             exclude_file: tuple[Path, ...], include: tuple[str, ...],
             exclude_larger_than: str | None, one_file_system: bool, tag: tuple[str, ...],
             force: bool, dry_run: bool, read_special: bool = False) -> BackupRequest:
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
        tags=list(defaults.tags) + list(tag), force=force, dry_run=dry_run,
        read_special=read_special)


@click.command()
@click.argument("targets", nargs=-1, metavar="[PATH|URL]...")
@click.option("-s", "--source", "source_names", multiple=True, metavar="NAME",
              help="Back up the configured source NAME (repeatable).")
@click.option("-g", "--group", metavar="NAME",
              help="Back up the sources of the configured group NAME to one point in time.")
@click.option("--entity", metavar="NAME=ID[,ID...]",
              help="Back up only these entities of a source's hierarchy, with everything "
                   "below them (e.g. project=65f1c0...: its sessions and messages too).")
@click.option("-e", "--exclude", multiple=True, help="Skip paths matching this glob.")
@click.option("--exclude-file", multiple=True, type=click.Path(path_type=Path),
              help="Read exclude globs from a file (one per line, # comments).")
@click.option("-i", "--include", multiple=True,
              help="Back up only files matching this glob (directories are still walked).")
@click.option("--exclude-larger-than", metavar="SIZE", help="Skip files larger than SIZE.")
@click.option("-x", "--one-file-system", is_flag=True, help="Stay on each path's file system.")
@click.option("-t", "--tag", multiple=True, help="Tag the snapshot (repeatable).")
@click.option("--read-special", is_flag=True,
              help="Read FIFOs and devices like files (else refused as paths, left out "
                   "inside directories).")
@click.option("--force", is_flag=True, help="Reread every file (ignore the files cache).")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be stored; write nothing.")
@click.option("--estimate", is_flag=True, help="Estimate size and duration; read no file.")
@click.option("--queue", "queued", is_flag=True,
              help="Queue the backup for `vault worker`; print its job id and return.")
@output_options
@pass_state
def backup(state: CliState, targets: tuple[str, ...], source_names: tuple[str, ...],
           group: str | None, entity: str | None, exclude: tuple[str, ...],
           exclude_file: tuple[Path, ...],
           include: tuple[str, ...], exclude_larger_than: str | None, one_file_system: bool,
           tag: tuple[str, ...], force: bool, dry_run: bool, estimate: bool,
           queued: bool, read_special: bool) -> None:
    """Back up paths, databases and settings, each into a new snapshot.

    Paths given together make one snapshot; a URL (sqlite:///app.db,
    postgresql://user@host/db, mongodb://host/db) backs up that database; --source and
    --group name configured sources. With nothing given, every configured source is
    backed up. Sources backed up together share a group id and time.

    Incremental: unchanged files (same size, mtime, ctime, inode) are not read again.
    Files that cannot be read are reported and the snapshot is marked partial (exit 3);
    a source that fails in a group makes the group partial (exit 3), the others are kept.
    """
    vault = state.vault()
    plan = plan_targets(vault.config, list(targets), list(source_names), group)
    if entity is not None:
        plan = select_entity(plan, *parse_entity_option(entity))
    req = _request(state, tuple(p for t in plan for p in t.paths if t.files is None),
                   exclude, exclude_file, include, exclude_larger_than, one_file_system,
                   tag, force, dry_run, read_special)
    if queued and entity is not None:
        raise UsageError("--entity backups run inline (not with --queue)")
    if queued and read_special:
        raise UsageError("--read-special backups run inline (not with --queue)")
    if queued:
        _enqueue(state, plan, req, group, dry_run=dry_run, estimate=estimate)
        return
    if estimate:
        _estimate(state, plan, req)
        return
    if dry_run and any(t.source is not None for t in plan):
        raise UsageError("--dry-run applies to files only; use --estimate for databases")
    if dry_run or (len(plan) == 1 and plan[0].source is None and group is None):
        for target in plan:
            _report_files(state, run_backup(vault, _files_request(target, req),
                                            reporter_for(state.output())))
        return
    _report_group(state, run_targets(vault, plan, req, reporter_for(state.output()),
                                     group_name=group))


def _files_request(target: BackupTarget, req: BackupRequest) -> BackupRequest:
    files = target.files
    return replace(req, paths=target.paths, label=target.label,
                   excludes=req.excludes + (files.exclude if files else []),
                   includes=req.includes + (files.include if files else []))


def _report_files(state: CliState, outcome: BackupOutcome) -> None:
    out = state.output()
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


def _report_group(state: CliState, result: GroupOutcome) -> None:
    out = state.output()
    for r in result.results:
        snap = r.outcome.snapshot if r.outcome else None
        if snap is not None and r.outcome is not None:
            s = r.outcome.summary
            out.line(f"{r.target.kind} {r.target.name}: snapshot {snap.short_id} "
                     f"{snap.status}: {human_bytes(s.bytes_raw)} processed, "
                     f"{human_bytes(s.bytes_new)} new, {s.duration_seconds:.1f}s")
            for p in r.outcome.problems:
                out.info(f"warning: {r.target.name}: {p.path}: {p.error}")
        else:
            out.line(f"{r.target.kind} {r.target.name}: FAILED: "
                     f"{r.error.message if r.error else 'unknown error'}")
        out.record("source", label=r.target.name, source_type=r.target.kind,
                   status=r.status, job_id=r.job_id,
                   snapshot_id=snap.id if snap else None,
                   error=r.error.message if r.error else None,
                   **(r.outcome.summary.model_dump() if r.outcome else {}))
    if result.group_id:
        out.line(f"group {result.group_id}: {result.status}")
    single: dict[str, object] = {}
    if len(result.results) == 1 and result.results[0].outcome is not None:
        only = result.results[0].outcome
        single = {"job_id": only.job_id, "snapshot_id": only.snapshot.id if only.snapshot
                  else None, "source_type": result.results[0].target.kind,
                  **only.summary.model_dump()}
    out.summary(group_id=result.group_id, status=result.status,
                snapshots=[r.outcome.snapshot.id for r in result.results
                           if r.outcome and r.outcome.snapshot], **single)
    if result.status != "completed":
        raise click.exceptions.Exit(EXIT_PARTIAL)


def _estimate(state: CliState, plan: list[BackupTarget], req: BackupRequest) -> None:
    out = state.output()
    vault = state.vault()
    for target in plan:
        if target.source is None:
            est = estimate_backup(vault, _files_request(target, req))
            eta = format_duration(est.estimated_seconds) \
                if est.estimated_seconds is not None \
                else "unknown (no earlier backup to learn from)"
            out.line(f"{est.files} files, {human_bytes(est.bytes_total)}; "
                     f"{est.files_to_read} new or changed "
                     f"({human_bytes(est.bytes_to_read)} to read)")
            out.line(f"estimated new data: ~{human_bytes(est.estimated_new_bytes)} "
                     f"(~{human_bytes(est.estimated_stored_bytes)} stored), duration ~{eta}")
            if len(plan) == 1:
                out.summary(**vars(est))
                return
            out.record("estimate", label=target.name, source_type="files", **vars(est))
            continue
        assert target.source is not None
        found = estimate_source(vault, target.source, target.name)
        size = "size unknown" if found.bytes_total is None else human_bytes(found.bytes_total)
        out.line(f"{target.kind} {target.name}: {size}; expected new data "
                 f"~{human_bytes(found.expected_new_bytes)} ({found.basis})")
        out.record("estimate", label=target.name, source_type=target.kind, **vars(found))
    out.summary(targets=len(plan))


def _enqueue(state: CliState, plan: list[BackupTarget], req: BackupRequest,
             group: str | None, *, dry_run: bool, estimate: bool) -> None:
    """One queued job per target; several share a group id and time, and are queued in
    one go so the worker captures them together (docs/jobs.md#groups)."""
    from vault.cli.jobs import enqueue, refuse_with_queue
    from vault.jobs.submit import backup_job_args, submit_jobs

    refuse_with_queue(True, dry_run=dry_run, estimate=estimate)
    jobs = backup_job_args(plan, req, group)
    if len(jobs) == 1 and jobs[0].group_id is None:
        enqueue(state, jobs[0])
        return
    submitted = submit_jobs(state.vault(), list(jobs), config_path=state.config_path,
                            overrides=state.overrides)
    out = state.output()
    for job in submitted:
        out.line(f"queued {job.summary} as job {job.job_id}")
        out.record("job", job_id=job.job_id, kind=job.kind, summary=job.summary)
    out.info(f"group {jobs[0].group_id}: the worker captures its members together")
    out.summary(group_id=jobs[0].group_id, job_ids=[j.job_id for j in submitted],
                kind="backup", status="queued", queue=submitted[0].queue)

COMMANDS = [backup]
