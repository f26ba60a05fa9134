"""Byte sizes for people: ``human_bytes`` renders, ``parse_bytes`` reads config values.

Binary units (KiB = 1024 B) throughout, because disks, quotas and ``df -h`` report them
and a message like "need ~1.5 GiB, have 800.0 MiB" must compare like with like.
"""

from __future__ import annotations

import re

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

# Accepted suffixes; SI spellings (KB, MB) are read as binary too, since users who write
# "500MB" in a config mean "about half a gigabyte", not an exact power of ten.
_FACTORS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
    "p": 1024**5,
    "pb": 1024**5,
    "pib": 1024**5,
}

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def human_bytes(n: int) -> str:
    """Render a byte count: 0 -> "0 B", 1536 -> "1.5 KiB", 1610612736 -> "1.5 GiB"."""
    if n < 0:
        return "-" + human_bytes(-n)
    if n < 1024:
        return f"{n} B"
    value = float(n)
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f} {_UNITS[unit]}"


def parse_bytes(text: str) -> int:
    """Read "512", "1.5 GiB", "500MB" or "10k" as a byte count; ValueError if unreadable."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (examples: 512, 10k, 1.5 GiB)")
    number, suffix = match.groups()
    factor = _FACTORS.get(suffix.lower())
    if factor is None:
        raise ValueError(f"unknown size unit {suffix!r} in {text!r} (use B, KiB, MiB, GiB, TiB)")
    if "." not in number:
        return int(number) * factor  # exact for integers of any size, unlike float
    return int(float(number) * factor)
