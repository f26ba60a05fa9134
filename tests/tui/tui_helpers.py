"""Helpers of the TUI tests (imported by name: tests/tui is on sys.path)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

#: the terminal sizes every screen must work at
SMALL = (80, 24)
LARGE = (120, 40)


async def wait_for(condition: Callable[[], bool], pilot: object, timeout: float = 20.0) -> None:
    """Let the app run until `condition()` holds (checked between pauses), or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await pilot.pause(0.05)  # type: ignore[attr-defined]



def job_figures(job: Any) -> str:
    """A dashboard JobProgress widget's figures line; empty until the widget has composed
    its children (a query right after it was mounted finds none yet)."""
    found = job.query(".job-figures")
    return str(found.first().render()) if found else ""
