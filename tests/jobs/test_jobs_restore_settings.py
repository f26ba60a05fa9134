"""A settings snapshot queued for the worker as the TUI queues it (into its own location,
mode merge, no --settings: that flag is the CLI's way of saying "the live file") is
re-imported by the worker: the one restore pipeline applies the request's own rules, not
the CLI's."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_the_worker_reimports_a_settings_snapshot_queued_by_the_tui(
        vault_repo: Any, tmp_path: Path) -> None:
    from vault.config.model import load_config
    from vault.jobs.commands import JobCommand, RestoreArgs
    from vault.jobs.tasks import execute

    live = tmp_path / "app" / "config.toml"
    live.parent.mkdir()
    live.write_text('title = "chat"\nport = 8080\n')
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "settings"\nname = "app-settings"\n'
                      f'path = "{live}"\n')
    backed_up = vault_repo.json("--config", config, "backup", "--source", "app-settings")
    assert backed_up.code == 0, backed_up.last
    live.write_text('title = "broken"\nport = 8080\n')

    args = RestoreArgs(snapshot_ref=backed_up.summary["snapshot_id"], database=True,
                       mode="merge", on_conflict="skip", yes=True)
    command = JobCommand(job_id="restore-settings-worker", repository=str(vault_repo.env.repo),
                         config_path=str(config), args=args)
    assert execute(command, load_config(config)) == "completed"
    assert live.read_text().startswith('title = "chat"')
    done = vault_repo.events("RestoreCompleted")[-1]["payload"]
    assert done["job_id"] == "restore-settings-worker"
