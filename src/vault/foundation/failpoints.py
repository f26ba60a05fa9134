"""Named points where tests kill vault with SIGKILL, to prove a kill there is safe.

`VAULT_FAILPOINTS=repair-packs:salvaged,saver:pack-written@3` makes the process kill
itself (SIGKILL: no cleanup, no finally) when it reaches one of those points — with `@N`,
at its Nth arrival there. Code calls `reached(operation, step)` between the steps whose
order makes them crash-safe; with the variable unset (always, outside the tests) it does
nothing. It lives at the bottom layer so the repository's writers can name points too.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "VAULT_FAILPOINTS"

_arrivals: Counter[str] = Counter()
_count_lock = threading.Lock()


def reached(operation: str, step: str) -> None:
    armed = os.environ.get(ENV)
    if not armed:
        return
    point = f"{operation}:{step}"
    with _count_lock:
        _arrivals[point] += 1
        arrival = _arrivals[point]
    for spec in armed.split(","):
        name, _, nth = spec.partition("@")
        if name == point and (not nth or int(nth) == arrival):
            os.kill(os.getpid(), signal.SIGKILL)
