"""`vault copy` between two local repositories with different keys and chunker parameters,
through the real CLI: the copies restore byte-identical, a second copy writes nothing to the
destination, damaged source data is reported and not copied, the journal tells both ids,
and no passphrase shows anywhere."""

from __future__ import annotations

from pathlib import Path

from damage_helpers import flip_byte, largest_pack

from copy_helpers import ENV, Repo, files_of, summary, write_config

MiB = 1 << 20
LOCAL_PASS = "local-passphrase-5d1c"
OFFSITE_PASS = "offsite-passphrase-9e2a"


def _setup(vault, fs, tmp_path: Path, *, offsite_extra: str = "chunk_avg_kib = 1024"):
    local, offsite = tmp_path / "local", tmp_path / "offsite"
    config = write_config(tmp_path, [
        Repo("local", str(local), LOCAL_PASS, "chunk_avg_kib = 256\npack_size_mib = 4"),
        Repo("offsite", str(offsite), OFFSITE_PASS, offsite_extra),
    ])
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    fs.write_random(src / "deep" / "random.bin", 6 * MiB + 11, seed=1)
    fs.write_compressible(src / "text.log", 2 * MiB, seed=2)
    (src / "empty").touch()
    (src / "link").symlink_to("text.log")
    return config, src, local, offsite


def _cli(vault, config: Path):
    def run(*args, **kwargs):
        return vault.json("--config", config, *args, env=ENV, **kwargs)
    return run


def test_copy_between_keys_and_chunkers_restores_byte_identical_and_twice_writes_nothing(
        vault, fs, tmp_path: Path) -> None:
    config, src, _local, offsite = _setup(vault, fs, tmp_path)
    cli = _cli(vault, config)
    summary(cli("init"))  # the first entry is the default
    summary(cli("-r", "offsite", "init"))
    first = summary(cli("backup", src))["snapshot_id"]
    fs.write_random(src / "deep" / "second.bin", 3 * MiB, seed=3)
    second = summary(cli("backup", src))["snapshot_id"]

    copied = summary(cli("copy", "--all", "--to", "offsite"))
    pairs = {c["snapshot_id"]: c["copy_id"] for c in copied["copied"]}
    assert set(pairs) == {first, second} and copied["failed"] == []
    assert copied["bytes_stored"] > 9 * MiB  # the random data, re-encrypted
    assert not set(pairs.values()) & {first, second}  # other keys: other ids

    listed = summary(cli("-r", "offsite", "snapshots"))["snapshots"]
    assert sorted(s["id"] for s in listed) == sorted(pairs.values())
    by_id = {s["id"]: s for s in listed}
    assert by_id[pairs[second]]["original"] == second
    assert by_id[pairs[second]]["parent"] == pairs[first]  # copied in the same run
    latest = tmp_path / "latest"
    summary(cli("-r", "offsite", "restore", pairs[second], "--target", latest))
    fs.assert_same_tree(src, fs.restored_path(latest, src))
    older_local, older_copy = tmp_path / "older-local", tmp_path / "older-copy"
    summary(cli("restore", first, "--target", older_local))
    summary(cli("-r", "offsite", "restore", pairs[first], "--target", older_copy))
    assert fs.dir_digest(fs.restored_path(older_copy, src)) == \
        fs.dir_digest(fs.restored_path(older_local, src))
    assert not (fs.restored_path(older_copy, src) / "deep" / "second.bin").exists()
    assert cli("-r", "offsite", "verify", "--read-data").code == 0

    stored = files_of(offsite)
    again = summary(cli("copy", "--all", "--to", "offsite"))
    assert again["copied"] == [] and again["bytes_stored"] == 0 and again["bytes_read"] == 0
    assert {s["snapshot_id"] for s in again["skipped"]} == {first, second}
    assert files_of(offsite) == stored  # not one byte written

    events = vault.events("SnapshotCopied", "CopyRequested", "CopyCompleted")
    copied_events = [e for e in events if e["type"] == "SnapshotCopied"]
    assert {(e["payload"]["from_snapshot_id"], e["payload"]["to_snapshot_id"])
            for e in copied_events} == set(pairs.items())
    assert all(e["payload"]["to_name"] == "offsite" for e in copied_events)
    completed = [e["payload"] for e in events if e["type"] == "CopyCompleted"]
    assert [(c["copied"], c["skipped"]) for c in completed] == [(2, 0), (0, 2)]
    assert all(c["duration_seconds"] > 0 for c in completed)


