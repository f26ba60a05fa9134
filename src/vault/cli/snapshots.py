"""Browsing and managing snapshots: snapshots, ls, diff, forget."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import click

from vault.cli.main import CliState, output_options, pass_state
from vault.errors import UsageError
from vault.operations import manage
from vault.operations.restore import resolve_subtree, split_ref
from vault.repository.snapshot import Snapshot
from vault.units import human_bytes


def _parse_time(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{flag} {value!r}: expected an ISO date/time such as 2026-11-20 "
                         "or '2026-11-20 14:00+01:00'") from exc
    # Without an offset a time is local, as the tables show local time.
    return parsed if parsed.tzinfo else parsed.astimezone()


def _snapshot_json(s: Snapshot) -> dict[str, object]:
    return {"id": s.id, **s.model_dump(mode="json")}


@click.command()
@click.option("--sort", type=click.Choice(["time", "size", "name"]), default="time",
              show_default=True, help="Order of the list.")
@click.option("--reverse", is_flag=True, help="Reverse the order.")
@click.option("--path", "path_filter", multiple=True, help="Only snapshots of this path.")
@click.option("--tag", multiple=True, help="Only snapshots with this tag.")
@click.option("--host", help="Only snapshots from this host.")
@click.option("--since", help="Only snapshots taken at or after this time.")
@click.option("--until", help="Only snapshots taken at or before this time.")
@click.option("--status", type=click.Choice(["completed", "partial"]), help="Only this status.")
@output_options
@pass_state
def snapshots(state: CliState, sort: str, reverse: bool, path_filter: tuple[str, ...],
              tag: tuple[str, ...], host: str | None, since: str | None, until: str | None,
              status: str | None) -> None:
    """List snapshots (read from the repository itself)."""
    start, end = _parse_time(since, "--since"), _parse_time(until, "--until")
    wanted_paths = {os.path.abspath(p) for p in path_filter}
    snaps = [s for s in state.vault().repository().snapshots()
             if (not wanted_paths or wanted_paths & set(s.paths))
             and (not tag or set(tag) <= set(s.tags)) and (not host or s.host == host)
             and (start is None or s.time >= start) and (end is None or s.time <= end)
             and (status is None or s.status == status)]
    key = {"time": lambda s: (s.time, s.id), "size": lambda s: (s.summary.bytes_raw, s.time),
           "name": lambda s: (",".join(s.paths), s.time)}[sort]
    snaps.sort(key=key, reverse=reverse)
    out = state.output()
    out.table(["id", "time", "host", "tags", "paths", "size", "status"],
              [[s.short_id, s.time.astimezone().strftime("%Y-%m-%d %H:%M:%S"), s.host,
                ",".join(s.tags), ",".join(s.paths), human_bytes(s.summary.bytes_raw),
                s.status] for s in snaps])
    out.summary(snapshots=[_snapshot_json(s) for s in snaps])


def _mode_string(mode: int) -> str:
    return stat.filemode(mode)


@click.command()
@click.argument("snapshot")
@click.argument("path", default="/")
@click.option("-R", "--recursive", is_flag=True, help="List everything below PATH.")
@output_options
@pass_state
def ls(state: CliState, snapshot: str, path: str, recursive: bool) -> None:
    """List the entries of SNAPSHOT under PATH."""
    repo = state.vault().repository()
    ref, sub = split_ref(snapshot)
    snap = repo.find_snapshot(ref)
    base = "/" + "/".join(p for p in f"{sub}/{path}".split("/") if p)
    tree = resolve_subtree(repo, snap, base)
    entries = list(repo.walk(tree)) if recursive else [(n.name, n) for n in repo.load_tree(tree)]
    out = state.output()
    rows = []
    for rel, node in entries:
        full = f"{base.rstrip('/')}/{rel}"
        rows.append({"path": full, "type": node.type, "mode": node.mode, "size": node.size,
                     "mtime": datetime.fromtimestamp(node.mtime_ns / 1e9, UTC),
                     "link_target": node.link_target})
        suffix = f" -> {node.link_target}" if node.type == "symlink" else ""
        out.line(f"{_mode_string(node.mode)} {human_bytes(node.size):>10}  "
                 f"{datetime.fromtimestamp(node.mtime_ns / 1e9).strftime('%Y-%m-%d %H:%M')}  "
                 f"{full}{'/' if node.type == 'dir' else ''}{suffix}")
    out.summary(snapshot_id=snap.id, entries=rows)


@click.command()
@click.argument("first")
@click.argument("second")
@output_options
@pass_state
def diff(state: CliState, first: str, second: str) -> None:
    """Show what changed between two snapshots (+ added, - removed, M modified,
    T type changed, U metadata only)."""
    repo = state.vault().repository()
    a, b = repo.find_snapshot(first), repo.find_snapshot(second)
    changes = manage.diff_snapshots(repo, a, b)
    out = state.output()
    for c in changes:
        out.line(f"{c.change}  {c.path}")
    counts = {k: sum(1 for c in changes if c.change == k) for k in "+-MTU"}
    out.info(f"{counts['+']} added, {counts['-']} removed, {counts['M']} modified, "
             f"{counts['T']} type changed, {counts['U']} metadata changed")
    out.summary(first=a.id, second=b.id, changes=[vars(c) for c in changes], counts=counts)


@click.command()
@click.argument("snapshot_ids", nargs=-1, required=True)
@output_options
@pass_state
def forget(state: CliState, snapshot_ids: tuple[str, ...]) -> None:
    """Remove snapshots. Their data is reclaimed later by garbage collection (prune)."""
    removed = manage.forget_snapshots(state.vault(), list(snapshot_ids))
    out = state.output()
    for s in removed:
        out.line(f"removed snapshot {s.short_id}")
    out.summary(removed=[s.id for s in removed])


COMMANDS = [snapshots, ls, diff, forget]
