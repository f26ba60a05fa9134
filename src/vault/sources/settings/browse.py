"""Browsing a stored settings snapshot: it holds one document, no tables or entities, so
its contents are its item; its records (table "settings") are its top-level settings,
each keyed by its name, with its value type for type. A secret stays as stored: the
redaction marker or the sealed bytes, never unsealed to be shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vault.errors import UsageError
from vault.sources import browse
from vault.sources.base import StoredItems
from vault.sources.settings.codec import decode
from vault.sources.settings.errors import SettingsDocumentInvalid
from vault.sources.settings.stored import ITEM

__all__ = ["TABLE", "SettingsBrowser", "SettingsRecords"]

#: the one "table" a settings snapshot is browsed as
TABLE = "settings"


class SettingsBrowser:
    def contents(self, stored: StoredItems) -> browse.SnapshotContents:
        return browse.contents_from_meta(stored.meta, stored.paths(), ())

    def reader(self, stored: StoredItems, scratch_dir: Path) -> SettingsRecords:
        return SettingsRecords(stored)


class SettingsRecords:
    def __init__(self, stored: StoredItems) -> None:
        self.stored = stored

    def _settings(self) -> Any:
        if ITEM not in self.stored.paths():
            raise SettingsDocumentInvalid(f"the snapshot has no {ITEM}", name=TABLE)
        with self.stored.open(ITEM) as stream:
            try:
                document = json.load(stream)
            except ValueError as exc:
                raise SettingsDocumentInvalid(f"{ITEM} is not JSON ({exc})",
                                              name=TABLE) from None
        if not isinstance(document, dict) or "settings" not in document:
            raise SettingsDocumentInvalid(f"{ITEM} holds no settings", name=TABLE)
        return decode(document["settings"])

    def records(self, table: str, match: browse.Match | None = None, *,
                limit: int = browse.PAGE, offset: int = 0) -> browse.RecordPage:
        if table != TABLE or match is not None:
            raise UsageError(f"a settings snapshot has one table, {TABLE!r}, of settings "
                             "keyed by name (no field to match)")
        settings = self._settings()
        found = browse.PageCollector(limit, offset)
        named = settings.items() if isinstance(settings, dict) else enumerate(settings) \
            if isinstance(settings, list) else []
        for name, value in named:
            found.add(name if isinstance(name, (int, str)) else str(name),
                      (("value", value),))
        return found.page

    def close(self) -> None:
        pass  # the document is read whole, nothing is written


BROWSER = SettingsBrowser()
