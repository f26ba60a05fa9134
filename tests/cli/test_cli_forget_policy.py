"""`vault forget --keep-*`: retention applied through the real CLI, journaled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VAULT = str(Path(sys.executable).with_name("vault"))


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"),
             XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
             VAULT_REPOSITORY=str(tmp_path / "repo"), VAULT_PASSWORD="pw", VAULT_KDF_N="1024")
    e.pop("VAULT_CONFIG", None)
    return e


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VAULT, *args], env=env, capture_output=True, text=True, timeout=120)


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    record: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return record


@pytest.fixture()
def four_snapshots(env: dict[str, str], tmp_path: Path) -> list[str]:
    data = tmp_path / "data"
    data.mkdir()
    assert run(env, "init").returncode == 0
    ids = []
    for i in range(4):
        (data / "f.txt").write_text(f"version {i}\n")
        tags = ["--tag", "release"] if i == 0 else []
        ids.append(str(summary(run(env, "backup", str(data), *tags, "--json"))["snapshot_id"]))
    return ids


def listed(env: dict[str, str]) -> list[str]:
    return [s["id"] for s in summary(run(env, "snapshots", "--json"))["snapshots"]]


def test_dry_run_plans_and_removes_nothing(env: dict[str, str], four_snapshots: list[str]) -> None:
    result = run(env, "forget", "--keep-last", "2", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = summary(result)
    assert [d["id"] for d in plan["keep"]] == four_snapshots[:1:-1]
    assert sorted(d["id"] for d in plan["removed"]) == sorted(four_snapshots[:2])
    assert sorted(listed(env)) == sorted(four_snapshots)


def test_policy_removes_and_journals_reasons(env: dict[str, str],
                                              four_snapshots: list[str]) -> None:
    result = run(env, "forget", "--keep-last", "2", "--keep-tag", "release", "--json")
    assert result.returncode == 0, result.stderr
    # The tagged first snapshot survives through its tag; the second goes.
    assert sorted(listed(env)) == sorted([four_snapshots[0], *four_snapshots[2:]])
    events = summary(run(env, "journal", "--type", "SnapshotForgotten", "--json"))["events"]
    assert [e["payload"]["snapshot_id"] for e in events] == [four_snapshots[1]]
    assert "retention" in events[0]["payload"]["reason"]
    # The kept ones still restore.
    assert run(env, "restore", four_snapshots[0][:8], "--target", str(Path(env["HOME"]) / "o")
               ).returncode == 0


def test_ids_and_rules_together_or_nothing_at_all_is_refused(
        env: dict[str, str], four_snapshots: list[str]) -> None:
    both = run(env, "forget", four_snapshots[0][:8], "--keep-last", "1")
    assert both.returncode == 2 and "not both" in both.stderr
    nothing = run(env, "forget")
    assert nothing.returncode == 2 and "nothing to forget" in nothing.stderr
    assert sorted(listed(env)) == sorted(four_snapshots)
