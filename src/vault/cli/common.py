"""Small helpers shared by command modules."""

from __future__ import annotations

from datetime import datetime

from vault.cli.output import Output
from vault.errors import UsageError
from vault.progress import NullReporter, ProgressReporter


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
