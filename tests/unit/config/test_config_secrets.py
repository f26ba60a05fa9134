"""Secret references: never plain text in the config, resolved only on demand, never leaked."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from vault.config import secrets
from vault.config.model import VaultConfig
from vault.config.secrets import (
    PLAIN_TEXT_MESSAGE,
    Secret,
    SecretRef,
    repository_passphrase,
    resolve_secret,
)
from vault.errors import ConfigError, SecretUnavailable

SECRET = "hunter2-s3cr3t"


def python_command(code: str) -> str:
    return shlex.join([sys.executable, "-c", code])


def private_file(tmp_path: Path, content: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secret.pass"
    path.write_text(content)
    path.chmod(mode)
    return path


def test_plain_text_password_is_rejected_with_a_helpful_message() -> None:
    data = {"repository": {"password": SECRET}}

    with pytest.raises(ValidationError) as raised:
        VaultConfig.model_validate(data)

    (error,) = raised.value.errors()
    assert error["loc"] == ("repository", "password")
    assert error["msg"] == PLAIN_TEXT_MESSAGE
    assert PLAIN_TEXT_MESSAGE == (
        "plain-text secrets are not allowed in the config; "
        "use { env = ... }, { file = ... } or { command = ... }"
    )


@pytest.mark.parametrize(
    "section",
    [
        {"sources": [{"type": "postgresql", "name": "pg", "host": "h", "dbname": "d",
                      "user": "u", "password": SECRET}]},
        {"notifications": [{"type": "webhook", "name": "w", "url": "https://h/x",
                            "token": SECRET}]},
    ],
)  # fmt: skip
def test_plain_text_is_rejected_in_every_secret_field(section: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="plain-text secrets are not allowed"):
        VaultConfig.model_validate(section)


@pytest.mark.parametrize(
    "fields", [{}, {"env": "A", "file": "/b"}, {"env": "A", "command": "c"}, {"env": ""}]
)
def test_a_reference_names_exactly_one_place(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        SecretRef.model_validate(fields)


def test_secret_from_env() -> None:
    value = resolve_secret(SecretRef(env="PG_PASSWORD"), "pg password", env={"PG_PASSWORD": SECRET})
    assert value == SECRET
    assert isinstance(value, Secret)
    assert SECRET not in repr(value)


def test_missing_env_variable() -> None:
    with pytest.raises(SecretUnavailable, match="PG_PASSWORD is not set"):
        resolve_secret(SecretRef(env="PG_PASSWORD"), "pg password", env={})


def test_secret_from_file_strips_one_trailing_newline(tmp_path: Path) -> None:
    path = private_file(tmp_path, SECRET + " \n\n")
    assert resolve_secret(SecretRef(file=path), "pg password") == SECRET + " \n"


def test_group_or_world_readable_file_is_refused(tmp_path: Path) -> None:
    path = private_file(tmp_path, SECRET, mode=0o644)

    with pytest.raises(SecretUnavailable) as raised:
        resolve_secret(SecretRef(file=path), "pg password")

    message = str(raised.value)
    assert message.startswith("cannot read the pg password: ")
    assert "0644" in message
    assert "chmod 600" in message
    assert SECRET not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="No such file"):
        resolve_secret(SecretRef(file=tmp_path / "nope"), "pg password")


def test_secret_from_command() -> None:
    ref = SecretRef(command=python_command(f"print({SECRET!r})"))
    assert resolve_secret(ref, "pg password") == SECRET


def test_failing_command_reports_stderr_but_never_the_secret() -> None:
    code = (
        f"import sys; print({SECRET!r}); "
        f"sys.stderr.write('gpg: decryption failed for {SECRET}\\nmore\\n'); sys.exit(2)"
    )
    ref = SecretRef(command=python_command(code))

    with pytest.raises(SecretUnavailable) as raised:
        resolve_secret(ref, "pg password")

    message = str(raised.value)
    assert "exited with status 2" in message
    assert "gpg: decryption failed for ***" in message
    assert "more" not in message
    assert SECRET not in message
    assert raised.value.__context__ is None


def test_command_that_is_not_found() -> None:
    with pytest.raises(SecretUnavailable, match="cannot run 'no-such-program-vault'"):
        resolve_secret(SecretRef(command="no-such-program-vault --flag"), "pg password")


def test_command_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "COMMAND_TIMEOUT_SECONDS", 0.2)
    ref = SecretRef(
        command=python_command(f"print({SECRET!r}, flush=True); import time; time.sleep(5)")
    )

    with pytest.raises(SecretUnavailable, match="timed out") as raised:
        resolve_secret(ref, "pg password")

    assert SECRET not in str(raised.value)
    assert raised.value.__suppress_context__


def test_command_arguments_stay_out_of_reprs_and_errors() -> None:
    ref = SecretRef(command=f"/usr/bin/false --token {SECRET}")

    assert SECRET not in repr(ref)
    assert SECRET not in str(ref)
    with pytest.raises(SecretUnavailable) as raised:
        resolve_secret(ref, "webhook token")
    assert SECRET not in str(raised.value)


def passphrase(**overrides: object) -> str:
    options: dict[str, object] = {
        "password_command": None,
        "password_file": None,
        "env": {},
        "config_ref": None,
        "prompt": None,
    }
    options.update(overrides)
    return repository_passphrase(**options)  # type: ignore[arg-type]


def test_passphrase_precedence(tmp_path: Path) -> None:
    file = private_file(tmp_path, "from-flag-file\n")
    env_file = tmp_path / "env.pass"
    env_file.write_text("from-env-file")
    env_file.chmod(0o600)
    env = {
        "VAULT_PASSWORD": "from-env",
        "VAULT_PASSWORD_FILE": str(env_file),
        "VAULT_PASSWORD_COMMAND": python_command("print('from-env-command')"),
        "CONFIG_PASS": "from-config",
    }
    config_ref = SecretRef(env="CONFIG_PASS")

    def prompt() -> str:
        return "from-prompt"

    flag_command = python_command("print('from-flag-command')")
    assert passphrase(password_command=flag_command, env=env) == "from-flag-command"
    assert passphrase(password_file=file, env=env, config_ref=config_ref) == "from-flag-file"
    assert passphrase(env=env, config_ref=config_ref, prompt=prompt) == "from-env"
    del env["VAULT_PASSWORD"]
    assert passphrase(env=env, config_ref=config_ref, prompt=prompt) == "from-env-file"
    del env["VAULT_PASSWORD_FILE"]
    assert passphrase(env=env, config_ref=config_ref, prompt=prompt) == "from-env-command"
    del env["VAULT_PASSWORD_COMMAND"]
    assert passphrase(env=env, config_ref=config_ref, prompt=prompt) == "from-config"
    assert passphrase(env=env, prompt=prompt) == "from-prompt"


def test_no_passphrase_anywhere() -> None:
    with pytest.raises(SecretUnavailable) as raised:
        passphrase(env={"VAULT_PASSWORD": ""})
    assert str(raised.value) == (
        "cannot read the repository passphrase: "
        "set VAULT_PASSWORD, VAULT_PASSWORD_FILE or --password-command"
    )


def test_both_passphrase_flags_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        passphrase(password_command="pass x", password_file=tmp_path / "f")


def test_secret_ref_from_the_config_is_read_with_the_given_env(tmp_path: Path) -> None:
    config = VaultConfig.model_validate({"repository": {"password": {"env": "REPO_PASS"}}})
    assert passphrase(env={"REPO_PASS": SECRET}, config_ref=config.repository.password) == SECRET
