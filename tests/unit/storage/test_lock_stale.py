"""is_stale as a pure function, and the lock object's JSON form."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from vault.repository.lock import LockInfo, is_stale

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
HERE = "backup-host"


def lock(**changes: object) -> LockInfo:
    base = LockInfo(
        lock_id="ab" * 32, exclusive=False, host=HERE, pid=4242, user="alice",
        created=NOW - timedelta(hours=1), heartbeat=NOW - timedelta(seconds=10),
        lease_seconds=300.0, operation="backup", pid_namespace="4026531836",
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


#: the live pids on this host and when each started (clock ticks after boot)
ALIVE = {4242: 5000}


def probe(pid: int, started: int | None) -> bool:
    """What vault.foundation.processes answers, from the table: a pid alive now but started at
    another time than recorded is another process."""
    return pid in ALIVE and started in (None, ALIVE[pid])


# (case, lock, this pid namespace, expected)
CASES = [
    ("fresh heartbeat, live pid", lock(), "4026531836", False),
    ("heartbeat just inside the lease", lock(heartbeat=NOW - timedelta(seconds=300)),
     "4026531836", False),
    ("heartbeat past the lease", lock(heartbeat=NOW - timedelta(seconds=301)),
     "4026531836", True),
    ("past the lease on another host", lock(host="elsewhere", heartbeat=NOW - timedelta(hours=2)),
     "4026531836", True),
    ("same host, dead pid", lock(pid=9999), "4026531836", True),
    ("same host, live pid, the recorded start time", lock(pid_started=5000), "4026531836",
     False),
    ("same host, pid reused by a later process", lock(pid_started=4000), "4026531836", True),
    ("other host, pid 'reused': pids mean nothing there", lock(host="elsewhere",
     pid_started=4000), "4026531836", False),
    ("other host, 'dead' pid: pids mean nothing there", lock(host="elsewhere", pid=9999),
     "4026531836", False),
    ("same host name, other pid namespace (another container)", lock(pid=9999),
     "4026532000", False),
    ("no /proc on either side", lock(pid=9999, pid_namespace=None), None, True),
    ("heartbeat in the future (clock skew)", lock(heartbeat=NOW + timedelta(minutes=5)),
     "4026531836", False),
    ("short lease expired", lock(lease_seconds=1.0, heartbeat=NOW - timedelta(seconds=2)),
     "4026531836", True),
    ("unreadable lock is never judged stale", lock(state="unreadable", pid=9999,
     heartbeat=NOW - timedelta(days=9)), "4026531836", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "info", "namespace", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_is_stale(case: str, info: LockInfo, namespace: str | None, expected: bool) -> None:
    verdict = is_stale(
        info, NOW, HERE, this_pid_namespace=namespace, pid_alive=probe
    )
    assert verdict is expected, case


def test_json_round_trip_and_fields() -> None:
    info = lock(exclusive=True, operation="prune", pid_started=5000)
    data = info.to_json()
    record = json.loads(data)
    assert set(record) == {
        "lock_id", "exclusive", "host", "pid", "user", "created", "heartbeat",
        "lease_seconds", "operation", "pid_namespace", "pid_started",
    }  # fmt: skip
    assert record["pid_started"] == 5000
    assert record["created"] == "2024-06-01T11:00:00+00:00"
    assert LockInfo.from_json(info.lock_id, data) == info


def test_unknown_fields_from_a_newer_vault_are_ignored() -> None:
    record = json.loads(lock().to_json())
    record["future_field"] = [1, 2]
    assert LockInfo.from_json("ab" * 32, json.dumps(record).encode()) == lock()


def test_a_lock_from_before_start_times_reads_as_unknown_start() -> None:
    record = json.loads(lock(pid_started=5000).to_json())
    del record["pid_started"]
    assert LockInfo.from_json("ab" * 32, json.dumps(record).encode()) == lock()


@pytest.mark.parametrize(
    "change",
    [{"pid": True}, {"pid": "12"}, {"exclusive": "yes"}, {"lock_id": "cd" * 32},
     {"created": "yesterday"}, {"pid_namespace": 7}, {"pid_started": "5000"},
     {"pid_started": True}],
)  # fmt: skip
def test_malformed_lock_objects_are_refused(change: dict[str, object]) -> None:
    record = json.loads(lock().to_json())
    record.update(change)
    with pytest.raises((ValueError, KeyError, TypeError)):
        LockInfo.from_json("ab" * 32, json.dumps(record).encode())


def test_holder_reads_like_a_person_would_say_it() -> None:
    assert lock().holder == "alice@backup-host pid 4242 (backup)"
