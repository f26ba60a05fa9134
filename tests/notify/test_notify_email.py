"""E-mail notices through a real aiosmtpd server: STARTTLS + AUTH, implicit TLS, plain,
and the failures that must end as a journaled NotificationFailed, never an exception."""

from __future__ import annotations

import socket
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from notify_servers import SMTP_PASSWORD, SMTP_USER, TlsFiles, free_port

from vault.journal import Journal
from vault.notify import Notice, notify
from vault.notify.message import email_body

NOTICE = Notice(
    trigger="failure",
    title="backup of /srv/app failed",
    details={"error": "cannot connect to PostgreSQL at 127.0.0.1:5999: connection refused",
             "bytes_new": 0},
    job_id="backup-0123abcd",
    schedule="nightly",
)


@pytest.fixture
def smtp_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    return SMTP_PASSWORD


def email_target(port: int, tls: TlsFiles | None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "email", "name": "ops-mail", "smtp_host": "localhost", "smtp_port": port,
        "username": SMTP_USER, "password": {"env": "TEST_SMTP_PASSWORD"},
        "sender": "Vault <vault@example.com>",
        "recipients": ["ops@example.com", "oncall@example.org"],
        "timeout_seconds": 5, **({"ca_file": str(tls.ca_file)} if tls else {}), **extra,
    }


def events(journal: Journal) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.stream_id, e.type, e.payload) for e in journal.read(
        types=["NotificationSent", "NotificationFailed"])]


def assert_is_the_notice(message: Any) -> None:
    assert message["From"] == "Vault <vault@example.com>"
    assert message["To"] == "ops@example.com, oncall@example.org"
    assert message["Subject"] == "[vault] nightly failed: backup of /srv/app failed"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content().replace("\r\n", "\n")  # SMTP's line ends
    sent_at = parsedate_to_datetime(message["Date"])
    assert body == email_body(NOTICE, host=socket.gethostname(), sent_at=sent_at)
    assert body.startswith("backup of /srv/app failed\n")
    assert "job:      backup-0123abcd\n" in body
    assert "schedule: nightly\n" in body
    assert ("  error: cannot connect to PostgreSQL at 127.0.0.1:5999: connection refused\n"
            in body)
    assert "  bytes_new: 0\n" in body


def test_starttls_with_auth_delivers_the_message(
    smtp_server, tls, make_config, journal: Journal, smtp_password: str
) -> None:
    server = smtp_server("starttls")
    config = make_config(email_target(server.port, tls))

    [delivery] = notify(config, journal, NOTICE)

    assert (delivery.name, delivery.channel, delivery.ok, delivery.error, delivery.attempts) == (
        "ops-mail", "email", True, None, 1)
    assert server.logins == [(SMTP_USER, SMTP_PASSWORD, True)]
    assert server.envelopes == [("vault@example.com", ["ops@example.com", "oncall@example.org"])]
    [message] = server.messages
    assert_is_the_notice(message)
    assert events(journal) == [("backup-0123abcd", "NotificationSent", {
        "target": "ops-mail", "channel": "email", "trigger": "failure",
        "title": "backup of /srv/app failed", "job_id": "backup-0123abcd",
        "schedule": "nightly", "attempts": 1})]


# aiosmtpd cannot tell that a socket it did not STARTTLS itself is encrypted.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_on_its_own_port(
    smtp_server, tls, make_config, journal: Journal, smtp_password: str
) -> None:
    server = smtp_server("ssl")
    config = make_config(email_target(server.port, tls, ssl=True))

    [delivery] = notify(config, journal, NOTICE)

    assert delivery.ok, delivery.error
    assert server.logins == [(SMTP_USER, SMTP_PASSWORD, True)]
    assert_is_the_notice(server.messages[0])


def test_plain_smtp_only_when_asked(smtp_server, make_config, journal: Journal) -> None:
    server = smtp_server("plain", auth=False)
    target = email_target(server.port, None, starttls=False)
    del target["username"], target["password"]

    [delivery] = notify(make_config(target), journal, NOTICE)

    assert delivery.ok, delivery.error
    assert_is_the_notice(server.messages[0])


