"""What is sent (a `Notice`) and what became of it at one target (a `Delivery`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Trigger = Literal["success", "failure", "partial", "low_storage", "missed"]
Channel = Literal["email", "webhook"]
TRIGGERS: tuple[Trigger, ...] = ("success", "failure", "partial", "low_storage", "missed")


@dataclass(frozen=True)
class Notice:
    """A job outcome (or a condition such as low storage) worth telling someone about.

    `details` are JSON-able facts (job id, snapshot id, sizes, the error message): they go
    into e-mails and webhook bodies as they are, so they must never hold a secret.
    """

    trigger: Trigger
    title: str
    details: dict[str, Any]
    job_id: str | None = None
    schedule: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The outcome of sending one notice to one target, after `attempts` tries."""

    name: str
    channel: Channel
    ok: bool
    error: str | None
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "channel": self.channel, "ok": self.ok,
                "error": self.error, "attempts": self.attempts}


def build_test_notice(trigger: Trigger, host: str) -> Notice:
    """What `vault notify test` sends: marked as a test in its title and details."""
    return Notice(
        trigger=trigger,
        title=f"test notice from vault on {host}",
        details={"test": True, "note": "sent by `vault notify test`; no job ran"},
    )
