"""human_bytes / parse_bytes: the sizes users read in messages and write in configs."""

from __future__ import annotations

import pytest

from vault.foundation.units import human_bytes, parse_bytes


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (20 * 1024**2, "20.0 MiB"),
        (1610612736, "1.5 GiB"),
        (3 * 1024**4, "3.0 TiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("512", 512),
        ("10k", 10 * 1024),
        ("1.5 GiB", 1610612736),
        ("500MB", 500 * 1024**2),
        (" 2 tib ", 2 * 1024**4),
        ("9007199254740993", 9007199254740993),  # beyond float precision, still exact
    ],
)
def test_parse_bytes(text: str, n: int) -> None:
    assert parse_bytes(text) == n


@pytest.mark.parametrize("text", ["", "abc", "1.5.3 GiB", "-1", "10 parsecs"])
def test_parse_bytes_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bytes(text)


@pytest.mark.parametrize("n", [0, 1024, 1536, 1610612736])
def test_round_trip_for_exact_values(n: int) -> None:
    assert parse_bytes(human_bytes(n)) == n
