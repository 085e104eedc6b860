"""Sending one email over SMTP (plain, STARTTLS or SSL, as the settings say)."""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from kotacerdas.config import Settings


class DeliveryError(Exception):
    """A message could not be delivered; `permanent` when trying again cannot help (the server refused it)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def sender_domain(settings: Settings) -> str:
    """The domain of the sender address (for Message-IDs), or `localhost`."""
    _name, address = parseaddr(settings.mail_from)
    return address.rpartition("@")[2] or "localhost"


def build_email(
    settings: Settings,
    *,
    to: str,
    subject: str,
    body_text: str,
    body_html: str | None,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The MIME message: UTF-8 text, plus an HTML alternative when there is one."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    # RFC 3834: automatic notices must not trigger vacation replies and the like.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body_text, charset="utf-8")
    if body_html:
        message.add_alternative(body_html, subtype="html", charset="utf-8")
    return message


def send_email(settings: Settings, message: EmailMessage) -> None:
    """Hand `message` to the configured mail server; DeliveryError (permanent for a 5xx refusal) on failure."""
    timeout = settings.smtp_timeout_seconds
    context = ssl.create_default_context()
    try:
        if settings.smtp_security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            if settings.smtp_security == "starttls":
                client.starttls(context=context)
            if settings.smtp_username:
                client.login(settings.smtp_username, settings.smtp_password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _text in exc.recipients.values()]
        raise DeliveryError(
            f"recipient refused: {_describe_refusals(exc)}", permanent=all(c >= 500 for c in codes)
        ) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise DeliveryError(
            f"{type(exc).__name__} {exc.smtp_code}: {text}",
            permanent=500 <= exc.smtp_code < 600 and exc.smtp_code != 530,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


def _describe_refusals(exc: smtplib.SMTPRecipientsRefused) -> str:
    parts = []
    for recipient, (code, text) in exc.recipients.items():
        reason = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        parts.append(f"{recipient} {code} {reason}")
    return "; ".join(parts)


def is_address(value: str) -> bool:
    """Whether `value` is one plain email address that the email package can put in a header."""
    try:
        Address(addr_spec=value)
    except (ValueError, IndexError):
        return False
    return True
