"""vault.notify: tell people about job outcomes by e-mail and webhook.

    from vault.notify import Notice, notify

    deliveries = notify(config, journal, Notice("failure", "backup of /srv/app failed",
                        {"error": "..."}, job_id=job_id, schedule="nightly"),
                        only=schedule.notify)

Targets are the `[[notifications]]` of vault.toml. `notify` never raises for a delivery
problem; each delivery is journaled as NotificationSent or NotificationFailed. See
docs/notifications.md.
"""

from vault.notify.dispatch import notify, select_targets
from vault.notify.notice import (
    TRIGGERS,
    Channel,
    Delivery,
    Notice,
    Trigger,
    build_test_notice,
)

__all__ = [
    "TRIGGERS",
    "Channel",
    "Delivery",
    "Notice",
    "Trigger",
    "build_test_notice",
    "notify",
    "select_targets",
]
