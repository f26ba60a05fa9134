"""Named points where tests kill vault with SIGKILL, to prove a kill there is safe.

`VAULT_FAILPOINTS=repair-packs:salvaged,repair-index:index-written` makes the process
kill itself (SIGKILL: no cleanup, no finally) when it reaches one of those points. The
operations call `reached(operation, step)` between the steps whose order makes them
crash-safe; with the variable unset (always, outside the tests) it does nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "VAULT_FAILPOINTS"


def reached(operation: str, step: str) -> None:
    armed = os.environ.get(ENV)
    if armed and f"{operation}:{step}" in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
