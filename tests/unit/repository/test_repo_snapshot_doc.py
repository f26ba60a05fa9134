"""The stored snapshot document leaves out the fields added to format 1 while unset, so a
snapshot that does not use them still reads in an older vault (whose model refuses
unknown fields)."""

from __future__ import annotations

from datetime import UTC, datetime

from vault.repository.snapshot import LATER_FIELDS, Snapshot


def _snapshot(**extra: object) -> Snapshot:
    return Snapshot(time=datetime(2026, 12, 7, tzinfo=UTC), host="h", user="u", uid=0,
                    paths=["/srv"], tree="00" * 32, vault_version="0", **extra)


def test_unset_later_fields_are_not_stored() -> None:
    doc = _snapshot().stored_doc()
    assert not set(LATER_FIELDS) & set(doc)
    assert Snapshot.model_validate(doc) == _snapshot()


def test_set_later_fields_are_stored_and_read_back() -> None:
    repaired = _snapshot(repaired_from="ab" * 32, repair={"truncated": [], "dropped": ["/x"],
                                                          "dirs_lost": []},
                         captured_at=datetime(2026, 12, 7, 1, tzinfo=UTC),
                         original="cd" * 32)
    doc = repaired.stored_doc()
    assert set(LATER_FIELDS) <= set(doc)
    assert Snapshot.model_validate(doc) == repaired

