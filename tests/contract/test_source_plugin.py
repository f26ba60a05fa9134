"""A fifth source type is its own package plus one entry point (docs/architecture.md).

The test writes a small source type, `notes` (a JSON file of notes, stored as one item),
as a package outside vault with a `vault.sources` entry point, and runs the installed
`vault` with that package on its path: the config loader accepts `type = "notes"` (and
reports a typo in its keys at its line), backup stores it, `vault snapshots` names its
type, `vault ls` lists its item and `vault restore` writes the bytes back — without a
line of vault changed.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

PACKAGE = {
    "__init__.py": '"""Notes files as a vault source: a test plugin."""\n',
    "config.py": '''
        from __future__ import annotations

        from typing import Literal

        from vault.config.source_parts import SourceConfigBase
        from vault.config.types import ConfigPath


        class NotesSourceConfig(SourceConfigBase):
            type: Literal["notes"]
            path: ConfigPath
    ''',
    "source.py": '''
        from __future__ import annotations

        import os
        from contextlib import contextmanager
        from typing import Any, ClassVar

        from vault.sources import browse
        from vault.sources.base import (
            Capture, PlannedRestore, SourceEstimate, SourceItem, SourceRestoreResult,
            stream_of,
        )
        from vault.sources.registry import register

        ITEM = "notes.json"


        class NotesSource(PlannedRestore):
            type: ClassVar[str] = "notes"

            def __init__(self, name: str, path: str) -> None:
                self.name, self.path = name, path

            def describe(self) -> dict[str, Any]:
                return {"type": self.type, "name": self.name, "file": self.path}

            def estimate(self) -> SourceEstimate:
                return SourceEstimate(bytes=os.path.getsize(self.path), items=1)

            @contextmanager
            def capture(self, context):
                data = open(self.path, "rb").read()
                yield Capture(items=[SourceItem(ITEM, stream_of(lambda: [data]),
                                                size_hint=len(data))],
                              meta={"notes": len(__import__("json").loads(data))})

            def restore(self, stored, request) -> SourceRestoreResult:
                target = request.target or self.path
                if request.dry_run:
                    return SourceRestoreResult(details={"target": target})
                with stored.open(ITEM) as stream:
                    data = stream.read()
                with open(target + ".tmp", "wb") as out:
                    out.write(data)
                os.replace(target + ".tmp", target)
                return SourceRestoreResult(items=1, bytes=len(data), details={"target": target})


        class NotesBrowser:
            def contents(self, stored) -> browse.SnapshotContents:
                return browse.contents_from_meta(
                    stored.meta, stored.paths(),
                    [browse.StoredTable("notes", stored.meta.get("notes"))])

            def reader(self, stored, scratch_dir):
                raise NotImplementedError


        register("notes", from_config=lambda entry: NotesSource(entry.name, str(entry.path)),
                 browser=NotesBrowser(), target_is_path=True)
    ''',
}
ENTRY_POINTS = "[vault.sources]\nnotes = vault_notes_source.config:NotesSourceConfig\n"


def _install_plugin(root: Path) -> Path:
    """The package and its distribution metadata on a directory put on PYTHONPATH: how
    importlib.metadata finds an installed package's entry points."""
    package = root / "vault_notes_source"
    package.mkdir(parents=True)
    for name, text in PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text).lstrip())
    dist = root / "vault_notes_source-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vault-notes-source\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def _cli(vault: Any, config: Path, plugins: Path):
    env = {**vault.env.env, "PYTHONPATH": str(plugins)}

    def run(*args: Any) -> Any:
        return vault.json("--config", config, *args, env=env)
    return run


def test_a_source_type_from_its_own_package_backs_up_lists_and_restores(
        vault_repo: Any, tmp_path: Path) -> None:
    plugins = _install_plugin(tmp_path / "plugins")
    notes = tmp_path / "notes.json"
    original = json.dumps([{"id": 1, "text": "räksmörgås"}, {"id": 2, "text": None}]).encode()
    notes.write_bytes(original)
    config = tmp_path / "vault.toml"
    config.write_text(f'[repository]\nurl = "{vault_repo.env.repo}"\n\n'
                      f'[[sources]]\ntype = "notes"\nname = "team-notes"\npath = "{notes}"\n')
    cli = _cli(vault_repo, config, plugins)

    checked = cli("config", "check")
    assert checked.code == 0, checked.last
    backed_up = cli("backup", "--source", "team-notes")
    assert backed_up.code == 0, (backed_up.last, backed_up.stderr)
    [snapshot] = [s for s in cli("snapshots").summary["snapshots"]
                  if s["source"].get("type") == "notes"]
    assert snapshot["source"]["name"] == "team-notes"

    notes.write_bytes(b"[]")  # the loss
    restored = cli("restore", snapshot["id"], "--target", tmp_path / "back.json")
    assert restored.code == 0, (restored.last, restored.stderr)
    assert (tmp_path / "back.json").read_bytes() == original

    listed = cli("ls", snapshot["id"])
    assert listed.code == 0, (listed.last, listed.stderr)
    assert [(e["path"], e["size"]) for e in listed.summary["entries"]] == [
        ("/notes.json", len(original))]


def test_a_typo_in_a_plugin_sources_keys_is_reported_at_its_line(
        vault_repo: Any, tmp_path: Path) -> None:
    plugins = _install_plugin(tmp_path / "plugins")
    config = tmp_path / "vault.toml"
    config.write_text(f'[repository]\nurl = "{vault_repo.env.repo}"\n\n'
                      '[[sources]]\ntype = "notes"\nname = "n"\npath = "/srv/notes.json"\n'
                      'colour = "blue"\n')
    checked = _cli(vault_repo, config, plugins)("config", "check")
    assert checked.code == 2
    [problem] = checked.last["problems"]
    assert problem["line"] == 8 and "colour" in problem["key"], problem
