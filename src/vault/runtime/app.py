"""The application context: configuration, journal, storage and the unlocked repository.

One `Vault` per process invocation (a CLI command, a worker job). It resolves everything
lazily, so `vault config check` never touches the journal and `vault journal` never asks
for a passphrase.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from vault.config.model import VaultConfig
from vault.config.secrets import repository_passphrase
from vault.errors import ConfigError
from vault.foundation.actor import Actor, current_actor
from vault.foundation.paths import ensure_private_dir
from vault.journal import Journal
from vault.journal.events import CommandFailed
from vault.journal.spool import JournalSpool
from vault.repository.repository import Repository
from vault.runtime.inline_jobs import mark_killed_inline_jobs
from vault.storage.base import Storage
from vault.storage.registry import open_storage
from vault.storage.stack import bind_cache, decorated


@dataclass
class PassphraseOptions:
    """Where the repository passphrase may come from (flags; env and config are read too)."""

    password_command: str | None = None
    password_file: Path | None = None
    prompt: Callable[[], str] | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class StorageOptions:
    """Flags on how storage is reached, for every repository the command opens (the
    destination of a copy too): `--limit-upload`/`--limit-download` in KiB/s over the
    repository's `limit_upload`/`limit_download`, and `--no-cache`."""

    limit_upload_kib: int | None = None
    limit_download_kib: int | None = None
    use_cache: bool = True


class Vault:
    def __init__(self, config: VaultConfig, passphrase: PassphraseOptions | None = None,
                 actor: Actor | None = None, storage_options: StorageOptions | None = None,
                 ) -> None:
        self.config = config
        self.passphrase_options = passphrase or PassphraseOptions()
        self.storage_options = storage_options or StorageOptions()
        self.actor = actor or current_actor()
        self._repository: Repository | None = None
        #: things the user must hear about although the command went on (a lock skipped)
        self.warnings: list[str] = []

    @cached_property
    def journal(self) -> Journal:
        path = self.config.journal_path()
        # A full state directory may refuse even the mkdir; the spool takes over then.
        with suppress(OSError):
            ensure_private_dir(path.parent)
        journal = Journal(path, actor=self.actor, spool=JournalSpool(path))
        mark_killed_inline_jobs(journal)  # the next command that looks tells
        return journal

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def journal_spooled(self) -> str | None:
        """A warning when events went to the spool instead of the journal, else None."""
        spool = self.journal.spool if "journal" in self.__dict__ else None
        if spool is None or not spool.count:
            return None
        return (f"could not write the journal ({spool.reason}); {spool.count} event(s) kept "
                f"in {spool.file}, appended by the next vault command that can write it")

    @cached_property
    def storage(self) -> Storage:
        """The repository's storage behind its bandwidth limits and metadata cache."""
        settings, options = self.config.repository, self.storage_options
        return decorated(open_storage(settings.url, settings), settings.url,
                         limit_upload_kib=options.limit_upload_kib or settings.limit_upload,
                         limit_download_kib=options.limit_download_kib
                         or settings.limit_download,
                         cache=options.use_cache)

    @property
    def cache_dir(self) -> Path:
        return ensure_private_dir(self.config.resolved_cache_dir())

    def passphrase(self, *, confirm_new: bool = False) -> str:
        opts = self.passphrase_options
        return repository_passphrase(
            password_command=opts.password_command,
            password_file=opts.password_file,
            env=opts.env,
            config_ref=self.config.repository.password,
            prompt=opts.prompt,
        )

    def repository(self) -> Repository:
        """The unlocked repository (opened once per process)."""
        if self._repository is None:
            self._repository = Repository.open(self.storage, self.passphrase())
            self._bind_metadata_cache(self._repository.id)
        return self._repository

    def _bind_metadata_cache(self, repo_id: str) -> None:
        """Start the metadata cache (storage/cache.py), per repository id, known only now.
        A cache dir that cannot be used costs speed, not the command (as restic)."""
        try:
            bind_cache(self.storage, lambda: self.cache_dir / repo_id[:16] / "objects")
        except (OSError, ConfigError) as exc:
            self.warn(f"the metadata cache is not used: {exc}")

    def record_failure(self, command: str, error_kind: str, message: str) -> None:
        """Journal a command that failed before any job existed (e.g. a wrong passphrase)."""
        try:
            self.journal.append("commands", CommandFailed(command=command,
                                                          error_kind=error_kind,
                                                          message=message))
        except Exception as exc:  # the journal itself may be what is broken
            print(f"vault: warning: could not journal the failure: {exc}", file=sys.stderr)

    def close(self) -> None:
        if "journal" in self.__dict__:
            self.journal.close()
        if "storage" in self.__dict__:
            self.storage.close()
