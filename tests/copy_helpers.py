"""Two (or more) named repositories in one vault.toml, for the `vault copy` tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: what the copy tests run with: no repository or passphrase from the environment, so
#: every repository is reached through its [[repositories]] entry and its own password
ENV: dict[str, str | None] = {"VAULT_REPOSITORY": None, "VAULT_PASSWORD": None,
                              "SSH_AUTH_SOCK": None}


@dataclass(frozen=True)
class Repo:
    name: str
    url: str
    passphrase: str
    extra: str = ""  # more keys of the entry, TOML lines (chunk_avg_kib = 256)
    tables: str = ""  # sub-tables of the entry ([repositories.s3] ...)


def write_config(root: Path, repos: list[Repo]) -> Path:
    """vault.toml naming each repository, each with a passphrase file of its own."""
    lines: list[str] = []
    for repo in repos:
        secret = root / f"{repo.name}.pass"
        secret.write_text(repo.passphrase)
        os.chmod(secret, 0o600)
        lines += ["[[repositories]]", f'name = "{repo.name}"', f'url = "{repo.url}"',
                  f'password = {{ file = "{secret}" }}', repo.extra, repo.tables, ""]
    config = root / "vault.toml"
    config.write_text("\n".join(lines))
    return config


def files_of(repo: Path) -> dict[str, int]:
    """Every stored object of a local repository and its size (locks left out: they come
    and go with every command)."""
    return {str(p.relative_to(repo)): p.stat().st_size for p in repo.rglob("*")
            if p.is_file() and p.relative_to(repo).parts[0] != "locks"}


def summary(result: Any) -> dict[str, Any]:
    assert result.code == 0, (result.code, result.last, result.stderr)
    return dict(result.summary)
