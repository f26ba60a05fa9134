"""Browsing and managing snapshots: snapshots, ls, diff, forget."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import click

from vault.cli.common import latest_options, parse_time, pinned_ref, snapshot_criteria
from vault.cli.main import CliState, output_options, pass_state
from vault.errors import UsageError
from vault.foundation.units import human_bytes
from vault.operations import manage
from vault.operations.restore import resolve_subtree, split_ref
from vault.planning.retention import Decision, RetentionPolicy, parse_keep_within
from vault.repository.damage import corrupted_snapshots, snapshot_status
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot


def _snapshot_json(s: Snapshot, corrupted: dict[str, list[str]] | None = None
                   ) -> dict[str, object]:
    damaged = (corrupted or {}).get(s.id)
    doc: dict[str, object] = {"id": s.id, **s.model_dump(mode="json")}
    doc["status"] = snapshot_status(s.status, s.tags, damaged is not None)
    if damaged is not None:
        doc["damaged_paths"] = damaged
    return doc


@click.command()
@click.option("--sort", type=click.Choice(["time", "size", "name"]), default="time",
              show_default=True, help="Order of the list.")
@click.option("--reverse", is_flag=True, help="Reverse the order.")
@click.option("--path", "path_filter", multiple=True, help="Only snapshots of this path.")
@click.option("--tag", multiple=True, help="Only snapshots with this tag.")
@click.option("--host", help="Only snapshots from this host.")
@click.option("--since", help="Only snapshots taken at or after this time.")
@click.option("--until", help="Only snapshots taken at or before this time.")
@click.option("--status", type=click.Choice(["completed", "partial", "corrupted", "repaired"]),
              help="Only this status (corrupted: damage found by verify, not repaired).")
@output_options
@pass_state
def snapshots(state: CliState, sort: str, reverse: bool, path_filter: tuple[str, ...],
              tag: tuple[str, ...], host: str | None, since: str | None, until: str | None,
              status: str | None) -> None:
    """List snapshots (read from the repository itself)."""
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    wanted_paths = {os.path.abspath(p) for p in path_filter}
    repo = state.vault().repository()
    corrupted = corrupted_snapshots(repo)

    def shown_status(s: Snapshot) -> str:
        return snapshot_status(s.status, s.tags, s.id in corrupted)

    snaps = [s for s in repo.snapshots()
             if (not wanted_paths or wanted_paths & set(s.paths))
             and (not tag or set(tag) <= set(s.tags)) and (not host or s.host == host)
             and (start is None or s.time >= start) and (end is None or s.time <= end)
             and (status is None or shown_status(s) == status)]
    key = {"time": lambda s: (s.time, s.id), "size": lambda s: (s.summary.bytes_raw, s.time),
           "name": lambda s: (",".join(s.paths), s.time)}[sort]
    snaps.sort(key=key, reverse=reverse)
    out = state.output()
    out.table(["id", "time", "host", "tags", "source", "paths", "size", "status"],
              [[s.short_id, s.time.astimezone().strftime("%Y-%m-%d %H:%M:%S"), s.host,
                ",".join(s.tags), str(s.source.get("type", "files")), ",".join(s.paths),
                human_bytes(s.summary.bytes_raw), shown_status(s)] for s in snaps])
    if corrupted:
        out.info(f"{len(corrupted)} snapshot(s) damaged: see `vault verify` and "
                 "docs/repair.md (`vault repair`)")
    out.summary(snapshots=[_snapshot_json(s, corrupted) for s in snaps])


def _mode_string(mode: int) -> str:
    return stat.filemode(mode)


@click.command()
@click.argument("snapshot")
@click.argument("path", default="/")
@click.option("-R", "--recursive", is_flag=True, help="List everything below PATH.")
@latest_options
@output_options
@pass_state
def ls(state: CliState, snapshot: str, path: str, recursive: bool,
       pick_source: str | None, pick_path: str | None, pick_host: str | None) -> None:
    """List the entries of SNAPSHOT under PATH (`latest`: the newest snapshot holding
    PATH). With --source, a snapshot whose source declares entities shows its entity
    hierarchy with counts instead."""
    repo = state.vault().repository()
    ref, sub = split_ref(snapshot)
    base = "/" + "/".join(p for p in f"{sub}/{path}".split("/") if p)
    snap, _ = pinned_ref(repo, ref, snapshot_criteria(pick_source, pick_path, pick_host,
                                                      inside=base))
    if pick_source is not None and snap.source.get("meta", {}).get("entities"):
        _show_entities(state, repo, snap)
        return
    tree = resolve_subtree(repo, snap, base)
    entries = list(repo.walk(tree)) if recursive else [(n.name, n) for n in repo.load_tree(tree)]
    out = state.output()
    damaged = set(corrupted_snapshots(repo).get(snap.id, []))
    status = snapshot_status(snap.status, snap.tags, bool(damaged))
    if damaged:
        out.info(f"snapshot {snap.short_id} is corrupted: {len(damaged)} damaged path(s), "
                 "marked [damaged] (docs/repair.md)")
    rows = []
    for rel, node in entries:
        full = f"{base.rstrip('/')}/{rel}"
        rows.append({"path": full, "type": node.type, "mode": node.mode, "size": node.size,
                     "mtime": datetime.fromtimestamp(node.mtime_ns / 1e9, UTC),
                     "link_target": node.link_target, "damaged": full in damaged})
        suffix = f" -> {node.link_target}" if node.type == "symlink" else ""
        mark = "  [damaged]" if full in damaged else ""
        out.line(f"{_mode_string(node.mode)} {human_bytes(node.size):>10}  "
                 f"{datetime.fromtimestamp(node.mtime_ns / 1e9).strftime('%Y-%m-%d %H:%M')}  "
                 f"{full}{'/' if node.type == 'dir' else ''}{suffix}{mark}")
    out.summary(snapshot_id=snap.id, status=status, entries=rows)


def _show_entities(state: CliState, repo: Repository, snap: Snapshot) -> None:
    from vault.restore.items import SnapshotItems
    from vault.sources.entities import EntityNode
    from vault.sources.registry import browser_for

    source_type = str(snap.source.get("type", "files"))
    browser = browser_for(source_type)
    if browser is None:
        raise UsageError(f"snapshot {snap.short_id}: a {source_type} snapshot has no "
                         "entities to show")
    out = state.output()
    roots = browser.contents(SnapshotItems(repo, snap)).entity_tree

    def show(node: EntityNode, depth: int) -> dict[str, object]:
        dates = f"  {node.first} .. {node.last}" if node.first or node.last else ""
        out.line(f"{'  ' * depth}{'└─ ' if depth else ''}{node.name} ({node.collection}): "
                 f"{node.documents} document(s){dates}")
        return {"name": node.name, "collection": node.collection,
                "documents": node.documents, "first": node.first, "last": node.last,
                "children": [show(child, depth + 1) for child in node.children]}

    out.line(f"snapshot {snap.short_id} of {snap.source.get('label')} "
             f"({snap.time.astimezone():%Y-%m-%d %H:%M})")
    out.summary(snapshot_id=snap.id, entities=[show(root, 0) for root in roots])


@click.command()
@click.argument("first")
@click.argument("second")
@latest_options
@output_options
@pass_state
def diff(state: CliState, first: str, second: str, pick_source: str | None,
         pick_path: str | None, pick_host: str | None) -> None:
    """Show what changed between two snapshots (+ added, - removed, M modified,
    T type changed, U metadata only). --source/--path/--host narrow both references."""
    repo = state.vault().repository()
    criteria = snapshot_criteria(pick_source, pick_path, pick_host)
    a, b = pinned_ref(repo, first, criteria)[0], pinned_ref(repo, second, criteria)[0]
    changes = manage.diff_snapshots(repo, a, b)
    out = state.output()
    for c in changes:
        out.line(f"{c.change}  {c.path}")
    counts = {k: sum(1 for c in changes if c.change == k) for k in "+-MTU"}
    out.info(f"{counts['+']} added, {counts['-']} removed, {counts['M']} modified, "
             f"{counts['T']} type changed, {counts['U']} metadata changed")
    out.summary(first=a.id, second=b.id, changes=[vars(c) for c in changes], counts=counts)


def _policy(state: CliState, keep: dict[str, int | None], within: str | None,
            tags: tuple[str, ...]) -> RetentionPolicy | None:
    """The policy from flags, else from [retention] in the config, else None."""
    if any(v is not None for v in keep.values()) or within or tags:
        try:
            return RetentionPolicy(
                keep_last=keep["last"], keep_hourly=keep["hourly"], keep_daily=keep["daily"],
                keep_weekly=keep["weekly"], keep_monthly=keep["monthly"],
                keep_yearly=keep["yearly"],
                keep_within=parse_keep_within(within) if within else None,
                keep_tags=frozenset(tags))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    configured = state.vault().config.retention
    if configured is None:
        return None
    policy = RetentionPolicy.from_config(configured)
    return None if policy.is_empty() else policy


def _decision_json(d: Decision) -> dict[str, object]:
    return {"id": d.snapshot.id, "time": d.snapshot.time, "host": d.snapshot.host,
            "paths": list(d.snapshot.paths), "source": d.snapshot.source,
            "selection": d.snapshot.selection, "complete": d.snapshot.complete,
            "group_id": d.snapshot.group_id, "reasons": d.reasons}


@click.command()
@click.argument("snapshot_ids", nargs=-1)
@click.option("--keep-last", type=int, help="Keep the N newest snapshots.")
@click.option("--keep-hourly", type=int, help="Keep the newest snapshot of each of N hours.")
@click.option("--keep-daily", type=int, help="Keep the newest snapshot of each of N days.")
@click.option("--keep-weekly", type=int, help="Keep the newest of each of N ISO weeks.")
@click.option("--keep-monthly", type=int, help="Keep the newest of each of N months.")
@click.option("--keep-yearly", type=int, help="Keep the newest of each of N years.")
@click.option("--keep-within", metavar="DURATION",
              help="Keep everything within DURATION (e.g. 7d, 2w, 1y6m) of the newest.")
@click.option("--keep-tag", multiple=True, help="Keep snapshots with this tag (repeatable).")
@click.option("--group-by", default="host,paths", show_default=True,
              type=click.Choice(["host,paths", "host", "paths", ""]),
              help="Apply the policy separately per group.")
@click.option("--allow-empty", is_flag=True,
              help="Let the policy forget the last complete snapshot of a source too.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@output_options
@pass_state
def forget(state: CliState, snapshot_ids: tuple[str, ...], keep_last: int | None,
           keep_hourly: int | None, keep_daily: int | None, keep_weekly: int | None,
           keep_monthly: int | None, keep_yearly: int | None, keep_within: str | None,
           keep_tag: tuple[str, ...], group_by: str, allow_empty: bool, dry_run: bool) -> None:
    """Remove snapshots: the given SNAPSHOT_IDS, or those a retention policy does not keep.

    The policy comes from the --keep-* flags, or from [retention] in the config when no
    flag and no id is given. What a snapshot holds (entity ids, tables, filters) is part
    of its group; the newest complete snapshot of each source is kept (unless
    --allow-empty) and a backup group's snapshots are kept or forgotten together. Every
    removal is journaled with its reason. The data is reclaimed later by garbage
    collection (prune).
    """
    keep = {"last": keep_last, "hourly": keep_hourly, "daily": keep_daily,
            "weekly": keep_weekly, "monthly": keep_monthly, "yearly": keep_yearly}
    out = state.output()
    if snapshot_ids:
        if any(v is not None for v in keep.values()) or keep_within or keep_tag:
            raise UsageError("give snapshot ids or --keep-* rules, not both")
        targets = (manage.forget_targets(state.vault().repository(), list(snapshot_ids))
                   if dry_run else manage.forget_snapshots(state.vault(), list(snapshot_ids)))
        for s in targets:
            damaged = f" (damaged: {s.damaged})" if s.damaged else ""
            out.line(f"{'would remove' if dry_run else 'removed'} snapshot {s.short_id}"
                     f"{damaged}")
        out.summary(removed=[s.id for s in targets], dry_run=dry_run)
        return
    policy = _policy(state, keep, keep_within, keep_tag)
    if policy is None:
        raise UsageError("nothing to forget: give snapshot ids, --keep-* rules, or a "
                         "[retention] policy in the config")
    plan = manage.apply_retention(state.vault(), policy, group_by, dry_run,
                                  allow_empty=allow_empty)
    verb = "would remove" if dry_run else "removed"
    for key, group in plan.groups.items():
        out.line(f"{key}: keep {len(group.keep)}, {verb.split()[-1]} {len(group.remove)}")
        for d in group.keep:
            out.line(f"  keep   {d.snapshot.id[:8]}  {d.snapshot.time:%Y-%m-%d %H:%M}  "
                     f"{', '.join(d.reasons)}")
        for d in group.remove:
            out.line(f"  {verb.split()[-1]:<6} {d.snapshot.id[:8]}  "
                     f"{d.snapshot.time:%Y-%m-%d %H:%M}")
    out.info(f"policy: {policy.describe()}; {verb} {len(plan.remove)} snapshot(s)")
    out.summary(dry_run=dry_run, policy=policy.describe(),
                keep=[_decision_json(d) for d in plan.keep],
                removed=[_decision_json(d) for d in plan.remove])


COMMANDS = [snapshots, ls, diff, forget]
