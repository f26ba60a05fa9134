"""Delivery attempts: a few tries with a short backoff, but only for errors that may pass.

A refused connection, a timeout or an HTTP 5xx may be gone a second later; a wrong
password, an HTTP 404 or an untrusted certificate will not, so those stop at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from vault.errors import VaultError

ATTEMPTS = 3
#: seconds to wait before the 2nd and the 3rd attempt
BACKOFF_SECONDS: tuple[float, ...] = (0.5, 1.5)


class DeliveryError(VaultError):
    """{detail}"""

    #: a transient error is retried; a permanent one ends the delivery at once
    transient: ClassVar[bool] = False


class TransientDeliveryError(DeliveryError):
    """{detail}"""

    transient = True


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str | None
    attempts: int


def with_retries(
    send: Callable[[], None],
    *,
    attempts: int = ATTEMPTS,
    backoff: Sequence[float] = BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Call `send` until it returns, it raises a permanent DeliveryError, or `attempts`
    tries are used up. Other exceptions propagate: they are bugs, not delivery problems."""
    for attempt in range(1, attempts + 1):
        try:
            send()
        except DeliveryError as error:
            if not error.transient or attempt == attempts:
                return Outcome(ok=False, error=error.message, attempts=attempt)
            sleep(backoff[min(attempt, len(backoff)) - 1] if backoff else 0.0)
        else:
            return Outcome(ok=True, error=None, attempts=attempt)
    raise AssertionError("unreachable: attempts must be at least 1")