def test_an_incremental_copy_reads_only_what_changed(vault, fs, tmp_path: Path) -> None:
    """The second snapshot's unchanged data is mapped through the first one's copy
    (trees only), not read from the source again."""
    config, src, _local, _offsite = _setup(vault, fs, tmp_path)
    cli = _cli(vault, config)
    summary(cli("init"))
    summary(cli("-r", "offsite", "init"))
    summary(cli("backup", src))
    summary(cli("copy", "--all", "--to", "offsite"))
    fs.write_random(src / "new.bin", 1 * MiB, seed=9)
    summary(cli("backup", src))
    incremental = summary(cli("copy", "latest", "--to", "offsite"))
    assert len(incremental["copied"]) == 1
    assert MiB <= incremental["bytes_read"] < MiB + 256 * 1024
    target = tmp_path / "out"
    summary(cli("-r", "offsite", "restore", "latest", "--target", target))
    fs.assert_same_tree(src, fs.restored_path(target, src))


def test_shared_chunker_params_let_a_backup_reuse_copied_data(vault, fs, tmp_path) -> None:
    """`init --copy-chunker-params-from local`: the destination cuts chunks as the source
    does, so backing up the same files there after a copy stores (almost) nothing; with
    chunkers of their own the same backup stores the data again."""
    config, src, _local, _offsite = _setup(vault, fs, tmp_path)
    cli = _cli(vault, config)
    summary(cli("init"))
    summary(cli("-r", "offsite", "init", "--copy-chunker-params-from", "local"))
    summary(cli("backup", src))
    summary(cli("copy", "--all", "--to", "offsite"))
    again = summary(cli("-r", "offsite", "backup", src))
    assert again["bytes_new"] < 64 * 1024, again

    separate = tmp_path / "separate"
    separate.mkdir()
    config2, _, _, _ = _setup(vault, fs, separate)
    cli2 = _cli(vault, config2)
    summary(cli2("init"))
    summary(cli2("-r", "offsite", "init"))
    summary(cli2("backup", src))
    summary(cli2("copy", "--all", "--to", "offsite"))
    assert summary(cli2("-r", "offsite", "backup", src))["bytes_new"] > 5 * MiB


def test_damaged_source_data_is_reported_and_not_copied(vault, fs, tmp_path: Path) -> None:
    config, src, local, _offsite = _setup(vault, fs, tmp_path)
    cli = _cli(vault, config)
    summary(cli("init"))
    summary(cli("-r", "offsite", "init"))
    snapshot = summary(cli("backup", src))["snapshot_id"]
    pack = largest_pack(local)
    flip_byte(pack, pack.stat().st_size // 2)

    failed = cli("copy", "--all", "--to", "offsite")
    assert failed.code == 1
    assert [f["snapshot_id"] for f in failed.summary["failed"]] == [snapshot]
    assert "random.bin" in failed.summary["failed"][0]["error"]
    assert summary(cli("-r", "offsite", "snapshots"))["snapshots"] == []
    completed = vault.events("CopyCompleted")[-1]["payload"]
    assert completed["copied"] == 0 and len(completed["failed"]) == 1


def test_names_and_passphrases(vault, fs, tmp_path: Path) -> None:
    """An unknown name is one clear line (exit 2); no passphrase in the journal, the JSON
    output or the messages."""
    config, src, _local, _offsite = _setup(vault, fs, tmp_path)
    cli = _cli(vault, config)
    summary(cli("init"))
    summary(cli("-r", "offsite", "init"))
    summary(cli("backup", src))
    outputs = [cli("copy", "--all", "--to", "offsite")]

    unknown = vault.run("--config", config, "copy", "--all", "--to", "nowhere", env=ENV)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "vault: error: --to 'nowhere': no such repository in the configuration "
        "(configured [[repositories]]: local, offsite)"]
    wrong = vault.run("--config", config, "-r", "elsewhere", "snapshots", env=ENV)
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "no repository named 'elsewhere'" in wrong.stderr
    outputs.append(cli("copy", "--all", "--to", "offsite"))

    journal = vault.ok("--config", config, "journal", "--json", env=ENV).stdout
    for text in [journal, unknown.stderr, wrong.stderr,
                 *(o.stdout + o.stderr for o in outputs)]:
        assert LOCAL_PASS not in text and OFFSITE_PASS not in text


