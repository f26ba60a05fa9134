"""The words and bytes of a notice: e-mail subject and body, webhook body and signature.

Pure functions of their arguments (the host name and the time are passed in), so what a
recipient reads can be tested without a server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from vault.notify.notice import Notice, Trigger

#: the `schema_version` of the webhook body (docs/notifications.md); bumped on any change
#: a receiver could notice other than an added field
WEBHOOK_SCHEMA_VERSION = 1
SUBJECT_MAX = 200

TRIGGER_WORDS: dict[Trigger, str] = {
    "success": "succeeded",
    "failure": "failed",
    "partial": "partial",
    "low_storage": "low storage",
    "missed": "missed run",
}


def one_line(text: str, limit: int = SUBJECT_MAX) -> str:
    """`text` on one line (header injection is impossible), at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def email_subject(notice: Notice) -> str:
    """`[vault] nightly failed: backup of /srv/app failed` (the schedule when there is one)."""
    what = TRIGGER_WORDS[notice.trigger]
    if notice.schedule:
        what = f"{notice.schedule} {what}"
    return one_line(f"[vault] {what}: {notice.title}")


def email_body(notice: Notice, *, host: str, sent_at: datetime) -> str:
    """Plain text: the title, who/when, then every detail as `key: value`."""
    lines = [one_line(notice.title, 1000), ""]
    facts = [
        (key, value)
        for key, value in [
            ("trigger", notice.trigger),
            ("job", notice.job_id),
            ("schedule", notice.schedule),
            ("host", host),
            ("time", sent_at.isoformat(timespec="seconds")),
        ]
        if value is not None
    ]
    width = max(len(key) for key, _ in facts) + 1
    lines += [f"{key + ':':<{width}} {value}" for key, value in facts]
    if notice.details:
        lines += ["", "details:"]
        lines += [f"  {key}: {_detail_text(value)}" for key, value in notice.details.items()]
    lines += ["", "-- ", "sent by vault; `vault journal --type NotificationSent` lists notices"]
    return "\n".join(lines) + "\n"


def _detail_text(value: Any) -> str:
    if isinstance(value, str):
        # A multi-line error stays readable: continuation lines are indented under its key.
        return value.replace("\n", "\n    ")
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def webhook_payload(notice: Notice, *, target: str, host: str, sent_at: datetime) -> dict[str, Any]:
    """The JSON document POSTed to a webhook (its schema is in docs/notifications.md)."""
    return {
        "schema_version": WEBHOOK_SCHEMA_VERSION,
        "source": "vault",
        "target": target,
        "trigger": notice.trigger,
        "title": notice.title,
        "job_id": notice.job_id,
        "schedule": notice.schedule,
        "host": host,
        "sent_at": sent_at.isoformat(),
        "details": notice.details,
    }


def webhook_body(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON with sorted keys: the exact bytes the signature covers."""
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      default=str, allow_nan=False)
    return text.encode("utf-8")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 keyed with `secret` over `timestamp + "." + body`.

    The timestamp is signed too, so a receiver that refuses old timestamps also refuses a
    replayed request.
    """
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()
