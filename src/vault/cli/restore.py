"""`vault restore` and `vault dump`: get files back out of a snapshot."""

from __future__ import annotations

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
@click.option("-t", "--target", required=True, help="Directory to restore into.")
@click.option("-i", "--include", multiple=True, help="Restore only paths matching this glob.")
@click.option("-e", "--exclude", multiple=True, help="Skip paths matching this glob.")
@click.option("--overwrite", type=click.Choice(["always", "if-changed", "never"]),
              default="always", show_default=True,
              help="What to do with files already in the target.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be restored; write nothing.")
@click.option("--queue", "queued", is_flag=True,
              help="Queue the restore for `vault worker`; print its job id and return.")
@output_options
@pass_state
def restore(state: CliState, snapshot: str, paths: tuple[str, ...], target: str,
            include: tuple[str, ...], exclude: tuple[str, ...], overwrite: str,
            dry_run: bool, queued: bool) -> None:
    """Restore SNAPSHOT (`latest`, an id, or `ID:sub/dir`) into --target.

    PATHS (inside the snapshot) restrict the restore to those subtrees. Nothing is ever
    written outside the target: hostile names and symlinked parents are refused.
    """
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
