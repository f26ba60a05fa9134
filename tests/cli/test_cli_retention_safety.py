"""Retention keeps what a restore needs (issue 14, item 1), through the real CLI on a real
repository: the only full copy of a SQLite source with entities survives snapshots of two
projects, and a group of four sources is kept whole, so `vault restore GROUP --at` still
finds it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENTITIES = '''
[[sources.entities]]
name = "project"
collection = "projects"

[[sources.entities]]
name = "session"
collection = "sessions"
parent = "project"
key = "project_id"
'''


def make_chat(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript("""
            CREATE TABLE projects (id INTEGER PRIMARY KEY, title TEXT);
            CREATE TABLE sessions (id INTEGER PRIMARY KEY,
                                   project_id INTEGER REFERENCES projects(id), note TEXT);
        """)
        conn.executemany("INSERT INTO projects VALUES (?, ?)", [(i, f"p{i}") for i in (1, 2, 3)])
        conn.executemany("INSERT INTO sessions VALUES (?, ?, ?)",
                         [(i, 1 + i % 3, f"s{i}") for i in range(9)])
    conn.close()


def table_rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
    finally:
        conn.close()


def backup(vault: Any, config: Path, *args: Any) -> dict[str, Any]:
    done = vault.json("--config", config, "backup", *args)
    assert done.code == 0, done.last
    return dict(done.summary)


def restore(vault: Any, config: Path, *args: Any) -> dict[str, Any]:
    done = vault.json("--config", config, "restore", *args)
    assert done.code == 0, done.last
    return dict(done.summary)


def snapshot_ids(vault: Any) -> set[str]:
    return {s["id"] for s in vault.query("snapshots").summary["snapshots"]}


def test_the_only_full_copy_outlives_entity_snapshots(vault_repo: Any, tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    make_chat(db)
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "sqlite"\nname = "chat-db"\npath = "{db}"\n'
                      + ENTITIES)
    full = backup(vault_repo, config, "--source", "chat-db")["snapshot_id"]
    parts = [backup(vault_repo, config, "--source", "chat-db",
                               "--entity", "project=1,2")["snapshot_id"] for _ in range(2)]

    # keep-last 2 counts the project snapshots apart from the full one
    plan = vault_repo.json("--config", config, "forget", "--keep-last", "2", "--dry-run")
    assert plan.code == 0, plan.last
    assert {d["id"] for d in plan.summary["keep"]} == {full, *parts}
    [selected] = {d["selection"] for d in plan.summary["keep"] if d["id"] in parts}
    assert selected == "entity project=1,2"
    text = vault_repo.run("--config", config, "forget", "--keep-last", "2", "--dry-run")
    assert "selection=entity project=1,2" in text.stdout

    # a policy that keeps neither: the full one stays as the source's last complete copy
    kept = vault_repo.json("--config", config, "forget", "--keep-tag", "release")
    assert kept.code == 0, kept.last
    reasons = {d["id"]: d["reasons"] for d in kept.summary["keep"]}
    assert reasons == {full: ["last complete snapshot of chat-db"]}
    assert {d["id"] for d in kept.summary["removed"]} == set(parts)
    assert snapshot_ids(vault_repo) == {full}
    # --allow-empty lets it go too (shown, not done)
    empty = vault_repo.json("--config", config, "forget", "--keep-tag", "release",
                            "--allow-empty", "--dry-run")
    assert [d["id"] for d in empty.summary["removed"]] == [full]

    # and the full copy holds every project
    out = tmp_path / "back.db"
    restore(vault_repo, config, full[:8], "--target", out)
    assert table_rows(out, "projects") == table_rows(db, "projects")
    assert table_rows(out, "sessions") == table_rows(db, "sessions")
    assert len(table_rows(out, "projects")) == 3


def _group_config(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    where = {"uploads": tmp_path / "uploads", "chat-db": tmp_path / "chat.db",
             "notes-db": tmp_path / "notes.db", "cache": tmp_path / "cache"}
    where["uploads"].mkdir()
    where["cache"].mkdir()
    make_chat(where["chat-db"])
    config = tmp_path / "vault.toml"
    config.write_text(
        f'[[sources]]\ntype = "files"\nname = "uploads"\npaths = ["{where["uploads"]}"]\n'
        f'[[sources]]\ntype = "files"\nname = "cache"\npaths = ["{where["cache"]}"]\n'
        f'[[sources]]\ntype = "sqlite"\nname = "chat-db"\npath = "{where["chat-db"]}"\n'
        + ENTITIES
        + f'[[sources]]\ntype = "sqlite"\nname = "notes-db"\npath = "{where["notes-db"]}"\n'
        '[[groups]]\nname = "app"\nsources = ["uploads", "cache", "chat-db", "notes-db"]\n')
    return config, where


def _set_state(where: dict[str, Path], n: int) -> None:
    (where["uploads"] / "state.txt").write_text(f"upload {n}")
    (where["cache"] / "state.txt").write_text(f"cache {n}")
    with sqlite3.connect(where["chat-db"]) as conn:
        conn.execute("UPDATE projects SET title = ? WHERE id = 1", (f"p1 v{n}",))
    conn.close()
    with sqlite3.connect(where["notes-db"]) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, n INT)")
        conn.execute("INSERT OR REPLACE INTO notes VALUES (1, ?)", (n,))
    conn.close()


def test_a_group_is_kept_whole_and_still_restores(vault_repo: Any, tmp_path: Path) -> None:
    config, where = _group_config(tmp_path)
    _set_state(where, 1)
    group = backup(vault_repo, config, "--group", "app")
    members = {s["id"] for s in vault_repo.query("snapshots").summary["snapshots"]}
    assert len(members) == 4, group
    moment = datetime.now(UTC).isoformat()
    # three of the four sources are backed up alone twice more
    for n in (2, 3):
        _set_state(where, n)
        for name in ("uploads", "cache", "chat-db"):
            backup(vault_repo, config, "--source", name)

    # keep-last 2 alone would forget those three members and keep the notes-db one
    plan = vault_repo.json("--config", config, "forget", "--keep-last", "2")
    assert plan.code == 0, plan.last
    reasons = {d["id"]: d["reasons"] for d in plan.summary["keep"]}
    assert members <= set(reasons)
    grouped = [r for m in members for r in reasons[m] if r.startswith("member of group")]
    assert len(grouped) == 3
    assert members <= snapshot_ids(vault_repo)

    # the group still restores, every source back to state 1
    done = vault_repo.json("--config", config, "restore", "--yes", "app", "--at", moment,
                           "--mode", "overwrite")
    assert done.code == 0, done.last
    assert set(done.summary["snapshots"].values()) == members
    assert (where["uploads"] / "state.txt").read_text() == "upload 1"
    assert (where["cache"] / "state.txt").read_text() == "cache 1"
    assert table_rows(where["chat-db"], "projects")[0] == (1, "p1 v1")
    assert table_rows(where["notes-db"], "notes") == [(1, 1)]


def test_a_policy_judging_part_of_a_group_keeps_it_whole(vault_repo: Any,
                                                         tmp_path: Path) -> None:
    """As a schedule's retention does (it judges its own snapshots only): a group member
    outside the judged ones stays, so the judged members of its group stay too."""
    from vault.config.model import load_config
    from vault.operations.manage import apply_retention
    from vault.planning.retention import GROUP_REASON, RetentionPolicy
    from vault.repository.snapshot import Snapshot
    from vault.runtime.app import Vault

    config, where = _group_config(tmp_path)
    _set_state(where, 1)
    backup(vault_repo, config, "--group", "app")
    backup(vault_repo, config, "--source", "uploads")
    vault = Vault(load_config(config))
    try:
        def uploads_only(snapshot: Snapshot) -> bool:
            return snapshot.source.get("label") == "uploads"

        plan = apply_retention(vault, RetentionPolicy(keep_tags=frozenset({"none"})),
                               "host,paths", dry_run=False, select=uploads_only,
                               allow_empty=True)
    finally:
        vault.close()
    [member] = [d for d in plan.keep if d.snapshot.group_id]
    assert member.reasons == [GROUP_REASON.format(group=member.snapshot.group_id)]
    [alone] = plan.remove
    assert alone.snapshot.group_id is None
    left = vault_repo.query("snapshots").summary["snapshots"]
    assert len(left) == 4 and all(s["group_id"] for s in left)
