"""Golden plans for a synthetic two-year history, and invariants that check them
independently (so a golden file cannot simply bless whatever the code does).

The history is deterministic (random.Random(7)): a snapshot about every 6 hours, each in
one of four groups (2 hosts x 2 path sets), with bursts of manual snapshots minutes
apart, some tagged "release", and a few pre-restore safety copies.

To regenerate the golden files after an intended change, run
    VAULT_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/retention/test_retention_golden.py
and review the diff before committing it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vault.planning.retention import (
    PRE_RESTORE_REASON,
    RetentionPlan,
    RetentionPolicy,
    SnapshotRef,
    apply_policy,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("VAULT_UPDATE_GOLDEN") == "1"
START = datetime(2023, 1, 1, 2, tzinfo=UTC)  # minus the jitter: still 2023
NOW = datetime(2025, 1, 1, 6, tzinfo=UTC)
GROUPS = [
    ("alpha", ("/etc",)),
    ("alpha", ("/home", "/srv")),
    ("beta", ("/etc",)),
    ("beta", ("/home", "/srv")),
]


def synthetic_history() -> list[SnapshotRef]:
    rng = random.Random(7)
    ids: set[str] = set()
    history: list[SnapshotRef] = []

    def add(time: datetime, group: int, tags: set[str], until: datetime | None) -> None:
        snapshot_id = f"{rng.getrandbits(32):08x}"
        while snapshot_id in ids:
            snapshot_id = f"{rng.getrandbits(32):08x}"
        ids.add(snapshot_id)
        host, paths = GROUPS[group]
        if len(paths) > 1 and rng.random() < 0.5:
            paths = paths[::-1]  # the same set, listed in another order
        history.append(SnapshotRef(snapshot_id, time, host, paths, frozenset(tags), until))

    for slot in range(4 * 730):
        time = START + timedelta(hours=6 * slot, minutes=rng.randint(-90, 90))
        time = time.replace(second=rng.randrange(60))
        group = rng.randrange(len(GROUPS))
        tags = {"release"} if rng.random() < 0.03 else set()
        until = None
        if rng.random() < 0.01:
            tags.add("pre-restore")
            until = time + timedelta(days=30)
        add(time, group, tags, until)
        if rng.random() < 0.05:  # a burst of manual snapshots minutes apart
            for minutes in sorted(rng.sample(range(1, 40), rng.randint(1, 3))):
                add(time + timedelta(minutes=minutes), group, {"manual"}, None)
    return history


HISTORY = synthetic_history()

POLICIES: dict[str, tuple[RetentionPolicy, str]] = {
    "last-5": (RetentionPolicy(keep_last=5), "host,paths"),
    "hourly-24": (RetentionPolicy(keep_hourly=24), "host,paths"),
    "daily-7": (RetentionPolicy(keep_daily=7), "host,paths"),
    "monthly-unlimited": (RetentionPolicy(keep_monthly=-1), "host,paths"),
    "daily-7-weekly-4-monthly-12-yearly-3": (
        RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=3),
        "host,paths",
    ),
    "within-30d": (RetentionPolicy(keep_within=timedelta(days=30)), "host,paths"),
    "tag-release": (RetentionPolicy(keep_tags=frozenset({"release"})), "host,paths"),
    "within-2w-monthly-6": (
        RetentionPolicy(keep_within=timedelta(weeks=2), keep_monthly=6),
        "host,paths",
    ),
    "last-1-yearly-unlimited": (RetentionPolicy(keep_last=1, keep_yearly=-1), "host,paths"),
    "last-3-hourly-6-tag-release": (
        RetentionPolicy(keep_last=3, keep_hourly=6, keep_tags=frozenset({"release"})),
        "host,paths",
    ),
    "berlin-daily-10": (RetentionPolicy(keep_daily=10, timezone="Europe/Berlin"), "host,paths"),
    "new-york-daily-10": (
        RetentionPolicy(keep_daily=10, timezone="America/New_York"),
        "host,paths",
    ),
    "group-by-host-daily-7": (RetentionPolicy(keep_daily=7), "host"),
    "no-grouping-last-10-monthly-3": (RetentionPolicy(keep_last=10, keep_monthly=3), ""),
}


def plan_for(name: str) -> RetentionPlan:
    policy, group_by = POLICIES[name]
    return apply_policy(HISTORY, policy, NOW, group_by=group_by)


def golden_document(name: str) -> dict[str, Any]:
    policy, group_by = POLICIES[name]
    plan = plan_for(name)
    groups = {
        key: {
            "keep": [
                {"id": d.snapshot.id, "time": d.snapshot.time.isoformat(), "reasons": d.reasons}
                for d in group.keep
            ],
            "remove": [d.snapshot.id for d in group.remove],
        }
        for key, group in plan.groups.items()
    }
    return {
        "policy": policy.describe(),
        "timezone": policy.timezone,
        "group_by": group_by,
        "now": NOW.isoformat(),
        "counts": {"keep": len(plan.keep), "remove": len(plan.remove)},
        "groups": groups,
    }


def render(document: dict[str, Any]) -> str:
    """JSON with one kept snapshot a line and removed ids ten to a line: small files
    whose diffs show which snapshots changed side."""
    packed: dict[str, str] = {}
    groups = {}
    for key, group in document["groups"].items():
        keep_rows = [json.dumps(decision) for decision in group["keep"]]
        ids = group["remove"]
        remove_rows = [", ".join(map(json.dumps, ids[n : n + 10])) for n in range(0, len(ids), 10)]
        groups[key] = {"keep": f"@keep {key}", "remove": f"@remove {key}"}
        packed[f"@keep {key}"] = _rows(keep_rows)
        packed[f"@remove {key}"] = _rows(remove_rows)
    text = json.dumps({**document, "groups": groups}, indent=2)
    for marker, rows in packed.items():
        text = text.replace(json.dumps(marker), rows)
    return text + "\n"


def _rows(rows: list[str]) -> str:
    # The lists sit at depth 3 of the document: items at 8 spaces, the bracket at 6.
    return "[\n" + ",\n".join(" " * 8 + row for row in rows) + "\n      ]" if rows else "[]"


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_golden_plan(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    document = golden_document(name)
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(render(document))
    assert path.exists(), f"no golden file {path.name}: run with VAULT_UPDATE_GOLDEN=1"
    assert json.loads(path.read_text()) == document


def test_every_golden_file_belongs_to_a_policy() -> None:
    assert {path.stem for path in GOLDEN.glob("*.json")} == set(POLICIES)


def test_render_is_lossless() -> None:
    document = golden_document("daily-7")
    assert json.loads(render(document)) == document


# --- the history is what the goldens assume -------------------------------------------------


def test_history_exercises_every_rule() -> None:
    groups = {(s.host, tuple(sorted(s.paths))) for s in HISTORY}
    assert groups == set(GROUPS)
    assert len({s.id for s in HISTORY}) == len(HISTORY) > 2900
    assert min(s.time for s in HISTORY) < START + timedelta(days=1)
    assert max(s.time for s in HISTORY) < NOW
    assert sum("release" in s.tags for s in HISTORY) > 50
    held = [s for s in HISTORY if s.pre_restore_until is not None]
    assert any(s.pre_restore_until > NOW for s in held if s.pre_restore_until)
    assert any(s.pre_restore_until <= NOW for s in held if s.pre_restore_until)
    hours = [(s.host, sorted(s.paths), s.time.replace(minute=0, second=0)) for s in HISTORY]
    assert len(hours) - len({repr(h) for h in hours}) > 50  # many hours with two or more


# --- invariants, computed without the code under test ---------------------------------------


def by_group(group_by: str = "host,paths") -> dict[tuple[object, ...], list[SnapshotRef]]:
    groups: dict[tuple[object, ...], list[SnapshotRef]] = {}
    for s in HISTORY:
        key = (s.host if "host" in group_by else None,) + (
            (tuple(sorted(s.paths)),) if "paths" in group_by else (None,)
        )
        groups.setdefault(key, []).append(s)
    return {k: sorted(v, key=lambda s: (-s.time.timestamp(), s.id)) for k, v in groups.items()}


def kept_by(plan: RetentionPlan, reason: str) -> set[str]:
    return {d.snapshot.id for d in plan.keep if reason in d.reasons}


def held() -> set[str]:
    return {s.id for s in HISTORY if s.pre_restore_until and s.pre_restore_until > NOW}


def expected_buckets(
    count: int, bucket: Callable[[datetime], object], group_by: str = "host,paths"
) -> set[str]:
    """The newest snapshot of each of the `count` newest buckets that have one, per group."""
    expected: set[str] = set()
    for members in by_group(group_by).values():
        newest: dict[object, SnapshotRef] = {}
        for s in members:  # newest first, so the first seen per bucket is its newest
            newest.setdefault(bucket(s.time), s)
        chosen = sorted(newest.values(), key=lambda s: s.time, reverse=True)
        expected |= {s.id for s in (chosen if count == -1 else chosen[:count])}
    return expected


def local(zone: str) -> Callable[[datetime], datetime]:
    return lambda t: t.astimezone(ZoneInfo(zone))


@pytest.mark.parametrize(
    ("name", "reason", "count", "bucket", "group_by"),
    [
        ("last-5", "last snapshot", 5, lambda t: t, "host,paths"),
        ("hourly-24", "hourly snapshot", 24, lambda t: (t.date(), t.hour), "host,paths"),
        ("daily-7", "daily snapshot", 7, lambda t: t.date(), "host,paths"),
        ("monthly-unlimited", "monthly snapshot", -1, lambda t: (t.year, t.month), "host,paths"),
        (
            "berlin-daily-10",
            "daily snapshot",
            10,
            lambda t: local("Europe/Berlin")(t).date(),
            "host,paths",
        ),
        (
            "new-york-daily-10",
            "daily snapshot",
            10,
            lambda t: local("America/New_York")(t).date(),
            "host,paths",
        ),
        ("group-by-host-daily-7", "daily snapshot", 7, lambda t: t.date(), "host"),
    ],
)
def test_bucket_rules_keep_the_newest_of_the_last_n_buckets(
    name: str, reason: str, count: int, bucket: Callable[[datetime], object], group_by: str
) -> None:
    plan = plan_for(name)
    expected = expected_buckets(count, bucket, group_by)
    assert kept_by(plan, reason) == expected
    assert {d.snapshot.id for d in plan.keep} == expected | held()
    if count > 0:
        assert len(expected) == count * len(by_group(group_by))


def test_within_keeps_everything_near_each_groups_newest() -> None:
    expected = set()
    for members in by_group().values():
        cutoff = members[0].time - timedelta(days=30)
        expected |= {s.id for s in members if s.time >= cutoff}
    plan = plan_for("within-30d")
    assert kept_by(plan, "within 30d") == expected
    assert {d.snapshot.id for d in plan.keep} == expected | held()


def test_tag_keeps_exactly_the_tagged() -> None:
    plan = plan_for("tag-release")
    assert kept_by(plan, "tagged 'release'") == {s.id for s in HISTORY if "release" in s.tags}


def test_pre_restore_copies_on_hold_are_kept_by_every_policy() -> None:
    assert held()
    for name in POLICIES:
        plan = plan_for(name)
        assert held() == kept_by(plan, PRE_RESTORE_REASON), name


def test_last_1_yearly_unlimited_keeps_the_newest_and_one_per_year() -> None:
    plan = plan_for("last-1-yearly-unlimited")
    assert kept_by(plan, "yearly snapshot") == expected_buckets(-1, lambda t: t.year)
    for group in plan.groups.values():
        assert [d.snapshot.time.year for d in group.keep if "yearly snapshot" in d.reasons] == [
            2024,
            2023,
        ]


@pytest.mark.parametrize(
    ("combined", "parts"),
    [
        (
            "daily-7-weekly-4-monthly-12-yearly-3",
            [
                RetentionPolicy(keep_daily=7),
                RetentionPolicy(keep_weekly=4),
                RetentionPolicy(keep_monthly=12),
                RetentionPolicy(keep_yearly=3),
            ],
        ),
        (
            "within-2w-monthly-6",
            [RetentionPolicy(keep_within=timedelta(weeks=2)), RetentionPolicy(keep_monthly=6)],
        ),
        (
            "last-3-hourly-6-tag-release",
            [
                RetentionPolicy(keep_last=3),
                RetentionPolicy(keep_hourly=6),
                RetentionPolicy(keep_tags=frozenset({"release"})),
            ],
        ),
    ],
)
def test_a_combined_policy_keeps_the_union_of_its_rules(
    combined: str, parts: list[RetentionPolicy]
) -> None:
    union: set[str] = set()
    for part in parts:
        union |= {d.snapshot.id for d in apply_policy(HISTORY, part, NOW).keep}
    assert {d.snapshot.id for d in plan_for(combined).keep} == union


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_plan_partitions_the_history_newest_first(name: str) -> None:
    plan = plan_for(name)
    kept = [d.snapshot for d in plan.keep]
    removed = [d.snapshot for d in plan.remove]
    assert {s.id for s in kept} | {s.id for s in removed} == {s.id for s in HISTORY}
    assert len(kept) + len(removed) == len(HISTORY)
    for decisions in (kept, removed):
        assert decisions == sorted(decisions, key=lambda s: (-s.time.timestamp(), s.id))
    assert all(d.reasons for d in plan.keep)
    assert sum(len(g.keep) for g in plan.groups.values()) == len(kept)
