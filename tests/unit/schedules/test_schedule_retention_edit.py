"""Changing the retention of a command-line schedule (the TUI's schedule editor): the new
policy is journaled, read back exactly (keep_within included), survives a projection
rebuild, and leaves the timetable where it stood; vault.toml schedules are refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vault.config.model import Retention, Schedule, VaultConfig
from vault.errors import UsageError
from vault.journal import Journal
from vault.journal import events as ev
from vault.runtime.effective_schedules import (
    ScheduleInConfig,
    ScheduleNotFound,
    add_schedule,
    find_schedule,
    set_schedule_retention,
)

T0 = datetime(2026, 3, 2, 0, 0, 30, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> VaultConfig:
    data = tmp_path / "data"
    data.mkdir()
    return VaultConfig.model_validate({
        "state_dir": str(tmp_path / "state"),
        "repository": {"url": str(tmp_path / "repo")},
        "sources": [{"type": "files", "name": "docs", "paths": [str(data)]}],
        "schedules": [{"name": "nightly", "cron": "daily", "retention": {"keep_last": 2}}],
    })


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "state" / "journal.db") as opened:
        yield opened


def changes(journal: Journal) -> list[ev.ScheduleRetentionChanged]:
    found = [r.event for r in journal.read(types=["ScheduleRetentionChanged"])]
    assert all(isinstance(e, ev.ScheduleRetentionChanged) for e in found)
    return found  # type: ignore[return-value]


def test_a_command_line_schedules_retention_is_replaced_and_read_back(
        config: VaultConfig, journal: Journal) -> None:
    added = add_schedule(config, journal, Schedule(
        name="often", cron="hourly", retention=Retention(keep_last=3)), T0)
    new = Retention.model_validate({"keep_daily": 7, "keep_weekly": 4, "keep_within": "1d12h",
                                    "keep_tags": ["keep"]})
    later = T0 + timedelta(hours=5)
    changed = set_schedule_retention(config, journal, "often", new, later)
    assert changed.schedule.retention == new
    assert changed.schedule.retention.keep_within == timedelta(days=1, hours=12)
    # The timetable is untouched: same start, same cron, nothing marked missed.
    assert changed.created_at == added.created_at
    assert (changed.schedule.cron, changed.last_due) == (added.schedule.cron, added.last_due)
    [event] = changes(journal)
    assert event.name == "often"
    assert event.retention == {"keep_last": None, "keep_hourly": None, "keep_daily": 7,
                               "keep_weekly": 4, "keep_monthly": None, "keep_yearly": None,
                               "keep_within": "1d12h", "keep_tags": ["keep"]}

    # The same policy again journals nothing; None hands it back to [retention].
    set_schedule_retention(config, journal, "often", new, later)
    assert len(changes(journal)) == 1
    cleared = set_schedule_retention(config, journal, "often", None, later)
    assert cleared.schedule.retention is None
    assert [e.retention for e in changes(journal)][1] is None
    assert config.retention_for(cleared.schedule) == config.retention

    # The projection folds the events back to the same definition.
    set_schedule_retention(config, journal, "often", new, later)
    journal.rebuild_projections()
    assert find_schedule(config, journal, "often", later).schedule.retention == new


def test_a_vault_toml_schedule_and_an_unknown_one_are_refused(
        config: VaultConfig, journal: Journal) -> None:
    with pytest.raises(ScheduleInConfig) as refused:
        set_schedule_retention(config, journal, "nightly", Retention(keep_last=9), T0)
    assert refused.value.message == ("schedule nightly is defined in vault.toml: change its "
                                     "[[schedules]] entry there")
    with pytest.raises(ScheduleNotFound):
        set_schedule_retention(config, journal, "nope", Retention(keep_last=1), T0)
    assert isinstance(refused.value, UsageError)
    assert changes(journal) == []
    assert find_schedule(config, journal, "nightly", T0).schedule.retention == \
        Retention(keep_last=2)


def test_keep_within_is_journaled_as_vault_toml_spells_it_and_reads_back(
        config: VaultConfig, journal: Journal) -> None:
    """A definition goes through JSON into the journal: keep_within must come back."""
    add_schedule(config, journal, Schedule(
        name="often", cron="hourly",
        retention=Retention.model_validate({"keep_within": "90min"})), T0)
    [added] = [r.event for r in journal.stream("schedule-often")]
    assert isinstance(added, ev.ScheduleAdded)
    assert added.definition["retention"]["keep_within"] == "1h30min"
    found = find_schedule(config, journal, "often", T0)
    assert found.schedule.retention is not None
    assert found.schedule.retention.keep_within == timedelta(minutes=90)
