"""load_config: flags > VAULT_* environment > file > defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vault.config.model import check_config_file, load_config
from vault.errors import ConfigError, ConfigInvalid

FILE = """\
state_dir = "/from/file/state"

[repository]
url = "/from/file/repo"
compression_level = 5
pack_size_mib = 32

[queue]
workers = 2
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "vault.toml"
    path.write_text(FILE)
    return path


@pytest.fixture(autouse=True)
def isolated_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "xdg" / var.lower()))
    return tmp_path / "xdg"


def test_file_over_defaults(config_file: Path) -> None:
    config = load_config(config_file, env={})

    assert config.repository.url == "/from/file/repo"
    assert config.repository.compression_level == 5
    assert config.repository.chunk_avg_kib == 1024  # default
    assert config.queue.workers == 2


def test_env_over_file_and_flags_over_env(config_file: Path) -> None:
    env = {
        "VAULT_REPOSITORY": "/from/env/repo",
        "VAULT_COMPRESSION_LEVEL": "9",
        "VAULT_QUEUE__WORKERS": "4",
        "VAULT_STATE_DIR": "/from/env/state",
    }
    overrides = {"repository.url": "/from/flag/repo", "repository.pack_size_mib": None}

    config = load_config(config_file, env=env, overrides=overrides)

    assert config.repository.url == "/from/flag/repo"  # flag > env > file
    assert config.repository.compression_level == 9  # env > file
    assert config.repository.pack_size_mib == 32  # a None flag is "not given"
    assert config.queue.workers == 4  # generic VAULT_<SECTION>__<KEY>
    assert config.state_dir == Path("/from/env/state")


def test_named_variable_wins_over_its_generic_spelling() -> None:
    env = {"VAULT_REPOSITORY__URL": "/generic", "VAULT_REPOSITORY": "/named"}
    assert load_config(env=env).repository.url == "/named"


def test_empty_variable_counts_as_unset(config_file: Path) -> None:
    assert load_config(config_file, env={"VAULT_REPOSITORY": ""}).repository.url == (
        "/from/file/repo"
    )


def test_unknown_key_through_a_generic_variable_is_reported() -> None:
    with pytest.raises(ConfigInvalid) as raised:
        load_config(env={"VAULT_BACKUP__ONE_FILESYSTEM": "true"})
    assert raised.value.problems == [
        "$VAULT_BACKUP__ONE_FILESYSTEM: backup.one_filesystem: unknown key"
    ]


def test_variables_for_other_programs_are_ignored() -> None:
    # HashiCorp Vault's variables share the prefix.
    load_config(env={"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN__X": "y"})


def test_relative_paths_from_env_and_flags_are_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    config = load_config(
        env={"VAULT_JOURNAL": "j.db", "VAULT_REPOSITORY": "repo"},
        overrides={"cache_dir": Path("cache")},
    )

    assert config.journal_path() == tmp_path / "j.db"
    assert config.repository.url == str(tmp_path / "repo")
    assert config.resolved_cache_dir() == tmp_path / "cache"


def test_relative_paths_in_the_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "vault.toml"
    path.write_text('state_dir = "state"\n')
    with pytest.raises(ConfigInvalid) as raised:
        load_config(path, env={})
    assert "must be an absolute path" in raised.value.problems[0]


def test_file_from_vault_config_variable(config_file: Path) -> None:
    config = load_config(env={"VAULT_CONFIG": str(config_file)})
    assert config.repository.url == "/from/file/repo"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env={"VAULT_CONFIG": str(tmp_path / "nope.toml")})


def test_default_file_is_used_when_it_exists(isolated_xdg: Path) -> None:
    default = isolated_xdg / "xdg_config_home" / "vault" / "vault.toml"
    default.parent.mkdir(parents=True)
    default.write_text('[repository]\nurl = "/from/default/file"\n')

    assert load_config(env={}).repository.url == "/from/default/file"


def test_pure_defaults_without_a_file(isolated_xdg: Path) -> None:
    config = load_config(env={})

    assert config.repository.url == str(isolated_xdg / "xdg_data_home" / "vault" / "repo")
    assert config.resolved_state_dir() == isolated_xdg / "xdg_state_home" / "vault"
    assert config.resolved_cache_dir() == isolated_xdg / "xdg_cache_home" / "vault"
    assert config.journal_path() == config.resolved_state_dir() / "journal.db"
    assert config.queue_url() == f"sqlite://{config.resolved_state_dir()}/queue.db"
    assert config.sources == [] and config.schedules == []


