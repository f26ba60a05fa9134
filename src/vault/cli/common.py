"""Small helpers shared by command modules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from vault.cli.output import Output
from vault.errors import UsageError
from vault.foundation.progress import NullReporter, ProgressReporter
from vault.repository.snapshot_ref import SnapshotCriteria

if TYPE_CHECKING:
    from vault.repository.repository import Repository
    from vault.repository.snapshot import Snapshot

Command = TypeVar("Command", bound=Callable[..., Any])


def reporter_for(out: Output) -> ProgressReporter:
    reporter = out.progress_reporter()
    return reporter if reporter is not None else NullReporter()


def parse_time(value: str | None, flag: str) -> datetime | None:
    """An ISO date/time from the command line; without an offset it is local time (as
    the tables show it)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{flag} {value!r}: expected an ISO date/time such as 2026-11-20 "
                         "or '2026-11-20 14:00+01:00'") from exc
    return parsed if parsed.tzinfo else parsed.astimezone()


def parse_entity_option(text: str) -> tuple[str, tuple[str, ...]]:
    """`--entity NAME=ID[,ID...]` as (name, ids); a malformed one is a usage error."""
    name, _, ids = text.partition("=")
    id_list = tuple(i.strip() for i in ids.split(",") if i.strip())
    if not name.strip() or not id_list:
        raise UsageError(f"--entity {text!r}: write it as NAME=ID[,ID...]")
    return name.strip(), id_list


def latest_options(command: Command) -> Command:
    """--source, --path, --host: which snapshot `latest` (or an id) may be, as restic's
    `--path/--host` for `latest`. Passed as `pick_source`, `pick_path`, `pick_host`."""
    options = [
        click.option("--source", "pick_source", metavar="NAME",
                     help="Only snapshots of source NAME (a configured name or label, or a "
                          "backed-up path): `latest` is its newest."),
        click.option("--path", "pick_path", metavar="P",
                     help="Only snapshots holding P: `latest` is the newest that does."),
        click.option("--host", "pick_host", metavar="H",
                     help="Only snapshots taken on host H."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def snapshot_criteria(source: str | None, path: str | None, host: str | None,
                      inside: str | None = None) -> SnapshotCriteria:
    """The criteria of latest_options; `inside` (an `ID:PATH` or PATH argument) is the path
    `latest` must hold when --path is not given."""
    wanted = path if path is not None else inside
    if wanted is not None:
        wanted = "/" + wanted.strip("/") if wanted.strip("/") else None  # "/": every one
    return SnapshotCriteria(source=source, path=wanted, host=host)


def pinned_ref(repo: Repository, ref: str, criteria: SnapshotCriteria) -> tuple[Snapshot, str]:
    """Resolve `ref` (`latest`, an id, `ID:sub/dir`) once, here: (the snapshot, the same
    reference spelled with its full id), so later steps (a queued job, the TUI, a source
    restore) restore exactly the snapshot that was checked, not a newer `latest`."""
    snapshot_ref, _, sub = ref.partition(":")
    if criteria.path is None and sub.strip("/"):
        criteria = SnapshotCriteria(criteria.source, "/" + sub.strip("/"), criteria.host)
    snapshot = repo.find_snapshot(snapshot_ref, criteria)
    return snapshot, f"{snapshot.id}:{sub}" if sub else snapshot.id
