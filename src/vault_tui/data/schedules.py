"""What the Schedules screen shows: every schedule in effect (vault.toml's and those added
with `vault schedule add`) with its next and last run and its retention, read from the
journal's `schedules` table without writing anything; and the retention form's parsing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from vault.config.model import Retention
from vault.journal.projections.schedules import read_schedule_rows
from vault.planning.retention import RetentionPolicy
from vault.runtime.effective_schedules import (
    ScheduleInConfig,
    ScheduleView,
    effective_schedules,
    views,
)
from vault_tui.context import TuiContext

#: the retention form's fields, in the order it shows them: (key, label)
RETENTION_FIELDS: tuple[tuple[str, str], ...] = (
    ("keep_last", "keep last"),
    ("keep_hourly", "hourly"),
    ("keep_daily", "daily"),
    ("keep_weekly", "weekly"),
    ("keep_monthly", "monthly"),
    ("keep_yearly", "yearly"),
    ("keep_within", "within"),
    ("keep_tags", "tags"),
)


@dataclass(frozen=True)
class ScheduleRow:
    """One schedule as the screen lists it."""

    view: ScheduleView
    #: the schedule's own retention; None: the top-level [retention] applies
    retention: Retention | None
    #: the policy its runs apply, in words ("keep 7 daily snapshots")
    policy: str
    last_job_ids: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def editable(self) -> bool:
        """Only a schedule kept in the journal can be changed from the TUI."""
        return self.view.origin == "cli"

    def refusal(self) -> str:
        """Why a vault.toml schedule's retention is not edited here (the core's words)."""
        return ScheduleInConfig(name=self.name, action="change").message


def load_schedules(ctx: TuiContext, now: datetime) -> list[ScheduleRow]:
    with ctx.vault() as vault:
        config = vault.config
        items = effective_schedules(config, read_schedule_rows(vault.journal.path), now)
    rows = []
    for item, view in zip(items, views(items, now), strict=True):
        schedule = item.schedule
        policy = RetentionPolicy.from_config(config.retention_for(schedule),
                                             timezone=schedule.timezone)
        rows.append(ScheduleRow(view=view, retention=schedule.retention,
                                policy=policy.describe(), last_job_ids=item.last_job_ids))
    return rows


def retention_fields(retention: Retention | None) -> dict[str, str]:
    """The form's text for each field of `retention` (empty: rule off)."""
    values: dict[str, str] = {key: "" for key, _ in RETENTION_FIELDS}
    if retention is None:
        return values
    for key, value in retention.model_dump(mode="json").items():
        if isinstance(value, list):
            values[key] = ", ".join(value)
        elif value is not None:
            values[key] = str(value)
    return values


def parse_retention(fields: dict[str, str]) -> Retention | None:
    """The form's text -> a Retention (None when every field is empty: the top-level
    [retention] applies). Raises ValueError with one line naming each bad field."""
    given: dict[str, object] = {}
    for key, text in fields.items():
        text = text.strip()
        if not text:
            continue
        if key == "keep_tags":
            given[key] = [tag.strip() for tag in text.split(",") if tag.strip()]
        else:
            given[key] = text
    if not given:
        return None
    try:
        return Retention.model_validate(given)
    except ValidationError as exc:
        labels = dict(RETENTION_FIELDS)
        problems = [f"{labels.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'retention'}:"
                    f" {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise ValueError("; ".join(problems)) from None
