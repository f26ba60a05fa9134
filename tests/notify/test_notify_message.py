"""The pure parts: subject, body, webhook body and signature, the retry loop, and the
configuration rules of the targets."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from vault.config.model import EmailNotification
from vault.notify import Notice
from vault.notify.message import (
    email_body,
    email_subject,
    signature,
    webhook_body,
    webhook_payload,
)
from vault.notify.retry import DeliveryError, TransientDeliveryError, with_retries

AT = datetime(2026, 3, 1, 2, 0, 5, 123456, tzinfo=UTC)
FAILED = Notice(
    trigger="failure",
    title="backup of /srv/app failed",
    details={"error": "storage /srv/repo: disk full\nwhile writing pack 3f",
             "bytes_new": 0, "paths": ["/srv/app"]},
    job_id="backup-0a1b",
    schedule="nightly",
)


@pytest.mark.parametrize(("notice", "subject"), [
    (FAILED, "[vault] nightly failed: backup of /srv/app failed"),
    (Notice("success", "backup of /srv/app done", {}),
     "[vault] succeeded: backup of /srv/app done"),
    (Notice("partial", "2 files unreadable", {}, schedule="hourly"),
     "[vault] hourly partial: 2 files unreadable"),
    (Notice("low_storage", "repository 91% full", {}), "[vault] low storage: repository 91% full"),
    (Notice("missed", "3 runs missed", {}, schedule="s"), "[vault] s missed run: 3 runs missed"),
])
def test_subject(notice: Notice, subject: str) -> None:
    assert email_subject(notice) == subject


def test_subject_is_one_bounded_line_whatever_the_title() -> None:
    hostile = Notice("failure", "a\r\nBcc: victim@example.com\n" + "x" * 500, {})
    subject = email_subject(hostile)
    assert "\n" not in subject and "\r" not in subject
    assert subject.startswith("[vault] failed: a Bcc: victim@example.com xxx")
    assert len(subject) == 200 and subject.endswith("…")


def test_body() -> None:
    assert email_body(FAILED, host="db1", sent_at=AT) == (
        "backup of /srv/app failed\n"
        "\n"
        "trigger:  failure\n"
        "job:      backup-0a1b\n"
        "schedule: nightly\n"
        "host:     db1\n"
        "time:     2026-03-01T02:00:05+00:00\n"
        "\n"
        "details:\n"
        "  error: storage /srv/repo: disk full\n"
        "    while writing pack 3f\n"
        "  bytes_new: 0\n"
        '  paths: ["/srv/app"]\n'
        "\n"
        "-- \n"
        "sent by vault; `vault journal --type NotificationSent` lists notices\n"
    )


def test_body_leaves_out_what_the_notice_does_not_have() -> None:
    body = email_body(Notice("low_storage", "repository 91% full", {}), host="h", sent_at=AT)
    assert "job:" not in body and "schedule:" not in body and "details:" not in body
    assert "trigger: low_storage\n" in body


def test_webhook_body_is_compact_sorted_utf8_json() -> None:
    payload = webhook_payload(FAILED, target="chat", host="db1", sent_at=AT)
    body = webhook_body(payload)
    assert json.loads(body) == {
        "schema_version": 1, "source": "vault", "target": "chat", "trigger": "failure",
        "title": "backup of /srv/app failed", "job_id": "backup-0a1b", "schedule": "nightly",
        "host": "db1", "sent_at": "2026-03-01T02:00:05.123456+00:00",
        "details": FAILED.details,
    }
    assert body == (
        b'{"details":{"bytes_new":0,"error":"storage /srv/repo: disk full\\nwhile writing pack'
        b' 3f","paths":["/srv/app"]},"host":"db1","job_id":"backup-0a1b","schedule":"nightly",'
        b'"schema_version":1,"sent_at":"2026-03-01T02:00:05.123456+00:00","source":"vault",'
        b'"target":"chat","title":"backup of /srv/app failed","trigger":"failure"}'
    )
    assert webhook_body({"t": "☃"}) == '{"t":"☃"}'.encode()


def test_signature_matches_a_known_vector() -> None:
    # printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
    expected = "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
    assert signature("s3cret", "1700000000", b'{"a":1}') == expected
    assert signature("s3cret", "1700000001", b'{"a":1}') != expected  # the time is signed


class Flaky:
    def __init__(self, *errors: Exception | None) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error


def test_retries_transient_errors_with_backoff() -> None:
    slept: list[float] = []
    send = Flaky(TransientDeliveryError("refused"), TransientDeliveryError("refused"), None)
    outcome = with_retries(send, sleep=slept.append)
    assert (outcome.ok, outcome.error, outcome.attempts) == (True, None, 3)
    assert slept == [0.5, 1.5]


def test_gives_up_after_three_transient_errors_with_the_last_message() -> None:
    slept: list[float] = []
    send = Flaky(*(TransientDeliveryError(f"try {n}") for n in (1, 2, 3)), None)
    outcome = with_retries(send, sleep=slept.append)
    assert (outcome.ok, outcome.error, outcome.attempts, send.calls) == (False, "try 3", 3, 3)
    assert slept == [0.5, 1.5]


def test_a_permanent_error_stops_at_once() -> None:
    slept: list[float] = []
    send = Flaky(DeliveryError("HTTP 404 Not Found"), None)
    outcome = with_retries(send, sleep=slept.append)
    assert (outcome.ok, outcome.error, outcome.attempts, send.calls) == (
        False, "HTTP 404 Not Found", 1, 1)
    assert slept == []


def test_a_bug_is_not_taken_for_a_delivery_problem() -> None:
    with pytest.raises(ZeroDivisionError):
        with_retries(Flaky(ZeroDivisionError()), sleep=lambda _: None)


EMAIL = {"type": "email", "name": "m", "smtp_host": "smtp.example.com",
         "sender": "v@example.com", "recipients": ["o@example.com"]}


@pytest.mark.parametrize(("extra", "port", "security"), [
    ({}, 587, "starttls"),
    ({"ssl": True}, 465, "ssl"),
    ({"ssl": True, "smtp_port": 2465}, 2465, "ssl"),
    ({"starttls": False}, 587, "plain"),
    ({"starttls": False, "smtp_port": 25}, 25, "plain"),
])
def test_email_port_and_security(extra: dict[str, object], port: int, security: str) -> None:
    target = EmailNotification.model_validate({**EMAIL, **extra})
    assert (target.port(), target.security()) == (port, security)


@pytest.mark.parametrize(("extra", "message"), [
    ({"ssl": True, "starttls": True}, "ssl = true (implicit TLS) and starttls = true exclude"),
    ({"username": "u"}, "SMTP login needs both username and password"),
    ({"password": {"env": "X"}}, "SMTP login needs both username and password"),
    ({"timeout_seconds": 0}, "greater than 0"),
    ({"ssl_verify": False}, "Extra inputs are not permitted"),
])
def test_email_config_mistakes(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        EmailNotification.model_validate({**EMAIL, **extra})
