"""`vault notify`: check the notification targets of vault.toml by sending them a test."""

from __future__ import annotations

import socket
from typing import cast

import click

from vault.cli.main import CliState, output_options, pass_state
from vault.config.model import VaultConfig
from vault.errors import EXIT_FAILED, UsageError
from vault.notify import TRIGGERS, Delivery, Trigger, build_test_notice, notify, select_targets


@click.group("notify")
def notify_group() -> None:
    """Notification targets ([[notifications]] in vault.toml)."""


@notify_group.command("test")
@click.option("--target", "targets", multiple=True, metavar="NAME",
              help="Only this target (repeatable). Default: every target whose `on` lists "
                   "the trigger.")
@click.option("--trigger", type=click.Choice(TRIGGERS), default="failure", show_default=True,
              help="The trigger the test notice claims; only targets whose `on` lists it "
                   "receive it.")
@output_options
@pass_state
def notify_test(state: CliState, targets: tuple[str, ...], trigger: str) -> None:
    """Send a test notice and print one line per delivery; exit 1 if any failed.

    Deliveries are journaled (NotificationSent / NotificationFailed), as for real notices."""
    config = state.config()
    only = list(targets) or None
    _check_selection(config, trigger, only)
    notice = build_test_notice(_trigger(trigger), socket.gethostname())
    deliveries = notify(config, state.vault().journal, notice, only=only)
    out = state.output()
    for delivery in deliveries:
        out.line(delivery_line(delivery))
        out.record("delivery", **delivery.to_json())
    failed = [d for d in deliveries if not d.ok]
    out.summary(ok=not failed, trigger=trigger, sent=len(deliveries) - len(failed),
                failed=len(failed))
    if failed:
        raise click.exceptions.Exit(EXIT_FAILED)


def delivery_line(delivery: Delivery) -> str:
    tries = f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
    if delivery.ok:
        return f"{delivery.name} ({delivery.channel}): sent ({tries})"
    return f"{delivery.name} ({delivery.channel}): FAILED after {tries}: {delivery.error}"


def _check_selection(config: VaultConfig, trigger: str, only: list[str] | None) -> None:
    """A usage error (exit 2) rather than a silent no-op when nothing would be sent."""
    names = [t.name for t in config.notifications]
    if not names:
        raise UsageError("no notification targets: add a [[notifications]] table to vault.toml")
    unknown = [name for name in only or [] if name not in names]
    if unknown:
        raise UsageError(f"no notification target named {unknown[0]!r} "
                         f"(configured: {', '.join(names)})")
    if not select_targets(config.notifications, _trigger(trigger), only):
        if only:
            raise UsageError(f"target {', '.join(only)}: `on` does not list {trigger!r}"
                             " (pick another --trigger, or add it to `on`)")
        raise UsageError(f"no notification target lists {trigger!r} in `on`;"
                         " pick another --trigger")


def _trigger(value: str) -> Trigger:
    return cast(Trigger, value)  # click.Choice(TRIGGERS) let only those through


COMMANDS = [notify_group]
