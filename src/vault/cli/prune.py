"""`vault prune`: remove data no snapshot references, next to running backups."""

from __future__ import annotations

import click

from vault.cli.common import reporter_for
from vault.cli.main import CliState, output_options, pass_state
from vault.errors import UsageError
from vault.foundation.units import human_bytes
from vault.operations.prune import PruneRequest, run_prune
from vault.repository.gc import parse_max_unused


@click.command()
@click.option("--max-unused", default="5%", show_default=True, metavar="PERCENT",
              help="Repack a pack when more than this share of it is unused.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@click.option("--queue", "queued", is_flag=True,
              help="Queue the prune for `vault worker`; print its job id and return.")
@output_options
@pass_state
def prune(state: CliState, max_unused: str, dry_run: bool, queued: bool) -> None:
    """Remove blobs no snapshot references: drop unused packs, repack mostly unused ones.

    Safe while backups run: packs leave the index first and are deleted once every
    operation that could still use them has ended (often in the same run; otherwise in
    the next one). See docs/prune.md."""
    share = parse_max_unused(max_unused)
    if queued:
        if dry_run:
            raise UsageError("--dry-run shows the plan here and now: it does not go with "
                             "--queue")
        from vault.cli.jobs import enqueue
        from vault.jobs.commands import PruneArgs

        enqueue(state, PruneArgs(max_unused=share))
        return
    out = state.output()
    req = PruneRequest(max_unused=share, dry_run=dry_run)
    r = run_prune(state.vault(), req, reporter_for(out))
    verb = "would" if dry_run else "did"
    out.line(f"{r.snapshots} snapshots scanned; {verb} keep {r.packs_kept} pack(s), "
             f"repack {r.packs_repacked}, drop {r.packs_condemned - r.packs_repacked} "
             f"unused; {r.blobs_removed} unused blob(s)")
    if dry_run:
        out.line(f"would free about {human_bytes(max(r.estimated_bytes_freed, 0))}")
    else:
        out.line(f"wrote {r.packs_written} pack(s) ({human_bytes(r.bytes_written)}), "
                 f"deleted {r.packs_deleted} pack(s) ({human_bytes(r.bytes_deleted)}): "
                 f"{_freed(r.bytes_freed)}")
    if r.packs_rescued:
        out.line(f"{r.packs_rescued} condemned pack(s) put back in the index "
                 "(a snapshot saved meanwhile uses them)")
    if r.temp_files_removed:
        out.line(f"removed {r.temp_files_removed} temp file(s) left by killed saves")
    if r.condemned_pending:
        out.line(f"{r.condemned_pending} condemned pack(s) "
                 f"({human_bytes(r.condemned_pending_bytes)}) wait for operations that "
                 "started before them to end; the next prune deletes them")
    out.summary(dry_run=dry_run, job_id=r.job_id, snapshots=r.snapshots,
                packs_kept=r.packs_kept, packs_repacked=r.packs_repacked,
                packs_condemned=r.packs_condemned, packs_written=r.packs_written,
                bytes_written=r.bytes_written, packs_deleted=r.packs_deleted,
                bytes_deleted=r.bytes_deleted, bytes_freed=r.bytes_freed,
                estimated_bytes_freed=r.estimated_bytes_freed,
                blobs_removed=r.blobs_removed, packs_rescued=r.packs_rescued,
                packs_recovered=r.packs_recovered, condemned_pending=r.condemned_pending,
                condemned_pending_bytes=r.condemned_pending_bytes,
                temp_files_removed=r.temp_files_removed)


def _freed(nbytes: int) -> str:
    if nbytes >= 0:
        return f"{human_bytes(nbytes)} freed"
    return f"{human_bytes(-nbytes)} more in use until the condemned packs are deleted"


COMMANDS = [prune]
