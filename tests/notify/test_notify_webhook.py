"""Webhook notices to a real ThreadingHTTPServer: the exact JSON body, the bearer token,
the HMAC signature a receiver verifies, retries on 5xx only, TLS with a private CA."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from datetime import datetime
from typing import Any

import pytest

from vault.journal import Journal
from vault.notify import Notice, notify

TOKEN = "hook-token-Pw7cQ2zL9"
SIGNING_SECRET = "hook-signing-Vb5mK8sD3"

NOTICE = Notice(
    trigger="partial",
    title="backup of /srv/app finished with 2 unreadable files",
    details={"snapshot_id": "9f" * 32, "bytes_new": 1048576, "errors": ["/srv/app/a: EACCES"],
             "note": "naïve ☃ unicode survives"},
    job_id="backup-77aa",
    schedule="hourly",
)


@pytest.fixture
def hook_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_HOOK_SIGNING", SIGNING_SECRET)


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "name": "chat", "url": url, "on": ["partial", "failure"],
            "timeout_seconds": 5, **extra}


def receiver_verifies(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """What docs/notifications.md tells a receiver to do, written out independently."""
    timestamp = headers["X-Vault-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    given = headers["X-Vault-Signature"].removeprefix("sha256=")
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(expected, given)


def test_posts_the_documented_json_body_signed_and_with_the_token(
    webhook_server, make_config, journal: Journal, hook_secrets: None
) -> None:
    server = webhook_server()
    config = make_config(hook(server.url, token={"env": "TEST_HOOK_TOKEN"},
                              signing_secret={"env": "TEST_HOOK_SIGNING"}))

    [delivery] = notify(config, journal, NOTICE)

    assert (delivery.name, delivery.channel, delivery.ok, delivery.attempts) == (
        "chat", "webhook", True, 1)
    [request] = server.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(request.body)
    sent_at = datetime.fromisoformat(body["sent_at"])
    assert sent_at.utcoffset() is not None
    assert body == {
        "schema_version": 1, "source": "vault", "target": "chat", "trigger": "partial",
        "title": "backup of /srv/app finished with 2 unreadable files",
        "job_id": "backup-77aa", "schedule": "hourly", "host": socket.gethostname(),
        "sent_at": body["sent_at"],
        "details": {"snapshot_id": "9f" * 32, "bytes_new": 1048576,
                    "errors": ["/srv/app/a: EACCES"], "note": "naïve ☃ unicode survives"},
    }
    assert receiver_verifies(request.headers, request.body, SIGNING_SECRET)
    assert not receiver_verifies(request.headers, request.body, "some other secret")
    tampered = request.body.replace(b"hourly", b"hourlY")
    assert not receiver_verifies(request.headers, tampered, SIGNING_SECRET)


def test_no_token_no_signature_headers_when_not_configured(
    webhook_server, make_config, journal: Journal
) -> None:
    server = webhook_server()

    [delivery] = notify(make_config(hook(server.url)), journal, NOTICE)

    assert delivery.ok
    headers = {k.lower() for k in server.requests[0].headers}
    assert not headers & {"authorization", "x-vault-signature", "x-vault-timestamp"}


def test_5xx_twice_then_200_is_delivered_on_the_third_attempt(
    webhook_server, make_config, journal: Journal
) -> None:
    server = webhook_server([500, 503])

    [delivery] = notify(make_config(hook(server.url)), journal, NOTICE)

    assert (delivery.ok, delivery.error, delivery.attempts) == (True, None, 3)
    assert len(server.requests) == 3
    assert server.requests[0].body == server.requests[2].body  # the same notice, resent
    [event] = journal.read(types=["NotificationSent"])
    assert (event.stream_id, event.payload["attempts"]) == ("backup-77aa", 3)


def test_404_is_not_retried(webhook_server, make_config, journal: Journal) -> None:
    server = webhook_server([404])

    [delivery] = notify(make_config(hook(server.url)), journal, NOTICE)

    assert (delivery.ok, delivery.attempts) == (False, 1)
    port = server.url.split(":")[2].split("/")[0]
    assert delivery.error == f"http://127.0.0.1:{port}: HTTP 404 Not Found"
    assert len(server.requests) == 1
    [event] = journal.read(types=["NotificationFailed"])
    assert event.payload["error"] == delivery.error


def test_5xx_every_time_fails_after_three_attempts(
    webhook_server, make_config, journal: Journal
) -> None:
    server = webhook_server([500, 502, 504, 200])

    [delivery] = notify(make_config(hook(server.url)), journal, NOTICE)

    assert (delivery.ok, delivery.attempts) == (False, 3)
    assert delivery.error is not None and delivery.error.endswith("HTTP 504 Gateway Timeout")
    assert len(server.requests) == 3


def test_a_redirect_is_not_followed_so_the_token_stays_put(
    webhook_server, make_config, journal: Journal, hook_secrets: None
) -> None:
    elsewhere = webhook_server()
    server = webhook_server([302], redirect_to=elsewhere.url)

    config = make_config(hook(server.url, token={"env": "TEST_HOOK_TOKEN"}))
    [delivery] = notify(config, journal, NOTICE)

    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert "HTTP 302" in (delivery.error or "") and "configure the final URL" in (
        delivery.error or "")
    assert elsewhere.requests == []


def test_https_with_a_private_ca(webhook_server, tls, make_config, journal: Journal) -> None:
    server = webhook_server(https=True)

    trusted = make_config(hook(server.url, ca_file=str(tls.ca_file)))
    [delivery] = notify(trusted, journal, NOTICE)
    assert delivery.ok, delivery.error

    [refused] = notify(make_config(hook(server.url)), journal, NOTICE)
    assert (refused.ok, refused.attempts) == (False, 1)
    assert refused.error is not None and "TLS certificate not trusted" in refused.error
    assert len(server.requests) == 1


def test_the_error_names_the_endpoint_not_the_path(
    make_config, journal: Journal
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T000/B000/path-is-a-token-XYZ"

    [delivery] = notify(make_config(hook(url, timeout_seconds=0.5)), journal, NOTICE)

    assert (delivery.ok, delivery.attempts) == (False, 3)
    assert delivery.error == f"http://127.0.0.1:{port}: connection refused"