def test_starttls_refused_by_a_server_without_it_is_not_retried(
    smtp_server, make_config, journal: Journal, smtp_password: str
) -> None:
    server = smtp_server("plain", auth=False)  # offers no STARTTLS

    [delivery] = notify(make_config(email_target(server.port, None)), journal, NOTICE)

    assert not delivery.ok and delivery.attempts == 1
    assert "STARTTLS" in (delivery.error or "")
    assert server.messages == []


def test_an_untrusted_certificate_fails_without_sending_the_password(
    smtp_server, make_config, journal: Journal, smtp_password: str
) -> None:
    server = smtp_server("starttls")  # its CA is not given: the system store does not know it

    [delivery] = notify(make_config(email_target(server.port, None)), journal, NOTICE)

    assert not delivery.ok and delivery.attempts == 1
    assert delivery.error is not None and "certificate not trusted" in delivery.error
    assert server.logins == [] and server.messages == []


def test_wrong_password_is_journaled_and_not_raised(
    smtp_server, tls, make_config, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-the-password-9Zk2"
    monkeypatch.setenv("TEST_SMTP_PASSWORD", wrong)
    server = smtp_server("starttls")

    [delivery] = notify(make_config(email_target(server.port, tls)), journal, NOTICE)

    assert (delivery.ok, delivery.attempts) == (False, 1)  # an auth failure is not retried
    assert delivery.error is not None
    assert f"localhost:{server.port}: login as '{SMTP_USER}' refused (535" in delivery.error
    assert wrong not in delivery.error
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN) before giving up.
    assert server.logins and set(server.logins) == {(SMTP_USER, wrong, False)}
    assert server.messages == []
    [(stream, kind, payload)] = events(journal)
    assert (stream, kind) == ("backup-0123abcd", "NotificationFailed")
    assert payload["error"] == delivery.error and payload["attempts"] == 1


def test_unreachable_server_fails_after_three_quick_attempts(
    tls, make_config, journal: Journal, smtp_password: str
) -> None:
    port = free_port()  # nothing listens there
    config = make_config(email_target(port, tls, timeout_seconds=0.5))

    started = time.monotonic()
    [delivery] = notify(config, journal, NOTICE)
    elapsed = time.monotonic() - started

    print(f"unreachable SMTP server: gave up after {delivery.attempts} attempts"
          f" in {elapsed:.2f} s")
    assert (delivery.ok, delivery.attempts) == (False, 3)
    assert delivery.error == f"localhost:{port}: connection refused"
    [(_, kind, payload)] = events(journal)
    assert kind == "NotificationFailed" and payload["attempts"] == 3


def test_an_unreadable_password_is_a_failed_delivery(
    tls, make_config, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    config = make_config(email_target(free_port(), tls))

    [delivery] = notify(config, journal, NOTICE)

    assert (delivery.ok, delivery.attempts) == (False, 0)
    assert delivery.error == ("cannot read the password of notification 'ops-mail':"
                              " environment variable TEST_SMTP_PASSWORD is not set")


def test_a_missing_ca_file_is_a_failed_delivery(
    smtp_server, make_config, journal: Journal, smtp_password: str, tmp_path: Path
) -> None:
    server = smtp_server("starttls")
    target = {**email_target(server.port, None), "ca_file": str(tmp_path / "nope.pem")}

    [delivery] = notify(make_config(target), journal, NOTICE)

    assert not delivery.ok and delivery.attempts == 1
    missing = tmp_path / "nope.pem"
    assert delivery.error == f"cannot load ca_file {missing}: no such file or directory"


def test_a_server_that_never_answers_times_out_on_each_attempt(
    tls, make_config, journal: Journal, smtp_password: str
) -> None:
    with socket.socket() as silent:  # accepts TCP connections (backlog), never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        config = make_config(email_target(port, tls, timeout_seconds=0.3))

        started = time.monotonic()
        [delivery] = notify(config, journal, NOTICE)
        elapsed = time.monotonic() - started

    print(f"silent SMTP server: gave up after {delivery.attempts} attempts in {elapsed:.2f} s")
    assert (delivery.ok, delivery.attempts) == (False, 3)
    assert delivery.error == f"localhost:{port}: timed out after 0.3 s"
