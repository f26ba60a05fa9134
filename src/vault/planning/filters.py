"""Include/exclude globs: pure functions over paths.

Pattern rules (documented in docs/cli.md, close to restic's):
- a pattern without `/` matches any single path component: `*.log`, `node_modules`;
- a pattern with `/` is anchored at the file-system root (`/srv/app/cache`) or, when
  relative, matches at any depth (`cache/*.tmp`);
- `*` matches within a component, `**` across components, `?` one character,
  `[abc]` a character class.
A directory that matches an exclude is skipped with everything below it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache


@lru_cache(maxsize=512)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    anchored = pattern.startswith("/")
    body = pattern.strip("/") if pattern != "/" else ""
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if body.startswith("**", i):
            out.append(".*")
            i += 2
            if body.startswith("/", i):
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = body.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                cls = body[i + 1 : end].replace("\\", "\\\\")
                if cls.startswith("!"):
                    cls = "^" + cls[1:]
                out.append(f"[{cls}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    prefix = "^/" if anchored else "(?:^|.*/)"
    return re.compile(prefix + "".join(out) + "$")


def matches(pattern: str, path: str) -> bool:
    return glob_to_regex(pattern).match(path) is not None


@dataclass(frozen=True)
class PathFilter:
    excludes: Sequence[str] = field(default_factory=tuple)
    includes: Sequence[str] = field(default_factory=tuple)
    exclude_larger_than: int | None = None

    def excluded(self, path: str) -> bool:
        return any(matches(p, path) for p in self.excludes)

    def included_file(self, path: str, size: int) -> bool:
        """Whether a regular file (not excluded) is kept."""
        if self.exclude_larger_than is not None and size > self.exclude_larger_than:
            return False
        return not self.includes or any(matches(p, path) for p in self.includes)


def read_exclude_file(lines: Iterable[str]) -> list[str]:
    """Patterns from an exclude file: one per line, `#` comments and blanks ignored."""
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
