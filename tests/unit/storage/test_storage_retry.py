"""RetryingStorage retries transient failures only, with growing jittered pauses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.errors import (
    NotEnoughSpace,
    ObjectNotFound,
    StorageError,
    TransientStorageError,
)
from vault.storage import ObjectInfo, ObjectKind, Storage
from vault.storage.local import LocalStorage
from vault.storage.retry import RetryingStorage


class FlakyStorage(LocalStorage):
    """A real local storage whose next ``failures`` calls fail first (decorator test double)."""

    def __init__(self, root: Path, failures: int, error: StorageError | None = None) -> None:
        super().__init__(root)
        self.failures = failures
        self.error = error or TransientStorageError(where="flaky", detail="connection reset")
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        self._maybe_fail()
        return super().load(kind, name, offset, length)

    def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
        self._maybe_fail()
        super().save(kind, name, data)

    def remove(self, kind: ObjectKind, name: str) -> None:
        super().remove(kind, name)  # the removal happens, then the answer is lost
        self._maybe_fail()

    def list(self, kind: ObjectKind) -> Iterator[ObjectInfo]:
        for count, info in enumerate(super().list(kind)):
            if count == 2:
                self._maybe_fail()  # fail mid-listing, after yielding two objects
            yield info


def make(
    tmp_path: Path, failures: int, error: StorageError | None = None
) -> tuple[FlakyStorage, list[float]]:
    """A created flaky storage and a list that records the pauses RetryingStorage takes."""
    flaky = FlakyStorage(tmp_path / "repo", failures, error)
    flaky.create()
    return flaky, []


def test_it_is_a_storage(tmp_path: Path) -> None:
    flaky, _ = make(tmp_path, 0)
    assert isinstance(RetryingStorage(flaky), Storage)
    assert RetryingStorage(flaky).location == flaky.location


def test_transient_failures_are_retried_with_growing_jittered_pauses(tmp_path: Path) -> None:
    flaky, pauses = make(tmp_path, 3)
    notices: list[int] = []
    retrying = RetryingStorage(
        flaky, attempts=5, base_delay=0.2, sleep=pauses.append,
        on_retry=lambda exc, attempt, pause: notices.append(attempt),
    )  # fmt: skip
    retrying.save("data", "abcd", b"made it")
    assert flaky.load("data", "abcd") == b"made it"
    assert flaky.calls == 5  # 3 failed saves, 1 good save, 1 direct load
    assert notices == [1, 2, 3]
    for attempt, pause in enumerate(pauses, start=1):
        ceiling = 0.2 * 2 ** (attempt - 1)
        assert ceiling / 2 <= pause <= ceiling


def test_pauses_are_capped(tmp_path: Path) -> None:
    flaky, _ = make(tmp_path, 0)
    retrying = RetryingStorage(flaky, base_delay=1.0, max_delay=5.0)
    assert all(retrying.delay(attempt) <= 5.0 for attempt in range(1, 30))


def test_gives_up_after_the_last_attempt_with_the_transient_error(tmp_path: Path) -> None:
    flaky, pauses = make(tmp_path, 100)
    retrying = RetryingStorage(flaky, attempts=4, sleep=pauses.append)
    with pytest.raises(TransientStorageError):
        retrying.save("data", "abcd", b"never")
    assert flaky.calls == 4
    assert len(pauses) == 3


@pytest.mark.parametrize(
    "error",
    [
        StorageError(where="flaky", detail="permission denied"),
        ObjectNotFound(where="flaky", name="data/abcd"),
    ],
    ids=["permanent", "not-found"],
)
def test_permanent_errors_pass_through_at_once(tmp_path: Path, error: StorageError) -> None:
    flaky, pauses = make(tmp_path, 1, error=error)
    retrying = RetryingStorage(flaky, sleep=pauses.append)
    with pytest.raises(type(error)):
        retrying.load("data", "abcd")
    assert flaky.calls == 1
    assert pauses == []


def test_a_full_disk_is_not_retried(tmp_path: Path) -> None:
    class FullStorage(LocalStorage):
        calls = 0

        def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
            self.calls += 1
            raise NotEnoughSpace(where="full", need="1 B", have="0 B")

    full = FullStorage(tmp_path)
    with pytest.raises(NotEnoughSpace):
        RetryingStorage(full, sleep=lambda _: None).save("data", "abcd", b"x")
    assert full.calls == 1


def test_list_resumes_without_repeating_objects(tmp_path: Path) -> None:
    flaky, pauses = make(tmp_path, 0)
    names = {f"{n:04x}" for n in range(1, 8)}
    for name in names:
        flaky.save("index", name, b"i")
    flaky.failures = 1
    listed = [i.name for i in RetryingStorage(flaky, sleep=pauses.append).list("index")]
    assert sorted(listed) == sorted(names)
    assert len(pauses) == 1


def test_remove_whose_answer_was_lost_still_succeeds(tmp_path: Path) -> None:
    flaky, pauses = make(tmp_path, 0)
    flaky.save("locks", "abcd", b"l")
    flaky.failures = 1
    RetryingStorage(flaky, sleep=pauses.append).remove("locks", "abcd")
    assert not flaky.exists("locks", "abcd")


def test_removing_a_missing_object_is_still_reported(tmp_path: Path) -> None:
    flaky, pauses = make(tmp_path, 0)
    with pytest.raises(ObjectNotFound):
        RetryingStorage(flaky, sleep=pauses.append).remove("locks", "abcd")


def test_attempts_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        RetryingStorage(LocalStorage(tmp_path), attempts=0)
