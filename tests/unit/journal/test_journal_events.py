"""Event models: the registry, secret screening, and upcasting of old payloads on read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from vault.errors import UnknownEventType
from vault.foundation.actor import Actor
from vault.journal import (
    EVENT_TYPES,
    BackupRequested,
    Event,
    Journal,
    KeyAdded,
    parse_event,
    register_upcaster,
)
from vault.journal import events as events_module
from vault.journal.events import missing_upcasters, secret_keys

SHIPPED = {
    "RepositoryInitialized", "KeyAdded", "KeyRemoved", "KeyChanged", "StaleLockRemoved",
    "StorageLow", "StorageRecovered", "BackupGroupCompleted",
    "BackupRequested", "BackupStarted", "BackupProgressed", "BackupCompleted", "BackupFailed",
    "RestoreRequested", "RestoreStarted", "RestoreProgressed", "RestoreCompleted",
    "RestoreFailed", "VerifyRequested", "VerifyStarted", "VerifyProgressed", "VerifyCompleted",
    "VerifyFailed", "SnapshotCorrupted", "SnapshotForgotten", "CommandFailed",
    "PruneRequested", "PruneStarted", "PruneProgressed", "PruneCompleted", "PruneFailed",
    "JournalVerified", "JournalTamperingDetected", "ProjectionsRebuilt", "JobQueued",
    "JobClaimed", "JobInterrupted",
    "JobCancelled", "JobRejected", "NotificationSent", "NotificationFailed",
    "ScheduleAdded", "ScheduleRemoved", "SchedulePaused", "ScheduleResumed",
    "ScheduleRunQueued", "ScheduleRunMissed", "ScheduleRunSkipped", "ScheduleRunCompleted",
    "ScheduleRetentionApplied", "ScheduleRetentionChanged", "RestoreUndoable", "RestoreUndone",
    "RestoreReported", "SnapshotExported", "SnapshotImported", "RestoreHookRan",
    "LockSkipped", "JournalSpoolReplayed",
    "RepairStarted", "RepairCompleted", "RepairFailed", "SnapshotRepaired",
    "CopyRequested", "SnapshotCopied", "CopyCompleted", "CopyFailed",
}  # fmt: skip


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Let a test define event types and upcasters without leaking them to other tests."""
    types = dict(EVENT_TYPES)
    upcasters = dict(events_module._UPCASTERS)
    yield
    EVENT_TYPES.clear()
    EVENT_TYPES.update(types)
    events_module._UPCASTERS.clear()
    events_module._UPCASTERS.update(upcasters)


def test_every_shipped_type_is_registered_under_its_class_name() -> None:
    assert set(EVENT_TYPES) == SHIPPED
    assert all(cls.__name__ == name for name, cls in EVENT_TYPES.items())
    assert all(cls.schema_version == 1 for cls in EVENT_TYPES.values())
    assert missing_upcasters() == []


def test_progress_events_carry_the_shared_fields() -> None:
    progress_fields = {
        "job_id", "phase", "bytes_done", "bytes_total", "items_done", "items_total",
        "rate_bps", "eta_seconds", "current",
    }  # fmt: skip
    for name in ("BackupProgressed", "RestoreProgressed", "VerifyProgressed"):
        assert set(EVENT_TYPES[name].model_fields) == progress_fields


def test_events_refuse_unknown_fields_and_mutation() -> None:
    with pytest.raises(ValidationError, match="extra"):
        KeyAdded(repo_id="r", key_id="k", label=None, colour="red")  # type: ignore[call-arg]
    event = KeyAdded(repo_id="r", key_id="k", label=None)
    with pytest.raises(ValidationError):
        event.label = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "options",
    [
        {"password": "x"},
        {"db": {"Passphrase": "x"}},
        {"remotes": [{"s3": {"AWS_SECRET_ACCESS_KEY": "x"}}]},
        {"auth_token": "x"},
        {"api_key": "x"},
        {"key_material": "x"},
    ],
)
def test_secret_looking_keys_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="secrets never belong in journal events"):
        BackupRequested(job_id="j", repository="/r", paths=[], tags=[], options=options)


