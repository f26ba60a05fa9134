"""`latest` is the newest snapshot of the right source (issue 14, item 2), through the
real CLI on a real repository holding files, a SQLite database and settings: the README's
`vault ls latest PATH` works, a bare `vault restore latest` is refused with the
candidates and writes nothing, and --source/--path/--host pick the snapshot."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def mixed(vault_repo: Any, tmp_path: Path) -> dict[str, Any]:
    """files, then a database, then settings backed up into one repository (in that
    order, so `latest` by time alone is the settings snapshot)."""
    app = tmp_path / "srv" / "app"
    (app / "conf").mkdir(parents=True)
    (app / "conf" / "app.json").write_bytes(b'{"port": 8080}\n')
    (app / "data.bin").write_bytes(bytes(range(256)) * 64)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'one')")
    conn.close()
    settings = tmp_path / "settings.toml"
    settings.write_text('[app]\ntitle = "chat"\n')
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "files"\nname = "app-files"\npaths = ["{app}"]\n'
                      f'[[sources]]\ntype = "sqlite"\nname = "app-db"\npath = "{db}"\n'
                      f'[[sources]]\ntype = "settings"\nname = "app-settings"\n'
                      f'path = "{settings}"\n')
    ids = {}
    for name in ("app-files", "app-db", "app-settings"):
        done = vault_repo.json("--config", config, "backup", "--source", name)
        assert done.code == 0, done.last
        ids[name] = done.summary["snapshot_id"]
    return {"vault": vault_repo, "config": config, "app": app, "db": db, "ids": ids,
            "tmp": tmp_path}


def cli(mixed: dict[str, Any], *args: Any) -> Any:
    return mixed["vault"].json("--config", mixed["config"], *args)


def test_ls_latest_path_is_the_newest_snapshot_holding_it(mixed: dict[str, Any]) -> None:
    app = mixed["app"]
    listed = cli(mixed, "ls", "latest", app)
    assert listed.code == 0, listed.last
    assert listed.summary["snapshot_id"] == mixed["ids"]["app-files"]
    assert sorted(e["path"] for e in listed.summary["entries"]) == [
        f"{app}/conf", f"{app}/data.bin"]
    sub = cli(mixed, "ls", f"latest:{str(app / 'conf').lstrip('/')}")
    assert [e["path"] for e in sub.summary["entries"]] == [f"{app}/conf/app.json"]
    missing = cli(mixed, "ls", "latest", mixed["tmp"] / "nowhere")
    assert missing.code == 1 and missing.last["error"] == "SnapshotNotFound"
    assert "--path" in missing.last["message"]


def test_bare_latest_is_refused_with_the_candidates(mixed: dict[str, Any]) -> None:
    target = mixed["tmp"] / "restored"
    db_before = mixed["db"].read_bytes()
    refused = cli(mixed, "restore", "latest", "--target", target, "--mode", "overwrite",
                  "--yes")
    assert refused.code == 2, refused.last
    assert refused.last["error"] == "LatestAmbiguous"
    for name in ("app-files", "app-db", "app-settings"):
        assert name in refused.last["message"]
    assert "--source NAME" in refused.last["message"]
    assert not target.exists() and mixed["db"].read_bytes() == db_before
    # without --json: one error line, then one line per candidate with its flags
    text = mixed["vault"].run("--config", mixed["config"], "restore", "latest",
                              "--target", target)
    lines = text.stderr.strip().splitlines()
    assert text.returncode == 2 and lines[0].startswith("vault: error: `latest` is ambiguous")
    candidates = [line for line in lines[1:] if "--source" in line]
    assert len(candidates) == 3
    assert mixed["ids"]["app-settings"][:8] in candidates[0]  # the newest first
    # the journal records the refused command
    failed = mixed["vault"].events("CommandFailed")
    assert failed and failed[-1]["payload"]["error_kind"] == "LatestAmbiguous"


def test_source_path_and_host_pick_the_snapshot(mixed: dict[str, Any]) -> None:
    app, tmp = mixed["app"], mixed["tmp"]
    out = tmp / "out"
    done = cli(mixed, "restore", "latest", "--source", "app-files", "--target", out)
    assert done.code == 0, done.last
    copy = out / str(app).lstrip("/")
    assert (copy / "data.bin").read_bytes() == (app / "data.bin").read_bytes()
    assert (copy / "conf" / "app.json").read_bytes() == b'{"port": 8080}\n'
    by_path = cli(mixed, "restore", "latest", "--path", app / "conf", "--target", tmp / "o2")
    assert by_path.code == 0, by_path.last
    assert (tmp / "o2" / str(app).lstrip("/") / "conf" / "app.json").exists()
    one_path = cli(mixed, "restore", "latest", app / "conf", "--target", tmp / "o3")
    assert one_path.code == 0, one_path.last
    db_copy = tmp / "copy.db"
    restored = cli(mixed, "restore", "latest", "--source", "app-db", "--target", db_copy)
    assert restored.code == 0, restored.last
    with sqlite3.connect(db_copy) as conn:
        assert conn.execute("SELECT id, v FROM t").fetchall() == [(1, "one")]
    conn.close()
    here = cli(mixed, "ls", "latest", "--host", socket.gethostname(), "--source", "app-db")
    assert here.code == 0 and here.summary["snapshot_id"] == mixed["ids"]["app-db"]
    elsewhere = cli(mixed, "restore", "latest", "--host", "no-such-host", "--target", tmp / "x")
    assert elsewhere.code == 1 and elsewhere.last["error"] == "SnapshotNotFound"
    wrong = cli(mixed, "ls", mixed["ids"]["app-db"][:8], "--source", "app-files")
    assert wrong.code == 1, wrong.last  # an id of another source is not found


def test_dump_diff_and_export_use_the_same_rule(mixed: dict[str, Any]) -> None:
    app, tmp = mixed["app"], mixed["tmp"]
    dumped = mixed["vault"].run("--config", mixed["config"], "dump", "latest",
                                app / "conf" / "app.json")
    assert dumped.returncode == 0, dumped.stderr
    assert dumped.stdout == '{"port": 8080}\n'
    (app / "conf" / "app.json").write_bytes(b'{"port": 9090}\n')
    second = cli(mixed, "backup", "--source", "app-files")
    assert second.code == 0, second.last
    diff = cli(mixed, "diff", mixed["ids"]["app-files"][:8], "latest", "--source", "app-files")
    assert diff.code == 0, diff.last
    assert diff.summary["changes"] == [{"change": "M", "path": f"{app}/conf/app.json"}]
    assert cli(mixed, "diff", mixed["ids"]["app-files"][:8], "latest").code == 2
    refused = cli(mixed, "export", "latest", "-o", tmp / "x.vault", "--no-encrypt")
    assert refused.code == 2 and refused.last["error"] == "LatestAmbiguous"
    assert not (tmp / "x.vault").exists()
    exported = cli(mixed, "export", "latest", "--source", "app-db", "-o", tmp / "db.vault",
                   "--no-encrypt")
    assert exported.code == 0, exported.last
    assert exported.summary["snapshot_id"] == mixed["ids"]["app-db"]


def test_one_source_keeps_plain_latest(vault_repo: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("one")
    vault_repo.backup(data)
    (data / "f").write_text("two")
    newest = vault_repo.backup(data)["snapshot_id"]
    shown = vault_repo.json("ls", "latest")
    assert shown.code == 0 and shown.summary["snapshot_id"] == newest
