"""Webhook delivery: one JSON POST with the standard library's urllib.request.

Headers: `Content-Type: application/json`, `Authorization: Bearer <token>` when a token is
configured, and `X-Vault-Timestamp` + `X-Vault-Signature` when a signing secret is.
Redirects are not followed: urllib would resend the Authorization header to wherever the
redirect points.
"""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from vault import __version__
from vault.config.model import WebhookNotification
from vault.config.secrets import Secret
from vault.notify.message import signature
from vault.notify.retry import DeliveryError, TransientDeliveryError
from vault.notify.tls import describe_tls_error, os_reason, tls_context

#: how much of a response is read (and thrown away) so the connection ends cleanly
RESPONSE_READ_LIMIT = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def endpoint(url: str) -> str:
    """`https://hooks.example.com:8443` — the URL without its path and query, which for
    some services (Slack, Discord) carry a token, so it is what errors show."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def request_headers(target: WebhookNotification, body: bytes, *, token: Secret | None,
                    signing_secret: Secret | None, timestamp: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": f"vault/{__version__}"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if signing_secret is not None:
        headers["X-Vault-Timestamp"] = timestamp
        headers["X-Vault-Signature"] = signature(signing_secret, timestamp, body)
    return headers


def post_webhook(target: WebhookNotification, body: bytes, *, token: Secret | None,
                 signing_secret: Secret | None) -> None:
    """One attempt. Raises DeliveryError: transient for connection problems, timeouts,
    HTTP 429 and 5xx; permanent for other statuses and TLS failures."""
    where = endpoint(target.url)
    # A fresh timestamp per attempt: a receiver may refuse one older than a few minutes.
    headers = request_headers(target, body, token=token, signing_secret=signing_secret,
                              timestamp=str(int(time.time())))
    request = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
    handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
    if urlsplit(target.url).scheme == "https":
        handlers.append(urllib.request.HTTPSHandler(context=tls_context(target.ca_file)))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=target.timeout_seconds) as response:
            response.read(RESPONSE_READ_LIMIT)
    except urllib.error.HTTPError as error:
        error.close()
        raise _status_error(where, error.code, error.reason) from None
    except urllib.error.URLError as error:
        raise _connection_error(where, target, error.reason) from None
    except (OSError, http.client.HTTPException) as error:
        raise _connection_error(where, target, error) from None


def _status_error(where: str, status: int, reason: object) -> DeliveryError:
    text = f"{where}: HTTP {status} {reason}".rstrip()
    if 300 <= status < 400:
        return DeliveryError(f"{text} (redirects are not followed: configure the final URL)")
    if status == 429 or status >= 500:
        return TransientDeliveryError(text)
    return DeliveryError(text)


def _connection_error(where: str, target: WebhookNotification,
                      reason: object) -> DeliveryError:
    if isinstance(reason, ssl.SSLError):
        return DeliveryError(f"{where}: {describe_tls_error(reason)}")
    if isinstance(reason, TimeoutError):
        return TransientDeliveryError(f"{where}: timed out after {target.timeout_seconds:g} s")
    if isinstance(reason, OSError):
        return TransientDeliveryError(f"{where}: {os_reason(reason)}")
    if isinstance(reason, http.client.HTTPException):
        return TransientDeliveryError(f"{where}: bad HTTP response ({type(reason).__name__})")
    return TransientDeliveryError(f"{where}: {reason}")
