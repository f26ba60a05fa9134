"""`vault repair index|packs|snapshots`: make a damaged repository healthy (docs/repair.md)."""

from __future__ import annotations

import click

from vault.cli.main import CliState, output_options, pass_state
from vault.cli.output import printable
from vault.operations.repair import RepairReport, RepairRequest, run_repair

_DRY_RUN = click.option("-n", "--dry-run", is_flag=True,
                        help="Show what the repair would do; change nothing.")


@click.group()
def repair() -> None:
    """Repair a damaged repository: the index, damaged packs, damaged snapshots.

    Run `vault verify --read-data` first: it finds the damage and records it, and
    the repairs work from that record. Each repair holds the exclusive lock, is
    journaled (RepairStarted/RepairCompleted), and can be run again after a crash.
    The runbook: docs/repair.md."""


@repair.command("index")
@click.option("--read-all-packs", is_flag=True,
              help="Read every pack's header, not only those no good index file names.")
@_DRY_RUN
@output_options
@pass_state
def repair_index(state: CliState, read_all_packs: bool, dry_run: bool) -> None:
    """Rebuild the index from the index files that open and the packs' own headers.

    Packs that are gone are left out; packs no index names (a deleted or damaged
    index file) are indexed again."""
    _show(state, run_repair(state.vault(), RepairRequest(
        "index", dry_run=dry_run, read_all_packs=read_all_packs)))


@repair.command("packs")
@click.argument("pack_ids", nargs=-1)
@_DRY_RUN
@output_options
@pass_state
def repair_packs(state: CliState, pack_ids: tuple[str, ...], dry_run: bool) -> None:
    """Salvage every readable blob of the damaged packs into new packs, drop the packs.

    The damaged packs are those `vault verify` recorded, plus PACK_IDS (full ids).
    What no pack holds any more is reported per snapshot and path."""
    _show(state, run_repair(state.vault(), RepairRequest(
        "packs", dry_run=dry_run, packs=list(pack_ids))))


@repair.command("snapshots")
@click.option("--forget", is_flag=True,
              help="Forget each damaged original once its repaired copy is saved.")
@_DRY_RUN
@output_options
@pass_state
def repair_snapshots(state: CliState, forget: bool, dry_run: bool) -> None:
    """Write a repaired copy of every snapshot that names data no pack holds.

    Damaged files are truncated to their readable part (database and settings files
    are dropped whole), lost directories are left empty; the copy is tagged
    `repaired` and records its original's id."""
    _show(state, run_repair(state.vault(), RepairRequest(
        "snapshots", dry_run=dry_run, forget=forget)))


def _show(state: CliState, report: RepairReport) -> None:
    out = state.output()
    verb = "would change" if report.dry_run else "changed"
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.changes.items())
    out.line(f"repair {report.target}: {verb}: {counts}")
    for note in report.notes:
        out.line(f"  {note}")
    for original, new in report.repaired.items():
        out.line(f"  snapshot {original[:8]} repaired as {new[:8]}")
    if report.lost:
        out.line(f"lost ({len(report.lost)}):")
        for snapshot_id, path in report.lost[:200]:
            out.line(f"  {snapshot_id[:8]}  {printable(path)}")
    else:
        out.line("nothing lost")
    out.summary(target=report.target, dry_run=report.dry_run, job_id=report.job_id,
                changes=report.changes, notes=report.notes, repaired=report.repaired,
                lost=[{"snapshot_id": s, "path": p} for s, p in report.lost])


COMMANDS = [repair]
