"""The whole CLI against Azure Blob Storage (Azurite) and Google Cloud Storage
(gcp-storage-emulator) on loopback: init, backup, restore byte-identical, verify
--read-data, forget + prune; credentials by secret reference and the account key never in
the journal, --json output, messages or vault's state."""

from __future__ import annotations

import json
import os
import re
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import obstore
import pytest
from obstore.store import AzureStore

from cloud_servers import (
    AzuriteServer,
    GcsEmulator,
    azurite,
    azurite_missing,
    gcs_emulator,
    gcs_emulator_missing,
)


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    missing = azurite_missing()
    if missing is not None:
        pytest.skip(missing)
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="module")
def gcs() -> Iterator[GcsEmulator]:
    """gcp-storage-emulator behind its XML API shim (tests/gcs_xml_shim.py), which vault
    (obstore) reaches from its own process over loopback."""
    missing = gcs_emulator_missing()
    if missing is not None:  # the one reason to skip: the emulator cannot be installed
        pytest.skip(missing)
    with gcs_emulator() as server:
        yield server


def _tree(src: Path) -> None:
    """A few MiB that do not compress, a compressible text, an empty file, a symlink."""
    nested = src / "docs" / "deep"
    nested.mkdir(parents=True)
    (nested / "random.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (src / "docs" / "notes.txt").write_text("beta\n" * 1500)
    (src / "docs" / "empty").touch()
    (src / "to-notes").symlink_to("docs/notes.txt")


def _blobs(server: AzuriteServer, prefix: str) -> list[str]:
    store = AzureStore(server.container, prefix=prefix, account_name=server.account,
                       account_key=server.key, endpoint=server.endpoint,
                       client_options={"allow_http": True})
    return [str(meta["path"]) for chunk in obstore.list(store) for meta in chunk]


def _gcs_objects(server: GcsEmulator, prefix: str) -> list[str]:
    """Object names under ``prefix``, from the emulator's own JSON API."""
    url = (f"{server.json_endpoint}/storage/v1/b/{server.bucket}/o"
           f"?prefix={quote(prefix + '/', safe='')}")
    with urllib.request.urlopen(url, timeout=10) as answer:
        return [item["name"].removeprefix(prefix + "/")
                for item in json.load(answer).get("items") or []]


def _gcs_puts(server: GcsEmulator, prefix: str) -> list[tuple[str, str | None]]:
    """(key under ``prefix``, x-goog-if-generation-match or None) of every PUT that the
    XML API shim passed on."""
    puts = []
    for line in server.shim.requests:
        method, target = line.split(" ")[:2]
        key = unquote(target.split("/", 2)[2]) if target.count("/") > 1 else ""
        if method == "PUT" and key.startswith(prefix + "/"):
            condition = re.search(r"x-goog-if-generation-match: (\S+)", line, re.I)
            puts.append((key.removeprefix(prefix + "/"), condition and condition[1]))
    return puts


def _round_trip(vault: Any, fs: Any, tmp_path: Path, base: tuple[str, ...],
                env: dict[str, str | None]) -> list[Any]:
    """init, backup, restore, verify, change, backup, forget the first, prune, restore and
    verify again; every command's result, for the secret checks."""
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)
    done: list[Any] = [vault.ok(*base, "init", env=env)]
    first = vault.json(*base, "backup", src, env=env)
    assert first.code == 0 and first.last["status"] == "completed", first.last
    assert first.last["problems"] == []
    target = tmp_path / "out"
    done += [first, vault.json(*base, "restore", "latest", "--target", target, env=env)]
    fs.assert_same_tree(src, fs.restored_path(target, src))
    done.append(vault.json(*base, "verify", "--read-data", env=env))
    assert done[-1].code == 0, done[-1].last

    (src / "docs" / "notes.txt").write_text("changed\n")
    second = vault.json(*base, "backup", src, env=env)
    assert second.last["snapshot_id"] != first.last["snapshot_id"]
    done += [second, vault.json(*base, "forget", first.last["snapshot_id"], env=env)]
    assert done[-1].code == 0, done[-1].last
    done.append(vault.json(*base, "prune", env=env))
    assert done[-1].code == 0, done[-1].last
    again = tmp_path / "again"
    done.append(vault.json(*base, "restore", "latest", "--target", again, env=env))
    fs.assert_same_tree(src, fs.restored_path(again, src))
    done.append(vault.json(*base, "verify", "--read-data", env=env))
    assert done[-1].code == 0, done[-1].last
    done += [vault.json(*base, "status", env=env), vault.json(*base, "journal", env=env)]
    assert done[-2].code == 0 and done[-1].code == 0, (done[-2].last, done[-1].last)
    return done


def _texts_seen(vault: Any, results: list[Any], config: Path) -> list[str]:
    """Everything an operator or a log collector could see: output, the config, and every
    file of vault's state (journal, caches)."""
    texts = [r.stdout + r.stderr for r in results]
    texts.append(config.read_text())
    texts += [p.read_bytes().decode("latin-1") for p in vault.env.home.rglob("*")
              if p.is_file()]
    return texts


