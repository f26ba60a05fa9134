"""RecentObjects: whole objects kept by key within a byte budget, least recently used out."""

from __future__ import annotations

from vault.storage.recent_objects import RecentObjects


def test_a_kept_object_is_fetched_once_and_the_oldest_goes_past_the_budget() -> None:
    fetched: list[str] = []

    def fetch(key: str) -> bytes:
        fetched.append(key)
        return key.encode() * 10

    kept = RecentObjects(budget=25)
    assert kept.get("a", lambda: fetch("a")) == b"a" * 10
    assert kept.get("b", lambda: fetch("b")) == b"b" * 10
    assert kept.get("a", lambda: fetch("a")) == b"a" * 10  # kept; now the newest
    assert fetched == ["a", "b"]
    kept.get("c", lambda: fetch("c"))  # 30 bytes > 25: the least recently used (b) goes
    kept.get("a", lambda: fetch("a"))
    kept.get("b", lambda: fetch("b"))
    assert fetched == ["a", "b", "c", "b"]


def test_an_object_larger_than_the_budget_is_returned_but_not_kept() -> None:
    calls = 0

    def fetch() -> bytes:
        nonlocal calls
        calls += 1
        return b"x" * 100

    kept = RecentObjects(budget=50)
    assert kept.get("big", fetch) == b"x" * 100
    assert kept.get("big", fetch) == b"x" * 100
    assert calls == 2


def test_a_forgotten_object_is_fetched_again() -> None:
    copies = iter([b"short", b"the whole object"])
    kept = RecentObjects()
    assert kept.get("pack", lambda: next(copies)) == b"short"
    kept.forget("pack")
    assert kept.get("pack", lambda: next(copies)) == b"the whole object"
    kept.forget("never-kept")  # nothing to drop: no error
