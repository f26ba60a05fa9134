"""`vault restore` plans: --dry-run/--preview/`restore preview`, -v, --json, and the
option combinations that are refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def scene(vault_repo, tmp_path: Path) -> tuple[str, Path]:
    src = tmp_path / "src"
    (src / "config").mkdir(parents=True)
    (src / "README").write_text("hello\n")
    (src / "config" / "app.conf").write_text("a=1\n")
    (src / "config" / "other.conf").write_text("x\n")
    vault_repo.backup(src)
    target = tmp_path / "t"
    (target / "config").mkdir(parents=True)
    (target / "config" / "app.conf").write_text("a=2\n")
    (target / "config" / "other.conf").write_text("x\n")
    (target / "config" / "stale.conf").write_text("old\n")
    return f"latest:{src}", target


def test_preview_spellings_agree_and_write_nothing(vault_repo, fs, scene) -> None:
    ref, target = scene
    before = fs.tree_meta(target)
    outputs = [vault_repo.ok(*args).stdout for args in (
        ("restore", ref, "-t", target, "--mode", "overwrite", "--dry-run"),
        ("restore", ref, "-t", target, "--mode", "overwrite", "--preview"),
        ("restore", "preview", ref, "-t", target, "--mode", "overwrite"))]
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0].splitlines()[2:] == [
        "plan: create 1, overwrite 1, skip 2, delete 1; 10 B to write",
        "  .: create 1, skip 1",
        "  config: delete 1, overwrite 1, skip 1"]
    verbose = vault_repo.ok("restore", "preview", ref, "-t", target, "--mode", "overwrite",
                            "-v").stdout.splitlines()
    assert "    delete    config/stale.conf  (only in target)" in verbose
    assert "    overwrite config/app.conf  (differs)" in verbose
    assert fs.tree_meta(target) == before
    assert vault_repo.events("RestoreRequested") == []


def test_json_plan(vault_repo, scene) -> None:
    ref, target = scene
    summary = vault_repo.restore(ref, "-t", target, "--mode", "merge", "--on-conflict",
                                 "rename", "--dry-run")
    plan = summary["plan"]
    assert (plan["mode"], plan["on_conflict"], plan["destructive"]) == ("merge", "rename",
                                                                       False)
    assert plan["totals"] == {"create": 1, "overwrite": 0, "skip": 2, "rename": 1,
                              "delete": 0, "conflict": 0}
    assert {i["key"]: i["action"] for i in plan["items"]} == {
        "README": "create", "config/": "skip", "config/app.conf": "rename",
        "config/other.conf": "skip"}
    assert plan["bytes_to_write"] == len("hello\n") + len("a=1\n")
    assert summary["created"] == summary["overwritten"] == summary["deleted"] == []


def test_fail_policy_dry_run_shows_the_refusal(vault_repo, scene) -> None:
    ref, target = scene
    dry = vault_repo.ok("restore", "preview", ref, "-t", target, "--on-conflict", "fail")
    assert "1 conflict(s): the restore would be refused" in dry.stdout
    real = vault_repo.run("restore", ref, "-t", target, "--on-conflict", "fail")
    assert real.returncode == 1
    assert real.stderr.strip() == (
        f"vault: error: refused: 1 conflict(s) with what {target} holds (config/app.conf); "
        "nothing was written (choose --on-conflict skip, overwrite or rename)")
    assert (target / "config" / "app.conf").read_text() == "a=2\n"
    assert not (target / "README").exists()
    [failed] = vault_repo.events("RestoreFailed")
    assert "conflict" in failed["payload"]["message"]


@pytest.mark.parametrize("args, message", [
    (("--overwrite", "never", "--mode", "merge"), "--overwrite is the old spelling"),
    (("--overwrite", "always", "--on-conflict", "skip"), "--overwrite is the old spelling"),
    (("--mode", "overwrite", "--queue"), "pass --yes to go ahead"),
    (("--only", "t"), "--only, --query, --new-ids, --rename and --settings apply to"),
    (("--rename", "a=b"), "--only, --query, --new-ids, --rename and --settings apply to"),
])
def test_refused_combinations(vault_repo, scene, args, message) -> None:
    ref, target = scene
    done = vault_repo.run("restore", ref, "-t", target, *args, input="")  # no terminal
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert (target / "config" / "app.conf").read_text() == "a=2\n"


def test_preview_needs_a_snapshot(vault_repo) -> None:
    done = vault_repo.run("restore", "preview", "-t", "x")
    assert done.returncode == 2 and "give a snapshot" in done.stderr


def test_legacy_names_of_modes(vault_repo, scene) -> None:
    """`replace` is `overwrite` and `new` is `new-target` for files too."""
    ref, target = scene
    summary = vault_repo.restore(ref, "-t", target, "--mode", "replace", "-n")
    assert summary["plan"]["mode"] == "overwrite"
    refused = vault_repo.run("restore", ref, "-t", target, "--mode", "new")
    assert refused.returncode == 2 and "not empty" in refused.stderr
