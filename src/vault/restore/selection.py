"""Which entries of a snapshot a restore takes: pure functions over paths.

Paths inside a snapshot are the original absolute paths ("/srv/app/config.json").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vault.planning.filters import matches


@dataclass(frozen=True)
class Selection:
    paths: Sequence[str] = field(default_factory=tuple)  # restore only these subtrees
    includes: Sequence[str] = field(default_factory=tuple)
    excludes: Sequence[str] = field(default_factory=tuple)

    def _normalised_paths(self) -> list[str]:
        return ["/" + p.strip("/") for p in self.paths]

    def wants(self, path: str) -> bool:
        """Whether a file or symlink at `path` is restored."""
        if any(_matches_self_or_parent(p, path) for p in self.excludes):
            return False
        if self.paths and not any(
            path == p or path.startswith(p.rstrip("/") + "/") for p in self._normalised_paths()
        ):
            return False
        return not self.includes or any(_matches_self_or_parent(p, path) for p in self.includes)

    def may_contain(self, dir_path: str) -> bool:
        """Whether anything under directory `dir_path` can be selected (prunes the walk)."""
        if any(matches(p, dir_path) for p in self.excludes):
            return False
        if not self.paths:
            return True
        prefix = dir_path.rstrip("/") + "/"
        return any(
            p == dir_path or p.startswith(prefix) or dir_path.startswith(p.rstrip("/") + "/")
            for p in self._normalised_paths()
        )


def _matches_self_or_parent(pattern: str, path: str) -> bool:
    parts = path.split("/")
    return any(matches(pattern, "/".join(parts[:i]) or "/") for i in range(len(parts), 1, -1))
