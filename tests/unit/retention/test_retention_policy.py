"""The policy object, its sources (config, flags) and grouping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vault.config.model import Retention
from vault.planning.retention import (
    RetentionPolicy,
    SnapshotRef,
    apply_policy,
    format_duration,
    parse_keep_within,
)
from vault.repository.snapshot import Snapshot

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


# --- building a policy ---------------------------------------------------------------------


def test_from_config_copies_every_rule() -> None:
    retention = Retention.model_validate(
        {
            "keep_last": 3,
            "keep_hourly": 24,
            "keep_daily": 7,
            "keep_weekly": 4,
            "keep_monthly": 12,
            "keep_yearly": 2,
            "keep_within": "1y6m",
            "keep_tags": ["release", "audit"],
        }
    )
    policy = RetentionPolicy.from_config(retention, timezone="Europe/Berlin")
    assert policy == RetentionPolicy(
        keep_last=3,
        keep_hourly=24,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=12,
        keep_yearly=2,
        keep_within=timedelta(days=365 + 180),
        keep_tags=frozenset({"release", "audit"}),
        timezone="Europe/Berlin",
    )


def test_the_default_config_is_an_empty_policy() -> None:
    assert RetentionPolicy.from_config(Retention()).is_empty()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep_daily": -2}, "keep_daily must be -1"),
        ({"keep_last": -5}, "keep_last must be -1"),
        ({"keep_within": timedelta(days=-1)}, "keep_within must not be negative"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown timezone"),
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetentionPolicy(**kwargs)  # type: ignore[arg-type]


def test_tags_given_as_a_list_are_stored_as_a_frozenset() -> None:
    policy = RetentionPolicy(keep_tags=["a", "b"])  # type: ignore[arg-type]
    assert policy.keep_tags == frozenset({"a", "b"})
    assert hash(policy)  # frozen and hashable


@pytest.mark.parametrize(
    ("policy", "text"),
    [
        (RetentionPolicy(), "keep everything (no rule given)"),
        (RetentionPolicy(keep_daily=7, keep_weekly=4), "keep 7 daily, 4 weekly snapshots"),
        (RetentionPolicy(keep_last=-1), "keep all latest snapshots"),
        (
            RetentionPolicy(keep_last=1, keep_yearly=-1),
            "keep 1 latest, all yearly snapshots",
        ),
        (
            RetentionPolicy(keep_within=timedelta(days=30), keep_tags=frozenset({"b", "a"})),
            "keep every snapshot within 30d of the newest and every snapshot tagged 'a', 'b'",
        ),
    ],
)
def test_describe(policy: RetentionPolicy, text: str) -> None:
    assert policy.describe() == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1y6m3d12h", timedelta(days=365 + 180 + 3, hours=12)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        ("36h", timedelta(hours=36)),
        ("90min", timedelta(minutes=90)),
    ],
)
def test_parse_keep_within(text: str, expected: timedelta) -> None:
    assert parse_keep_within(text) == expected


@pytest.mark.parametrize("text", ["", "forever", "7", "3x", "-1d"])
def test_parse_keep_within_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_keep_within(text)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(days=7), "7d"),
        (timedelta(hours=36), "1d12h"),
        (timedelta(minutes=90), "1h30min"),
        (timedelta(days=548, seconds=5), "548d5s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


# --- snapshot references -------------------------------------------------------------------


def test_from_snapshot_takes_what_retention_needs() -> None:
    snapshot = Snapshot(
        time=at(1),
        host="web1",
        user="root",
        uid=0,
        paths=["/srv", "/etc"],
        tags=["release"],
        tree="00" * 32,
        vault_version="0.1.0",
        id="ab" * 32,
    )
    until = at(2)
    ref = SnapshotRef.from_snapshot(snapshot, pre_restore_until=until)
    assert ref == SnapshotRef(
        "ab" * 32, at(1), "web1", ("/srv", "/etc"), frozenset({"release"}), until,
        source="/srv,/etc", selection="", complete=True, group_id=None,
    )
    assert SnapshotRef.from_snapshot(snapshot).pre_restore_until is None


# --- grouping ------------------------------------------------------------------------------

HISTORY = [
    SnapshotRef("w1-etc-new", at(3), "web1", ("/etc",)),
    SnapshotRef("w1-etc-old", at(1), "web1", ("/etc",)),
    SnapshotRef("w1-both-new", at(4), "web1", ("/srv", "/etc")),
    SnapshotRef("w1-both-old", at(2), "web1", ("/etc", "/srv")),  # same set, other order
    SnapshotRef("db-etc-new", at(5), "db", ("/etc",)),
    SnapshotRef("db-etc-old", at(1, 6), "db", ("/etc",)),
]


def groups_of(group_by: str) -> dict[str, list[str]]:
    plan = apply_policy(HISTORY, RetentionPolicy(keep_last=1), NOW, group_by=group_by)
    return {key: [d.snapshot.id for d in group.keep] for key, group in plan.groups.items()}


def test_default_grouping_is_host_and_sorted_paths() -> None:
    assert groups_of("host,paths") == {
        "host=db paths=/etc": ["db-etc-new"],
        "host=web1 paths=/etc": ["w1-etc-new"],
        "host=web1 paths=/etc,/srv": ["w1-both-new"],
    }
    plan = apply_policy(HISTORY, RetentionPolicy(keep_last=1), NOW)
    assert list(plan.groups) == list(groups_of("host,paths"))
    group = plan.groups["host=web1 paths=/etc,/srv"]
    assert (group.host, group.paths) == ("web1", ("/etc", "/srv"))
    assert [d.snapshot.id for d in group.remove] == ["w1-both-old"]


def test_group_by_host_only() -> None:
    assert groups_of("host") == {"host=db": ["db-etc-new"], "host=web1": ["w1-both-new"]}


def test_group_by_paths_only() -> None:
    assert groups_of(" paths ") == {
        "paths=/etc": ["db-etc-new"],
        "paths=/etc,/srv": ["w1-both-new"],
    }


def test_no_grouping_is_one_group() -> None:
    assert groups_of("") == {"all": ["db-etc-new"]}
    assert groups_of("paths,host") == groups_of("host,paths")


def test_unknown_group_field_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot group by tags"):
        apply_policy(HISTORY, RetentionPolicy(keep_last=1), NOW, group_by="host,tags")


def test_the_whole_plan_is_newest_first_across_groups() -> None:
    plan = apply_policy(HISTORY, RetentionPolicy(keep_last=1), NOW)
    assert [d.snapshot.id for d in plan.keep] == ["db-etc-new", "w1-both-new", "w1-etc-new"]
    assert [d.snapshot.id for d in plan.remove] == ["w1-both-old", "w1-etc-old", "db-etc-old"]


def test_each_group_has_its_own_keep_within_reference() -> None:
    history = [
        SnapshotRef("a-new", at(20), "a"),
        SnapshotRef("a-old", at(10), "a"),
        SnapshotRef("b-new", at(5), "b"),
        SnapshotRef("b-mid", at(3), "b"),
        SnapshotRef("b-old", at(1), "b"),
    ]
    plan = apply_policy(history, RetentionPolicy(keep_within=timedelta(days=2)), NOW)
    assert [d.snapshot.id for d in plan.keep] == ["a-new", "b-new", "b-mid"]
