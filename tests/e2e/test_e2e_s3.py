"""The whole CLI against a real S3 server (moto on loopback): init, backup, restore
byte-identical, verify --read-data, forget + prune; credentials by secret reference and by
the AWS environment, and never in the journal, --json output or messages."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import obstore
from obstore.store import S3Store

from storage_servers import BUCKET, S3Server

VAULT_BIN = Path(sys.executable).with_name("vault")


def _tree(src: Path) -> None:
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("alpha\n" * 1000)
    (src / "docs" / "deep" / "random.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (src / "empty").touch()
    (src / "link").symlink_to("docs/a.txt")


def _keys(server: S3Server, prefix: str) -> list[str]:
    store = S3Store(BUCKET, prefix=prefix, endpoint=server.endpoint, region="us-east-1",
                    access_key_id=server.access_key, secret_access_key=server.secret_key,
                    virtual_hosted_style_request=False, client_options={"allow_http": True})
    return [str(meta["path"]) for chunk in obstore.list(store) for meta in chunk]


def test_init_backup_restore_verify_prune_on_s3_with_env_credentials(
    vault, fs, moto: S3Server, tmp_path: Path
) -> None:
    prefix = f"e2e-{secrets.token_hex(4)}"
    env = {**moto.env(), "VAULT_REPOSITORY": f"s3://{BUCKET}/{prefix}"}
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)

    vault.ok("init", env=env)
    keys = _keys(moto, prefix)
    assert "config" in keys and any(k.startswith("keys/") for k in keys)

    first = vault.backup(src, env=env)
    assert first["status"] == "completed" and first["problems"] == []
    assert any(k.startswith("data/") for k in _keys(moto, prefix))

    target = tmp_path / "out"
    vault.restore("latest", "--target", target, env=env)
    fs.assert_same_tree(src, fs.restored_path(target, src))

    verified = vault.json("verify", "--read-data", env=env)
    assert verified.code == 0, verified.last

    (src / "docs" / "a.txt").write_text("changed\n")
    second = vault.backup(src, env=env)
    assert second["snapshot_id"] != first["snapshot_id"]
    forgot = vault.json("forget", first["snapshot_id"], env=env)
    assert forgot.code == 0, forgot.last
    pruned = vault.json("prune", env=env)
    assert pruned.code == 0, pruned.last
    again = tmp_path / "again"
    vault.restore("latest", "--target", again, env=env)
    fs.assert_same_tree(src, fs.restored_path(again, src))
    assert vault.json("verify", "--read-data", env=env).code == 0


def test_secret_ref_credentials_stay_out_of_journal_output_and_config(
    vault, fs, moto: S3Server, tmp_path: Path
) -> None:
    key_file = tmp_path / "s3-secret"
    key_file.write_text(moto.secret_key + "\n")
    key_file.chmod(0o600)
    prefix = f"refs-{secrets.token_hex(4)}"
    config = tmp_path / "vault.toml"
    config.write_text(
        f'[repository]\nurl = "s3://{BUCKET}/{prefix}"\n'
        f'[repository.s3]\nendpoint = "{moto.endpoint}"\nregion = "us-east-1"\n'
        'path_style = true\naccess_key_id = { env = "OFFSITE_KEY_ID" }\n'
        f'secret_access_key = {{ file = "{key_file}" }}\n')
    env = {"OFFSITE_KEY_ID": moto.access_key, "VAULT_REPOSITORY": None,
           "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)

    outputs = [vault.run("--config", config, "init", env=env)]
    assert outputs[0].returncode == 0, outputs[0].stderr
    done = vault.json("--config", config, "backup", src, env=env)
    assert done.code == 0, done.last
    target = tmp_path / "out"
    restored = vault.json("--config", config, "restore", "latest", "--target", target, env=env)
    assert restored.code == 0, restored.last
    fs.assert_same_tree(src, fs.restored_path(target, src))
    status = vault.json("--config", config, "status", env=env)
    journal = vault.json("--config", config, "journal", env=env)
    assert any(r.get("type") == "summary" for r in journal.records)

    texts = [o.stdout + o.stderr for o in outputs]
    texts += [r.stdout + r.stderr for r in (done, restored, status, journal)]
    texts.append(config.read_text())
    state = vault.env.home
    texts += [p.read_bytes().decode("latin-1") for p in state.rglob("*") if p.is_file()]
    for text in texts:
        assert moto.secret_key not in text


def test_restics_spelling_reaches_the_server_and_never_makes_a_local_directory(
    vault, moto: S3Server, tmp_path: Path
) -> None:
    prefix = f"restic-form-{secrets.token_hex(4)}"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    location = f"s3:{moto.endpoint}/{BUCKET}/{prefix}"
    done = vault.run("-r", location, "init", env=moto.env(), cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "config" in _keys(moto, prefix)
    refused = vault.run("-r", "b2:bucket:repo", "init", env=moto.env(), cwd=cwd)
    assert refused.returncode == 2, refused.stderr
    assert "unknown storage scheme 'b2' (known: az, file, gs, s3, sftp)" in refused.stderr
    assert list(cwd.iterdir()) == []


def test_two_clients_back_up_into_one_bucket_while_a_third_prunes(
    vault_at, fs, moto: S3Server, tmp_path: Path
) -> None:
    """Separate processes with separate state directories (as on separate hosts) share
    one S3 repository: both backups and the prune succeed, every snapshot restores
    byte-identical, verify --read-data finds nothing wrong."""
    env = {**moto.env(), "VAULT_REPOSITORY": f"s3://{BUCKET}/shared-{secrets.token_hex(4)}"}
    one, two, pruner = (vault_at(tmp_path / name) for name in ("one", "two", "pruner"))
    one.ok("init", env=env)
    sources = []
    for n in range(2):
        src = tmp_path / f"src{n}"
        src.mkdir()
        for i in range(4):
            (src / f"f{i}.bin").write_bytes(os.urandom(2 * 1024 * 1024 + n))
        sources.append(src)
    old = tmp_path / "old"
    old.mkdir()
    (old / "gone.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    doomed = one.backup(old, env=env)["snapshot_id"]
    assert one.json("forget", doomed, env=env).code == 0

    def start(client, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(VAULT_BIN), *args, "--json"], text=True,
                                env={**client.env.env, **env}, cwd=client.env.root,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    running = [start(one, "backup", str(sources[0])), start(two, "backup", str(sources[1])),
               start(pruner, "prune")]
    for process in running:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{process.args}: {out[-500:]} {err[-500:]}"

    for n, src in enumerate(sources):
        target = tmp_path / f"out{n}"
        one.restore(f"latest:{src}", "--target", target, env=env)
        fs.assert_same_tree(src, target, include_root=False)
    verified = two.json("verify", "--read-data", env=env)
    assert verified.code == 0, verified.last
