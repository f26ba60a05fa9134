"""Small helpers shared by command modules."""

from __future__ import annotations

from vault.cli.output import Output
from vault.progress import NullReporter, ProgressReporter


def reporter_for(out: Output) -> ProgressReporter:
    reporter = out.progress_reporter()
    return reporter if reporter is not None else NullReporter()
