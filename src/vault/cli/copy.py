"""`vault copy`: copy snapshots into another configured repository (docs/offsite.md)."""

from __future__ import annotations

import click

from vault.cli.common import parse_time, reporter_for
from vault.cli.main import CliState, output_options, pass_state
from vault.errors import EXIT_FAILED
from vault.foundation.units import human_bytes
from vault.operations.copy import CopyReport, CopyRequest, run_copy


@click.command()
@click.argument("snapshots", nargs=-1, metavar="[SNAPSHOT]...")
@click.option("--to", "to", required=True, metavar="NAME",
              help="The [[repositories]] entry to copy into (its name, or its url).")
@click.option("--all", "copy_all", is_flag=True, help="Copy every snapshot (with --source: "
              "every snapshot of that source).")
@click.option("--since", metavar="TIME",
              help="Copy the snapshots taken at or after TIME (an ISO date/time).")
@click.option("--source", metavar="NAME",
              help="Only snapshots of source NAME (its name or label, or its paths).")
@click.option("--dry-run", is_flag=True,
              help="Say what would be copied and stored; write nothing.")
@output_options
@pass_state
def copy(state: CliState, snapshots: tuple[str, ...], to: str, copy_all: bool,
         since: str | None, source: str | None, dry_run: bool) -> None:
    """Copy snapshots of the repository (-r) into repository --to, re-encrypted under its
    keys; only the data it lacks is sent. A snapshot copied before is skipped, so running
    the same copy again (or after an interrupted one) finishes the job. Exit 1 when a
    snapshot could not be copied (damaged source data)."""
    req = CopyRequest(to=to, snapshots=list(snapshots), all=copy_all,
                      since=parse_time(since, "--since"), source=source, dry_run=dry_run)
    out = state.output()
    report = run_copy(state.vault(), req, reporter_for(out))
    _render(state, report)
    if not report.ok:
        raise click.exceptions.Exit(EXIT_FAILED)


def _render(state: CliState, report: CopyReport) -> None:
    out = state.output()
    where = report.destination_name or report.destination
    for source_id, copy_id in report.copied:
        out.line(f"copied {source_id[:8]} to {where} as {copy_id[:8]}")
    for source_id in report.to_copy:
        out.line(f"would copy {source_id[:8]} to {where}")
    for source_id, copy_id in report.skipped:
        out.info(f"{source_id[:8]}: already in {where} as {copy_id[:8]}")
    for source_id, why in report.failed:
        out.line(f"NOT copied {source_id[:8]}: {why}")
    verb = "would store" if report.dry_run else "stored"
    out.line(f"{len(report.copied) or len(report.to_copy)} copied, {len(report.skipped)} "
             f"already there, {len(report.failed)} failed; read "
             f"{human_bytes(report.bytes_read)}, {verb} {human_bytes(report.bytes_stored)} "
             f"({report.blobs_new} new blobs)")
    out.summary(
        job_id=report.job_id, source=report.source, destination=report.destination,
        destination_name=report.destination_name, dry_run=report.dry_run, ok=report.ok,
        copied=[{"snapshot_id": s, "copy_id": c} for s, c in report.copied],
        would_copy=report.to_copy,
        skipped=[{"snapshot_id": s, "copy_id": c} for s, c in report.skipped],
        failed=[{"snapshot_id": s, "error": why} for s, why in report.failed],
        bytes_read=report.bytes_read, blobs_new=report.blobs_new,
        bytes_new=report.bytes_new, bytes_stored=report.bytes_stored,
        duration_seconds=report.duration_seconds)


COMMANDS = [copy]
