"""Secrets: where the config says a password lives, and reading it when it is needed.

A config file never holds a secret, only a reference to one:

    password = { env = "PG_PASSWORD" }
    password = { file = "/etc/vault/pg.pass" }       # must be private to its owner (0600)
    password = { command = "pass show vault/pg" }    # run without a shell, 30 s timeout

Resolved values are `Secret`s: plain `str`s whose repr is masked, so a secret that ends up
in a traceback, a log line built with %r or a pydantic repr does not show. No error raised
here ever contains a secret value.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic_core import PydanticCustomError

from vault.errors import ConfigError, SecretUnavailable

PLAIN_TEXT_MESSAGE = (
    "plain-text secrets are not allowed in the config; "
    "use { env = ... }, { file = ... } or { command = ... }"
)
COMMAND_TIMEOUT_SECONDS = 30
PASSPHRASE = "repository passphrase"


class Secret(str):
    """A resolved secret. It is a `str` for every library that needs the value, but its
    repr never shows it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"


class SecretRef(BaseModel):
    """Where a secret lives: exactly one of an environment variable, a file or a command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None
    command: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_plain_text(cls, data: Any) -> Any:
        # Without this, pydantic would say "Input should be a valid dictionary", which does
        # not tell the user why their `password = "..."` was refused or what to write instead.
        if isinstance(data, str):
            raise PydanticCustomError("plain_text_secret", PLAIN_TEXT_MESSAGE)
        return data

    @field_validator("file")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [kind for kind in ("env", "file", "command") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "secret_ref",
                "a secret reference needs exactly one of env, file or command (got {given})",
                {"given": ", ".join(given) or "none"},
            )
        if self.env is not None and not self.env:
            raise PydanticCustomError("secret_ref", "env must name an environment variable")
        if self.command is not None and not self.command.strip():
            raise PydanticCustomError("secret_ref", "command must not be empty")
        return self

    def describe(self) -> str:
        """Where the secret comes from, safe to show: a command is named by its program
        only, because its arguments may carry a token."""
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return f"command {_program(self.command or '')!r}"

    def __repr__(self) -> str:
        return f"SecretRef({self.describe()})"

    __str__ = __repr__


def resolve_secret(ref: SecretRef, what: str, *, env: Mapping[str, str] | None = None) -> Secret:
    """Read the secret `ref` points at; `what` names it in errors ("repository passphrase",
    "password of source 'pg'"). `env` defaults to the process environment."""
    if ref.env is not None:
        return _from_env(ref.env, what, os.environ if env is None else env)
    if ref.file is not None:
        return _from_file(ref.file, what)
    return _from_command(ref.command or "", what)


def repository_passphrase(
    *,
    password_command: str | None,
    password_file: Path | None,
    env: Mapping[str, str],
    config_ref: SecretRef | None,
    prompt: Callable[[], str] | None,
) -> Secret:
    """The repository passphrase, from the first place that has one:
    --password-command / --password-file > VAULT_PASSWORD > VAULT_PASSWORD_FILE >
    VAULT_PASSWORD_COMMAND > repository.password in the config > `prompt` (terminal only)."""
    if password_command is not None and password_file is not None:
        raise ConfigError("give either --password-command or --password-file, not both")
    ref = _first_passphrase_ref(password_command, password_file, env, config_ref)
    if isinstance(ref, Secret):
        return ref
    if ref is not None:
        return resolve_secret(ref, PASSPHRASE, env=env)
    if prompt is not None:
        value = prompt()
        if value:
            return Secret(value)
        raise SecretUnavailable(what=PASSPHRASE, detail="an empty passphrase was entered")
    raise SecretUnavailable(
        what=PASSPHRASE, detail="set VAULT_PASSWORD, VAULT_PASSWORD_FILE or --password-command"
    )


def _first_passphrase_ref(
    password_command: str | None,
    password_file: Path | None,
    env: Mapping[str, str],
    config_ref: SecretRef | None,
) -> SecretRef | Secret | None:
    if password_command is not None:
        return SecretRef(command=password_command)
    if password_file is not None:
        return SecretRef(file=password_file)
    # An empty variable counts as unset, as `VAULT_PASSWORD= vault ...` is how one unsets it.
    if env.get("VAULT_PASSWORD"):
        return Secret(env["VAULT_PASSWORD"])
    if env.get("VAULT_PASSWORD_FILE"):
        return SecretRef(file=Path(env["VAULT_PASSWORD_FILE"]))
    if env.get("VAULT_PASSWORD_COMMAND"):
        return SecretRef(command=env["VAULT_PASSWORD_COMMAND"])
    return config_ref


def _from_env(name: str, what: str, env: Mapping[str, str]) -> Secret:
    value = env.get(name)
    if value is None:
        raise SecretUnavailable(what=what, detail=f"environment variable {name} is not set")
    if not value:
        raise SecretUnavailable(what=what, detail=f"environment variable {name} is empty")
    return Secret(value)


def _from_file(path: Path, what: str) -> Secret:
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise SecretUnavailable(what=what, detail=f"{path} is not a regular file")
        # Like ~/.pgpass and ssh keys: a secret others can read (or write) is not a secret.
        if mode & 0o077:
            raise SecretUnavailable(
                what=what,
                detail=f"{path} is accessible by group or others (mode {stat.S_IMODE(mode):04o});"
                f" run `chmod 600 {path}`",
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretUnavailable(what=what, detail=f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SecretUnavailable(what=what, detail=f"{path} is not UTF-8 text") from None
    return _non_empty(_strip_newline(text), what, f"{path} is empty")


def _from_command(command: str, what: str) -> Secret:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise SecretUnavailable(what=what, detail=f"cannot parse the command: {exc}") from None
    if not argv:
        raise SecretUnavailable(what=what, detail="the command is empty")
    program = _program(command)
    try:
        # No shell, stdin closed (a worker has no one to answer), bounded in time.
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # `from None`: the TimeoutExpired carries the command's output, maybe the secret.
        detail = f"command {program!r} timed out after {COMMAND_TIMEOUT_SECONDS} s"
        raise SecretUnavailable(what=what, detail=detail) from None
    except OSError as exc:
        detail = f"cannot run {program!r}: {exc.strerror or exc}"
        raise SecretUnavailable(what=what, detail=detail) from None
    stdout = done.stdout.decode("utf-8", errors="replace")
    if done.returncode != 0:
        reason = _first_line(done.stderr.decode("utf-8", errors="replace"), hide=stdout)
        detail = f"command {program!r} exited with status {done.returncode}" + (
            f": {reason}" if reason else ""
        )
        raise SecretUnavailable(what=what, detail=detail)
    return _non_empty(_strip_newline(stdout), what, f"command {program!r} printed nothing")


def _program(command: str) -> str:
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = command.split()
    return os.path.basename(argv[0]) if argv else ""


def _first_line(stderr: str, *, hide: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    line = lines[0][:200] if lines else ""
    # A failing command may still have printed the secret, and may echo it on stderr.
    secret = hide.strip()
    if secret and secret in line:
        line = line.replace(secret, "***")
    return line


def _strip_newline(text: str) -> str:
    # Exactly one: `echo` and editors add one; anything more is part of the secret.
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def _non_empty(value: str, what: str, empty_detail: str) -> Secret:
    if not value:
        raise SecretUnavailable(what=what, detail=empty_detail)
    return Secret(value)
