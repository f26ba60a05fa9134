"""Bucket boundaries follow the policy's timezone, including days that DST shortens or
lengthens and the hour that occurs twice when it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vault.planning.retention import RetentionPolicy, SnapshotRef, apply_policy

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def utc(id: str, time: str) -> SnapshotRef:
    return SnapshotRef(id, datetime.fromisoformat(time).replace(tzinfo=UTC), "h", ("/",))


def kept_ids(history: list[SnapshotRef], policy: RetentionPolicy) -> list[str]:
    return [d.snapshot.id for d in apply_policy(history, policy, NOW).keep]


def daily(zone: str) -> RetentionPolicy:
    return RetentionPolicy(keep_daily=-1, timezone=zone)


@pytest.mark.parametrize(
    ("zone", "history", "expected"),
    [
        pytest.param(
            # 2024-03-31 in Berlin has 23 hours: 23:00Z on the 30th to 22:00Z on the 31st.
            "Europe/Berlin",
            [
                utc("apr01-start", "2024-03-31T22:00"),  # 00:00 CEST, April 1
                utc("mar31-end", "2024-03-31T21:59"),  # 23:59 CEST
                utc("mar31-start", "2024-03-30T23:00"),  # 00:00 CET, March 31
                utc("mar30-end", "2024-03-30T22:59"),  # 23:59 CET
            ],
            ["apr01-start", "mar31-end", "mar30-end"],
            id="berlin-spring-forward",
        ),
        pytest.param(
            # 2024-10-27 in Berlin has 25 hours: 22:00Z on the 26th to 23:00Z on the 27th.
            "Europe/Berlin",
            [
                utc("oct28-start", "2024-10-27T23:00"),  # 00:00 CET, October 28
                utc("oct27-end", "2024-10-27T22:59"),  # 23:59 CET
                utc("oct27-start", "2024-10-26T22:00"),  # 00:00 CEST, October 27
                utc("oct26-end", "2024-10-26T21:59"),  # 23:59 CEST
            ],
            ["oct28-start", "oct27-end", "oct26-end"],
            id="berlin-fall-back",
        ),
        pytest.param(
            # 2024-03-10 in New York has 23 hours: 05:00Z on the 10th to 04:00Z on the 11th.
            "America/New_York",
            [
                utc("mar11-start", "2024-03-11T04:00"),  # 00:00 EDT, March 11
                utc("mar10-end", "2024-03-11T03:59"),  # 23:59 EDT
                utc("mar10-start", "2024-03-10T05:00"),  # 00:00 EST, March 10
                utc("mar09-end", "2024-03-10T04:59"),  # 23:59 EST
            ],
            ["mar11-start", "mar10-end", "mar09-end"],
            id="new-york-spring-forward",
        ),
        pytest.param(
            # 2024-11-03 in New York has 25 hours: 04:00Z on the 3rd to 05:00Z on the 4th.
            "America/New_York",
            [
                utc("nov04-start", "2024-11-04T05:00"),  # 00:00 EST, November 4
                utc("nov03-end", "2024-11-04T04:59"),  # 23:59 EST
                utc("nov03-start", "2024-11-03T04:00"),  # 00:00 EDT, November 3
                utc("nov02-end", "2024-11-03T03:59"),  # 23:59 EDT
            ],
            ["nov04-start", "nov03-end", "nov02-end"],
            id="new-york-fall-back",
        ),
    ],
)
def test_daily_buckets_follow_local_days_across_dst(
    zone: str, history: list[SnapshotRef], expected: list[str]
) -> None:
    assert kept_ids(history, daily(zone)) == expected


def test_the_same_instants_bucket_differently_in_utc() -> None:
    history = [utc("late", "2024-11-04T03:30"), utc("early", "2024-11-03T23:00")]
    # 23:30 EST and 18:00 EST on November 3 in New York; two days in UTC.
    assert kept_ids(history, daily("America/New_York")) == ["late"]
    assert kept_ids(history, daily("UTC")) == ["late", "early"]


def test_the_repeated_hour_at_the_end_of_dst_is_two_hourly_buckets() -> None:
    # 00:30Z and 01:30Z on 2024-10-27 both read 02:30 on a Berlin clock (CEST, then CET).
    history = [
        utc("second-0230", "2024-10-27T01:30"),
        utc("first-0230", "2024-10-27T00:30"),
        utc("first-0210", "2024-10-27T00:10"),
    ]
    policy = RetentionPolicy(keep_hourly=-1, timezone="Europe/Berlin")
    assert kept_ids(history, policy) == ["second-0230", "first-0230"]


def test_weekly_and_monthly_edges_are_local() -> None:
    # 2024-01-31T23:30Z is already Thursday February 1 in Berlin.
    history = [utc("feb", "2024-01-31T23:30"), utc("jan", "2024-01-31T22:30")]
    berlin = RetentionPolicy(keep_monthly=-1, timezone="Europe/Berlin")
    assert kept_ids(history, berlin) == ["feb", "jan"]
    assert kept_ids(history, RetentionPolicy(keep_monthly=-1)) == ["feb"]
    # Sunday 2024-01-07T23:30Z is Monday of the next ISO week in Berlin.
    sunday = [utc("mon-local", "2024-01-07T23:30"), utc("sun", "2024-01-07T22:30")]
    assert kept_ids(sunday, RetentionPolicy(keep_weekly=-1, timezone="Europe/Berlin")) == [
        "mon-local",
        "sun",
    ]
    assert kept_ids(sunday, RetentionPolicy(keep_weekly=-1)) == ["mon-local"]


def test_yearly_edge_is_local() -> None:
    history = [utc("new-year", "2023-12-31T23:30"), utc("old-year", "2023-12-31T22:59")]
    berlin = RetentionPolicy(keep_yearly=-1, timezone="Europe/Berlin")
    assert kept_ids(history, berlin) == ["new-year", "old-year"]
    assert kept_ids(history, RetentionPolicy(keep_yearly=-1)) == ["new-year"]


def test_snapshot_times_in_other_offsets_are_compared_as_instants() -> None:
    tokyo = datetime.fromisoformat("2024-06-02T08:00+09:00")  # 2024-06-01T23:00Z
    history = [
        SnapshotRef("tokyo", tokyo, "h", ("/",)),
        utc("utc", "2024-06-01T22:00"),
    ]
    plan = apply_policy(history, RetentionPolicy(keep_daily=-1), NOW)
    assert [d.snapshot.id for d in plan.keep] == ["tokyo"]
    assert [d.snapshot.id for d in plan.remove] == ["utc"]


def test_times_given_in_a_local_zone_are_ordered_and_measured_as_instants() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # Same wall clock, 02:45 CEST comes an hour *before* 02:15 CET (fold=1) on 2024-10-27;
    # a same-zone comparison of the datetimes would get that order wrong.
    cest = datetime(2024, 10, 27, 2, 45, tzinfo=berlin)
    cet = datetime(2024, 10, 27, 2, 15, fold=1, tzinfo=berlin)
    history = [SnapshotRef("cest", cest, "h"), SnapshotRef("cet", cet, "h")]
    assert kept_ids(history, RetentionPolicy(keep_last=1)) == ["cet"]
    # Seven days across the change are 7 x 24 real hours, not a wall-clock week.
    week_before = datetime(2024, 10, 20, 2, 15, tzinfo=berlin)  # CEST: 169 hours before `cet`
    history.append(SnapshotRef("week-before", week_before, "h"))
    plan = apply_policy(history, RetentionPolicy(keep_within=timedelta(days=7)), NOW)
    assert [d.snapshot.id for d in plan.remove] == ["week-before"]
