"""What the Settings screen does: add a key (`vault key add`) and send a test notice
(`vault notify test`), through the same core calls, from a worker thread."""

from __future__ import annotations

import socket

from vault.errors import UsageError
from vault.notify import Delivery, Trigger, build_test_notice, notify, select_targets
from vault.operations import manage
from vault_tui.context import TuiContext

#: the trigger a test notice claims (`vault notify test`'s default)
TEST_TRIGGER: Trigger = "failure"


def add_key(ctx: TuiContext, new_passphrase: str, label: str | None) -> str:
    """A key file for `new_passphrase`, unlocked with the passphrase in use; its id."""
    with ctx.vault() as vault:
        vault.repository()
        return manage.add_key(vault, new_passphrase, label)


def send_test_notice(ctx: TuiContext) -> list[Delivery]:
    """One delivery per target whose `on` lists the trigger, each journaled
    (NotificationSent / NotificationFailed) as for real notices."""
    with ctx.vault() as vault:
        config = vault.config
        if not config.notifications:
            raise UsageError("no notification targets: add a [[notifications]] table to "
                             "vault.toml")
        if not select_targets(config.notifications, TEST_TRIGGER, None):
            raise UsageError(f"no notification target lists {TEST_TRIGGER!r} in `on`; "
                             "use `vault notify test --trigger` for the others")
        notice = build_test_notice(TEST_TRIGGER, socket.gethostname())
        return notify(config, vault.journal, notice)


def delivery_text(delivery: Delivery) -> str:
    tries = f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
    if delivery.ok:
        return f"sent ({tries})"
    return f"FAILED after {tries}: {delivery.error}"
