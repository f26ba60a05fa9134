"""`notify()`: send one notice to the targets that want it, journal each delivery, never raise.

Targets are served in parallel threads, so one slow or dead server costs its own timeout
and retries (at most ~3 x timeout + 2 s) rather than delaying every other target; the
journal is written afterwards from the calling thread (a Journal is one per thread).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from vault.config.model import EmailNotification, Notification, VaultConfig, WebhookNotification
from vault.config.secrets import Secret, SecretRef, resolve_secret
from vault.errors import VaultError
from vault.journal import Journal
from vault.journal.events import NotificationFailed, NotificationSent
from vault.notify.message import webhook_body, webhook_payload
from vault.notify.notice import Delivery, Notice, Trigger
from vault.notify.retry import DeliveryError, Outcome, with_retries
from vault.notify.smtp import build_email, send_email
from vault.notify.webhook import post_webhook

log = logging.getLogger("vault.notify")

#: the stream of notices that are about no job (low storage, a missed schedule, a test)
NOTIFICATIONS_STREAM = "notifications"
MAX_PARALLEL = 8


def select_targets(targets: Iterable[Notification], trigger: Trigger,
                   only: Sequence[str] | None) -> list[Notification]:
    """The targets whose `on` lists `trigger`, limited to the names in `only` if given."""
    wanted = None if only is None else set(only)
    return [t for t in targets if trigger in t.on and (wanted is None or t.name in wanted)]


def notify(config: VaultConfig, journal: Journal, notice: Notice, *,
           only: Sequence[str] | None = None) -> list[Delivery]:
    """Send `notice` to every configured target that wants its trigger (and is named in
    `only`, a schedule's `notify` list, when given). One Delivery per target, in config
    order. Never raises for a delivery problem: failures are returned and journaled."""
    if only is not None and (unknown := set(only) - {t.name for t in config.notifications}):
        log.warning("no notification target named %s", ", ".join(sorted(unknown)))
    targets = select_targets(config.notifications, notice.trigger, only)
    if not targets:
        return []
    host, sent_at = socket.gethostname(), datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(targets)),
                            thread_name_prefix="vault-notify") as pool:
        deliveries = list(pool.map(lambda t: deliver(t, notice, host=host, sent_at=sent_at),
                                   targets))
    for delivery in deliveries:
        _record(journal, notice, delivery)
    return deliveries


def deliver(target: Notification, notice: Notice, *, host: str, sent_at: datetime) -> Delivery:
    """Send `notice` to one target with retries; the error text never holds a secret."""
    secrets: list[Secret] = []
    try:
        if isinstance(target, EmailNotification):
            outcome = _email(target, notice, host, sent_at, secrets)
        else:
            outcome = _webhook(target, notice, host, sent_at, secrets)
    except VaultError as error:  # a secret that cannot be read, a ca_file that will not load
        outcome = Outcome(ok=False, error=error.message, attempts=0)
    except Exception as error:  # a bug here must not fail the job the notice is about
        log.exception("notification %s: unexpected error", target.name)
        outcome = Outcome(ok=False, error=f"internal error: {type(error).__name__}: {error}",
                          attempts=0)
    return Delivery(name=target.name, channel=target.type, ok=outcome.ok,
                    error=redact(outcome.error, secrets), attempts=outcome.attempts)


def _email(target: EmailNotification, notice: Notice, host: str, sent_at: datetime,
           secrets: list[Secret]) -> Outcome:
    password = _secret(target.password, f"password of notification {target.name!r}", secrets)
    message = build_email(target, notice, host=host, sent_at=sent_at)
    return with_retries(lambda: send_email(target, message, password))


def _webhook(target: WebhookNotification, notice: Notice, host: str, sent_at: datetime,
             secrets: list[Secret]) -> Outcome:
    token = _secret(target.token, f"token of notification {target.name!r}", secrets)
    signing = _secret(target.signing_secret,
                      f"signing secret of notification {target.name!r}", secrets)
    body = webhook_body(webhook_payload(notice, target=target.name, host=host, sent_at=sent_at))
    return with_retries(lambda: post_webhook(target, body, token=token, signing_secret=signing))


def _secret(ref: SecretRef | None, what: str, secrets: list[Secret]) -> Secret | None:
    if ref is None:
        return None
    value = resolve_secret(ref, what)
    secrets.append(value)
    return value


def redact(text: str | None, secrets: Iterable[str]) -> str | None:
    """`text` with every secret value in it replaced by `***` (a server may echo one)."""
    if text is None:
        return None
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def _record(journal: Journal, notice: Notice, delivery: Delivery) -> None:
    fields = {"target": delivery.name, "channel": delivery.channel, "trigger": notice.trigger,
              "title": notice.title, "job_id": notice.job_id, "schedule": notice.schedule,
              "attempts": delivery.attempts}
    event = (NotificationSent(**fields) if delivery.ok
             else NotificationFailed(**fields, error=delivery.error or "unknown error"))
    try:
        journal.append(notice.job_id or NOTIFICATIONS_STREAM, event)
    except (VaultError, ValueError) as error:
        # The job's own outcome is already journaled; losing this record must not undo it.
        log.warning("could not journal the %s notification: %s", delivery.name, error)


__all__ = ["DeliveryError", "deliver", "notify", "redact", "select_targets"]
