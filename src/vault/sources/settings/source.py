"""An application's settings: a JSON/TOML/YAML/.env file or a SQLite settings table.

A capture is one item, `settings.json`: a canonical JSON document (sorted keys) holding
the format, where the settings came from and the settings themselves, type for type
(settings_codec), with every secret redacted or sealed (settings_secrets). A restore
re-imports them into the file or table (settings_merge decides what changes), keeping the
live value of every redacted secret, atomically and with an undo copy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from vault.repository.crypto import DecryptionFailed
from vault.sources.base import (
    Capture,
    PlannedRestore,
    SourceEstimate,
    SourceItem,
    SourceRestoreResult,
    stream_of,
)
from vault.sources.registry import register
from vault.sources.settings.browse import BROWSER
from vault.sources.settings.codec import canonical_bytes, decode, encode
from vault.sources.settings.errors import (
    SealerMissing,
    SettingsDocumentInvalid,
    SettingsSourceInvalid,
    SettingsUnreadable,
)
from vault.sources.settings.files import read_settings_file, replace_settings_file
from vault.sources.settings.formats import Format, guess_format, parse_settings, render_settings
from vault.sources.settings.merge import ABSENT, MergeResult, merge_settings
from vault.sources.settings.secrets import (
    DEFAULT_SECRET_KEYS,
    SecretMatcher,
    has_sealed,
    protect,
    unseal,
)
from vault.sources.settings.stored import ITEM, reseal_item
from vault.sources.settings.table import SettingsTable

if TYPE_CHECKING:
    from vault.sources.base import CaptureContext, SourceRestoreRequest, StoredItems

__all__ = ["ITEM", "SettingsSource", "from_config"]

DOCUMENT_VERSION = 1
SecretsMode = Literal["redact", "encrypt"]


class SettingsSource(PlannedRestore):
    """Give `path` (and `format`, else guessed from the name) for a file, or `database`
    (with `table`, `key_column`, `value_column`) for a SQLite settings table."""

    type: ClassVar[str] = "settings"

    def __init__(self, name: str, *, path: str | None = None, format: Format | None = None,
                 database: str | None = None, table: str = "settings",
                 key_column: str = "key", value_column: str = "value",
                 secrets: SecretsMode = "redact",
                 secret_keys: Iterable[str] = DEFAULT_SECRET_KEYS) -> None:
        if (path is None) == (database is None):
            raise ValueError("a settings source needs either a path or a database")
        self.name = name
        self.path = path
        self.format: Format | Literal["sqlite"] = "sqlite"
        if path is not None:
            guessed = format or guess_format(path)
            if guessed is None:
                raise SettingsSourceInvalid(f"cannot tell the format of {path}; set format = "
                                            "json, toml, yaml or env", name=name)
            self.format = guessed
        self.table = None if database is None else SettingsTable(
            database, table, key_column, value_column)
        self.secrets: SecretsMode = secrets
        self.secret_keys = tuple(secret_keys)

    def describe(self) -> dict[str, Any]:
        where: dict[str, Any] = {"path": self.path}
        if self.table is not None:
            where = {"database": self.table.database, "table": self.table.table}
        return {"type": self.type, "name": self.name, **where, "format": self.format,
                "secrets": self.secrets}

    def estimate(self) -> SourceEstimate:
        if self.table is not None:
            return SourceEstimate(self.table.size_estimate(), items=1)
        try:
            return SourceEstimate(os.stat(self.path or "").st_size, items=1)
        except OSError:
            return SourceEstimate(None, items=1)

    @contextmanager
    def capture(self, context: CaptureContext) -> Iterator[Capture]:
        if self.secrets == "encrypt" and context.sealer is None:
            raise SealerMissing('secrets = "encrypt" needs the repository\'s secret sealer, '
                                "and the capture has none", name=self.name)
        settings, origin = self._read()
        seal = context.sealer.seal if self.secrets == "encrypt" and context.sealer else None
        protected = protect(settings, SecretMatcher(self.secret_keys), seal)
        document = {"vault_settings": DOCUMENT_VERSION, "format": self.format,
                    "origin": origin, "secrets": self.secrets,
                    "settings": encode(protected.settings)}
        data = canonical_bytes(document)
        meta = {"format": self.format, "keys": _count_keys(settings),
                "secrets": len(protected.secrets), "secrets_mode": self.secrets}
        item = SourceItem(ITEM, stream_of(lambda: [data]), size_hint=len(data))
        yield Capture([item], meta)

    def _read(self) -> tuple[Any, dict[str, Any]]:
        if self.table is not None:
            origin = {"database": self.table.database, "table": self.table.table,
                      "key_column": self.table.key_column,
                      "value_column": self.table.value_column}
            return self.table.read(), origin
        path = self.path or ""
        found = read_settings_file(path)
        if found is None:
            raise SettingsUnreadable("no such file", path=path)
        data, mode = found
        assert self.format != "sqlite"
        return parse_settings(data, self.format, path), {"path": path, "mode": mode}

    def restore(self, stored: StoredItems, request: SourceRestoreRequest) -> SourceRestoreResult:
        document = self._stored_document(stored)
        settings = decode(document["settings"])
        if has_sealed(settings):
            if request.sealer is None:
                raise SealerMissing("the backup holds encrypted secrets and the restore was "
                                    "given no secret sealer to decrypt them", name=self.name)
            try:
                settings = unseal(settings, request.sealer.unseal)
            except DecryptionFailed:
                # sealed under another repository's key, or damaged: never half-restored
                raise SettingsDocumentInvalid("its encrypted secrets do not open with this "
                                              "repository's key; nothing was written",
                                              name=self.name) from None
        origin = document["origin"]
        if document["format"] == "sqlite":
            return self._restore_table(settings, origin, request)
        return self._restore_file(settings, document["format"], origin, request)

    def _stored_document(self, stored: StoredItems) -> dict[str, Any]:
        if ITEM not in stored.paths():
            raise SettingsDocumentInvalid(f"the snapshot has no {ITEM}", name=self.name)
        with stored.open(ITEM) as stream:
            try:
                document = json.loads(stream.read())
            except ValueError as exc:
                raise SettingsDocumentInvalid(f"{ITEM} is not JSON ({exc})",
                                              name=self.name) from None
        if not isinstance(document, dict) or document.get("vault_settings") != DOCUMENT_VERSION:
            raise SettingsDocumentInvalid(f"{ITEM} is not a settings document of version "
                                          f"{DOCUMENT_VERSION}", name=self.name)
        return document

    def _restore_file(self, settings: Any, format: Format, origin: dict[str, Any],
                      request: SourceRestoreRequest) -> SourceRestoreResult:
        target = request.target or origin["path"]
        found = read_settings_file(target)
        live: Any = ABSENT
        details: dict[str, Any] = {"target": target, "format": format}
        if found is not None:
            live = parse_settings(found[0], format, target)
        result = merge_settings(settings, live)
        details.update(result.report.as_details())
        if request.dry_run:  # what would change (details), nothing written
            return SourceRestoreResult(details={**details, "undo": None})
        if found is not None and result.report.unchanged:
            # Nothing to change: the file stays as it is, comments and layout included.
            return SourceRestoreResult(items=1, bytes=0, details={**details, "undo": None})
        data = render_settings(result.settings, format, found[0] if found else None)
        details["undo"] = replace_settings_file(target, data, origin.get("mode"))
        return SourceRestoreResult(items=1, bytes=len(data), details=details)

    def _restore_table(self, settings: Any, origin: dict[str, Any],
                       request: SourceRestoreRequest) -> SourceRestoreResult:
        table = SettingsTable(request.target or origin["database"], origin["table"],
                              origin["key_column"], origin["value_column"])

        def merge(live: Any) -> MergeResult:
            return merge_settings(settings, live)

        done = table.preview(merge) if request.dry_run else table.reimport(merge)
        details = {"target": table.database, "table": table.table, "format": "sqlite",
                   **done.result.report.as_details(), "undo": done.undo}
        changed = len(done.result.report.changed) + len(done.result.report.added)
        return SourceRestoreResult(items=0 if request.dry_run else 1, bytes=0,
                                   details={**details, "rows": changed})


def _count_keys(settings: Any) -> int:
    """Leaf values (the number a person would call the settings' keys)."""
    if isinstance(settings, dict):
        return sum(_count_keys(value) for value in settings.values())
    if isinstance(settings, list):
        return sum(_count_keys(value) for value in settings)
    return 1


def from_config(entry: Any) -> SettingsSource:
    """The source for a validated `vault.config.model.SettingsSourceConfig`."""
    return SettingsSource(
        entry.name,
        path=None if entry.path is None else str(entry.path),
        format=entry.format,
        database=None if entry.database is None else str(entry.database),
        table=entry.table, key_column=entry.key_column, value_column=entry.value_column,
        secrets=entry.secrets, secret_keys=entry.secret_keys,
    )


register("settings", from_config=from_config, browser=BROWSER, target_is_path=True,
         reseal_item=reseal_item)
