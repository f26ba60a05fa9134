"""The dashboard's figures: `vault status` gathered for the TUI, plus whether the queue
can be reached (a Redis server down is said on the dashboard, not only when a job is
queued)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from vault.errors import VaultError
from vault.jobs.queue import JobQueue
from vault.operations.status import StatusReport, gather_status
from vault_tui.context import TuiContext


@dataclass(frozen=True)
class Dashboard:
    status: StatusReport
    queue_problem: str | None  # why the queue cannot be reached, or None


def dashboard(ctx: TuiContext, now: datetime | None = None) -> Dashboard:
    with ctx.vault() as vault:
        status = gather_status(vault, now or datetime.now(UTC))
        try:
            JobQueue.from_config(vault.config).check()
            problem = None
        except VaultError as exc:
            problem = exc.message
        return Dashboard(status, problem)
