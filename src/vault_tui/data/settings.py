"""What the Settings screen shows: the repository (location, id, format), what it stores
and how well (`vault stats`), its keys (`vault key list`) and the notification targets of
vault.toml, each named by where it sends and never by a secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from vault.config.model import EmailNotification, Notification
from vault.errors import RepositoryNotFound
from vault.operations.manage import RepoStats, list_keys, repository_stats
from vault.operations.quota import storage_usage
from vault.planning.quota import StorageUsage
from vault.repository.repository import read_config
from vault_tui.context import TuiContext


@dataclass(frozen=True)
class KeyRow:
    key_id: str
    created: str
    user: str
    host: str
    label: str | None
    current: bool  # the key this TUI unlocked the repository with


@dataclass(frozen=True)
class TargetRow:
    name: str
    channel: str
    where: str  # host and path, or recipients: no credentials, no URL query
    on: list[str]


@dataclass
class SettingsData:
    location: str
    initialised: bool
    repo_id: str | None = None
    format_version: int | None = None
    stats: RepoStats | None = None
    usage: StorageUsage | None = None
    keys: list[KeyRow] = field(default_factory=list)
    targets: list[TargetRow] = field(default_factory=list)


def load_settings(ctx: TuiContext) -> SettingsData:
    """Everything the screen shows. Raises PassphraseNeeded (the screen asks) when the
    repository exists and no passphrase is known: its stats and keys need it."""
    with ctx.vault() as vault:
        config = vault.config
        data = SettingsData(location=vault.storage.location, initialised=False,
                            targets=[target_row(t) for t in config.notifications])
        try:
            repo_config = read_config(vault.storage)
        except RepositoryNotFound:
            return data
        data.initialised = True
        data.repo_id, data.format_version = str(repo_config["id"]), int(repo_config["version"])
        data.usage = storage_usage(vault, vault.storage, data.repo_id)
    repo = ctx.repository()
    data.stats, _snapshots = repository_stats(repo)
    data.keys = [KeyRow(key_id=k.key_id, created=k.created, user=k.user, host=k.host,
                        label=k.label, current=k.key_id == repo.key_id)
                 for k in list_keys(repo)]
    return data


def target_row(target: Notification) -> TargetRow:
    if isinstance(target, EmailNotification):
        where = f"{', '.join(target.recipients)} via {target.smtp_host}:{target.port()}"
        return TargetRow(target.name, "email", where, list(target.on))
    return TargetRow(target.name, "webhook", url_without_secrets(target.url), list(target.on))


def url_without_secrets(url: str) -> str:
    """scheme://host[:port]/path: a user name, a query or a fragment may carry a token."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


