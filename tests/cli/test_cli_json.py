"""The --json contract: stdout is JSON lines, progress records then exactly one final
summary (or error) record naming the command; and the journal tells each job's story."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture
def src(tmp_path: Path, fs) -> Path:
    root = tmp_path / "src"
    fs.write_random(root / "data.bin", 1_500_000, seed=1)
    (root / "notes.txt").write_text("notes")
    return root


def test_every_command_speaks_json_lines(vault, src: Path, tmp_path: Path) -> None:
    init = vault.json("init")
    assert init.code == 0 and init.summary["command"] == "init"
    assert init.summary["repository"] == str(vault.env.repo)
    first = vault.json("backup", src).summary["snapshot_id"]
    (src / "notes.txt").write_text("more notes")
    second = vault.json("backup", src).summary["snapshot_id"]
    commands = [
        ("snapshots",), ("ls", "latest", "-R"), ("diff", first, second),
        ("restore", "latest", "--target", str(tmp_path / "out")), ("verify", "--read-data"),
        ("stats",), ("locks",), ("status",), ("key list", "key", "list"), ("journal",),
        ("journal verify", "journal", "verify"), ("backup", str(src), "--estimate"),
        ("backup", str(src), "--dry-run"), ("forget", first),
    ]
    for name, *rest in commands:
        args = rest if " " in name else [name, *rest]
        result = vault.json(*args)  # asserts JSON lines and one final record
        assert result.code == 0, (args, result.last, result.stderr)
        assert result.summary["command"] == name, args
        assert all(r["command"] == name for r in result.records)


def test_the_global_json_flag_works_too(vault_repo, src: Path) -> None:
    done = vault_repo.ok("--json", "backup", src)
    last = json.loads(done.stdout.splitlines()[-1])
    assert last["type"] == "summary" and last["status"] == "completed"


def test_a_backup_job_in_the_journal(vault_repo, src: Path) -> None:
    summary = vault_repo.backup(src, "--tag", "t1")
    job = summary["job_id"]
    stream = vault_repo.json("journal", "--stream", job).summary["events"]
    types = [e["type"] for e in stream]
    # JobClaimed: the inline job names its process (a killed one is marked interrupted)
    assert types[:3] == ["BackupRequested", "JobClaimed", "BackupStarted"]
    assert types[-1] == "BackupCompleted"
    assert set(types[3:-1]) <= {"BackupProgressed"}
    assert [e["stream_version"] for e in stream] == list(range(1, len(stream) + 1))
    requested, completed = stream[0]["payload"], stream[-1]["payload"]
    assert requested["paths"] == [str(src)] and requested["tags"] == ["t1"]
    assert completed["snapshot_id"] == summary["snapshot_id"]
    for key in ("files_new", "bytes_raw", "bytes_new", "bytes_stored", "status"):
        assert completed[key] == summary[key], key
    assert all(e["actor"]["user"] for e in stream)

    newest = vault_repo.json("journal", "--limit", "2").summary["events"]
    everything = vault_repo.json("journal").summary["events"]
    assert [e["seq"] for e in newest] == [e["seq"] for e in everything[-2:]]
    both = vault_repo.json("journal", "--type", "BackupStarted", "--type",
                           "RepositoryInitialized").summary["events"]
    assert [e["type"] for e in both] == ["RepositoryInitialized", "BackupStarted"]
    assert vault_repo.json("journal", "--since", "2999-01-01").summary["events"] == []


@pytest.mark.slow
def test_a_long_backup_reports_progress_on_stdout_and_in_the_journal(vault_repo, fs,
                                                                     tmp_path: Path) -> None:
    src = tmp_path / "big"
    for i in range(8):
        fs.write_random(src / f"{i}.bin", 40 << 20, seed=i)
    result = vault_repo.json("backup", src)
    assert result.code == 0
    progress = [r for r in result.records if r["type"] == "progress"]
    assert progress, "no progress records in a multi-second backup"
    assert {"phase", "bytes_done", "bytes_total", "items_done", "rate_bps"} <= set(progress[0])
    assert all(p["bytes_total"] == 320 << 20 for p in progress)
    done = [p["bytes_done"] for p in progress]
    assert done == sorted(done)
    journaled = vault_repo.events("BackupProgressed")
    assert journaled and {e["stream_id"] for e in journaled} == {result.summary["job_id"]}


def test_json_output_is_utf8_even_for_undecodable_names(vault_repo, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(os.path.join(os.fsencode(src), b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    vault_repo.backup(src)
    done = vault_repo.run("ls", "latest", str(src), "--json", binary=True)
    assert done.returncode == 0
    last = json.loads(done.stdout.decode("utf-8").splitlines()[-1])
    [entry] = last["entries"]
    assert os.fsencode(entry["path"]) == os.fsencode(src) + b"/caf\xe9.txt"