def test_the_destination_quota_stops_a_copy_that_a_larger_one_completes(
        vault, fs, tmp_path: Path) -> None:
    """The destination's own hard quota holds for copies as for backups: the copy stops
    before the pack that would pass it, keeps what it wrote, and once the quota is raised
    the same copy completes and restores byte-identical."""
    config, src, _local, offsite = _setup(
        vault, fs, tmp_path, offsite_extra='pack_size_mib = 4\nquota = "5MiB"')
    cli = _cli(vault, config)
    summary(cli("init"))
    summary(cli("-r", "offsite", "init"))
    summary(cli("backup", src))

    stopped = cli("copy", "--all", "--to", "offsite")
    assert stopped.code == 1 and stopped.last["error"] == "QuotaReached", stopped.last
    assert sum(files_of(offsite).values()) <= 5 * MiB
    assert summary(cli("-r", "offsite", "snapshots"))["snapshots"] == []
    assert vault.events("CopyFailed")[-1]["payload"]["error_kind"] == "QuotaReached"

    config.write_text(config.read_text().replace('quota = "5MiB"', 'quota = "64MiB"'))
    done = summary(cli("copy", "--all", "--to", "offsite"))
    assert len(done["copied"]) == 1
    target = tmp_path / "out"
    summary(cli("-r", "offsite", "restore", "latest", "--target", target))
    fs.assert_same_tree(src, fs.restored_path(target, src))


def test_sealed_settings_secrets_are_resealed_for_the_destination(
        vault, fs, tmp_path: Path) -> None:
    """A settings snapshot's secrets are sealed under the source's key; its copy holds
    them sealed under the destination's, so a restore from the copy brings them back."""
    config, _src, _local, _offsite = _setup(vault, fs, tmp_path)
    live = tmp_path / "app" / "config.toml"
    live.parent.mkdir()
    original = 'title = "chat"\n[api]\ntoken = "tok-5e1d-copy-secret"\n'
    live.write_text(original)
    config.write_text(config.read_text() + f'\n[[sources]]\ntype = "settings"\n'
                      f'name = "app-settings"\npath = "{live}"\nsecrets = "encrypt"\n')
    cli = _cli(vault, config)
    summary(cli("init"))
    summary(cli("-r", "offsite", "init"))
    summary(cli("backup", "--source", "app-settings"))
    [copied] = summary(cli("copy", "--all", "--to", "offsite"))["copied"]

    live.write_text(original.replace("tok-5e1d-copy-secret", "new-token")
                    .replace('"chat"', '"broken"'))
    restored = cli("-r", "offsite", "restore", copied["copy_id"], "--settings")
    assert restored.code == 0, (restored.last, restored.stderr)
    text = live.read_text()
    assert 'title = "chat"' in text and "tok-5e1d-copy-secret" in text
    assert "tok-5e1d-copy-secret" not in restored.stdout + restored.stderr
    for path in (tmp_path / "offsite").rglob("*"):
        if path.is_file():
            assert b"tok-5e1d-copy-secret" not in path.read_bytes()


def test_dry_run_writes_nothing_and_a_repository_is_not_copied_into_itself(
        vault, fs, tmp_path: Path) -> None:
    config, src, _local, offsite = _setup(vault, fs, tmp_path)
    cli = _cli(vault, config)
    summary(cli("init"))
    summary(cli("-r", "offsite", "init"))
    snapshot = summary(cli("backup", src))["snapshot_id"]
    before = files_of(offsite)

    dry = summary(cli("copy", "--all", "--to", "offsite", "--dry-run"))
    assert dry["would_copy"] == [snapshot] and dry["copied"] == [] and dry["dry_run"]
    assert dry["bytes_stored"] > 6 * MiB  # what it would store
    assert files_of(offsite) == before
    assert summary(cli("-r", "offsite", "snapshots"))["snapshots"] == []

    itself = cli("-r", "offsite", "copy", "--all", "--to", "offsite")
    assert itself.code == 2 and "is the repository being copied" in itself.last["message"]
    nothing = cli("copy", "--to", "offsite")
    assert nothing.code == 2 and "--all or --since" in nothing.last["message"]
