"""The `vault` command: global options, error mapping and exit codes.

Exit codes: 0 ok, 1 operation failed, 2 bad usage or configuration, 3 completed but some
files or sources could not be read, 130 interrupted. A user error is one line on stderr
(`vault: error: ...`); a traceback only with --debug.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from vault import __version__
from vault.cli.output import Output
from vault.config.model import VaultConfig, load_config
from vault.errors import EXIT_INTERRUPTED, EXIT_PARTIAL, JournalError, VaultError
from vault.foundation.paths import SharedWritable
from vault.runtime.app import PassphraseOptions, StorageOptions, Vault

F = TypeVar("F", bound=Callable[..., Any])

#: 128 + SIGPIPE, what a shell reports for a writer whose reader went away
EXIT_BROKEN_PIPE = 141


@dataclass
class CliState:
    config_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    json_mode: bool = False
    quiet: bool = False
    debug: bool = False
    password_command: str | None = None
    password_file: Path | None = None
    storage_options: StorageOptions = field(default_factory=StorageOptions)
    command: str = "vault"
    _vault: Vault | None = None
    _output: Output | None = None

    def config(self) -> VaultConfig:
        return load_config(self.config_path, overrides=self.overrides)

    def output(self) -> Output:
        if self._output is None:
            self._output = Output(json_mode=self.json_mode, quiet=self.quiet,
                                  command=self.command)
        return self._output

    def vault(self) -> Vault:
        if self._vault is None:
            prompt = _prompt_passphrase if sys.stdin.isatty() else None
            self._vault = Vault(self.config(), PassphraseOptions(
                password_command=self.password_command, password_file=self.password_file,
                prompt=prompt), storage_options=self.storage_options)
        return self._vault


def _prompt_passphrase() -> str:
    return str(click.prompt("repository passphrase", hide_input=True, err=True))


def output_options(func: F) -> F:
    """--json and --quiet on every command (as well as before the command name)."""

    @click.option("--json", "json_mode", is_flag=True, default=None,
                  help="JSON lines on stdout: progress records and one final record.")
    @click.option("-q", "--quiet", is_flag=True, default=None,
                  help="No progress or notes; results and errors only.")
    @wraps(func)
    def wrapper(*args: Any, json_mode: bool | None, quiet: bool | None, **kwargs: Any) -> Any:
        state = click.get_current_context().find_object(CliState)
        assert state is not None
        state.json_mode = state.json_mode or bool(json_mode)
        state.quiet = state.quiet or bool(quiet)
        state.command = click.get_current_context().command_path.removeprefix("vault ")
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


pass_state = click.make_pass_decorator(CliState)


class VaultGroup(click.Group):
    """The `vault` group: built-in commands are imported on first use (COMMAND_MODULES),
    plugin commands (PLUGIN_GROUP) are added as lazy stubs when first listed or looked up."""

    _plugins_added = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugins()
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            load_command_module(COMMAND_MODULES[cmd_name])
        if cmd_name not in self.commands:
            self._add_plugins()
        return self.commands.get(cmd_name)

    def _add_plugins(self) -> None:
        if not self._plugins_added:
            self._plugins_added = True
            _register_plugins()


@click.group(cls=VaultGroup, context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.version_option(__version__, prog_name="vault")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              envvar="VAULT_CONFIG", help="Config file (default ~/.config/vault/vault.toml).")
@click.option("-r", "--repo", help="Repository: a [[repositories]] name or a location "
              "(overrides the config and VAULT_REPOSITORY).")
@click.option("--password-command", help="Command that prints the repository passphrase.")
@click.option("--password-file", type=click.Path(path_type=Path),
              help="File holding the repository passphrase (mode 0600).")
@click.option("--json", "json_mode", is_flag=True, help="JSON lines output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or notes.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--limit-upload", type=click.IntRange(min=1), metavar="KIB",
              help="Send at most KIB KiB/s of object data (over limit_upload).")
@click.option("--limit-download", type=click.IntRange(min=1), metavar="KIB",
              help="Receive at most KIB KiB/s of object data (over limit_download).")
@click.option("--no-cache", is_flag=True,
              help="Read index, snapshots and trees from the repository, not the local cache.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, repo: str | None,
        password_command: str | None, password_file: Path | None, json_mode: bool,
        quiet: bool, debug: bool, limit_upload: int | None, limit_download: int | None,
        no_cache: bool) -> None:
    """vault: encrypted, deduplicated backups and exact restores.

    Every operation is recorded in an append-only journal (see `vault journal`).
    """
    state = ctx.ensure_object(CliState)  # main() made it, so errors can be reported well
    state.config_path = config_path
    state.overrides = {"repository.url": repo} if repo else {}
    state.json_mode, state.quiet, state.debug = json_mode, quiet, debug
    state.password_command, state.password_file = password_command, password_file
    state.storage_options = StorageOptions(limit_upload, limit_download, not no_cache)


#: where each built-in command lives: a command's module (and what it imports: huey for
#: the worker, the transfer formats, the operations) is imported only when that command
#: runs or lists its help, so `vault status` does not pay for `vault import`
COMMAND_MODULES = {
    "init": "repo", "stats": "repo", "key": "repo", "locks": "repo",
    "status": "status",
    "backup": "backup",
    "restore": "restore", "dump": "restore",
    "snapshots": "snapshots", "ls": "snapshots", "diff": "snapshots", "forget": "snapshots",
    "verify": "verify",
    "prune": "prune",
    "repair": "repair",
    "worker": "jobs", "jobs": "jobs",
    "schedule": "schedule",
    "journal": "journal",
    "config": "config",
    "notify": "notify",
    "export": "transfer", "import": "transfer",
    "copy": "copy",
}


def load_command_module(module_name: str) -> list[click.Command]:
    """Import `vault.cli.<module_name>` and add its commands to `vault`."""
    from importlib import import_module

    commands: list[click.Command] = import_module(f"vault.cli.{module_name}").COMMANDS
    for command in commands:
        if command.name not in cli.commands:
            cli.add_command(command)
    return commands


#: entry-point group of commands other installed packages add (`vault tui` from vault_tui):
#: the core never imports those packages, they register themselves
PLUGIN_GROUP = "vault.commands"


def _register_plugins() -> None:
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        if entry.name in cli.commands or entry.name in COMMAND_MODULES:
            continue
        cli.add_command(_LazyCommand(entry.name, entry.value), entry.name)


class _LazyCommand(click.Command):
    """A plugin command, imported only when it runs or shows its help: `vault backup`
    must not pay for importing Textual."""

    def __init__(self, name: str, target: str) -> None:
        super().__init__(name, help=f"(from {target.split(':')[0].split('.')[0]})")
        self._target = target
        self._loaded: click.Command | None = None

    def _command(self) -> click.Command:
        if self._loaded is None:
            from importlib import import_module

            module, _, attr = self._target.partition(":")
            loaded = getattr(import_module(module), attr)
            assert isinstance(loaded, click.Command)
            self._loaded = loaded
        return self._loaded

    def get_short_help_str(self, limit: int = 45) -> str:
        return self._command().get_short_help_str(limit)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return self._command().get_params(ctx)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        return self._command().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        return self._command().invoke(ctx)

    def get_help(self, ctx: click.Context) -> str:
        return self._command().get_help(ctx)



def _journal_failure(state: CliState, err: VaultError) -> None:
    """Failures of commands that ran no job still land in the journal.

    Not when no Vault was built (the config itself is bad: we may not even know where
    the journal is), nor when a job already journaled its own failure, nor when the
    journal's directory is what was refused (`SharedWritable`: nothing is written there).
    """
    if state._vault is None or getattr(err, "journaled", False) \
            or isinstance(err, JournalError | SharedWritable):
        return
    state._vault.record_failure(state.command, err.kind, err.message)


def main(argv: list[str] | None = None) -> None:
    state = CliState()
    args = list(argv if argv is not None else sys.argv[1:])
    code = 1
    try:
        with cli.make_context("vault", args, obj=state) as ctx:
            cli.invoke(ctx)
        code = 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        # A parse error comes before the command's own --json was applied: honour it here.
        if state.json_mode or "--json" in args:
            state.json_mode = True
            state.output().error("UsageError", exc.format_message(), exc.exit_code)
        else:
            exc.show()
        code = exc.exit_code
    except click.exceptions.Abort:
        print("vault: aborted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except VaultError as exc:
        code = _report(state, exc)
    except BrokenPipeError:
        # `vault snapshots | head`: the reader left; say nothing, like any Unix tool.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("\nvault: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line; the traceback with --debug
        if state.debug:
            traceback.print_exc()
        print(f"vault: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
              file=sys.stderr)
        code = 1
        if state.json_mode:
            state.output().error("InternalError", f"{type(exc).__name__}: {exc}", code)
    finally:
        if state._vault:
            code = _warn_at_exit(state._vault, code)
            state._vault.close()
    sys.stdout.flush()
    sys.exit(code)


def _warn_at_exit(vault: Vault, code: int) -> int:
    """Say what went on despite a problem; events kept in the journal spool (not yet in
    the journal) turn a success into exit 3, as an incomplete record is not a clean run."""
    for text in vault.warnings:
        print(f"vault: warning: {text}", file=sys.stderr)
    spooled = vault.journal_spooled()
    if spooled is None:
        return code
    print(f"vault: warning: {spooled}", file=sys.stderr)
    return EXIT_PARTIAL if code == 0 else code


def _report(state: CliState, exc: VaultError) -> int:
    if state.debug:
        traceback.print_exc()
    state.output().error(exc.kind, exc.message, exc.exit_code)
    for problem in getattr(exc, "problems", [])[:50]:
        if not state.json_mode:
            print(f"  {problem}", file=sys.stderr)
    _journal_failure(state, exc)
    return exc.exit_code
