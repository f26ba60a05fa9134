"""Where an SFTP repository is and how to log in: its URL (``sftp://user@host:port/path`` or
restic's ``sftp:user@host:/path``) and ``[repository.sftp]``. Kept apart from
``vault.storage.sftp`` so reading settings never imports asyncssh."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from vault.config.secrets import Secret, resolve_secret
from vault.errors import UsageError

if TYPE_CHECKING:
    from vault.config.model import SftpConfig


@dataclass(frozen=True)
class SftpSettings:
    host: str
    port: int
    user: str
    root: PurePosixPath
    known_hosts: Path
    identity_file: Path | None = None
    key_passphrase: Secret | None = None
    password: Secret | None = None


def from_restic_form(url: str) -> str:
    """restic's ``sftp:user@host:/srv/repo`` as ``sftp://user@host/srv/repo``."""
    if not url.lower().startswith("sftp:") or url.lower().startswith("sftp://"):
        return url
    target, colon, path = url[5:].partition(":")
    if not colon or not path.startswith("/"):
        raise UsageError("restic-style sftp: location needs an absolute path: "
                         "sftp:user@host:/srv/repo (or sftp://user@host:port/srv/repo)")
    return f"sftp://{target}{path}"


def settings_from(url: str, config: SftpConfig | None) -> SftpSettings:
    parts = urlsplit(from_restic_form(url))
    if parts.password is not None:
        raise UsageError("an sftp:// URL must not contain a password; use "
                         "[repository.sftp] password = { env | file | command }")
    if not parts.hostname or not parts.username:
        raise UsageError("an sftp:// URL needs a user and a host: sftp://user@host/path")
    path = unquote(parts.path)
    if not path.startswith("/") or path.rstrip("/") == "" or parts.query:
        raise UsageError("an sftp:// URL needs an absolute path and no query: "
                         "sftp://user@host:port/srv/repo")
    home = Path(os.path.expanduser("~"))
    return SftpSettings(
        host=parts.hostname, port=parts.port or 22, user=unquote(parts.username),
        root=PurePosixPath(path.rstrip("/")),
        known_hosts=(config.known_hosts if config and config.known_hosts
                     else home / ".ssh" / "known_hosts"),
        identity_file=config.identity_file if config else None,
        key_passphrase=(resolve_secret(config.key_passphrase, "SSH key passphrase")
                        if config and config.key_passphrase else None),
        password=(resolve_secret(config.password, "SFTP password")
                  if config and config.password else None),
    )
