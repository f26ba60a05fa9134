"""Fail the test run when it left a file in the checkout.

Tests write under `tmp_path` and run in it (an autouse fixture in conftest.py chdirs
there), yet one that slips still leaves its artefact in the checkout, where it gets
committed (a TUI test once committed `restore-f805f5cb/`). So the session lists every path
in the checkout when it starts and again when it ends, and fails the run (exit 1, the
paths printed) if any is new. Only new paths count: someone editing the checkout while the
suite runs changes files that already exist. Caches (`__pycache__`, `.mypy_cache`, ...)
and the venv are not looked at; anything else is, ignored by git or not (a `build/` or an
`*.egg-info` from a packaging test is as much an artefact as a stray restore).

Only the process that owns the session judges: under pytest-xdist that is the controller,
which starts before and ends after every worker.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]

#: directories the run may create or fill: the interpreter's and tools' caches, the venv
SKIPPED_DIRS = frozenset({
    ".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    ".import_linter_cache",
})
#: pytest-textual-snapshot writes its report into the cwd after a failed snapshot test (that
#: run fails anyway); it is in .gitignore
REPORTS = frozenset({"snapshot_report.html"})

_BEFORE = pytest.StashKey[frozenset[str]]()


def checkout_paths(root: Path = CHECKOUT) -> frozenset[str]:
    """Every file, symlink and directory under `root` (relative, '/'-separated), without
    the skipped directories' contents."""
    found: set[str] = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        base = Path(directory).relative_to(root)
        found.update((base / name).as_posix() for name in [*dirs, *files])
    return frozenset(found)


def new_paths(before: frozenset[str], after: frozenset[str], *,
              snapshot_update: bool = False) -> list[str]:
    """The paths in `after` that were not in `before` and count as left by the run, a new
    directory standing for everything in it; `--snapshot-update` is meant to write
    `__snapshots__/`."""
    added = after - before
    left = []
    for path in sorted(added):
        parts = path.split("/")
        if parts[-1] in REPORTS or (snapshot_update and "__snapshots__" in parts):
            continue
        if path.rpartition("/")[0] not in added:
            left.append(path)
    return left


def _owns_session(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")  # an xdist worker has `workerinput`


def pytest_sessionstart(session: pytest.Session) -> None:
    if _owns_session(session.config):
        session.config.stash[_BEFORE] = checkout_paths()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _owns_session(config) or _BEFORE not in config.stash:
        return
    update = bool(config.getoption("--snapshot-update", default=False))
    left = new_paths(config.stash[_BEFORE], checkout_paths(), snapshot_update=update)
    if not left:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"the test run left {len(left)} new path(s) in the checkout {CHECKOUT}:",
             *(f"  {path}" for path in left)]
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "files left in the checkout", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
