"""The hard quota's arithmetic (QuotaGuard) and the free-space reserve that scales with
the volume."""

from __future__ import annotations

import threading

import pytest

from vault.config.model import VaultConfig
from vault.errors import QuotaReached
from vault.planning.quota import (
    COMMIT_ALLOWANCE,
    INDEX_BYTES_PER_BLOB,
    QuotaGuard,
    free_space_reserve,
)

MiB = 1 << 20


def test_packs_are_admitted_until_the_next_would_pass_the_quota() -> None:
    guard = QuotaGuard(used=8 * MiB, quota=12 * MiB, repo="/r")
    guard.admit(2 * MiB, 10)
    assert guard.written == 2 * MiB + 10 * INDEX_BYTES_PER_BLOB
    with pytest.raises(QuotaReached) as raised:
        guard.admit(2 * MiB, 10)  # 8 + 2 + 2 MiB + index + commit allowance > 12 MiB
    assert raised.value.fields["written"] == "2.0 MiB"
    assert raised.value.message.startswith(
        "writing stopped at the quota (12.0 MiB): 8.0 MiB used + 2.0 MiB written, kept; ")
    assert guard.written == 2 * MiB + 10 * INDEX_BYTES_PER_BLOB  # the refused pack not
    with pytest.raises(QuotaReached):
        guard.admit(1, 1)  # once stopped, nothing more is admitted


def test_a_pack_that_leaves_exactly_the_commit_allowance_fits() -> None:
    room = 10 * MiB - COMMIT_ALLOWANCE - INDEX_BYTES_PER_BLOB
    QuotaGuard(used=0, quota=10 * MiB, repo="/r").admit(room, 1)
    with pytest.raises(QuotaReached):
        QuotaGuard(used=0, quota=10 * MiB, repo="/r").admit(room + 1, 1)


def test_threads_never_admit_more_than_the_quota_together() -> None:
    guard = QuotaGuard(used=0, quota=100 * MiB, repo="/r")
    admitted: list[int] = []

    def worker() -> None:
        for _ in range(50):
            try:
                guard.admit(MiB, 0)
            except QuotaReached:
                return
            admitted.append(MiB)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == guard.written <= 100 * MiB - COMMIT_ALLOWANCE
    assert sum(admitted) == 99 * MiB


@pytest.mark.parametrize(
    ("volume", "configured", "expected"),
    [
        (64 * MiB, None, 2 * MiB),  # a small volume keeps a small reserve
        (16 * MiB, None, 1 * MiB),  # never below 1 MiB
        (10 << 30, None, 64 * MiB),  # a large one keeps the former fixed 64 MiB
        (None, None, 64 * MiB),  # size unknown: the cautious figure
        (64 * MiB, 5 * MiB, 5 * MiB),  # a configured reserve is taken as it is
        (10 << 30, 0, 0),
    ],
)
def test_free_space_reserve(volume: int | None, configured: int | None,
                            expected: int) -> None:
    assert free_space_reserve(volume, configured) == expected


def test_free_space_reserve_is_a_size_setting() -> None:
    cfg = VaultConfig.model_validate({"repository": {"free_space_reserve": "8MiB"}})
    assert cfg.repository.free_space_reserve == 8 * MiB
    assert VaultConfig.model_validate({}).repository.free_space_reserve is None
