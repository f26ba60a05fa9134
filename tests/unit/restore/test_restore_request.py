"""The rules of a restore request, in the core (pure): every front end (CLI, TUI, a queued
job) gets the same one-line usage errors, in the same order."""

from __future__ import annotations

import pytest

from vault.errors import UsageError
from vault.planning.restore_request import (
    FILES,
    RestoreMode,
    RestoreRequest,
    check_copy,
    check_request,
    check_target_given,
    query_of,
)


def request(**fields: object) -> RestoreRequest:
    return RestoreRequest(snapshot_ref="latest", **fields)


def test_modes_and_their_defaults() -> None:
    files = request(target="/t")
    assert (files.files_mode, files.files_on_conflict) == ("merge", "overwrite")
    assert files.source_mode is RestoreMode.NEW_TARGET
    merge = request(target="/t", mode="merge")
    assert (merge.mode, merge.files_on_conflict) == (RestoreMode.MERGE, "skip")
    assert request(target="/t", mode="replace").files_mode == "overwrite"
    assert request(mode="replace").source_mode is RestoreMode.REPLACE
    assert request(target="/t", mode="new-target", on_conflict="rename").files_on_conflict \
        == "rename"
    with pytest.raises(ValueError):
        request(mode="sideways")
    with pytest.raises(ValueError):
        request(unknown=1)


@pytest.mark.parametrize(("fields", "message"), [
    ({"only": ["t"]}, "--only, --query, --new-ids, --rename and --settings apply to"),
    ({"rename": {"a": "b"}}, "--only, --query, --new-ids, --rename and --settings apply to"),
    ({"settings": True}, "--only, --query, --new-ids, --rename and --settings apply to"),
    ({"target": None}, "give a --target directory to restore into"),
])
def test_files_rules(fields: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_request(request(**{"target": "/t", **fields}), FILES)
    check_request(request(target="/t", paths=["a"], includes=["*.txt"]), FILES)


@pytest.mark.parametrize(("fields", "kind", "flags", "message"), [
    ({"paths": ["a"]}, "sqlite", {}, r"database snapshots take .* \(not PATHS"),
    ({"includes": ["*"]}, "postgresql", {}, "database snapshots take"),
    ({}, "mongodb", {"file_options": True}, "database snapshots take"),
    ({"settings": True}, "settings", {"queued": True}, "run it inline, not with --queue"),
    ({}, "settings", {}, "give --settings to re-import settings"),
    ({"settings": True, "target": "x.db"}, "sqlite", {}, "--settings applies to settings "
                                                           "snapshots; abc12345 is of a sqlite"),
    ({"remap_ids": True, "mode": "overwrite", "paths": ["a"]}, "sqlite", {},
     "use mode merge or new-target"),
    ({"rename": {"a": "b"}, "remap_ids": True}, "sqlite", {}, "--rename FIELD=VALUE names"),
])
def test_source_rules_in_order(fields: dict[str, object], kind: str,
                               flags: dict[str, bool], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_request(request(**fields), kind, short_id="abc12345", **flags)


def test_a_copy_with_new_ids() -> None:
    for mode in (None, "merge", "new-target"):
        check_copy(request(remap_ids=True, mode=mode,
                           query={"entity": "p", "ids": [1]}, rename={"name": "x"}))
    for mode in ("overwrite", "replace"):
        check_copy(request(mode=mode))  # no copy: anything goes
        with pytest.raises(UsageError, match="merge or new-target"):
            check_copy(request(remap_ids=True, mode=mode))
    with pytest.raises(UsageError, match="--new-ids and --query"):
        check_copy(request(remap_ids=True, rename={"name": "x"}))


def test_a_target_or_a_mode_that_restores_in_place() -> None:
    for given in (("/t", False, None), (None, True, None), (None, False, "merge"),
                  (None, False, "overwrite"), (None, False, "replace")):
        check_target_given(*given)
    for missing in ((None, False, None), (None, False, "new"), ("", False, "new-target")):
        with pytest.raises(UsageError, match="give --target"):
            check_target_given(*missing)


def test_the_records_of_a_restore() -> None:
    assert query_of(None, None) is None
    assert query_of(None, '{"ids": [1]}') == {"ids": [1]}
    assert query_of(("project", ("2", "3")), None) == {"entity": "project", "ids": ["2", "3"]}
    with pytest.raises(UsageError, match="--entity or --query, not both"):
        query_of(("project", ("2",)), "{}")
    with pytest.raises(UsageError, match="not valid JSON"):
        query_of(None, "{nope")
    with pytest.raises(UsageError, match="must be a JSON object"):
        query_of(None, "[1]")
