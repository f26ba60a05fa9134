"""Debris and honest messages: temp files of killed saves are cleaned after their lease by
the next backup or prune; a damaged config or snapshot file is called damaged, not absent."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from damage_helpers import flip_byte

MiB = 1 << 20
#: the lease the tests give temp files (the default is 1h)
LEASE = {"VAULT_REPOSITORY__TEMP_FILE_LEASE": "2min"}


def _temp_files(repo: Path) -> list[Path]:
    return sorted(repo.rglob(".tmp-*"))


def _kill_while_saving(vault, src: Path, nth: int) -> list[Path]:
    """Run a backup killed at its `nth` save, between the temp file written (and synced)
    and its rename (failpoint local:temp-written): the temp files it leaves."""
    killed = vault.run("backup", src, "--force",
                       env={**vault.env.env, "VAULT_FAILPOINTS": f"local:temp-written@{nth}"})
    assert killed.returncode == -9, (killed.stdout, killed.stderr)
    return _temp_files(vault.env.repo)


def _age(paths: list[Path], seconds: float) -> None:
    then = time.time() - seconds
    for path in paths:
        os.utime(path, (then, then))


def test_a_killed_backups_temp_files_go_once_their_lease_is_over(
        vault_repo, fs, tmp_path: Path) -> None:
    vault = vault_repo
    vault.env.env.update({"VAULT_REPOSITORY__PACK_SIZE_MIB": "4"})
    src = tmp_path / "src"
    for i in range(6):
        fs.write_random(src / f"r{i}.bin", 4 * MiB, seed=i)
    debris = _kill_while_saving(vault, src, 3)  # two packs saved, the third's temp left
    assert len(debris) == 1 and debris[0].parent.parent.name == "data", debris
    assert all(p.stat().st_size > 0 for p in debris)

    # Past the lease: the next backup removes them. A fresh one (a save of another
    # process still running, as far as anyone can tell) stays.
    _age(debris, 5 * 60)
    fresh = debris[0].parent / ".tmp-freshfreshfresh"
    fresh.write_bytes(b"a save in progress")
    _age([fresh], 30)
    vault.env.env.update(LEASE)
    vault.backup(src)
    assert _temp_files(vault.env.repo) == [fresh]
    assert fresh.read_bytes() == b"a save in progress"

    # prune cleans too, and counts it
    _age([fresh], 5 * 60)
    result = vault.json("prune")
    assert result.code == 0, (result.last, result.stderr)
    assert result.summary["temp_files_removed"] == 1
    assert _temp_files(vault.env.repo) == []
    assert vault.json("verify").code == 0
    out = tmp_path / "out"
    vault.restore(f"latest:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)


def test_temp_files_inside_the_lease_are_kept_by_default(vault_repo, fs, tmp_path) -> None:
    vault = vault_repo
    debris = vault.env.repo / "data" / "ab" / ".tmp-killedkilled"
    debris.write_bytes(b"x" * 100)
    _age([debris], 50 * 60)  # the default lease is 1h
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("data\n")
    vault.backup(tmp_path / "src")
    assert debris.exists()
    _age([debris], 61 * 60)
    vault.backup(tmp_path / "src")
    assert not debris.exists()


# --- a damaged config -------------------------------------------------------------------


def _config_said(vault) -> tuple[int, str]:
    done = vault.run("snapshots")
    return done.returncode, done.stderr.strip()


@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty", "no-format", "no-id",
                                    "path-id", "bad-chunker"])
def test_a_damaged_config_is_called_damaged(vault_repo, damage: str) -> None:
    vault = vault_repo
    config = vault.env.repo / "config"
    original = config.read_bytes()
    config.chmod(0o600)
    doc = json.loads(original)
    if damage == "flipped":
        flip_byte(config, original.index(b"{") + 3)  # the first key's quote: not JSON
    elif damage == "truncated":
        config.write_bytes(original[: len(original) // 2])
    elif damage == "empty":
        config.write_bytes(b"")
    elif damage == "no-format":
        config.write_text(json.dumps({k: v for k, v in doc.items() if k != "format"}))
    elif damage == "no-id":
        config.write_text(json.dumps({k: v for k, v in doc.items() if k != "id"}))
    elif damage == "path-id":  # it names cache and state directories: never a path
        config.write_text(json.dumps({**doc, "id": "../../../../" + "a" * 52}))
    else:
        config.write_text(json.dumps({**doc, "chunker": "fastcdc"}))
    code, err = _config_said(vault)
    assert code == 1, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"vault: error: repository config at {vault.env.repo} is damaged: ")
    assert "no vault repository" not in err
    failed = vault.json("backup", vault.env.root)
    assert failed.last["error"] == "RepositoryConfigDamaged"

    config.write_bytes(original)  # put back from a copy: everything is there again
    assert vault.run("snapshots").returncode == 0


def test_no_config_or_another_tools_is_still_no_repository(vault, tmp_path) -> None:
    code, err = _config_said(vault)
    assert (code, err) == (1, f"vault: error: no vault repository at {vault.env.repo} "
                              "(create one with `vault init`)")
    vault.env.repo.mkdir()
    for foreign in (b"[repository]\nversion = 1\n",  # borg's
                    b"\x8f\x02\xa7\x11 sealed \x00\xff"):  # restic's is encrypted
        (vault.env.repo / "config").write_bytes(foreign)
        code, err = _config_said(vault)
        assert code == 1 and "no vault repository at" in err, err


# --- a damaged snapshot file -------------------------------------------------------------


def test_a_damaged_snapshot_file_is_named_by_restore_ls_and_dump_and_forgotten(
        vault_repo, fs, tmp_path: Path) -> None:
    vault = vault_repo
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("kept\n")
    damaged = vault.backup(src)["snapshot_id"]
    intact = vault.backup(src, "--force")["snapshot_id"]
    stored = vault.env.repo / "snapshots" / damaged
    flip_byte(stored, stored.stat().st_size // 2)

    for args in (["restore", f"{damaged[:8]}:{src}", "--target", tmp_path / "out"],
                 ["ls", damaged], ["dump", damaged[:10], src / "sub" / "f.txt"]):
        done = vault.run(*args)
        assert done.returncode == 1, (args, done.stderr)
        err = done.stderr.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith(f"vault: error: snapshot {damaged[:8]} in repository "), err
        assert "is damaged (" in err and "no snapshot matches" not in err
    assert not (tmp_path / "out").exists()
    assert vault.json("ls", damaged).last["error"] == "SnapshotDamaged"
    # An id nothing matches is still "no snapshot matches"; the intact one still works.
    assert "no snapshot matches" in vault.run("ls", "0000ffff").stderr
    done = vault.run("dump", intact, src / "sub" / "f.txt")
    assert (done.returncode, done.stdout) == (0, "kept\n")

    # What the message says to do works: forget takes the damaged file's id; then the
    # repository is whole again (prune, which refused next to it, runs).
    assert vault.run("prune").returncode == 1
    dry = vault.ok("forget", "--dry-run", damaged[:8])
    assert f"would remove snapshot {damaged[:8]} (damaged: " in dry.stdout
    assert stored.exists()
    gone = vault.json("forget", damaged[:8])
    assert gone.summary["removed"] == [damaged]
    assert not stored.exists()
    assert [e["payload"]["snapshot_id"] for e in vault.events("SnapshotForgotten")] == [damaged]
    assert vault.json("prune").code == 0
    assert [s["id"] for s in vault.json("snapshots").summary["snapshots"]] == [intact]