def test_secret_error_does_not_echo_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        BackupRequested(
            job_id="j", repository="/r", paths=[], tags=[], options={"password": "hunter2"}
        )
    assert "hunter2" not in str(caught.value)
    assert "options.password" in str(caught.value)


def test_harmless_keys_pass() -> None:
    options = {"key_id": "k1", "keep": {"daily": 7}, "exclude": ["*.key"]}
    assert secret_keys(options) == []
    BackupRequested(job_id="j", repository="/r", paths=[], tags=[], options=options)


def test_a_type_name_can_only_be_defined_once(scratch_registry: None) -> None:
    with pytest.raises(TypeError, match="defined twice"):
        type("KeyAdded", (Event,), {"__annotations__": {"x": "int"}})


def _ship_widget_renamed_v1() -> Any:
    class WidgetRenamed(Event):
        widget_id: str
        name: str

    return WidgetRenamed


def _ship_widget_renamed_v2() -> Any:
    """v2 renames `name` to `new_name` and adds `reason`; v1 rows are upcast on read."""
    del EVENT_TYPES["WidgetRenamed"]

    class WidgetRenamed(Event):
        schema_version: ClassVar[int] = 2
        widget_id: str
        new_name: str
        reason: str | None

    @register_upcaster("WidgetRenamed", from_version=1)
    def upcast_v1_v2(payload: dict[str, Any]) -> dict[str, Any]:
        old = dict(payload)
        return {"widget_id": old["widget_id"], "new_name": old.pop("name"), "reason": None}

    return WidgetRenamed


def test_old_payloads_are_upcast_on_read(
    alice: Actor, scratch_registry: None, journal_path: Path
) -> None:
    v1 = _ship_widget_renamed_v1()
    with Journal(journal_path, actor=alice) as journal:
        journal.append("widget-1", v1(widget_id="w1", name="old"))

    v2 = _ship_widget_renamed_v2()
    with Journal(journal_path, actor=alice) as journal:
        journal.append("widget-1", v2(widget_id="w1", new_name="newer", reason="typo"))
        first, second = journal.stream("widget-1")
        assert journal.verify().ok  # upcasting never rewrites the stored row

    assert first.schema_version == 1
    assert first.payload == {"widget_id": "w1", "name": "old"}
    assert first.event == v2(widget_id="w1", new_name="old", reason=None)
    assert second.schema_version == 2
    assert second.event == v2(widget_id="w1", new_name="newer", reason="typo")
    assert missing_upcasters() == []


def test_upcasters_register_once(scratch_registry: None) -> None:
    register_upcaster("Nothing", 1)(lambda payload: payload)
    with pytest.raises(ValueError, match="already exists"):
        register_upcaster("Nothing", 1)(lambda payload: payload)


def test_a_version_without_upcaster_is_reported(scratch_registry: None) -> None:
    del EVENT_TYPES["KeyAdded"]

    class KeyAdded(Event):  # shipped v3 and forgot the v2 -> v3 step
        schema_version: ClassVar[int] = 3
        repo_id: str

    register_upcaster("KeyAdded", 1)(lambda payload: payload)
    assert missing_upcasters() == ["KeyAdded v2"]
    with pytest.raises(UnknownEventType, match="'KeyAdded' \\(schema version 2\\)"):
        parse_event("KeyAdded", 1, {"repo_id": "r"})


def test_unknown_types_and_newer_versions_stop_the_read(
    alice: Actor, scratch_registry: None, journal_path: Path
) -> None:
    v1 = _ship_widget_renamed_v1()
    with Journal(journal_path, actor=alice) as journal:
        journal.append("widget-1", v1(widget_id="w1", name="old"))
        journal.append("job-j", KeyAdded(repo_id="r", key_id="k", label=None))

        del EVENT_TYPES["WidgetRenamed"]  # as seen by an older vault
        with pytest.raises(UnknownEventType, match="unknown event type 'WidgetRenamed'"):
            journal.read()
        assert [e.type for e in journal.read(types=["KeyAdded"])] == ["KeyAdded"]
        assert journal.verify().ok  # verification does not need the models

    with pytest.raises(UnknownEventType, match=r"\(schema version 2\)"):
        parse_event("KeyAdded", 2, {"repo_id": "r", "key_id": "k", "label": None})
