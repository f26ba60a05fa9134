"""Several repositories in one vault.toml (`[[repositories]]`) and which one a command uses.

    [[repositories]]
    name = "local"
    url = "/srv/backups/repo"
    default = true

    [[repositories]]
    name = "offsite"
    url = "s3://bucket/vault"
    password = { file = "/etc/vault/offsite.pass" }

Each entry is a whole `[repository]` table plus a name. The repository a command uses is
chosen, first match wins: `-r NAME` (or `VAULT_REPOSITORY=NAME`), `-r URL` naming an entry's
url (that entry, with its settings), `-r URL` naming none (the default entry's settings
with that url, as `-r` over a `[repository]` table does), else the default entry: the one
with `default = true`, or the first. The single `[repository]` table works as before; the
two spellings exclude each other in one file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vault.config.types import fail_at
from vault.errors import ConfigError

if TYPE_CHECKING:
    from vault.config.model import NamedRepository, RepositoryConfig, Schedule

#: what `-r` holds when it names a configured repository rather than a path: the name
#: rule of vault.toml (a relative directory is then spelled `./dir`)
_BARE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
#: the validation context key saying whether the file itself had a `[repository]` table
FILE_HAS_REPOSITORY = "file_has_repository"
#: the validation context key holding the name `-r`/VAULT_REPOSITORY chose
CHOSEN_NAME = "repository_name"


def name_selector(data: Mapping[str, Any], overrides: Mapping[str, Any],
                  env: Mapping[str, str]) -> tuple[str | None, dict[str, Any], dict[str, str]]:
    """(the configured name `-r` or VAULT_REPOSITORY gives, the overrides and environment
    without it). Only a file with `[[repositories]]` has names; elsewhere `-r backups` keeps
    meaning the directory ./backups."""
    overrides, env = dict(overrides), dict(env)
    if not isinstance(data.get("repositories"), list):
        return None, overrides, env
    flag = overrides.get("repository.url")
    if flag is not None:
        if isinstance(flag, str) and _BARE_NAME.fullmatch(flag):
            del overrides["repository.url"]
            return flag, overrides, env
        return None, overrides, env
    variable = env.get("VAULT_REPOSITORY", "")
    if _BARE_NAME.fullmatch(variable):
        del env["VAULT_REPOSITORY"]
        return variable, overrides, env
    return None, overrides, env


def check_entries(entries: Sequence[NamedRepository]) -> None:
    """Names unique, at most one default (a ValidationError at the offending key)."""
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.name in seen:
            raise fail_at(("repositories", index, "name"),
                          f"repository name {entry.name!r} is used twice "
                          f"(first by [[repositories]] #{seen[entry.name] + 1})")
        seen[entry.name] = index
    defaults = [i for i, entry in enumerate(entries) if entry.default]
    if len(defaults) > 1:
        names = ", ".join(entries[i].name for i in defaults)
        raise fail_at(("repositories", defaults[1], "default"),
                      f"only one repository may be the default (default = true in: {names})")


def check_copy_targets(schedules: Sequence[Schedule], entries: Sequence[NamedRepository]) -> None:
    """Every schedule's `copy_to` names a configured repository."""
    names = [entry.name for entry in entries]
    for index, schedule in enumerate(schedules):
        for position, name in enumerate(schedule.copy_to):
            if name not in names:
                configured = ", ".join(names) or "none"
                raise fail_at(("schedules", index, "copy_to", position),
                              f"no repository named {name!r} (configured [[repositories]]: "
                              f"{configured})")


def default_entry(entries: Sequence[NamedRepository]) -> NamedRepository:
    return next((entry for entry in entries if entry.default), entries[0])


def entry_named(entries: Sequence[NamedRepository], name: str) -> NamedRepository:
    for entry in entries:
        if entry.name == name:
            return entry
    configured = ", ".join(entry.name for entry in entries) or "none"
    raise ConfigError(f"no repository named {name!r} in the configuration "
                      f"(configured: {configured}; a directory is written ./{name})")


def chosen_repository(entries: Sequence[NamedRepository], layered: RepositoryConfig,
                      layered_keys: set[str], name: str | None) -> RepositoryConfig:
    """The repository a command uses. `layered` holds what the environment or `-r URL`
    set (`layered_keys`): those win over the chosen entry's own settings."""
    if name is not None:
        base = entry_named(entries, name)
        layered_keys = layered_keys - {"url"}
    elif "url" in layered_keys:
        base = next((e for e in entries if e.url == layered.url), default_entry(entries))
    else:
        base = default_entry(entries)
    settings = base.settings()
    if not layered_keys:
        return settings
    return settings.model_copy(update={key: getattr(layered, key) for key in layered_keys})
