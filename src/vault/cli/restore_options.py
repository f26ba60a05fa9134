"""The edge of `vault restore`: its options, the old option names it still accepts, how
it asks before a destructive restore, and the group that makes `undo` and `preview`
subcommands while `vault restore SNAPSHOT ...` stays the command it always was."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from vault.cli.common import latest_options
from vault.cli.main import output_options
from vault.errors import UsageError
from vault.operations.restore_checks import Confirm
from vault.planning.restore_plan import OnConflict
from vault.planning.restore_request import RestoreMode

#: `--mode` spellings of old: new-target was "new" (overwrite's "replace" stays: for a
#: database it is the whole-table swap, `RestoreMode.REPLACE`)
_OLD_MODES = {"new": RestoreMode.NEW_TARGET}


def legacy_mode(mode: str | None, on_conflict: OnConflict | None, overwrite: str | None
                ) -> tuple[RestoreMode | None, OnConflict | None, bool]:
    """(mode, on_conflict, trust_mtime) from `--mode`, `--on-conflict` and the deprecated
    `--overwrite`: always = merge, overwrite what differs; if-changed = the same but equal
    size and mtime count as unchanged; never = merge, skip what differs."""
    if overwrite is not None:
        if mode is not None or on_conflict is not None:
            raise UsageError("--overwrite is the old spelling of --mode/--on-conflict: "
                             "give one or the other")
        return (RestoreMode.MERGE, "skip" if overwrite == "never" else "overwrite",
                overwrite == "if-changed")
    if mode is None:
        return None, on_conflict, False
    return _OLD_MODES.get(mode) or RestoreMode(mode), on_conflict, False


def confirmer(target: str, name: str | None = None) -> Confirm:
    """The `Confirm` of an interactive command: on a terminal, show what would change and
    ask for the target's name (or "yes"); elsewhere refuse, naming --yes."""
    from vault.operations.restore_checks import RestoreNotConfirmed, plan_changes

    expected = name or os.path.basename(target.rstrip("/")) or target

    def confirm(where: str, plan: dict[str, Any]) -> None:
        changes = plan_changes(plan)
        if not sys.stdin.isatty():
            raise RestoreNotConfirmed(target=where, changes=changes,
                                      how="pass --yes to go ahead (no terminal to ask)")
        click.echo(f"restore into {where} will change what is there: {changes}", err=True)
        answer = click.prompt(f"type {expected!r} (or 'yes') to go on", default="",
                              show_default=False, err=True)
        if answer.strip() not in {expected, where, "yes"}:
            raise RestoreNotConfirmed(target=where, changes=changes,
                                      how="not confirmed")

    return confirm


