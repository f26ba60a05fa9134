"""Passphrases never leak: not into the journal, not into any output; the repository
and the state vault keeps are private to their owner."""

from __future__ import annotations

import os
import stat
from pathlib import Path

FIRST = "pw-first-Zq8vN1xK"
WRONG = "pw-wrong-Hh27LpQe"
SECOND = "pw-second-Bm4TyU0c"
THIRD = "pw-third-Rk9WsE3j"
SECRETS = (FIRST, WRONG, SECOND, THIRD)


def _private_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def _leaks(data: bytes) -> list[str]:
    found = []
    for secret in SECRETS:
        for encoded in (secret.encode(), secret.encode("utf-16-le")):
            if encoded in data:
                found.append(secret)
    return found


def test_passphrases_never_reach_the_journal_or_any_output(vault, fs, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "file.txt").write_text("payload")
    pw_file = _private_file(tmp_path / "pw", FIRST)
    pw_script = tmp_path / "get-pw"
    pw_script.write_text(f"#!/bin/sh\ncat {pw_file}\n")
    pw_script.chmod(0o700)
    leaky_script = tmp_path / "leaky"
    leaky_script.write_text(f"#!/bin/sh\necho {FIRST}\necho 'no luck: {FIRST}' >&2\nexit 1\n")
    leaky_script.chmod(0o700)
    no_env = {"VAULT_PASSWORD": None}
    outputs: list[str] = []

    def run(*args: object, env: dict | None = None, expect: int = 0) -> None:
        done = vault.run(*args, env=env)
        outputs.extend([done.stdout, done.stderr])
        if "--json" in args:
            fs.parse_json_lines(done.stdout)
        assert done.returncode == expect, (args, done.stderr)

    run("init", "--json", env={"VAULT_PASSWORD": FIRST})
    run("--password-file", pw_file, "backup", src, "--json", env=no_env)
    run("--password-command", str(pw_script), "snapshots", "--json", env=no_env)
    run("restore", "latest", "--target", tmp_path / "out", "--json",
        env={"VAULT_PASSWORD": None, "VAULT_PASSWORD_FILE": str(pw_file)})
    run("verify", "--read-data", "--json",
        env={"VAULT_PASSWORD": None, "VAULT_PASSWORD_COMMAND": str(pw_script)})
    run("snapshots", "--json", env={"VAULT_PASSWORD": WRONG}, expect=1)
    run("backup", src, env={"VAULT_PASSWORD": WRONG}, expect=1)
    run("--password-command", str(leaky_script), "snapshots", "--json", env=no_env, expect=2)
    run("key", "add", "--new-password-file", _private_file(tmp_path / "pw2", SECOND), "--json",
        env={"VAULT_PASSWORD": FIRST})
    run("key", "passwd", "--json", env={"VAULT_PASSWORD": FIRST, "VAULT_NEW_PASSWORD": THIRD})
    run("backup", src, "--force", "--json", env={"VAULT_PASSWORD": THIRD})
    run("journal", "--json")
    run("journal", "verify", "--json", env={"VAULT_PASSWORD": THIRD})  # anchors: the key
    run("journal", "verify", "--chain-only", "--json")
    run("status", "--json", env={"VAULT_PASSWORD": SECOND})

    assert "***" in "".join(outputs)  # the leaky command's stderr was shown, redacted
    for text in outputs:
        assert not _leaks(text.encode()), text

    journal_files = list(vault.env.journal_path.parent.glob("journal.db*"))
    assert journal_files
    kept = [p for p in vault.env.home.rglob("*") if p.is_file()]
    kept += [p for p in vault.env.repo.rglob("*") if p.is_file()]
    for path in kept:
        assert not _leaks(path.read_bytes()), f"{path} holds a passphrase"
    failures = [e["payload"]["error_kind"] for e in vault.events("CommandFailed")]
    assert failures == ["WrongPassphrase", "WrongPassphrase", "SecretUnavailable"]


def test_repository_and_state_are_private(vault_repo, fs, tmp_path: Path) -> None:
    """Files 0600 and directories 0700 whatever the umask, after every kind of write."""
    src = tmp_path / "src"
    fs.write_random(src / "a.bin", 2_000_000, seed=1)
    (src / "b.txt").write_text("b")
    old_umask = os.umask(0)  # inherited by vault: modes must not come from the umask
    try:
        vault_repo.backup(src)
        vault_repo.backup(src, "--force")
        vault_repo.ok("key", "add", env={"VAULT_NEW_PASSWORD": "another one"})
        vault_repo.ok("verify")
        first = vault_repo.query("snapshots").summary["snapshots"][0]["id"]
        vault_repo.ok("forget", first)
    finally:
        os.umask(old_umask)

    repo = vault_repo.env.repo
    modes = {p: stat.S_IMODE(os.lstat(p).st_mode) for p in [repo, *repo.rglob("*")]}
    wrong = {str(p): oct(m) for p, m in modes.items()
             if m != (0o700 if p.is_dir() else 0o600)}
    assert not wrong, wrong
    assert {p.parent.name for p in modes if p.is_file()} >= {"keys", "index", "snapshots"}

    state = [vault_repo.env.journal_path, *vault_repo.env.cache_dir.rglob("files.db")]
    for path in state:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for directory in (vault_repo.env.state_dir, vault_repo.env.cache_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
