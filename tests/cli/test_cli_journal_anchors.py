"""Journal anchors (docs/journal.md#anchors) through the real CLI: what the hash chain alone
cannot see — a truncated tail, a deleted journal, a re-hashed forgery, a snapshot file
deleted behind vault's back — is named by `journal verify` / `verify` and raised by
`vault status --check`.

Tampering is done the way someone with write access to the journal file but without the
repository key would: raw sqlite3, triggers dropped, hashes recomputed with the published
chain definition.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vault.journal.chain import chain_hash, row_fields

VAULT = str(Path(sys.executable).with_name("vault"))


def make_env(root: Path, state: str = "state") -> dict[str, str]:
    e = dict(os.environ)
    e.update(HOME=str(root), XDG_STATE_HOME=str(root / state),
             XDG_CACHE_HOME=str(root / "cache"), XDG_CONFIG_HOME=str(root / "cfg"),
             VAULT_REPOSITORY=str(root / "repo"), VAULT_PASSWORD="correct horse",
             VAULT_KDF_N="1024")
    e.pop("VAULT_CONFIG", None)
    return e


def vault(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VAULT, *args], env=env, capture_output=True, text=True,
                          timeout=120)


def journal_path(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "vault" / "journal.db"


def rows(env: dict[str, str], sql: str, *params: object) -> list[tuple[object, ...]]:
    db = sqlite3.connect(journal_path(env))
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def head_seq(env: dict[str, str]) -> int:
    return int(rows(env, "SELECT MAX(seq) FROM events")[0][0])


def completed(env: dict[str, str]) -> list[tuple[int, str]]:
    """(seq, snapshot id) of every BackupCompleted, oldest first."""
    return [(int(seq), str(sid)) for seq, sid in rows(
        env, "SELECT seq, json_extract(payload, '$.snapshot_id') FROM events"
             " WHERE type = 'BackupCompleted' ORDER BY seq")]


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    """A repository with two backups and a verify. Built per test, not copied: an anchor
    names its journal by path, and a copied journal is another journal."""
    env = make_env(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    assert vault(env, "init").returncode == 0
    for i in range(2):
        (data / f"f{i}.txt").write_text(f"content {i}\n" * 100)
        assert vault(env, "backup", str(data)).returncode == 0
    assert vault(env, "verify").returncode == 0
    return env


def journal_verify(env: dict[str, str], *args: str) -> tuple[int, str, dict[str, object]]:
    result = vault(env, "journal", "verify", "--json", *args)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return result.returncode, result.stdout + result.stderr, summary


def assert_tampering_alert(env: dict[str, str], fragment: str) -> None:
    status = vault(env, "status", "--check")
    assert status.returncode == 1, status.stdout + status.stderr
    alerts = [line for line in status.stdout.splitlines() if line.strip().startswith("!")]
    assert any("journal tampering detected" in a and fragment in a for a in alerts), alerts


def drop_triggers(db: sqlite3.Connection) -> None:
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_no_delete")


def test_an_untouched_journal_agrees_with_its_anchors(env: dict[str, str]) -> None:
    code, out, summary = journal_verify(env)
    assert code == 0, out
    # Two snapshots and one verify anchored so far, and nothing missing either way.
    assert summary["anchors_checked"] == 3
    assert summary["findings"] == [] and summary["lost_snapshots"] == []
    assert summary["unseen_snapshots"] == []
    assert vault(env, "status", "--check").returncode == 0


def test_a_truncated_tail_is_named_by_the_snapshot_that_anchored_it(
        tmp_path: Path) -> None:
    env = make_env(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a\n" * 500)
    assert vault(env, "init").returncode == 0
    assert vault(env, "backup", str(data)).returncode == 0
    assert vault(env, "backup", str(data)).returncode == 0
    (_, first), (last_seq, last_id) = completed(env)
    # Cut the second backup's last events, its BackupCompleted among them: the chain that
    # is left verifies, but the second snapshot anchored the head at its BackupCompleted.
    kept = last_seq - 3
    db = sqlite3.connect(journal_path(env))
    drop_triggers(db)
    db.execute("DELETE FROM events WHERE seq > ?", (kept,))
    db.commit()
    db.close()
    assert vault(env, "journal", "verify", "--chain-only").returncode == 0
    assert head_seq(env) == kept + 1  # its JournalVerified, after the rows left
    kept += 1

    code, out, summary = journal_verify(env)
    assert code == 1, out
    assert (f"journal ends at seq {kept} but snapshot {last_id[:8]} recorded head seq "
            f"{last_seq}") in summary["findings"]  # type: ignore[operator]
    # The repository holds a snapshot this journal no longer knows: named too.
    assert summary["unseen_snapshots"] == [last_id]
    assert first not in summary["unseen_snapshots"]  # type: ignore[operator]
    # Journaled in a fresh segment, right after the rows as they were found.
    tampering = rows(env, "SELECT seq, payload FROM events"
                          " WHERE type = 'JournalTamperingDetected'")
    assert [seq for seq, _ in tampering] == [kept + 1] == [summary["tampering_seq"]]
    payload = json.loads(str(tampering[0][1]))
    assert payload["found_head_seq"] == kept and payload["trusted_seq"] is not None
    assert payload["trusted_seq"] <= kept
    assert_tampering_alert(env, f"journal ends at seq {kept}")
    # The next verify checks the fresh segment and passes; the alert stays.
    again = vault(env, "journal", "verify")
    assert again.returncode == 0, again.stdout
    assert f"segment since seq {kept + 1}" in again.stdout
    assert_tampering_alert(env, f"journal ends at seq {kept}")


def test_truncating_the_last_events_is_caught_by_the_verify_anchor(
        env: dict[str, str]) -> None:
    head = head_seq(env)
    db = sqlite3.connect(journal_path(env))
    drop_triggers(db)
    db.execute("DELETE FROM events WHERE seq > ?", (head - 4,))
    db.commit()
    db.close()
    code, out, summary = journal_verify(env)
    assert code == 1, out
    findings = summary["findings"]
    assert isinstance(findings, list)
    assert re.fullmatch(rf"journal ends at seq {head - 4} but the verify anchor of "
                        r"\S+ \S+ \([0-9a-f]{8}\) recorded head seq \d+", findings[0])
    assert_tampering_alert(env, f"journal ends at seq {head - 4}")


def test_a_deleted_journal_is_caught(env: dict[str, str]) -> None:
    made = completed(env)
    for suffix in ("", "-wal", "-shm"):
        Path(str(journal_path(env)) + suffix).unlink(missing_ok=True)
    code, out, summary = journal_verify(env)
    assert code == 1, out
    findings = summary["findings"]
    assert isinstance(findings, list) and findings
    assert all(f.startswith("journal ends at seq 0 but ") for f in findings), findings
    seq, snapshot_id = made[-1]
    assert f"journal ends at seq 0 but snapshot {snapshot_id[:8]} recorded head seq {seq}" \
        in findings
    assert summary["unseen_snapshots"] == sorted(sid for _, sid in made)
    assert_tampering_alert(env, "journal ends at seq 0")


def test_a_rehashed_forgery_fools_the_chain_but_not_the_anchors(env: dict[str, str]) -> None:
    (first_seq, _), _ = completed(env)
    db = sqlite3.connect(journal_path(env))
    db.row_factory = sqlite3.Row
    drop_triggers(db)
    # Rewrite history: the first backup "read" other bytes, then every hash from there on
    # is recomputed so the chain is self-consistent again.
    db.execute("UPDATE events SET payload = json_set(payload, '$.bytes_raw', 1)"
               " WHERE seq = ?", (first_seq,))
    prev = db.execute("SELECT hash FROM events WHERE seq = ?", (first_seq - 1,)).fetchone()[0]
    for row in db.execute("SELECT * FROM events WHERE seq >= ? ORDER BY seq",
                          (first_seq,)).fetchall():
        new = chain_hash(prev, row_fields(row))
        db.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?",
                   (prev, new, row["seq"]))
        prev = new
    db.commit()
    db.close()
    chain_only = vault(env, "journal", "verify", "--chain-only")
    assert chain_only.returncode == 0 and "hash chain intact" in chain_only.stdout

    code, out, summary = journal_verify(env)
    assert code == 1, out
    findings = summary["findings"]
    assert isinstance(findings, list) and len(findings) == 3  # every anchor disagrees
    assert all(re.fullmatch(r"journal seq \d+ has hash [0-9a-f]{12} but .+ recorded "
                            r"[0-9a-f]{12} \(the chain was rewritten\)", f) for f in findings)
    assert any(" but snapshot " in f for f in findings)
    assert_tampering_alert(env, "the chain was rewritten")


def test_a_snapshot_deleted_from_the_repository_is_named(env: dict[str, str]) -> None:
    (_, kept), (seq, lost) = completed(env)
    assert vault(env, "status", "--check").returncode == 0
    # Deleting a snapshot file needs no key.
    (Path(env["VAULT_REPOSITORY"]) / "snapshots" / lost).unlink()
    expected = (f"snapshot {lost[:8]} is missing from the repository, although the journal "
                f"recorded it made (seq {seq})")
    verify = vault(env, "verify")
    assert verify.returncode == 1
    assert expected in verify.stdout + verify.stderr
    status = vault(env, "status", "--check")
    assert status.returncode == 1
    assert f"! {expected}" in status.stdout
    code, out, summary = journal_verify(env)
    assert code == 1, out
    assert summary["lost_snapshots"] == [lost] and summary["findings"] == []
    # A lost snapshot is the repository's loss, not the journal's: no tampering recorded.
    assert rows(env, "SELECT 1 FROM events WHERE type = 'JournalTamperingDetected'") == []
    assert str(kept[:8]) not in status.stdout  # the snapshot still there is not named
    # The operator accepts the loss: journaled as forgotten, the alert is gone.
    accepted = vault(env, "journal", "verify", "--forget-lost")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert f"forgotten: snapshot {lost[:8]}, lost by the repository" in accepted.stdout
    forgotten = json.loads(vault(env, "journal", "--type", "SnapshotForgotten",
                                 "--json").stdout)["events"]
    assert [e["payload"]["snapshot_id"] for e in forgotten] == [lost]
    # (verify first: the failed verify before is an alert of its own until one passes)
    assert vault(env, "verify").returncode == 0
    assert vault(env, "status", "--check").returncode == 0


def test_another_journal_on_the_same_repository_is_not_taken_for_tampering(
        env: dict[str, str]) -> None:
    # A second vault (its own journal, e.g. another host) sees this one's snapshots as
    # unseen, and never compares its journal with anchors that are not its own.
    other = make_env(Path(env["HOME"]), state="other-state")
    code, out, summary = journal_verify(other)
    assert code == 0, out
    assert summary["anchors_checked"] == 0 and summary["findings"] == []
    assert len(summary["unseen_snapshots"]) == 2  # type: ignore[arg-type]
    assert vault(other, "status", "--check").returncode == 0
    # ... and the first journal still agrees with its anchors after that.
    assert journal_verify(env)[0] == 0


def test_a_clean_check_keeps_the_newest_anchors_and_the_segment_start(vault_repo) -> None:  # type: ignore[no-untyped-def]
    """Through the Python API: one anchor per backup ever made would make every check
    load them all; a clean check keeps the newest KEEP_ANCHORS, and never the anchor that
    opened the current segment (the settled anchors before it would count again)."""
    from vault.config.model import load_config
    from vault.journal.events import CommandFailed
    from vault.operations.journal_check import (
        KEEP_ANCHORS,
        anchor_head,
        check_journal,
        check_journal_agreement,
        journal_ref,
        record_check,
    )
    from vault.repository.anchors import load_anchors
    from vault.runtime.app import Vault

    vault = Vault(load_config(None))
    try:
        repo = vault.repository()
        stale = anchor_head(vault, repo, "verify")
        # The head moves on, then the file loses its tail behind vault's back.
        vault.journal.append("test", CommandFailed(command="x", error_kind="y", message="z"))
        anchor_head(vault, repo, "verify")
        db = sqlite3.connect(vault.config.journal_path())
        drop_triggers(db)
        db.execute("DELETE FROM events WHERE seq > ?", (stale.head_seq,))
        db.commit()
        db.close()
        tampered = check_journal(vault, repo)
        record_check(vault, repo, tampered)
        assert tampered.tampering_seq == stale.head_seq + 1
        for _ in range(KEEP_ANCHORS + 10):
            anchor_head(vault, repo, "verify")
        check = check_journal_agreement(vault, repo)
        assert check.problems == [] and check.anchors_checked == KEEP_ANCHORS + 11
        kept = load_anchors(repo, journal_ref(vault))
        [segment] = [a for a in kept if a.segment_seq is not None]
        assert segment.segment_seq == tampered.tampering_seq
        settled = [a for a in kept if a.created < segment.created]
        assert [a.name for a in settled] == [stale.name, kept[1].name]  # left as they were
        current = [a for a in kept if a.created > segment.created]
        assert len(current) == KEEP_ANCHORS  # the newest, the one just written included
        assert len(kept) == 2 + 1 + KEEP_ANCHORS
        assert check_journal_agreement(vault, repo).problems == []  # still agrees
    finally:
        vault.close()


def test_vault_verify_checks_the_anchors_too(env: dict[str, str]) -> None:
    seq, snapshot_id = completed(env)[-1]
    for suffix in ("", "-wal", "-shm"):
        Path(str(journal_path(env)) + suffix).unlink(missing_ok=True)
    result = vault(env, "verify")
    assert result.returncode == 1, result.stdout + result.stderr
    # The verify's own events (requested, started) are the new journal's first rows.
    assert re.search(rf"problem: journal ends at seq [1-5] but snapshot {snapshot_id[:8]} "
                     rf"recorded head seq {seq}\n", result.stderr), result.stderr
    recorded = rows(env, "SELECT payload FROM events WHERE type = 'JournalTamperingDetected'")
    assert len(recorded) == 1
    assert_tampering_alert(env, "journal ends at seq ")
