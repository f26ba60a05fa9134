"""The whole CLI against OpenSSH's sshd on loopback: init, backup, restore byte-identical,
verify --read-data, forget + prune; an unknown host key is refused with a clear error."""

from __future__ import annotations

import os
from pathlib import Path

from storage_servers import SshServer


def _config(tmp_path: Path, server: SshServer, known_hosts: Path) -> Path:
    config = tmp_path / "vault.toml"
    config.write_text(
        f'[repository]\nurl = "{server.url(tmp_path / "remote" / "repo")}"\n'
        f'[repository.sftp]\nknown_hosts = "{known_hosts}"\n'
        f'identity_file = "{server.home / ".ssh" / "id_ed25519"}"\n')
    return config


def test_init_backup_restore_verify_over_sftp(vault, fs, ssh_server: SshServer,
                                              tmp_path: Path) -> None:
    config = _config(tmp_path, ssh_server, ssh_server.home / ".ssh" / "known_hosts")
    env = {"VAULT_REPOSITORY": None, "SSH_AUTH_SOCK": None}
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "random.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    (src / "notes.txt").write_text("over ssh\n" * 500)
    (src / "link").symlink_to("notes.txt")

    vault.ok("--config", config, "init", env=env)
    remote = tmp_path / "remote" / "repo"
    assert (remote / "config").is_file() and (remote / "data" / "ff").is_dir()

    done = vault.json("--config", config, "backup", src, env=env)
    assert done.code == 0, done.last
    target = tmp_path / "out"
    restored = vault.json("--config", config, "restore", "latest", "--target", target,
                          env=env)
    assert restored.code == 0, restored.last
    fs.assert_same_tree(src, fs.restored_path(target, src))
    verified = vault.json("--config", config, "verify", "--read-data", env=env)
    assert verified.code == 0, verified.last

    (src / "deep" / "random.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    second = vault.json("--config", config, "backup", src, env=env)
    assert second.code == 0, second.last
    forgot = vault.json("--config", config, "forget", done.summary["snapshot_id"], env=env)
    assert forgot.code == 0, forgot.last
    pruned = vault.json("--config", config, "prune", env=env)
    assert pruned.code == 0, pruned.last
    again = tmp_path / "again"
    vault.json("--config", config, "restore", "latest", "--target", again, env=env)
    fs.assert_same_tree(src, fs.restored_path(again, src))
    assert vault.json("--config", config, "verify", "--read-data", env=env).code == 0
    assert not list(remote.rglob(".tmp-*"))


def test_an_unknown_host_key_is_refused_clearly(vault, ssh_server: SshServer,
                                                tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = _config(tmp_path, ssh_server, empty)
    refused = vault.json("--config", config, "init", env={"VAULT_REPOSITORY": None,
                                                          "SSH_AUTH_SOCK": None})
    assert refused.code != 0
    message = refused.last["message"]
    assert "host key of 127.0.0.1 is not in" in message and str(empty) in message
    assert "\n" not in message
    assert not (tmp_path / "remote").exists()  # nothing was written to that server
