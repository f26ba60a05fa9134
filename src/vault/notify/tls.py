"""The TLS context for SMTP and HTTPS: certificates and host names are always verified.

`ca_file` trusts a private CA instead of the system's; there is deliberately no way to
turn verification off, since a notice may carry a password on the same connection.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from vault.notify.retry import DeliveryError


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    try:
        if ca_file is None:
            return ssl.create_default_context()
        return ssl.create_default_context(cafile=str(ca_file))
    except ssl.SSLError as error:  # before OSError, which it is a kind of
        detail = f"not a PEM certificate file ({error.reason or error})"
        raise DeliveryError(f"cannot load ca_file {ca_file}: {detail}") from None
    except OSError as error:
        raise DeliveryError(f"cannot load ca_file {ca_file}: {os_reason(error)}") from None


def describe_tls_error(error: ssl.SSLError) -> str:
    """A short reason: `certificate verify failed: self-signed certificate`, say."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {error.verify_message}"
    return f"TLS error: {error.reason or error}"


def os_reason(error: OSError) -> str:
    """`connection refused` from `[Errno 111] Connection refused`."""
    text = error.strerror or str(error) or type(error).__name__
    return text[:1].lower() + text[1:]
