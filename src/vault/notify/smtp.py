"""E-mail delivery with the standard library's smtplib.

STARTTLS (the default, port 587), implicit TLS (`ssl = true`, port 465) or, only when
both are switched off, plain SMTP; AUTH with username and password; certificates always
verified (`tls.py`).
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from vault.config.model import EmailNotification
from vault.config.secrets import Secret
from vault.notify.message import email_body, email_subject
from vault.notify.notice import Notice
from vault.notify.retry import DeliveryError, TransientDeliveryError
from vault.notify.tls import describe_tls_error, os_reason, tls_context


def build_email(target: EmailNotification, notice: Notice, *, host: str,
                sent_at: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = ", ".join(target.recipients)
    message["Subject"] = email_subject(notice)
    message["Date"] = format_datetime(sent_at)
    # The sender's domain, not socket.getfqdn(): that can take seconds on a badly
    # configured resolver, and the id only has to be unique.
    domain = parseaddr(target.sender)[1].rpartition("@")[2] or "vault.invalid"
    message["Message-ID"] = make_msgid("vault", domain=domain)
    # RFC 3834: no vacation auto-replies to a machine.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Vault-Trigger"] = notice.trigger
    message.set_content(email_body(notice, host=host, sent_at=sent_at))
    return message


def send_email(target: EmailNotification, message: EmailMessage,
               password: Secret | None) -> None:
    """One attempt: connect, secure, log in, send. Raises DeliveryError (transient or not)."""
    where = f"{target.smtp_host}:{target.port()}"
    try:
        context = tls_context(target.ca_file) if target.security() != "plain" else None
        with _connect(target, context) as smtp:
            if target.security() == "starttls":
                smtp.starttls(context=context)
            if target.username is not None and password is not None:
                smtp.login(target.username, password)
            smtp.send_message(message)
    except DeliveryError:
        raise
    except smtplib.SMTPException as error:
        raise _smtp_error(where, target, error) from None
    except ssl.SSLError as error:  # before OSError, which it is a kind of
        raise DeliveryError(f"{where}: {describe_tls_error(error)}") from None
    except TimeoutError:
        raise TransientDeliveryError(
            f"{where}: timed out after {target.timeout_seconds:g} s") from None
    except OSError as error:
        raise TransientDeliveryError(f"{where}: {os_reason(error)}") from None


def _connect(target: EmailNotification, context: ssl.SSLContext | None) -> smtplib.SMTP:
    host, port, timeout = target.smtp_host, target.port(), target.timeout_seconds
    if target.security() == "ssl":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    return smtplib.SMTP(host, port, timeout=timeout)


def _smtp_error(where: str, target: EmailNotification,
                error: smtplib.SMTPException) -> DeliveryError:
    if isinstance(error, smtplib.SMTPAuthenticationError):
        reply = _reply(error.smtp_code, error.smtp_error)
        return DeliveryError(f"{where}: login as {target.username!r} refused ({reply})")
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"{where}: {error}")
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{address}: {_reply(code, text)}"
                            for address, (code, text) in error.recipients.items())
        return DeliveryError(f"{where}: recipients refused ({refused})")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        # smtplib reports a read timeout as "Connection unexpectedly closed: ... timed out".
        if "timed out" in str(error):
            return TransientDeliveryError(
                f"{where}: timed out after {target.timeout_seconds:g} s")
        return TransientDeliveryError(f"{where}: the server closed the connection")
    if isinstance(error, smtplib.SMTPResponseException):
        # 4xx replies are "try again later" in SMTP; 5xx are final.
        kind = TransientDeliveryError if 400 <= error.smtp_code < 500 else DeliveryError
        return kind(f"{where}: {_reply(error.smtp_code, error.smtp_error)}")
    return DeliveryError(f"{where}: {error}")


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return " ".join(f"{code} {text}".split())
