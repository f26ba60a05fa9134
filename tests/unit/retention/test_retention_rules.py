"""Each retention rule on small hand-made histories, at its edges."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from vault.planning.retention import (
    EMPTY_POLICY_REASON,
    NOT_KEPT_REASON,
    PRE_RESTORE_REASON,
    RetentionPlan,
    RetentionPolicy,
    SnapshotRef,
    apply_policy,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def snap(
    id: str,
    time: str,
    *,
    host: str = "h",
    paths: Iterable[str] = ("/data",),
    tags: Iterable[str] = (),
    pre_restore_until: datetime | None = None,
) -> SnapshotRef:
    when = datetime.fromisoformat(time)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return SnapshotRef(
        id, when, host, tuple(paths), frozenset(tags), pre_restore_until=pre_restore_until
    )


def kept(plan: RetentionPlan) -> list[str]:
    return [decision.snapshot.id for decision in plan.keep]


def removed(plan: RetentionPlan) -> list[str]:
    return [decision.snapshot.id for decision in plan.remove]


def reasons(plan: RetentionPlan) -> dict[str, list[str]]:
    return {d.snapshot.id: d.reasons for d in plan.keep + plan.remove}


HISTORY = [  # deliberately out of order
    snap("c", "2024-05-03T10:00"),
    snap("a", "2024-05-01T10:00"),
    snap("e", "2024-05-05T10:00"),
    snap("b", "2024-05-02T10:00"),
    snap("d", "2024-05-04T10:00"),
]


# --- empty input, empty policy -------------------------------------------------------------


def test_no_snapshots_gives_an_empty_plan() -> None:
    plan = apply_policy([], RetentionPolicy(keep_last=3), NOW)
    assert (plan.keep, plan.remove, plan.groups) == ([], [], {})


@pytest.mark.parametrize(
    "policy",
    [
        RetentionPolicy(),
        RetentionPolicy(keep_last=0, keep_daily=0, keep_yearly=0),
        RetentionPolicy(keep_within=timedelta(0)),
    ],
)
def test_an_empty_policy_keeps_everything(policy: RetentionPolicy) -> None:
    assert policy.is_empty()
    plan = apply_policy(HISTORY, policy, NOW)
    assert kept(plan) == ["e", "d", "c", "b", "a"]
    assert plan.remove == []
    assert all(d.reasons == [EMPTY_POLICY_REASON] for d in plan.keep)


@pytest.mark.parametrize(
    "policy",
    [
        RetentionPolicy(keep_last=1),
        RetentionPolicy(keep_hourly=-1),
        RetentionPolicy(keep_within=timedelta(seconds=1)),
        RetentionPolicy(keep_tags=frozenset({"x"})),
    ],
)
def test_any_rule_makes_a_policy_non_empty(policy: RetentionPolicy) -> None:
    assert not policy.is_empty()


# --- keep-last -----------------------------------------------------------------------------


def test_keep_last_keeps_the_newest_n() -> None:
    plan = apply_policy(HISTORY, RetentionPolicy(keep_last=3), NOW)
    assert kept(plan) == ["e", "d", "c"]
    assert removed(plan) == ["b", "a"]
    assert reasons(plan) == {
        "e": ["last snapshot"],
        "d": ["last snapshot"],
        "c": ["last snapshot"],
        "b": [NOT_KEPT_REASON],
        "a": [NOT_KEPT_REASON],
    }


def test_keep_last_larger_than_the_history_keeps_all() -> None:
    assert removed(apply_policy(HISTORY, RetentionPolicy(keep_last=50), NOW)) == []


def test_keep_last_unlimited_keeps_all() -> None:
    plan = apply_policy(HISTORY, RetentionPolicy(keep_last=-1), NOW)
    assert kept(plan) == ["e", "d", "c", "b", "a"]
    assert all(d.reasons == ["last snapshot"] for d in plan.keep)


def test_equal_times_are_ordered_by_id() -> None:
    same = [snap("y", "2024-01-01T12:00"), snap("x", "2024-01-01T12:00")]
    plan = apply_policy(same, RetentionPolicy(keep_last=1), NOW)
    assert (kept(plan), removed(plan)) == (["x"], ["y"])


# --- calendar buckets ----------------------------------------------------------------------


def test_two_snapshots_in_the_same_hour_keep_only_the_newer() -> None:
    history = [
        snap("h10b", "2024-01-01T10:59:59"),
        snap("h10a", "2024-01-01T10:00:00"),
        snap("h09", "2024-01-01T09:59:59.999999"),
        snap("h08", "2024-01-01T08:30"),
    ]
    plan = apply_policy(history, RetentionPolicy(keep_hourly=2), NOW)
    assert kept(plan) == ["h10b", "h09"]
    assert removed(plan) == ["h10a", "h08"]
    assert reasons(plan)["h09"] == ["hourly snapshot"]


def test_midnight_starts_a_new_day() -> None:
    history = [
        snap("d2", "2024-01-02T00:00:00"),
        snap("d1-late", "2024-01-01T23:59:59"),
        snap("d1-early", "2024-01-01T00:00:00"),
        snap("d0", "2023-12-31T23:59:59"),
    ]
    plan = apply_policy(history, RetentionPolicy(keep_daily=-1), NOW)
    assert kept(plan) == ["d2", "d1-late", "d0"]
    assert removed(plan) == ["d1-early"]


def test_buckets_without_snapshots_do_not_count() -> None:
    history = [
        snap("jan10", "2024-01-10T08:00"),
        snap("jan05", "2024-01-05T08:00"),
        snap("jan01", "2024-01-01T08:00"),
    ]
    plan = apply_policy(history, RetentionPolicy(keep_daily=2), NOW)
    assert kept(plan) == ["jan10", "jan05"]


def test_iso_week_53_spans_new_year() -> None:
    # 2020-12-31 (Thu) and 2021-01-03 (Sun) are both in ISO week 2020-W53.
    history = [
        snap("mon-w01", "2021-01-04T09:00"),
        snap("sun-w53", "2021-01-03T09:00"),
        snap("thu-w53", "2020-12-31T09:00"),
        snap("w52", "2020-12-27T09:00"),
    ]
    plan = apply_policy(history, RetentionPolicy(keep_weekly=2), NOW)
    assert kept(plan) == ["mon-w01", "sun-w53"]
    assert removed(plan) == ["thu-w53", "w52"]


def test_iso_week_one_starts_in_the_old_year() -> None:
    # 2024-12-30 (Mon) already belongs to ISO week 2025-W01.
    history = [
        snap("thu", "2025-01-02T09:00"),
        snap("mon", "2024-12-30T09:00"),
        snap("sun", "2024-12-29T09:00"),
    ]
    plan = apply_policy(history, RetentionPolicy(keep_weekly=5), NOW)
    assert kept(plan) == ["thu", "sun"]
    assert removed(plan) == ["mon"]


def test_monthly_and_yearly_keep_the_newest_of_each() -> None:
    history = [
        snap("2024-03", "2024-03-15T00:00"),
        snap("2024-02b", "2024-02-29T23:59"),
        snap("2024-02a", "2024-02-01T00:00"),
        snap("2023-12", "2023-12-31T23:59"),
        snap("2023-06", "2023-06-01T00:00"),
        snap("2022-01", "2022-01-01T00:00"),
    ]
    monthly = apply_policy(history, RetentionPolicy(keep_monthly=3), NOW)
    assert kept(monthly) == ["2024-03", "2024-02b", "2023-12"]
    yearly = apply_policy(history, RetentionPolicy(keep_yearly=-1), NOW)
    assert kept(yearly) == ["2024-03", "2023-12", "2022-01"]
    assert reasons(yearly)["2022-01"] == ["yearly snapshot"]


def test_unlimited_daily_keeps_one_per_day_with_snapshots() -> None:
    history = [snap(f"s{i:02}", f"2024-01-{1 + i // 3:02}T{i % 3 * 8:02}:00") for i in range(15)]
    plan = apply_policy(history, RetentionPolicy(keep_daily=-1), NOW)
    assert kept(plan) == ["s14", "s11", "s08", "s05", "s02"]


# --- keep-within ---------------------------------------------------------------------------


def test_keep_within_is_counted_from_the_newest_snapshot_and_includes_the_edge() -> None:
    history = [
        snap("newest", "2024-01-10T12:00"),
        snap("edge", "2024-01-03T12:00"),  # exactly 7 days older: kept
        snap("outside", "2024-01-03T11:59:59.999999"),
    ]
    # `now` is years later: keep-within does not count from now, so nothing ages out.
    plan = apply_policy(history, RetentionPolicy(keep_within=timedelta(days=7)), NOW)
    assert kept(plan) == ["newest", "edge"]
    assert removed(plan) == ["outside"]
    assert reasons(plan)["edge"] == ["within 7d"]


def test_keep_within_ignores_snapshots_dated_after_now() -> None:
    now = datetime(2024, 1, 11, tzinfo=UTC)
    history = [
        snap("wrong-clock", "2099-01-01T00:00"),
        snap("newest", "2024-01-10T12:00"),
        snap("day-old", "2024-01-09T12:00"),
        snap("old", "2024-01-01T00:00"),
    ]
    plan = apply_policy(history, RetentionPolicy(keep_within=timedelta(days=2)), now)
    assert kept(plan) == ["wrong-clock", "newest", "day-old"]
    assert removed(plan) == ["old"]


def test_keep_within_keeps_everything_when_every_snapshot_is_in_the_future() -> None:
    now = datetime(2000, 1, 1, tzinfo=UTC)
    plan = apply_policy(HISTORY, RetentionPolicy(keep_within=timedelta(hours=1)), now)
    assert removed(plan) == []


# --- keep-tag ------------------------------------------------------------------------------


def test_keep_tag_keeps_snapshots_with_any_of_the_tags() -> None:
    history = [
        snap("both", "2024-01-04T00:00", tags={"release", "audit"}),
        snap("audit", "2024-01-03T00:00", tags={"audit"}),
        snap("other", "2024-01-02T00:00", tags={"nightly"}),
        snap("none", "2024-01-01T00:00"),
    ]
    policy = RetentionPolicy(keep_tags=frozenset({"release", "audit"}))
    plan = apply_policy(history, policy, NOW)
    assert kept(plan) == ["both", "audit"]
    assert removed(plan) == ["other", "none"]
    assert reasons(plan)["both"] == ["tagged 'audit'", "tagged 'release'"]


# --- pre-restore safety copies -------------------------------------------------------------


def test_pre_restore_copy_is_kept_while_its_hold_lasts() -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    history = [
        snap("newest", "2024-05-31T00:00"),
        snap("held", "2024-05-30T00:00", pre_restore_until=now + timedelta(seconds=1)),
        snap("ends-now", "2024-05-29T00:00", pre_restore_until=now),
        snap("expired", "2024-05-28T00:00", pre_restore_until=now - timedelta(days=1)),
    ]
    plan = apply_policy(history, RetentionPolicy(keep_last=1), now)
    assert kept(plan) == ["newest", "held"]
    assert reasons(plan)["held"] == [PRE_RESTORE_REASON]
    assert removed(plan) == ["ends-now", "expired"]


def test_pre_restore_copy_kept_by_an_empty_policy_says_both() -> None:
    held = snap("held", "2024-05-30T00:00", pre_restore_until=NOW + timedelta(days=1))
    plan = apply_policy([held], RetentionPolicy(), NOW)
    assert reasons(plan) == {"held": [PRE_RESTORE_REASON, EMPTY_POLICY_REASON]}


# --- combinations --------------------------------------------------------------------------


def test_reasons_accumulate_in_rule_order() -> None:
    history = [
        snap("new", "2024-01-02T10:00", tags={"release"}),
        snap("old", "2023-12-01T10:00"),
    ]
    policy = RetentionPolicy(
        keep_last=1,
        keep_hourly=1,
        keep_daily=1,
        keep_weekly=1,
        keep_monthly=2,
        keep_yearly=5,
        keep_within=timedelta(days=1, hours=12),
        keep_tags=frozenset({"release"}),
    )
    plan = apply_policy(history, policy, NOW)
    assert reasons(plan) == {
        "new": [
            "last snapshot",
            "hourly snapshot",
            "daily snapshot",
            "weekly snapshot",
            "monthly snapshot",
            "yearly snapshot",
            "within 1d12h",
            "tagged 'release'",
        ],
        "old": ["monthly snapshot", "yearly snapshot"],
    }


def test_a_snapshot_kept_by_any_rule_is_kept() -> None:
    history = [
        snap("a", "2024-01-03T00:00"),
        snap("b", "2024-01-02T00:00"),
        snap("c", "2023-01-01T00:00", tags={"keep"}),
    ]
    policy = RetentionPolicy(keep_last=1, keep_tags=frozenset({"keep"}))
    assert kept(apply_policy(history, policy, NOW)) == ["a", "c"]


# --- inputs it refuses ---------------------------------------------------------------------


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SnapshotRef("x", datetime(2024, 1, 1), "h")
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_policy(HISTORY, RetentionPolicy(keep_last=1), datetime(2024, 1, 1))


# --- the worked example in docs/retention.md ----------------------------------------------

DOC_EXAMPLE = [
    snap("1a2b3c4d", "2024-06-10T18:00"),
    snap("5e6f7a8b", "2024-06-10T09:00"),
    snap("9c0d1e2f", "2024-06-09T18:00"),
    snap("3a4b5c6d", "2024-06-08T18:00", tags={"release"}),
    snap("7e8f9a0b", "2024-06-03T18:00"),
    snap("c1d2e3f4", "2024-05-31T18:00"),
    snap("a5b6c7d8", "2024-05-20T18:00"),
    snap("e9f0a1b2", "2024-04-30T18:00"),
]


def test_the_documented_example() -> None:
    policy = RetentionPolicy(
        keep_daily=3, keep_weekly=2, keep_monthly=3, keep_tags=frozenset({"release"})
    )
    assert reasons(apply_policy(DOC_EXAMPLE, policy, NOW)) == {
        "1a2b3c4d": ["daily snapshot", "weekly snapshot", "monthly snapshot"],
        "5e6f7a8b": [NOT_KEPT_REASON],
        "9c0d1e2f": ["daily snapshot", "weekly snapshot"],
        "3a4b5c6d": ["daily snapshot", "tagged 'release'"],
        "7e8f9a0b": [NOT_KEPT_REASON],
        "c1d2e3f4": ["monthly snapshot"],
        "a5b6c7d8": [NOT_KEPT_REASON],
        "e9f0a1b2": ["monthly snapshot"],
    }
    within = apply_policy(DOC_EXAMPLE, RetentionPolicy(keep_within=timedelta(days=7)), NOW)
    assert removed(within) == ["c1d2e3f4", "a5b6c7d8", "e9f0a1b2"]
