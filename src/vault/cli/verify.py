"""`vault verify`: check the repository's structure and, optionally, every byte."""

from __future__ import annotations

import click

from vault.cli.common import reporter_for
from vault.cli.main import CliState, output_options, pass_state
from vault.errors import EXIT_FAILED
from vault.foundation.units import human_bytes
from vault.operations.verify import run_verify


@click.command()
@click.option("--read-data", is_flag=True, help="Read, decrypt and hash every pack.")
@click.option("--read-data-subset", metavar="N%|n/t|SIZE",
              help="Read only a subset of packs: a percentage, group n of t, or a size.")
@click.option("--queue", "queued", is_flag=True,
              help="Queue the verify for `vault worker`; print its job id and return.")
@output_options
@pass_state
def verify(state: CliState, read_data: bool, read_data_subset: str | None,
           queued: bool) -> None:
    """Verify the repository. Exit 1 when anything is damaged; damaged snapshots and the
    file paths they lose are listed and marked corrupted in the journal."""
    if queued:
        from vault.cli.jobs import enqueue
        from vault.jobs.commands import VerifyArgs

        enqueue(state, VerifyArgs(read_data=read_data or read_data_subset is not None,
                                  subset=read_data_subset))
        return
    out = state.output()
    report = run_verify(state.vault(), read_data, read_data_subset, reporter_for(out))
    for problem in report.problems[:200]:
        out.info(f"problem: {problem}")
    for snapshot_id, paths in report.corrupted.items():
        out.line(f"snapshot {snapshot_id[:8]} is damaged: {len(paths)} path(s)")
        for p in paths[:50]:
            out.line(f"  {p}")
    if report.unreferenced_packs:
        out.line(f"{len(report.unreferenced_packs)} pack(s) are not indexed (left by an "
                 "interrupted backup; reused by the next backup or reclaimed by prune)")
    out.line(f"{'ok' if report.ok else 'DAMAGED'}: {report.snapshots_checked} snapshots, "
             f"{report.packs_checked} packs read ({human_bytes(report.bytes_read)}), "
             f"{report.blobs_checked} blobs checked, {len(report.problems)} problem(s)")
    out.summary(ok=report.ok, snapshots_checked=report.snapshots_checked,
                packs_checked=report.packs_checked, blobs_checked=report.blobs_checked,
                bytes_read=report.bytes_read, problems=report.problems,
                unreferenced_packs=report.unreferenced_packs, corrupted=report.corrupted)
    if not report.ok:
        raise click.exceptions.Exit(EXIT_FAILED)


COMMANDS = [verify]
