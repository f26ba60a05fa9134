"""`vault copy` local -> S3 (moto) -> SFTP (OpenSSH's sshd), each on loopback: every copy
restores byte-identical and verifies, a second copy sends nothing, and neither the S3
secret nor a passphrase shows in the journal, the JSON output or the messages."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from copy_helpers import ENV, Repo, summary, write_config
from storage_servers import BUCKET, S3Server, SshServer

MiB = 1 << 20

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, moto: S3Server, ssh: SshServer) -> Path:
    key_file = tmp_path / "s3-secret"
    key_file.write_text(moto.secret_key + "\n")
    key_file.chmod(0o600)
    s3 = (f'[repositories.s3]\nendpoint = "{moto.endpoint}"\nregion = "us-east-1"\n'
          'path_style = true\naccess_key_id = { env = "OFFSITE_KEY_ID" }\n'
          f'secret_access_key = {{ file = "{key_file}" }}')
    sftp = (f'[repositories.sftp]\nknown_hosts = "{ssh.home / ".ssh" / "known_hosts"}"\n'
            f'identity_file = "{ssh.home / ".ssh" / "id_ed25519"}"')
    return write_config(tmp_path, [
        Repo("local", str(tmp_path / "local"), "pass-local", "chunk_avg_kib = 256"),
        Repo("bucket", f"s3://{BUCKET}/copy-{secrets.token_hex(4)}", "pass-bucket",
             tables=s3),
        Repo("far", ssh.url(tmp_path / "remote" / "repo"), "pass-far",
             "chunk_avg_kib = 2048", tables=sftp),
    ])


def test_copy_local_to_s3_to_sftp(vault, fs, moto: S3Server, ssh_server: SshServer,
                                  tmp_path: Path) -> None:
    config = _config(tmp_path, moto, ssh_server)
    env = {**ENV, "OFFSITE_KEY_ID": moto.access_key, "AWS_ACCESS_KEY_ID": None,
           "AWS_SECRET_ACCESS_KEY": None}

    def cli(*args: object):
        return vault.json("--config", config, *args, env=env)

    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "random.bin").write_bytes(os.urandom(4 * MiB + 5))
    (src / "notes.txt").write_text("off-site\n" * 3000)
    (src / "link").symlink_to("notes.txt")
    outputs = [cli("init"), cli("-r", "bucket", "init"), cli("-r", "far", "init")]
    assert all(o.code == 0 for o in outputs), [o.last for o in outputs]
    snapshot = summary(cli("backup", src))["snapshot_id"]

    to_s3 = summary(cli("copy", snapshot, "--to", "bucket"))
    [in_s3] = [c["copy_id"] for c in to_s3["copied"]]
    to_sftp = summary(cli("-r", "bucket", "copy", "--all", "--to", "far"))
    [in_sftp] = [c["copy_id"] for c in to_sftp["copied"]]
    for name, copy_id in (("bucket", in_s3), ("far", in_sftp)):
        target = tmp_path / f"out-{name}"
        summary(cli("-r", name, "restore", copy_id, "--target", target))
        fs.assert_same_tree(src, fs.restored_path(target, src))
        assert cli("-r", name, "verify", "--read-data").code == 0

    # The original's id travels with every copy: local -> far directly is a no-op.
    direct = summary(cli("copy", "--all", "--to", "far"))
    again = summary(cli("copy", "--all", "--to", "bucket"))
    for result in (direct, again):
        assert result["copied"] == [] and result["bytes_stored"] == 0
        assert result["bytes_read"] == 0 and len(result["skipped"]) == 1

    journal = cli("journal")
    texts = [o.stdout + o.stderr for o in
             (*outputs, journal, cli("status"), cli("-r", "bucket", "snapshots"))]
    texts += [p.read_bytes().decode("latin-1") for p in vault.env.home.rglob("*")
              if p.is_file()]
    for text in texts:
        for secret in (moto.secret_key, "pass-local", "pass-bucket", "pass-far"):
            assert secret not in text