def test_accessors_follow_state_dir(config_file: Path) -> None:
    config = load_config(config_file, env={})

    assert config.journal_path() == Path("/from/file/state/journal.db")
    assert config.queue_url() == "sqlite:///from/file/state/queue.db"


def test_explicit_journal_and_queue(config_file: Path) -> None:
    env = {"VAULT_JOURNAL": "/j/journal.db", "VAULT_QUEUE_URL": "redis://127.0.0.1:6379/2"}
    config = load_config(config_file, env=env)

    assert config.journal_path() == Path("/j/journal.db")
    assert config.queue_url() == "redis://127.0.0.1:6379/2"


def test_process_environment_is_the_default(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_COMPRESSION_LEVEL", "7")
    assert load_config(config_file).repository.compression_level == 7
    assert os.environ["VAULT_COMPRESSION_LEVEL"] == "7"


def test_plain_text_secret_never_appears_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "vault.toml"
    path.write_text('[repository]\npassword = "hunter2-s3cr3t"\n')

    with pytest.raises(ConfigInvalid) as raised:
        load_config(path, env={})

    assert raised.value.problems == [
        f"{path}:2: repository.password: plain-text secrets are not allowed in the config; "
        "use { env = ... }, { file = ... } or { command = ... }"
    ]
    assert "hunter2" not in str(raised.value) + repr(raised.value)
    assert raised.value.__context__ is None or raised.value.__suppress_context__


def test_schedule_helpers() -> None:
    config = load_config(
        env={},
        overrides={
            "sources": [
                {"type": "sqlite", "name": "a", "path": "/a.db"},
                {"type": "sqlite", "name": "b", "path": "/b.db"},
            ],
            "schedules": [
                {"name": "all", "cron": "daily"},
                {"name": "only-b", "cron": "hourly", "sources": ["b"],
                 "retention": {"keep_last": 2}},
            ],
            "retention.keep_daily": 7,
        },
    )  # fmt: skip
    every, only_b = config.schedules

    assert [s.name for s in config.sources_for(every)] == ["a", "b"]
    assert [s.name for s in config.sources_for(only_b)] == ["b"]
    assert config.retention_for(every).keep_daily == 7
    assert config.retention_for(only_b).keep_last == 2
    with pytest.raises(ConfigError):
        config.source("c")


@pytest.mark.parametrize(("kib", "valid"), [(64, True), (4096, True), (63, False), (4097, False)])
def test_chunk_size_bounds_are_the_ones_a_repository_can_be_created_with(
        tmp_path: Path, kib: int, valid: bool) -> None:
    """vault init creates what the config accepts: FastCDC refuses an average above 4 MiB."""
    from vault.repository.repository import MAX_CHUNK_AVG, MIN_CHUNK_AVG

    path = tmp_path / "vault.toml"
    path.write_text(f'[repository]\nurl = "{tmp_path / "repo"}"\nchunk_avg_kib = {kib}\n')
    assert (check_config_file(path) == []) is valid
    assert (MIN_CHUNK_AVG <= kib << 10 <= MAX_CHUNK_AVG) is valid


@pytest.mark.parametrize("location", ["s3:http://127.0.0.1:9000/bucket/repo",
                                      "sftp:backup@nas:/srv/repo", "gs:backups:/db1",
                                      "azure:vault:/host-a/repo", "gs:backups:db1"])
def test_restic_locations_from_env_and_flags_stay_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    """Never made a path under the current directory (a local 'gs:backups:' directory
    would pass for an off-site backup); the storage registry reads them."""
    monkeypatch.chdir(tmp_path)
    assert load_config(env={"VAULT_REPOSITORY": location}).repository.url == location
    assert load_config(env={}, overrides={"repository.url": location}).repository.url == (
        location)
    path = tmp_path / "vault.toml"
    path.write_text(f'[repository]\nurl = "{location}"\n')
    assert load_config(path, env={}).repository.url == location
