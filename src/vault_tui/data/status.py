"""The dashboard's figures: `vault status` gathered for the TUI."""

from __future__ import annotations

from datetime import UTC, datetime

from vault.operations.status import StatusReport, gather_status
from vault_tui.context import TuiContext


def dashboard(ctx: TuiContext, now: datetime | None = None) -> StatusReport:
    with ctx.vault() as vault:
        return gather_status(vault, now or datetime.now(UTC))
