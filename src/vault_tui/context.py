"""What the TUI needs to reach vault: the config it was started with and a passphrase.

Every query runs in a worker thread, and a `Journal` holds one SQLite connection for the
thread that made it, so each call gets a fresh `Vault` (cheap: the config is parsed, the
journal opened). Only the unlocked repository is kept across calls: unlocking it costs a
key derivation, and reading from it is safe from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault.config.model import VaultConfig, load_config
from vault.errors import SecretUnavailable, WrongPassphrase
from vault.repository.repository import Repository
from vault.runtime.app import PassphraseOptions, Vault


class PassphraseNeeded(Exception):
    """The repository must be unlocked and no passphrase is known yet (or it was wrong):
    the screen asks the operator, then retries. `wrong` says which."""

    def __init__(self, wrong: bool = False) -> None:
        super().__init__("wrong passphrase" if wrong else "passphrase needed")
        self.wrong = wrong


@dataclass
class TuiContext:
    config_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    password_command: str | None = None
    password_file: Path | None = None
    _passphrase: str | None = None
    _repository: Repository | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def config(self) -> VaultConfig:
        return load_config(self.config_path, overrides=self.overrides)

    def _options(self) -> PassphraseOptions:
        typed = self._passphrase

        def prompt() -> str:
            if typed is None:
                raise PassphraseNeeded()
            return typed

        return PassphraseOptions(password_command=self.password_command,
                                 password_file=self.password_file, prompt=prompt)

    @contextmanager
    def vault(self) -> Iterator[Vault]:
        """A Vault for this thread, closed after use."""
        vault = Vault(self.config(), self._options())
        try:
            yield vault
        finally:
            vault.close()

    def set_passphrase(self, passphrase: str) -> None:
        with self._lock:
            self._passphrase = passphrase
            self._repository = None

    def repository(self) -> Repository:
        """The unlocked repository, opened once. Raises PassphraseNeeded when no passphrase
        is configured or the one typed is wrong, so the caller can ask for it."""
        with self._lock:
            if self._repository is not None:
                return self._repository
            vault = Vault(self.config(), self._options())
            try:
                self._repository = vault.repository()
            except SecretUnavailable as exc:
                raise PassphraseNeeded() from exc
            except WrongPassphrase as exc:
                if self._passphrase is None:
                    raise  # a configured passphrase is wrong: asking would not help
                self._passphrase = None
                raise PassphraseNeeded(wrong=True) from exc
            finally:
                # The repository keeps its storage; only the journal connection goes.
                if "journal" in vault.__dict__:
                    vault.journal.close()
            return self._repository
