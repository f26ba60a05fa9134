"""Every command is documented: help text in the code, a section in docs/cli.md.

As sqlite-utils does it: walk the click command tree of `vault.cli.main.cli` and fail
when a command or group has no docstring, has no `### vault <command path>` heading in
docs/cli.md, or has an option that its section never mentions. Also: docs/cli.md
documents no command that does not exist, lists every exit code, and `--help` works
everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vault import errors
from vault.cli.main import cli

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
_HEADING = re.compile(r"^(#{1,3}) (.+?)\s*$", re.MULTILINE)


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    """(full command path, command) for every command and group, depth first."""
    yield " ".join(("vault", *path)), command
    if isinstance(command, click.Group):
        ctx = click.Context(command)  # `vault` imports its commands' modules on lookup
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, (*path, name))


COMMANDS = list(walk(cli))
SUBCOMMANDS = [(path, cmd) for path, cmd in COMMANDS if path != "vault"]


def sections(text: str) -> dict[str, str]:
    """Heading text -> the text under it, up to the next heading of level 1 to 3."""
    found = list(_HEADING.finditer(text))
    out: dict[str, str] = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        out[match.group(2)] = text[match.end() : end]
    return out


@pytest.fixture(scope="module")
def doc_sections() -> dict[str, str]:
    return sections(DOCS.read_text(encoding="utf-8"))


def section_for(path: str, doc_sections: dict[str, str]) -> str:
    """The docs section of a command: `### vault <path>`; the root's is Global options."""
    heading = "Global options" if path == "vault" else path
    return doc_sections.get(heading, "")


def long_options(command: click.Command) -> list[str]:
    """Every option's long names (`--read-data`), or its short one if it has none."""
    names = []
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            longs = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
            names += longs or list(param.opts)
    return names


def mentions(text: str, option: str) -> bool:
    """`--read-data` is mentioned on its own, not only as part of `--read-data-subset`."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_the_tree_holds_the_commands_we_know() -> None:
    paths = {path for path, _ in COMMANDS}
    assert {"vault backup", "vault key add", "vault journal verify", "vault config show"} <= paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_has_help_text(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"`{path}` has no docstring (help text)"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_has_a_docs_section(
    path: str, command: click.Command, doc_sections: dict[str, str]
) -> None:
    heading = "## Global options" if path == "vault" else f"### {path}"
    assert section_for(path, doc_sections).strip(), f"docs/cli.md has no `{heading}` section"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_option_is_mentioned_in_its_section(
    path: str, command: click.Command, doc_sections: dict[str, str]
) -> None:
    text = section_for(path, doc_sections)
    missing = [o for o in long_options(command) if not mentions(text, o)]
    assert not missing, f"the docs/cli.md section of `{path}` does not mention {missing}"


@pytest.mark.parametrize(("path", "command"), SUBCOMMANDS, ids=[p for p, _ in SUBCOMMANDS])
def test_every_argument_is_mentioned_in_its_section(
    path: str, command: click.Command, doc_sections: dict[str, str]
) -> None:
    text = section_for(path, doc_sections)
    missing = [
        p.human_readable_name
        for p in command.params
        if isinstance(p, click.Argument) and p.human_readable_name not in text
    ]
    assert not missing, f"the docs/cli.md section of `{path}` does not mention {missing}"


def test_docs_document_no_command_that_does_not_exist(doc_sections: dict[str, str]) -> None:
    documented = {h for h in doc_sections if h.startswith("vault ")}
    stale = documented - {path for path, _ in COMMANDS}
    assert not stale, f"docs/cli.md documents commands that do not exist: {sorted(stale)}"


def test_exit_codes_table_lists_every_exit_code(doc_sections: dict[str, str]) -> None:
    table = doc_sections["Exit codes"]
    codes = {
        value
        for name, value in vars(errors).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }
    assert codes == {0, 1, 2, 3, 130}
    missing = [c for c in sorted(codes) if f"| `{c}` |" not in table]
    assert not missing, f"the exit codes table of docs/cli.md lacks {missing}"


def test_every_error_kind_is_documented(doc_sections: dict[str, str]) -> None:
    text = doc_sections["Exit codes"]
    kinds = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, errors.VaultError)
        and value is not errors.VaultError
    }
    missing = sorted(k for k in kinds if f"`{k}`" not in text)
    assert not missing, f"the error kinds table of docs/cli.md lacks {missing}"


def test_vault_help_exits_0() -> None:
    result = CliRunner().invoke(cli, ["--help"], prog_name="vault")
    assert result.exit_code == 0, result.output
    assert "Usage: vault" in result.output


@pytest.mark.parametrize(("path", "command"), SUBCOMMANDS, ids=[p for p, _ in SUBCOMMANDS])
def test_every_subcommand_help_exits_0(path: str, command: click.Command) -> None:
    args = [*path.split()[1:], "--help"]
    result = CliRunner().invoke(cli, args, prog_name="vault")
    assert result.exit_code == 0, f"`{path} --help` exited {result.exit_code}: {result.output}"
    assert f"Usage: {path}" in result.output


def test_every_command_module_is_in_the_lazy_table() -> None:
    """`vault` finds a built-in command through COMMAND_MODULES without importing every
    module: each module's commands must be listed there, under that module."""
    from importlib import import_module

    from vault.cli.main import COMMAND_MODULES

    cli_dir = Path(__file__).resolve().parents[2] / "src" / "vault" / "cli"
    listed: dict[str, str] = {}
    for source in sorted(cli_dir.glob("*.py")):
        module = import_module(f"vault.cli.{source.stem}")
        for command in getattr(module, "COMMANDS", []):
            listed[command.name] = source.stem
    assert listed == COMMAND_MODULES


def test_a_command_imports_only_what_it_needs() -> None:
    """`vault status` starts without huey, redis, Textual or the transfer formats."""
    import subprocess
    import sys

    code = ("import sys; from vault.cli.main import cli; import click;"
            "cli.get_command(click.Context(cli), 'status');"
            "print(' '.join(sorted(m for m in ('huey', 'redis', 'textual', 'vault_tui',"
            " 'vault.operations.importer', 'vault.jobs.worker') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