class DefaultCommandGroup(click.Group):
    """A group whose first argument, when it names no subcommand, is the start of its
    default command's arguments: `vault restore undo JOB` and `vault restore preview ...`
    are subcommands, `vault restore latest ...` is the default command, whose usage, help
    and errors read `vault restore` exactly as before (the help lists the subcommands)."""

    _ARGS = "vault.default_command_args"

    def __init__(self, name: str, default: click.Command, **attrs: Any) -> None:
        super().__init__(name, help=default.help, no_args_is_help=False, **attrs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else None
        if first in self.commands or first in ctx.help_option_names:
            return super().parse_args(ctx, args)
        ctx.meta[self._ARGS] = list(args)
        return []

    def invoke(self, ctx: click.Context) -> Any:
        args = ctx.meta.pop(self._ARGS, None)
        if args is None:
            return super().invoke(ctx)
        # The default command runs beside the group (its parent is the group's parent),
        # so it is spelled `vault restore`, not `vault restore <name>`.
        with self.default.make_context(ctx.info_name, args, parent=ctx.parent) as sub:
            return sub.command.invoke(sub)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return self.default.collect_usage_pieces(ctx)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.default.format_help(ctx, formatter)
        self.format_commands(ctx, formatter)


def restore_options(func: Callable[..., None]) -> click.Command:
    """`vault restore SNAPSHOT ...` (its arguments and options, which `preview` shares)."""
    decorators: list[Callable[[Any], Any]] = [
        click.argument("snapshot"),
        click.argument("paths", nargs=-1),
        click.option("-t", "--target",
                     help="Directory to restore files into; for a database, the file, "
                          "database name or URL to restore into (default: the source's own "
                          "location)."),
        click.option("-i", "--include", multiple=True,
                     help="Restore only paths matching this glob."),
        click.option("-e", "--exclude", multiple=True, help="Skip paths matching this glob."),
        click.option("--mode", type=click.Choice(["overwrite", "merge", "new-target", "new",
                                                  "replace"]),
                     help="overwrite: the target's selection becomes the snapshot's (extra "
                          "files deleted); merge: add what is missing, keep what exists; "
                          "new-target: only into a new or empty target. (new/replace: old "
                          "names of new-target/overwrite.)  [files default: merge, "
                          "conflicts overwritten; databases: new-target]"),
        click.option("--on-conflict", "on_conflict",
                     type=click.Choice(["skip", "overwrite", "rename", "fail"]),
                     help="Items on both sides that differ: keep the target's (skip), take "
                          "the snapshot's (overwrite), keep both (rename: NAME.restored-ID) "
                          "or refuse the whole restore (fail).  [default: skip for merge, "
                          "else overwrite]"),
        click.option("--overwrite", type=click.Choice(["always", "if-changed", "never"]),
                     help="Deprecated: always = --mode merge --on-conflict overwrite; never "
                          "= --on-conflict skip; if-changed = overwrite unless size and "
                          "mtime match."),
        click.option("-n", "--dry-run", "--preview", "dry_run", is_flag=True,
                     help="Print the plan (per directory: created, overwritten, skipped, "
                          "renamed, deleted, conflicts); write nothing."),
        click.option("-v", "--verbose", is_flag=True, help="With --dry-run: list every item."),
        *_database_options(),
        latest_options,
        output_options,
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return click.command("restore")(func)


def _database_options() -> list[Callable[[Any], Any]]:
    return [
        click.option("--only", multiple=True, metavar="NAME",
                     help="Database snapshots: restore only this table or collection "
                          "(repeatable)."),
        click.option("--query", metavar="JSON",
                     help="Database snapshots: restore only some records: MongoDB "
                          "'{\"ids\": [...]}' or '{\"filter\": {...}}'; MongoDB, SQLite and "
                          "PostgreSQL '{\"entity\": \"project\", \"ids\": [...]}' (with what "
                          "lies below)."),
        click.option("--at", "at", metavar="TIME",
                     help="Point in time (e.g. '2026-11-20 14:00+01:00'; local time without "
                          "an offset): SNAPSHOT then names a source, a backed-up path or a "
                          "configured group, and its newest completed snapshot at or before "
                          "TIME is restored."),
        click.option("--entity", metavar="NAME=ID[,ID...]",
                     help="Database snapshots: restore only these entities of the hierarchy "
                          "and everything below them (e.g. project=2: its sessions and "
                          "messages too); the same as --query '{\"entity\": NAME, \"ids\": "
                          "[...]}'."),
        click.option("--new-ids", is_flag=True,
                     help="Database snapshots: restore the selection (e.g. --query "
                          "'{\"entity\": \"project\", \"ids\": [...]}') as a new copy with "
                          "new ids; references in the entity hierarchy are rewritten."),
        click.option("--rename", "rename", multiple=True, metavar="FIELD=VALUE",
                     help="With --new-ids: the copy's top entity takes VALUE in FIELD (a "
                          "column or field), e.g. --rename name='Website (copy)' "
                          "(repeatable)."),
        click.option("--settings", "settings", is_flag=True,
                     help="Settings snapshots: re-import into the live settings (redacted "
                          "secrets keep their live values)."),
        click.option("--queue", "queued", is_flag=True,
                     help="Queue the restore for `vault worker`; print its job id and "
                          "return. A destructive queued restore needs --yes now: the "
                          "worker cannot ask."),
        click.option("-y", "--yes", "yes", is_flag=True,
                     help="Go ahead with a destructive restore (one that overwrites or "
                          "deletes what the target holds) without asking. Without it a "
                          "terminal asks you to type the target's name; a script is refused "
                          "(exit 2)."),
        click.option("--no-safety-copy", "no_safety_copy", is_flag=True,
                     help="Files: keep no safety copy of what a destructive restore "
                          "overwrites or deletes (no undo); for a repository that is full "
                          "or read-only."),
    ]
