"""`vault tui`: registered on the `vault` command through the `vault.commands` entry point,
so the core CLI never imports Textual."""

from __future__ import annotations

from pathlib import Path

import click

from vault.cli.main import CliState, pass_state


@click.command()
@click.option("--poll", type=click.FloatRange(0.1, 5.0), default=0.3, show_default=True,
              metavar="SECONDS", help="How often the journal is looked at for new events.")
@pass_state
def tui(state: CliState, poll: float) -> None:
    """Open the terminal UI: live dashboard, history, restore browser, schedules, journal.

    It reads the journal and queues jobs for `vault worker`; it runs none itself. Works over
    SSH and in tmux at 80x24 and up; NO_COLOR turns colours off.
    """
    from vault_tui.app import VaultApp
    from vault_tui.context import TuiContext

    state.config()  # a malformed config is a one-line error before the screen is taken
    ctx = TuiContext(config_path=Path(state.config_path) if state.config_path else None,
                     overrides=dict(state.overrides),
                     password_command=state.password_command,
                     password_file=state.password_file)
    VaultApp(ctx, poll_seconds=poll).run()
