"""Re-importing stored settings over live ones (pure: data in, data and a report out).

The stored settings win, key for key, except a secret that was redacted in the backup: a
redacted value never overwrites a live one. When there is no live value to keep, the key
is left out and reported, so the operator knows which secrets to set again. Keys keep the
live file's order, and keys new to it follow in stored (sorted) order, so a re-imported
file reads as the operator left it. The report names keys, never values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from vault.sources.settings.secrets import is_redacted, join_path

__all__ = ["ABSENT", "MergeReport", "MergeResult", "merge_settings", "same_value"]


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()  # no live value at all (not the same as a null value)
_OMIT: Any = _Absent()
ROOT = "(document)"


@dataclass
class MergeReport:
    """Dotted paths ("smtp.host", "servers.0.port") of what a re-import changes."""

    changed: list[str] = field(default_factory=list)  # the live value becomes the stored
    added: list[str] = field(default_factory=list)  # only in the snapshot
    removed: list[str] = field(default_factory=list)  # only live: goes
    # redacted in the snapshot: the live value stays; or, with none live, missing
    kept_secrets: list[str] = field(default_factory=list)
    missing_secrets: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not (self.changed or self.added or self.removed)

    def as_details(self) -> dict[str, list[str]]:
        return {"changed": self.changed, "added": self.added, "removed": self.removed,
                "kept_secrets": self.kept_secrets, "missing_secrets": self.missing_secrets}


@dataclass
class MergeResult:
    settings: Any
    report: MergeReport


def merge_settings(stored: Any, live: Any = ABSENT) -> MergeResult:
    """The settings to write: `stored` (already unsealed; may hold `REDACTED`) over `live`
    (the target's current settings, or `ABSENT` when there is none)."""
    report = MergeReport()
    merged = _merge(stored, live, "", report)
    if merged is _OMIT:  # cannot happen for a mapping, but a bare redacted document...
        merged = live
    _diff(live, merged, "", report)
    return MergeResult(merged, report)


def _merge(stored: Any, live: Any, path: str, report: MergeReport) -> Any:
    if is_redacted(stored):
        if live is ABSENT:
            report.missing_secrets.append(path or ROOT)
            return _OMIT
        report.kept_secrets.append(path or ROOT)
        return live
    if isinstance(stored, dict):
        live_map: dict[Any, Any] = live if isinstance(live, dict) else {}
        order = [key for key in live_map if key in stored]
        order += [key for key in stored if key not in live_map]
        merged_map: dict[Any, Any] = {}
        for key in order:
            value = _merge(stored[key], live_map.get(key, ABSENT), join_path(path, key), report)
            if value is not _OMIT:
                merged_map[key] = value
        return merged_map
    if isinstance(stored, list):
        live_list: list[Any] = live if isinstance(live, list) else []
        merged_list: list[Any] = []
        for index, item in enumerate(stored):
            old = live_list[index] if index < len(live_list) else ABSENT
            value = _merge(item, old, join_path(path, index), report)
            if value is not _OMIT:
                merged_list.append(value)
        return merged_list
    return stored


def _diff(old: Any, new: Any, path: str, report: MergeReport) -> None:
    if old is ABSENT:
        if isinstance(new, dict) and not path:
            report.added.extend(join_path(path, key) for key in new)
        else:
            report.added.append(path or ROOT)
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key, value in new.items():
            _diff(old.get(key, ABSENT), value, join_path(path, key), report)
        report.removed.extend(join_path(path, key) for key in old if key not in new)
        return
    if isinstance(old, list) and isinstance(new, list):
        for index, value in enumerate(new):
            _diff(old[index] if index < len(old) else ABSENT, value, join_path(path, index),
                  report)
        report.removed.extend(join_path(path, i) for i in range(len(new), len(old)))
        return
    if not same_value(old, new):
        report.changed.append(path or ROOT)


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type all the way down: 1, 1.0 and True are three values,
    and so are two equal instants written with different UTC offsets."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or repr(a) == repr(b)
    if isinstance(a, date | time):
        return bool(a.isoformat() == b.isoformat())
    return bool(a == b)
