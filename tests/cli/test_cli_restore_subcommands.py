"""`vault restore undo` and `vault restore preview` are subcommands of their own while
`vault restore SNAPSHOT ...` stays the command it was: same usage line, same help (which
lists the subcommands), same errors."""

from __future__ import annotations

from click.testing import CliRunner

from vault.cli.main import cli


def run(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, list(args), prog_name="vault")
    return done.exit_code, done.output


def test_the_help_is_the_restore_command_s_and_lists_the_subcommands() -> None:
    code, text = run("restore", "--help")
    assert code == 0
    assert text.startswith("Usage: vault restore [OPTIONS] SNAPSHOT [PATHS]...\n")
    assert "  -t, --target TEXT" in text and "  --no-safety-copy" in text
    commands = text.split("\nCommands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in commands if line.strip()] == ["preview", "undo"]
    assert run("restore", "-h")[1] == text


def test_each_subcommand_has_its_own_usage() -> None:
    code, text = run("restore", "undo", "--help")
    assert code == 0 and text.startswith(
        "Usage: vault restore undo [OPTIONS] RESTORE_JOB_ID\n")
    code, text = run("restore", "preview", "--help")
    assert code == 0 and text.startswith(
        "Usage: vault restore preview [OPTIONS] [SNAPSHOT] [PATHS]...\n")


def test_a_missing_argument_reads_as_before() -> None:
    code, text = run("restore")
    assert code == 2
    assert "Usage: vault restore [OPTIONS] SNAPSHOT [PATHS]..." in text
    assert "Missing argument 'SNAPSHOT'" in text
    code, text = run("restore", "undo")
    assert code == 2 and "Missing argument 'RESTORE_JOB_ID'" in text
