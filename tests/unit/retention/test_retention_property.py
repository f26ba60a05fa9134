"""Retention's safety rules as properties: for random histories of full, filtered and
grouped snapshots under random policies, the plan never removes the last complete snapshot
of a source, never splits a backup group, and a filtered snapshot never changes what
happens to the others.

Seeded `random` (hypothesis is not a dependency of vault): each case prints its seed on
failure, so a failing history can be replayed with `_history(random.Random(seed))`.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vault.planning.retention import (
    GROUP_REASON,
    LAST_COMPLETE_REASON,
    RetentionPlan,
    RetentionPolicy,
    SnapshotRef,
    apply_policy,
)
from vault.repository.snapshot import Snapshot

NOW = datetime(2030, 6, 1, tzinfo=UTC)
CASES_PER_BATCH = 60
BATCHES = 8

# What each source can be backed up as: the whole source, or narrowed.
ENTITY_IDS = (["1"], ["2"], ["1", "2"], ["3"])
FILE_FILTERS: tuple[dict[str, Any], ...] = (
    {}, {"excludes": [], "includes": [], "force": True},  # both: the whole source
    {"excludes": ["*.log"]}, {"includes": ["srv/app/conf/*"]},
)


def _source(name: str, rng: random.Random, narrowed: bool) -> dict[str, Any]:
    if name == "files":
        return {"paths": ["/srv/app"], "source": {"type": "files", "name": "files",
                                                 "label": "files"},
                "filters": rng.choice(FILE_FILTERS[2:] if narrowed else FILE_FILTERS[:2])}
    describe: dict[str, Any] = {"type": "sqlite", "name": name, "path": f"/db/{name}"}
    if name == "mongo":
        describe = {"type": "mongodb", "name": name, "filters": {}}
        if narrowed:
            describe["filters"]["entity"] = {"entity": "org", "ids": rng.choice(ENTITY_IDS)}
    elif narrowed:
        describe["entity"] = {"entity": "project", "ids": rng.choice(ENTITY_IDS)}
    return {"paths": [name], "filters": {},
            "source": {"type": describe["type"], "name": name, "label": name,
                       "describe": describe}}


def _snapshot(number: int, when: datetime, host: str, fields: dict[str, Any],
              rng: random.Random, group_id: str | None = None) -> Snapshot:
    return Snapshot(
        id=f"{number:04d}" + "0" * 60, time=when, host=host, user="u", uid=0, tree="00" * 32,
        vault_version="0", status="partial" if rng.random() < 0.15 else "completed",
        tags=rng.choice([[], [], ["release"], ["pre-restore"]]),
        group_id=group_id, group_time=when if group_id else None, **fields)


def _history(rng: random.Random) -> list[Snapshot]:
    """Single backups (whole or narrowed) and group backups of several sources at once."""
    names = ["files", "chat-db", "settings", "mongo"]
    when = NOW - timedelta(days=rng.randint(30, 400))
    history: list[Snapshot] = []
    for step in range(rng.randint(1, 30)):
        when += timedelta(hours=rng.choice([1, 5, 24, 24, 24 * 7, 24 * 31]))
        host = rng.choice(["web1", "web1", "web2"])
        if rng.random() < 0.3:  # a group: several sources, one restore point
            members = rng.sample(names, rng.randint(2, len(names)))
            for offset, name in enumerate(members):
                fields = _source(name, rng, narrowed=rng.random() < 0.2)
                history.append(_snapshot(len(history), when + timedelta(seconds=offset), host,
                                         fields, rng, group_id=f"group-{step}"))
        else:
            fields = _source(rng.choice(names), rng, narrowed=rng.random() < 0.5)
            history.append(_snapshot(len(history), when, host, fields, rng))
    return history


def _policy(rng: random.Random) -> RetentionPolicy:
    def count() -> int | None:
        return rng.choice([None, None, 0, 1, 2, 3, -1])

    return RetentionPolicy(
        keep_last=count(), keep_daily=count(), keep_weekly=count(), keep_monthly=count(),
        keep_within=rng.choice([None, None, timedelta(days=3)]),
        keep_tags=frozenset(rng.choice([(), (), ("release",)])))


def _kept(plan: RetentionPlan) -> set[str]:
    return {d.snapshot.id for d in plan.keep}


def _check_case(seed: int) -> None:
    rng = random.Random(seed)
    history = _history(rng)
    policy = _policy(rng)
    group_by = rng.choice(["host,paths", "host", "paths", ""])
    refs = [SnapshotRef.from_snapshot(s) for s in history]
    # A schedule judges only its own snapshots; groups reaching outside are held.
    judged = [r for r in refs if rng.random() < 0.8] if rng.random() < 0.3 else refs
    held = frozenset(r.group_id for r in refs if r not in judged and r.group_id)
    plan = apply_policy(judged, policy, NOW, group_by=group_by, held_groups=held)
    kept = _kept(plan)

    assert sorted(kept | {d.snapshot.id for d in plan.remove}) == sorted(r.id for r in judged)
    assert not kept & {d.snapshot.id for d in plan.remove}
    assert all(d.reasons for d in plan.keep)
    # the newest complete snapshot of every source (per host and selection) stays
    newest: dict[tuple[str, str, str], SnapshotRef] = {}
    for ref in sorted(judged, key=lambda r: (r.time, r.id)):
        if ref.complete:
            newest[(ref.host, ref.source, ref.selection)] = ref
    for ref in newest.values():
        assert ref.id in kept, f"last complete {ref.source} on {ref.host} removed"
    # a group is kept whole or forgotten whole; one reaching outside the plan is kept
    for group in {r.group_id for r in judged if r.group_id}:
        members = {r.id for r in judged if r.group_id == group}
        assert members <= kept or not members & kept, f"{group} split"
        if group in held:
            assert members <= kept, f"{group} split from its unjudged members"
    # filtered snapshots count neither toward keeping nor losing full ones (those outside
    # groups, and of a selection no group member has: a member competes with them)
    grouped_selections = {r.selection for r in judged if r.group_id}
    lone_filtered = {r.id for r in judged if r.selection and r.group_id is None
                     and r.selection not in grouped_selections}
    full = {r.id for r in judged if not r.selection}
    others = [r for r in judged if r.id not in lone_filtered]
    without = apply_policy(others, policy, NOW, group_by=group_by, held_groups=held)
    assert _kept(without) & full == kept & full
    # --allow-empty only ever lets more go
    assert _kept(apply_policy(judged, policy, NOW, group_by=group_by, held_groups=held,
                              allow_empty=True)) <= kept


@pytest.mark.parametrize("batch", range(BATCHES))
def test_random_histories_keep_last_complete_and_groups_whole(batch: int) -> None:
    for seed in range(batch * CASES_PER_BATCH, (batch + 1) * CASES_PER_BATCH):
        try:
            _check_case(seed)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}: {exc}") from exc


def test_the_safety_rules_say_why_they_keep() -> None:
    """The issue's history: one full chat-db, then two project backups; keep-last 2 per
    group keeps the full one in a group of its own (and with keep-tag only, by the
    last-complete rule); a group's stale member is kept through its group."""
    rng = random.Random(7)
    full = _snapshot(0, NOW - timedelta(days=3), "h", _source("chat-db", rng, False), rng)
    full = full.model_copy(update={"status": "completed", "tags": []})
    parts = [_snapshot(i, NOW - timedelta(days=3 - i), "h",
                       _source("chat-db", rng, True), rng).model_copy(
                           update={"status": "completed", "tags": []}) for i in (1, 2)]
    refs = [SnapshotRef.from_snapshot(s) for s in [full, *parts]]
    plan = apply_policy(refs, RetentionPolicy(keep_tags=frozenset({"none"})), NOW)
    reasons = {d.snapshot.id: d.reasons for d in plan.keep}
    assert reasons[full.id] == [LAST_COMPLETE_REASON.format(source="chat-db")]
    assert apply_policy(refs, RetentionPolicy(keep_tags=frozenset({"none"})), NOW,
                        allow_empty=True).keep == []
    # group-a: the full chat-db and a settings snapshot; a newer full chat-db follows
    settings = SnapshotRef.from_snapshot(_snapshot(
        3, full.time, "h", _source("settings", rng, False), rng).model_copy(
            update={"group_id": "group-a", "tags": []}))
    newer = SnapshotRef.from_snapshot(full.model_copy(update={"id": "9" * 64,
                                                              "time": NOW}))
    old = SnapshotRef.from_snapshot(full.model_copy(update={"group_id": "group-a"}))
    plan = apply_policy([old, settings, newer], RetentionPolicy(keep_last=1), NOW,
                        allow_empty=True)
    assert {d.snapshot.id: d.reasons for d in plan.keep}[old.id] == [
        GROUP_REASON.format(group="group-a")]
