"""`[[repositories]]`: several named repositories in one vault.toml, which one a command
uses (`-r NAME`, `-r URL`, VAULT_REPOSITORY, the default), and the problems `vault config
check` reports at their lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.config.model import check_config_file, load_config
from vault.errors import ConfigError, ConfigInvalid

TWO = """\
[[repositories]]
name = "local"
url = "/srv/local"
password = { env = "LOCAL_PASS" }

[[repositories]]
name = "offsite"
url = "/srv/offsite"
compression_level = 9
default = true
[repositories.sftp]
known_hosts = "/etc/vault/known_hosts"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vault.toml"
    path.write_text(text)
    return path


def test_the_default_entry_is_used_without_a_choice(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TWO), env={})
    assert config.repository.url == "/srv/offsite"
    assert config.repository.compression_level == 9
    assert config.repository.sftp is not None
    assert config.repository_name() == "offsite"


def test_without_a_default_the_first_entry_is_used(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TWO.replace("default = true\n", "")), env={})
    assert config.repository_name() == "local"


def test_a_name_chooses_its_entry_with_its_own_settings(tmp_path: Path) -> None:
    path = write(tmp_path, TWO)
    by_flag = load_config(path, env={}, overrides={"repository.url": "local"})
    by_env = load_config(path, env={"VAULT_REPOSITORY": "local"})
    for config in (by_flag, by_env):
        assert config.repository.url == "/srv/local"
        assert config.repository.password is not None
        assert config.repository.password.env == "LOCAL_PASS"
        assert config.repository.compression_level == 3  # not the other entry's 9
    # the flag wins over the environment
    assert load_config(path, env={"VAULT_REPOSITORY": "local"},
                       overrides={"repository.url": "offsite"}).repository_name() == "offsite"


def test_a_url_chooses_the_entry_that_has_it_or_else_the_default_settings(
        tmp_path: Path) -> None:
    path = write(tmp_path, TWO)
    known = load_config(path, env={}, overrides={"repository.url": "/srv/local"})
    assert known.repository_name() == "local" and known.repository.password is not None
    other = load_config(path, env={"VAULT_COMPRESSION_LEVEL": "4"},
                        overrides={"repository.url": "/srv/elsewhere"})
    assert other.repository.url == "/srv/elsewhere" and other.repository_name() is None
    assert other.repository.compression_level == 4  # the environment over the entry
    assert other.repository.sftp is not None  # the default entry's settings


def test_an_unknown_name_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, TWO), env={}, overrides={"repository.url": "nas"})
    assert raised.value.message == (
        "no repository named 'nas' in the configuration (configured: local, offsite; "
        "a directory is written ./nas)")


def test_a_bare_word_is_still_a_directory_without_repositories(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(write(tmp_path, ""), env={}, overrides={"repository.url": "nas"})
    assert config.repository.url == str(tmp_path / "nas")


def test_duplicate_names_two_defaults_and_both_spellings_are_reported_at_their_lines(
        tmp_path: Path) -> None:
    duplicate = TWO.replace('name = "offsite"', 'name = "local"')
    [problem] = check_config_file(write(tmp_path, duplicate))
    assert (problem.line, problem.key) == (7, "repositories[1].name")
    assert "'local' is used twice" in problem.message

    two_defaults = TWO.replace('url = "/srv/local"\n', 'url = "/srv/local"\ndefault = true\n')
    [problem] = check_config_file(write(tmp_path, two_defaults))
    assert (problem.line, problem.key) == (11, "repositories[1].default")
    assert "only one repository may be the default" in problem.message

    both = '[repository]\nurl = "/srv/x"\n\n' + TWO
    [problem] = check_config_file(write(tmp_path, both))
    assert (problem.line, problem.key) == (1, "repository")
    assert "exclude each other" in problem.message
    with pytest.raises(ConfigInvalid):
        load_config(write(tmp_path, both), env={})


def test_the_single_repository_table_works_unchanged(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[repository]\nurl = "/srv/one"\n'), env={},
                         overrides={"repository.url": "/srv/two"})
    assert config.repository.url == "/srv/two" and config.repositories == []
    assert config.repository_name() is None


def test_copy_to_must_name_a_configured_repository(tmp_path: Path) -> None:
    schedule = ('\n[[schedules]]\nname = "nightly"\ncron = "0 2 * * *"\n'
                'copy_to = ["offsite", "nas"]\n')
    [problem] = check_config_file(write(tmp_path, TWO + schedule))
    assert (problem.line, problem.key) == (17, "schedules[0].copy_to[1]")
    assert problem.message == ("no repository named 'nas' (configured [[repositories]]: "
                               "local, offsite)")
    config = load_config(write(tmp_path, TWO + schedule.replace(', "nas"', "")), env={})
    assert config.schedules[0].copy_to == ["offsite"]
