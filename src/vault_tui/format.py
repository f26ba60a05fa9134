"""Short texts for narrow terminals: ages, sizes, rates, durations."""

from __future__ import annotations

from datetime import datetime

from vault.foundation.units import human_bytes

__all__ = ["age", "duration", "human_bytes", "rate"]


def age(moment: datetime | None, now: datetime) -> str:
    """`5s`, `12m`, `3h`, `4d` ago; `-` when unknown."""
    if moment is None:
        return "-"
    seconds = max(0, int((now - moment).total_seconds()))
    return duration(seconds)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds < 600 else f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def rate(bytes_per_second: float | None) -> str:
    return "-" if not bytes_per_second else f"{human_bytes(int(bytes_per_second))}/s"
