"""The session-end check: a run that leaves a file in the checkout fails and names it.

The check looks at the checkout holding the conftest, so these tests copy the suite's
conftest.py and its helper modules into a project in tmp_path and run pytest there, in a
subprocess, alone and under xdist.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checkout_guard import checkout_paths, new_paths

TESTS = Path(__file__).resolve().parents[1]

LEAVES_A_FILE = '''
from pathlib import Path

def test_writes_beside_the_checkout():
    (Path(__file__).resolve().parents[1] / "restore-f805f5cb" / "db").mkdir(parents=True)

def test_writes_into_the_working_directory():
    Path("export.json").write_text("{}")  # the autouse fixture put us in tmp_path
'''

WRITES_NOTHING = '''
from pathlib import Path

def test_only_the_working_directory():
    Path("export.json").write_text("{}")
'''


def _project(tmp_path: Path, test_source: str) -> Path:
    project = tmp_path / "checkout"
    (project / "tests").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    for module in TESTS.glob("*.py"):  # conftest.py and the plain modules it imports
        shutil.copy(module, project / "tests" / module.name)
    (project / "tests" / "test_inner.py").write_text(test_source)
    return project


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, "tests"],
        cwd=project, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow  # inner pytest runs: 5-30 s, depending on load
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["alone", "xdist"])
def test_a_run_that_leaves_a_file_fails_and_names_it(tmp_path: Path, xdist: list[str]) -> None:
    project = _project(tmp_path, LEAVES_A_FILE)
    result = _pytest(project, *xdist)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "left 1 new path(s) in the checkout" in result.stdout
    listed = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert listed == ["restore-f805f5cb"]  # the new directory stands for what it holds
    assert not (project / "export.json").exists()


@pytest.mark.slow
def test_a_clean_run_passes_even_when_the_checkout_was_already_dirty(tmp_path: Path) -> None:
    project = _project(tmp_path, WRITES_NOTHING)
    (project / "notes-of-a-colleague.txt").write_text("untracked before the run")
    result = _pytest(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in the checkout" not in result.stdout


def test_caches_and_the_venv_are_not_looked_at(tmp_path: Path) -> None:
    before = checkout_paths(tmp_path)
    for cache in ("src/pkg/__pycache__/m.pyc", ".mypy_cache/x", ".venv/lib/y"):
        (tmp_path / cache).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / cache).write_text("")
    (tmp_path / "build" / "lib").mkdir(parents=True)
    left = new_paths(before, checkout_paths(tmp_path))
    assert left == ["build", "src"]  # src/pkg holds only a cache, but src itself is new


def test_snapshot_updates_and_reports_are_expected_writes() -> None:
    before = frozenset({"tests", "tests/tui"})
    after = before | {"snapshot_report.html", "tests/tui/__snapshots__",
                      "tests/tui/__snapshots__/a.svg"}
    assert new_paths(before, after, snapshot_update=True) == []
    assert new_paths(before, after) == ["tests/tui/__snapshots__"]
