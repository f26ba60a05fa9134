"""The dashboard with several repositories: each one, with the newest snapshot of each
source in it (backed up there or copied there with `vault copy`) and its age."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static
from tui_helpers import LARGE, wait_for


def _text(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.screen.query_one("#repositories", Static).render())


async def test_the_dashboard_lists_each_repository_and_its_newest_snapshots(
        vault_env, vault, tmp_path: Path, make_app) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha\n")
    secret = tmp_path / "offsite.pass"
    secret.write_text(vault_env.password)
    secret.chmod(0o600)
    config = tmp_path / "vault.toml"
    config.write_text(
        f'[[repositories]]\nname = "local"\nurl = "{vault_env.repo}"\n\n'
        f'[[repositories]]\nname = "offsite"\nurl = "{tmp_path / "offsite"}"\n'
        f'password = {{ file = "{secret}" }}\n')
    vault_env.env["VAULT_CONFIG"] = str(config)
    vault.ok("init")
    vault.ok("-r", "offsite", "init")
    snapshot = vault.backup(docs)["snapshot_id"]
    copied = vault.json("copy", "--all", "--to", "offsite")
    assert copied.code == 0, copied.last
    [pair] = copied.summary["copied"]

    app = make_app()
    async with app.run_test(size=LARGE) as pilot:
        await wait_for(lambda: "offsite" in _text(app), pilot)
        lines = _text(app).splitlines()
        assert lines[0].startswith(f"local *: {docs} {snapshot[:8]} (")
        assert lines[1].startswith(f"offsite: {docs} {pair['copy_id'][:8]} (")
        assert all(line.endswith(" ago)") for line in lines)
        assert len(lines) == 2
        assert app.screen.query_one("#repositories-title").display
