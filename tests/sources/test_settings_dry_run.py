"""A dry run of a settings restore (`vault restore preview`, the plan a restore is
confirmed by) says what a re-import would change and writes nothing: not the live file,
not the live table, no undo copy beside them."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from vault.sources.base import SourceRestoreRequest, capture_to_memory
from vault.sources.settings.source import SettingsSource

DRY = SourceRestoreRequest(mode="merge", dry_run=True)


def test_a_dry_run_leaves_the_live_file_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('title = "chat"\nport = 8080\n')
    source = SettingsSource("app", path=str(path))
    stored = capture_to_memory(source)
    path.write_text('title = "other"\nport = 8080\nextra = 1\n')
    changed = path.read_bytes()

    dry = source.restore(stored, DRY)

    assert path.read_bytes() == changed and sorted(p.name for p in tmp_path.iterdir()) == [
        "config.toml"]
    assert (dry.details["changed"], dry.details["removed"], dry.details["undo"]) == (
        ["title"], ["extra"], None)
    assert (dry.items, dry.bytes) == (0, 0)
    done = source.restore(stored, dataclasses.replace(DRY, dry_run=False))
    assert done.details["changed"] == dry.details["changed"]
    assert path.read_text().startswith('title = "chat"')


def test_a_dry_run_leaves_the_live_table_as_it_is(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE app_config (name TEXT PRIMARY KEY, val)")
        db.executemany("INSERT INTO app_config VALUES (?, ?)", [("site", "chat"), ("n", 1)])
    db.close()
    source = SettingsSource("app", database=str(database), table="app_config",
                            key_column="name", value_column="val")
    stored = capture_to_memory(source)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE app_config SET val = 'other' WHERE name = 'site'")
        db.execute("DELETE FROM app_config WHERE name = 'n'")
    db.close()
    before = database.read_bytes()

    dry = source.restore(stored, DRY)

    assert database.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]
    assert (dry.details["changed"], dry.details["added"], dry.details["undo"]) == (
        ["site"], ["n"], None)
    fresh = source.restore(stored, dataclasses.replace(DRY, target=str(tmp_path / "new.db")))
    assert fresh.details["added"] == ["n", "site"] and not (tmp_path / "new.db").exists()