def test_azure_round_trip_with_a_key_by_secret_reference(
    vault, fs, azure: AzuriteServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "azure-key"
    key_file.write_text(azure.key + "\n")
    key_file.chmod(0o600)
    prefix = f"e2e-{secrets.token_hex(4)}"
    config = tmp_path / "vault.toml"
    config.write_text(
        f'[repository]\nurl = "az://{azure.container}/{prefix}"\n'
        f'[repository.azure]\nendpoint = "{azure.endpoint}"\naccount = "{azure.account}"\n'
        f'account_key = {{ file = "{key_file}" }}\n')
    env: dict[str, str | None] = {"VAULT_REPOSITORY": None}

    results = _round_trip(vault, fs, tmp_path, ("--config", str(config)), env)

    blobs = _blobs(azure, prefix)
    assert "config" in blobs and any(b.startswith("data/") for b in blobs)
    assert not any(b.startswith(("locks/", "probe/")) for b in blobs)
    assert any(r.get("type") == "summary" for r in results[-1].records)
    for text in _texts_seen(vault, results, config):
        assert azure.key not in text


def test_azure_connection_string_from_the_environment(
    vault, fs, azure: AzuriteServer, tmp_path: Path
) -> None:
    """No config file at all: the URL and AZURE_STORAGE_CONNECTION_STRING, as the portal
    hands it out; a wrong key is refused in one line that does not repeat the string."""
    prefix = f"conn-{secrets.token_hex(4)}"
    env: dict[str, str | None] = {"VAULT_REPOSITORY": f"az://{azure.container}/{prefix}",
                                  "AZURE_STORAGE_CONNECTION_STRING": azure.connection_string()}
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)
    vault.ok("init", env=env)
    assert vault.backup(src, env=env)["status"] == "completed"
    target = tmp_path / "out"
    vault.restore("latest", "--target", target, env=env)
    fs.assert_same_tree(src, fs.restored_path(target, src))

    wrong = azure.connection_string().replace(azure.key, "d3Jvbmcta2V5LW9mLTMyLWJ5dGVzLXh4eHh4eHg=")
    refused = vault.run("snapshots", "--json", env={**env,
                                                    "AZURE_STORAGE_CONNECTION_STRING": wrong})
    assert refused.returncode == 1
    error = json.loads(refused.stdout.strip().splitlines()[-1])
    assert error["type"] == "error" and "access denied" in error["message"], error
    assert "\n" not in error["message"]
    assert "AccountKey" not in refused.stdout + refused.stderr


def test_gcs_round_trip_with_a_service_account_by_secret_reference(
    vault, fs, gcs: GcsEmulator, tmp_path: Path
) -> None:
    account = gcs.service_account_key()
    prefix = f"e2e-{secrets.token_hex(4)}"
    config = tmp_path / "vault.toml"
    config.write_text(
        f'[repository]\nurl = "gs://{gcs.bucket}/{prefix}"\n'
        '[repository.gcs]\nservice_account_key = { env = "OFFSITE_GCS_KEY" }\n')
    env: dict[str, str | None] = {"VAULT_REPOSITORY": None, "OFFSITE_GCS_KEY": account}

    results = _round_trip(vault, fs, tmp_path, ("--config", str(config)), env)

    assert gcs.shim.untranslated == []  # obstore sent only what the shim translates
    stored = _gcs_objects(gcs, prefix)  # as the emulator holds them, not as vault says
    assert "config" in stored and any(name.startswith("data/") for name in stored)
    assert not any(name.startswith(("locks/", "probe/")) for name in stored)
    puts = _gcs_puts(gcs, prefix)
    # The emulator ignores ifGenerationMatch: the probe's second create-only PUT went
    # through, so vault took locks by plain PUT + list + check (docs/storage.md).
    assert any(key.startswith("probe/") and condition == "0" for key, condition in puts)
    lock_puts = [condition for key, condition in puts if key.startswith("locks/")]
    assert lock_puts and all(condition is None for condition in lock_puts), lock_puts
    # restic's spelling of the same repository reaches it (and lists the same snapshots)
    as_restic = vault.json("--config", str(config), "-r", f"gs:{gcs.bucket}:/{prefix}",
                           "snapshots", env=env)
    as_url = vault.json("--config", str(config), "snapshots", env=env)
    assert as_restic.code == 0 and as_restic.records == as_url.records, as_restic.last
    assert [s["id"] for s in as_url.last["snapshots"]] == [results[4].last["snapshot_id"]]
    private_key = json.loads(account)["private_key"]
    for text in _texts_seen(vault, results, config):
        assert private_key not in text


def test_azure_init_into_a_missing_container_says_so(vault, azure: AzuriteServer) -> None:
    env: dict[str, str | None] = {
        "VAULT_REPOSITORY": "az://no-such-container/x",
        "AZURE_STORAGE_CONNECTION_STRING": azure.connection_string()}
    refused = vault.run("init", env=env)
    assert refused.returncode == 1, refused.stderr
    assert "container 'no-such-container' does not exist" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert azure.key not in refused.stdout + refused.stderr
