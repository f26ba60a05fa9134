"""`vault journal`: read, verify and rebuild the append-only journal."""

from __future__ import annotations

import click

from vault.cli.common import parse_time
from vault.cli.main import CliState, output_options, pass_state
from vault.errors import EXIT_FAILED
from vault.journal import ProjectionsRebuilt


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
@output_options
@pass_state
def journal_verify(state: CliState) -> None:
    """Walk the hash chain; exit 1 naming the first bad seq if anything was altered."""
    j = state.vault().journal
    result = j.verify()
    j.append("journal", result.to_event())
    # A chain cannot reveal a truncated tail by itself: the head is printed so it can be
    # anchored elsewhere (a ticket, a log shipper) and compared later.
    head_seq, head_hash = j.head()
    out = state.output()
    if result.ok:
        out.line(f"journal ok: {result.events_checked} events, hash chain intact")
    else:
        out.line(f"journal TAMPERED at seq {result.first_bad_seq}: {result.reason}")
    out.line(f"head: seq {head_seq} hash {head_hash}")
    out.summary(ok=result.ok, events_checked=result.events_checked,
                first_bad_seq=result.first_bad_seq, reason=result.reason,
                head_seq=head_seq, head_hash=head_hash)
    if not result.ok:
        raise click.exceptions.Exit(EXIT_FAILED)


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
