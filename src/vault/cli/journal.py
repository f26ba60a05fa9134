"""`vault journal`: read, verify and rebuild the append-only journal."""

from __future__ import annotations

import click

from vault.cli.common import parse_time
from vault.cli.main import CliState, output_options, pass_state
from vault.cli.output import Output
from vault.errors import EXIT_FAILED, RepositoryNotFound
from vault.journal import JournalVerified, ProjectionsRebuilt
from vault.operations.journal_check import (
    JournalCheck,
    check_journal,
    lost_message,
    record_check,
)
from vault.operations.journal_check import (
    forget_lost as forget_lost_snapshots,
)
from vault.repository.repository import Repository, read_config
from vault.runtime.app import Vault


@click.group(invoke_without_command=True)
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
@click.option("--stream", help="Only events of this stream (a job id, `repository-<id>`).")
@click.option("--since", help="Only events recorded at or after this time (ISO).")
@click.option("--until", help="Only events recorded at or before this time (ISO).")
@click.option("--actor", help="Only events recorded by this OS user.")
@click.option("--limit", type=int, help="At most N events (the newest N).")
@output_options
@pass_state
@click.pass_context
def journal(ctx: click.Context, state: CliState, types: tuple[str, ...], stream: str | None,
            since: str | None, until: str | None, actor: str | None,
            limit: int | None) -> None:
    """Show journal events, oldest first (filters combine)."""
    if ctx.invoked_subcommand is not None:
        return
    events = state.vault().journal.read(
        types=list(types) or None, stream_id=stream, since=parse_time(since, "--since"),
        until=parse_time(until, "--until"), actor=actor, limit=limit,
        descending=limit is not None)
    if limit is not None:
        events.reverse()
    out = state.output()
    for e in events:
        if out.json_mode:
            continue
        detail = ", ".join(f"{k}={v}" for k, v in e.payload.items()
                           if k in ("job_id", "snapshot_id", "status", "message", "phase",
                                    "bytes_done", "ok", "error_kind"))
        out.line(f"{e.seq:>6}  {e.recorded_at.isoformat(timespec='seconds')}  "
                 f"{e.actor.user:<10} {e.type:<22} {detail}")
    out.summary(events=[{"seq": e.seq, "stream_id": e.stream_id,
                         "stream_version": e.stream_version, "type": e.type,
                         "schema_version": e.schema_version, "payload": e.payload,
                         "recorded_at": e.recorded_at, "actor": e.actor.model_dump(),
                         "hash": e.hash} for e in events])


@journal.command("verify")
@click.option("--chain-only", is_flag=True,
              help="Check only the hash chain (no passphrase, no repository).")
@click.option("--forget-lost", is_flag=True,
              help="Accept snapshots the repository lost: journal them as forgotten.")
@output_options
@pass_state
def journal_verify(state: CliState, chain_only: bool, forget_lost: bool) -> None:
    """Check the hash chain and the anchors in the repository; exit 1 naming what disagrees."""
    vault = state.vault()
    repo = None if chain_only else _repository_if_initialised(vault)
    check = check_journal(vault, repo)
    forgotten = forget_lost_snapshots(vault, repo, check) if forget_lost and repo else []
    # Tampering is journaled (a fresh segment) and the head anchored before the
    # verification itself is journaled.
    record_check(vault, repo, check)
    vault.journal.append("journal", JournalVerified(
        ok=not check.tampered, events_checked=check.chain.events_checked,
        first_bad_seq=check.chain.first_bad_seq,
        reason=check.findings[0] if check.findings else None))
    head_seq, head_hash = vault.journal.head()
    out = state.output()
    _show_check(out, check, chain_only)
    for snapshot_id in forgotten:
        out.line(f"forgotten: snapshot {snapshot_id[:8]}, lost by the repository")
    out.line(f"head: seq {head_seq} hash {head_hash}")
    out.summary(ok=not check.problems, events_checked=check.chain.events_checked,
                first_bad_seq=check.chain.first_bad_seq, reason=check.chain.reason,
                head_seq=head_seq, head_hash=head_hash, segment_seq=check.segment_seq,
                repository_checked=check.repository_checked,
                anchors_checked=check.anchors_checked, findings=check.findings,
                lost_snapshots=sorted(check.lost_snapshots),
                unseen_snapshots=check.unseen_snapshots, tampering_seq=check.tampering_seq,
                forgotten_snapshots=forgotten)
    if check.problems:
        raise click.exceptions.Exit(EXIT_FAILED)


def _repository_if_initialised(vault: Vault) -> Repository | None:
    try:
        read_config(vault.storage)  # no passphrase asked where there is no repository
    except RepositoryNotFound:
        return None
    return vault.repository()


def _show_check(out: Output, check: JournalCheck, chain_only: bool) -> None:
    segment = f" (segment since seq {check.segment_seq})" if check.segment_seq > 1 else ""
    if check.chain.ok:
        out.line(f"journal ok: {check.chain.events_checked} events, hash chain intact{segment}")
    else:
        out.line(f"journal TAMPERED at seq {check.chain.first_bad_seq}: {check.chain.reason}")
    if not check.repository_checked:
        out.line("anchors: not checked (" + ("--chain-only" if chain_only else "no repository")
                 + ")")
    elif not check.anchor_findings:
        out.line(f"anchors: {check.anchors_checked} in the repository agree")
    for finding in check.anchor_findings:
        out.line(f"journal TAMPERED: {finding}")
    for snapshot_id, seq in check.lost_snapshots.items():
        out.line(f"MISSING: {lost_message(snapshot_id, seq)}")
    for snapshot_id in check.unseen_snapshots:
        out.line(f"note: snapshot {snapshot_id[:8]} is in the repository but not in this "
                 "journal (another host's, or this journal lost its record)")
    if check.tampering_seq is not None:
        out.line(f"recorded as JournalTamperingDetected at seq {check.tampering_seq}: "
                 "a fresh segment starts there")
    if check.anchor_error:
        out.line(f"note: no anchor written: {check.anchor_error}")


@journal.command("rebuild")
@output_options
@pass_state
def journal_rebuild(state: CliState) -> None:
    """Drop every projection (jobs, snapshots, ...) and rebuild it from the events."""
    from vault.journal import PROJECTIONS

    j = state.vault().journal
    replayed = j.rebuild_projections()
    names = [p.name for p in PROJECTIONS]
    j.append("journal", ProjectionsRebuilt(projections=names, events_replayed=replayed))
    state.output().line(f"rebuilt {', '.join(names)} from {replayed} events")
    state.output().summary(projections=names, events_replayed=replayed)


COMMANDS = [journal]
