"""The pure parts of restore safety: version checks, warning texts, hook environments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vault.errors import UnsupportedFormat
from vault.operations.restore_checks import plan_changes, version_warnings, warning_text
from vault.repository.snapshot import Snapshot
from vault.restore.hooks import hook_env, run_hook


def snap(version: int = 1, vault_version: str = "0.1.0") -> Snapshot:
    s = Snapshot(version=version, time=datetime(2026, 1, 1, tzinfo=UTC), host="h", user="u",
                 uid=0, paths=["/x"], tree="00" * 32, vault_version=vault_version)
    s.id = "ab" * 32
    return s


def test_versions() -> None:
    assert version_warnings(snap(), running="0.1.0") == []
    assert version_warnings(snap(vault_version="0.2.0"), running="0.1.0") == []
    older = version_warnings(snap(vault_version="0.0.9"), running="0.1.0")
    assert older == [{"kind": "older_version", "snapshot_id": "ab" * 32,
                      "snapshot_version": 1, "format_version": 1,
                      "snapshot_vault_version": "0.0.9", "vault_version": "0.1.0"}]
    assert "written by vault 0.0.9" in warning_text(older[0])
    assert version_warnings(snap(version=1), reads=2, running="0.1.0")[0]["kind"] == \
        "older_version"
    with pytest.raises(UnsupportedFormat):
        version_warnings(snap(version=2), running="0.1.0")
    assert version_warnings(snap(vault_version="dev"), running="0.1.0") == []


def test_plan_changes_and_texts() -> None:
    plan = {"totals": {"create": 4, "overwrite": 2, "delete": 1, "skip": 9}}
    assert plan_changes(plan) == "overwrite 2, delete 1"
    assert plan_changes({"mode": "replace", "destructive": True}) == \
        "it replaces the target's data"
    assert warning_text({"kind": "post_hook_failed", "command": "false", "exit_code": 1,
                         "timed_out": False}) == "post_hook_failed: `false` exited with status 1"


def test_hook_env_and_run(tmp_path) -> None:
    env = hook_env("post", job_id="restore-1", target="/t", snapshot_id="abc",
                   status="failed")
    assert env == {"VAULT_RESTORE_JOB": "restore-1", "VAULT_RESTORE_TARGET": "/t",
                   "VAULT_RESTORE_SNAPSHOT": "abc", "VAULT_RESTORE_PHASE": "post",
                   "VAULT_RESTORE_STATUS": "failed"}
    ran = run_hook("echo $VAULT_RESTORE_PHASE $VAULT_RESTORE_STATUS; exit 4", "post", env, 10)
    assert (ran.exit_code, ran.timed_out, ran.output, ran.ok) == (4, False, "post failed\n",
                                                                  False)
    assert ran.how() == "exited with status 4: post failed"
    # a hook that leaves a child behind: the whole group is killed at the timeout
    marker = tmp_path / "late"
    slow = run_hook(f"(sleep 2; touch {marker}) & sleep 30", "pre", env, 0.3)
    assert slow.timed_out and slow.exit_code is None and not slow.ok
    import time
    time.sleep(2.5)
    assert not marker.exists()
