"""The repository's config object: read, and told apart from a missing or foreign one.

The config is the one plain (unencrypted) object: the format marker, the version, the
repository's id and the chunker parameters. It holds no secret, so a copy of it from any
copy of the repository puts a damaged one right.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vault.errors import (
    ObjectNotFound,
    RepositoryConfigDamaged,
    RepositoryNotFound,
    UnsupportedFormat,
)
from vault.storage.base import Storage

_REPO_ID = re.compile(r"[0-9a-f]{64}")

FORMAT_VERSION = 1


def read_config(storage: Storage) -> dict[str, Any]:
    """The repository's config. RepositoryNotFound when there is none (or the file is
    another program's, such as restic's or borg's); RepositoryConfigDamaged when it is
    vault's but does not read back whole (truncated, a flipped byte, a field gone)."""
    try:
        raw = storage.load("config", "config")
    except ObjectNotFound as exc:
        raise RepositoryNotFound(repo=storage.location) from exc
    try:
        config = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError too
        if _looks_like_ours(raw):
            raise RepositoryConfigDamaged(repo=storage.location,
                                          detail=f"not JSON ({exc})") from exc
        raise RepositoryNotFound(repo=storage.location) from exc
    if not isinstance(config, dict) or config.get("format") != "vault-repository":
        if not _looks_like_ours(raw):
            raise RepositoryNotFound(repo=storage.location)
        raise RepositoryConfigDamaged(repo=storage.location,
                                      detail="its format marker is missing or wrong")
    problem = _config_problem(config)
    if problem:
        raise RepositoryConfigDamaged(repo=storage.location, detail=problem)
    version = int(config["version"])
    if version > FORMAT_VERSION:
        raise UnsupportedFormat(repo=storage.location, version=version,
                                supported=FORMAT_VERSION)
    return config


def _looks_like_ours(raw: bytes) -> bool:
    """Whether a config that does not parse was written by vault: empty (a crash or a
    full disk truncated it), or a JSON text (vault writes one object) or one naming our
    format. A restic config (binary) or a borg one (INI) is not."""
    text = raw.lstrip()
    return not text or text.startswith(b"{") or b"vault-repository" in raw


def _config_problem(config: dict[str, Any]) -> str | None:
    """What is wrong with a config that parsed, or None (fields every session uses)."""
    if not isinstance(config.get("version"), int):
        return "field 'version' is missing or not a number"
    repo_id = config.get("id")
    # 64 hex digits, nothing else: the id names cache and state directories, and the
    # config is plain text anyone with write access to the storage could change
    if not isinstance(repo_id, str) or _REPO_ID.fullmatch(repo_id) is None:
        return "field 'id' is missing or not a repository id"
    chunker = config.get("chunker")
    if not isinstance(chunker, dict) or not all(
            isinstance(chunker.get(k), int) and chunker[k] > 0 for k in ("avg", "min", "max")):
        return "field 'chunker' is missing or incomplete"
    return None
