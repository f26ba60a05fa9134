"""`vault config`: check and show the configuration."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vault.cli.main import CliState, output_options, pass_state
from vault.config.model import check_config_file
from vault.errors import EXIT_USAGE, UsageError
from vault.foundation.paths import default_config_file


@click.group()
def config() -> None:
    """Check and show the configuration (vault.toml)."""


@config.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@output_options
@pass_state
def config_check(state: CliState, file: Path | None) -> None:
    """Validate FILE (default: the active config file); each problem as file:line: key: message."""
    path = file or state.config_path or default_config_file()
    if not path.exists():
        raise UsageError(f"{path}: no such config file")
    problems = check_config_file(path)
    out = state.output()
    for p in problems:
        out.line(str(p))
    if not problems:
        out.line(f"{path}: ok")
    out.summary(file=str(path), ok=not problems,
                problems=[{"file": p.file, "line": p.line, "key": p.key, "message": p.message}
                          for p in problems])
    if problems:
        raise click.exceptions.Exit(EXIT_USAGE)


@config.command("show")
@output_options
@pass_state
def config_show(state: CliState) -> None:
    """Print the effective configuration (file, environment and flags merged; secrets are
    shown only as their source, never their value)."""
    cfg = state.config()
    data = cfg.model_dump(mode="json")
    out = state.output()
    out.line(json.dumps(data, indent=2))
    out.summary(config=data)


COMMANDS = [config]
