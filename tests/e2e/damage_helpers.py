"""Damaging a repository on purpose, for the corruption, heal and repair tests."""

from __future__ import annotations

import os
from pathlib import Path


def flip_byte(path: Path, offset: int) -> None:
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def packs(repo: Path) -> list[Path]:
    return sorted(p for p in (repo / "data").rglob("*") if p.is_file())


def largest_pack(repo: Path) -> Path:
    return max(packs(repo), key=lambda p: p.stat().st_size)
