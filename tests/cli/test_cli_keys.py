"""`vault key add/list/passwd/remove`: several passphrases open one repository."""

from __future__ import annotations

from pathlib import Path


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def opens_with(vault, passphrase: str) -> bool:
    done = vault.query("snapshots", env={"VAULT_PASSWORD": passphrase})
    assert done.code in (0, 1), done.stderr
    assert done.code == 0 or done.last["error"] == "WrongPassphrase"
    return done.code == 0


def keys(vault, passphrase: str | None = None) -> list[dict]:
    env = {"VAULT_PASSWORD": passphrase} if passphrase else None
    return list(vault.query("key", "list", env=env).summary["keys"])


def test_key_lifecycle(vault_repo, fs, tmp_path: Path) -> None:
    original = vault_repo.env.password
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    vault_repo.backup(src)
    assert [k["current"] for k in keys(vault_repo)] == [True]

    # add: a second passphrase, labelled
    added = vault_repo.json("key", "add", "--new-password-file",
                            secret_file(tmp_path / "laptop", "laptop passphrase"),
                            "--label", "laptop")
    assert added.code == 0, added.last
    laptop_key = added.summary["key_id"]
    listed = keys(vault_repo)
    assert [(k["id"], k["label"], k["current"]) for k in listed][-1] == (
        laptop_key, "laptop", False)
    assert opens_with(vault_repo, "laptop passphrase") and opens_with(vault_repo, original)
    assert [k["id"] for k in keys(vault_repo, "laptop passphrase") if k["current"]] == [
        laptop_key]

    # passwd: the key in use gets a new passphrase; the old one stops working
    changed = vault_repo.json("key", "passwd", "--new-password-file",
                              secret_file(tmp_path / "rotated", "rotated passphrase"))
    assert changed.code == 0, changed.last
    assert not opens_with(vault_repo, original)
    assert opens_with(vault_repo, "rotated passphrase")
    assert opens_with(vault_repo, "laptop passphrase")
    assert len(keys(vault_repo, "rotated passphrase")) == 2

    # remove: never the key in use; another one, by id prefix
    in_use = vault_repo.run("key", "remove", laptop_key[:12],
                            env={"VAULT_PASSWORD": "laptop passphrase"})
    assert in_use.returncode == 2
    assert "refusing to remove the key this session is using" in in_use.stderr
    assert opens_with(vault_repo, "laptop passphrase")
    removed = vault_repo.json("key", "remove", laptop_key[:12],
                              env={"VAULT_PASSWORD": "rotated passphrase"})
    assert removed.code == 0 and removed.summary["key_id"] == laptop_key
    assert not opens_with(vault_repo, "laptop passphrase")
    assert opens_with(vault_repo, "rotated passphrase")

    types = [e["type"] for e in vault_repo.events("KeyAdded", "KeyChanged", "KeyRemoved")]
    assert types == ["KeyAdded", "KeyChanged", "KeyRemoved"]
    out = tmp_path / "out"
    vault_repo.restore(f"latest:{src}", "--target", out,
                       env={"VAULT_PASSWORD": "rotated passphrase"})
    fs.assert_same_tree(src, out, include_root=False)


def test_new_passphrase_from_the_environment(vault_repo) -> None:
    done = vault_repo.run("key", "add", env={"VAULT_NEW_PASSWORD": "from env"})
    assert done.returncode == 0, done.stderr
    assert opens_with(vault_repo, "from env")


def test_no_new_passphrase_without_a_terminal(vault_repo) -> None:
    done = vault_repo.run("key", "add")
    assert done.returncode == 2
    assert "--new-password-file" in done.stderr
    assert len(keys(vault_repo)) == 1


def test_empty_new_password_file_is_refused(vault_repo, tmp_path: Path) -> None:
    empty = secret_file(tmp_path / "empty", "")
    done = vault_repo.run("key", "add", "--new-password-file", empty)
    assert done.returncode == 2 and "is empty" in done.stderr
    assert len(keys(vault_repo)) == 1


def test_new_password_file_readable_by_others_is_refused(vault_repo, tmp_path: Path) -> None:
    loose = secret_file(tmp_path / "loose", "world readable", mode=0o644)
    done = vault_repo.run("key", "add", "--new-password-file", loose)
    assert done.returncode == 2
    assert len(keys(vault_repo)) == 1
