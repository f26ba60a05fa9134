"""Default locations, following the XDG base directory specification.

config:  $XDG_CONFIG_HOME/vault/vault.toml   (~/.config/vault/vault.toml)
state:   $XDG_STATE_HOME/vault/               (~/.local/state/vault/: journal, queue)
cache:   $XDG_CACHE_HOME/vault/               (~/.cache/vault/: files cache, index cache)
data:    $XDG_DATA_HOME/vault/repo            (~/.local/share/vault/repo: default repository)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vault.errors import ConfigError


class SharedWritable(ConfigError):
    """{path} is writable by {who} (mode {mode}), not private to vault: run `chmod {fix} {path}`"""


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "")
    # The spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "vault"


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "vault"


def cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "vault"


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "vault"


def default_config_file() -> Path:
    return config_dir() / "vault.toml"


def default_journal_path() -> Path:
    return state_dir() / "journal.db"


def default_queue_path() -> Path:
    return state_dir() / "queue.db"


def default_repository_path() -> Path:
    return data_dir() / "repo"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable only by its owner; refuse an existing one that
    others can write to (`SharedWritable`)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    refuse_shared_writable(path)
    return path


def refuse_shared_writable(path: Path) -> None:
    """Raise `SharedWritable` if group or others may write to `path` (a directory or file).

    Whoever can write to the state directory can replace the queue or the journal, and
    with them what the worker runs: such a directory is refused, never used as is (nor
    silently chmod-ed: someone else may rely on its mode, and it may already be tampered
    with)."""
    mode = path.stat().st_mode
    writable = mode & (stat.S_IWGRP | stat.S_IWOTH)
    if not writable:
        return
    who = {stat.S_IWGRP: "its group", stat.S_IWOTH: "others"}.get(writable, "group and others")
    fix = "700" if stat.S_ISDIR(mode) else "600"
    raise SharedWritable(path=path, who=who, mode=f"{stat.S_IMODE(mode):04o}", fix=fix)
