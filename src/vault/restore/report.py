"""The restore report: what an executed plan did, per directory / table / collection.

Pure: built from the plan and the keys that failed, so the human output, the JSON summary
and the journal event all say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vault.planning.restore_plan import RestorePlan

#: one group's counters, in the order they are shown
COUNTS = ("restored", "skipped", "deleted", "failed", "conflicts")


@dataclass
class RestoreReport:
    groups: dict[str, dict[str, int]]
    totals: dict[str, int]
    bytes_written: int
    duration_seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"totals": self.totals, "groups": self.groups,
                "bytes_written": self.bytes_written,
                "duration_seconds": round(self.duration_seconds, 3),
                "warnings": self.warnings}


def build_report(plan: RestorePlan, failed_keys: Iterable[str], *, duration_seconds: float,
                 warnings: Iterable[str] = ()) -> RestoreReport:
    """`conflicts` counts items both sides held with different content, whatever the
    policy did with them; a failed item counts as failed, not as restored or deleted."""
    failed = set(failed_keys)
    groups: dict[str, dict[str, int]] = {}
    written = 0
    for item in plan.items:
        counts = groups.setdefault(item.group, dict.fromkeys(COUNTS, 0))
        if item.key in failed:
            counts["failed"] += 1
        elif item.action in ("create", "overwrite", "rename"):
            counts["restored"] += 1
            written += item.bytes
        elif item.action == "skip":
            counts["skipped"] += 1
        elif item.action == "delete":
            counts["deleted"] += 1
        if item.reason.startswith("differs"):
            counts["conflicts"] += 1
    totals = dict.fromkeys(COUNTS, 0)
    for counts in groups.values():
        for name in COUNTS:
            totals[name] += counts[name]
    return RestoreReport(dict(sorted(groups.items())), totals, written, duration_seconds,
                         list(warnings))
