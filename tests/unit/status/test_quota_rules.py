"""The pure quota rules: would a backup exceed, did usage cross `warn_at`, growth ratios."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vault.config.model import VaultConfig
from vault.config.types import parse_percent
from vault.planning.quota import StorageUsage, growth_ratios, threshold_crossing, would_exceed
from vault.repository.snapshot import SnapshotSummary

GiB = 1 << 30


@pytest.mark.parametrize(
    ("used", "new", "quota", "expected"),
    [
        (48 * GiB, 3 * GiB, 50 * GiB, True),
        (47 * GiB, 3 * GiB, 50 * GiB, False),  # reaching the quota exactly is allowed
        (47 * GiB, 3 * GiB + 1, 50 * GiB, True),
        (0, 0, 0, False),
        (10, -5, 10, False),  # a negative estimate never makes room
        (10**15, 10**15, None, False),  # no quota, never refused
    ],
)
def test_would_exceed(used: int, new: int, quota: int | None, expected: bool) -> None:
    assert would_exceed(used, new, quota) is expected


def usage(used: int, quota: int | None = 100, warn: float = 80.0) -> StorageUsage:
    return StorageUsage(used=used, quota=quota, warn_percent=warn)


def test_usage_percent_and_low() -> None:
    assert usage(79).percent == 79.0 and not usage(79).low
    assert usage(80).low and usage(120).low
    assert usage(5, quota=None).percent is None and not usage(10**12, quota=None).low


@pytest.mark.parametrize(
    ("used", "last", "expected"),
    [
        (85, None, "StorageLow"),  # first crossing
        (85, "StorageRecovered", "StorageLow"),  # crossing again after a recovery
        (90, "StorageLow", None),  # still above: not on every backup
        (50, "StorageLow", "StorageRecovered"),  # dropped below
        (50, "StorageRecovered", None),
        (50, None, None),
    ],
)
def test_threshold_crossing(used: int, last: str | None, expected: str | None) -> None:
    assert threshold_crossing(usage(used), last) == expected  # type: ignore[arg-type]


def test_removing_the_quota_ends_a_standing_storage_low() -> None:
    assert threshold_crossing(usage(10**9, quota=None), "StorageLow") == "StorageRecovered"
    assert threshold_crossing(usage(10**9, quota=None), None) is None


def summary(read: int, new: int, stored: int, seconds: float) -> SnapshotSummary:
    return SnapshotSummary(bytes_read=read, bytes_new=new, bytes_stored=stored,
                           duration_seconds=seconds)


def test_growth_ratios_from_recent_snapshots() -> None:
    ratios = growth_ratios([summary(1000, 100, 50, 2.0), summary(3000, 300, 150, 2.0),
                            summary(0, 0, 0, 1.0)])  # read nothing: ignored
    assert ratios.snapshots == 2
    assert ratios.new_per_read == pytest.approx(0.1)
    assert ratios.stored_per_new == pytest.approx(0.5)
    assert ratios.read_bytes_per_second == pytest.approx(1000.0)
    assert ratios.stored_for(10_000) == 500


def test_growth_ratios_without_history_count_everything() -> None:
    ratios = growth_ratios([])
    assert (ratios.new_per_read, ratios.stored_per_new, ratios.snapshots) == (1.0, 1.0, 0)
    assert ratios.read_bytes_per_second is None
    assert ratios.stored_for(12345) == 12345


@pytest.mark.parametrize(("text", "expected"),
                         [("80%", 80.0), ("80", 80.0), (" 92.5 % ", 92.5), (80, 80.0),
                          (1, 1.0), ("100%", 100.0)])
def test_parse_percent(text: object, expected: float) -> None:
    assert parse_percent(text) == expected


@pytest.mark.parametrize("text", ["", "%", "eighty", "0%", "101%", -5, True, None, [80]])
def test_bad_percent(text: object) -> None:
    with pytest.raises(ValueError):
        parse_percent(text)


def test_quota_and_warn_at_in_the_config() -> None:
    config = VaultConfig.model_validate({"repository": {"quota": "50G", "warn_at": "90%"}})
    assert (config.repository.quota, config.repository.warn_at) == (50 * GiB, 90.0)
    assert VaultConfig().repository.warn_at == 80.0
    with pytest.raises(ValidationError, match="percentage"):
        VaultConfig.model_validate({"repository": {"warn_at": "150%"}})
    with pytest.raises(ValidationError, match="extra"):
        VaultConfig.model_validate({"repository": {"quota_warn_percent": 80}})
