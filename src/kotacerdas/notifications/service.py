"""The outbox: other domains queue email and webhook calls in their own transaction; the worker delivers them.

Queueing renders everything the message needs at once (in the recipient's language), so that delivery needs no
request and no other domain. Delivery claims due messages in short transactions, sends outside any transaction,
and records the outcome with exponential backoff; a message is delivered at least once (a worker that dies
between sending and recording sends it again after the lease), so emails carry a stable Message-ID and webhook
deliveries a stable `X-Kotacerdas-Delivery` id for receivers to de-duplicate on.

Services flush; the caller commits. `deliver_due` is the exception: it is the worker's loop body and owns its
transactions.
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from kotacerdas import outbound
from kotacerdas.accounts.service import (
    UNSET,
    Actor,
    Unset,
    clean_email,
    clean_text,
    record_change,
    snapshot,
)
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID, insert_row, utcnow
from kotacerdas.errors import Conflict, InvalidInput, NotFound
from kotacerdas.i18n import _, get_locale, gettext, ngettext, reset_locale, set_locale
from kotacerdas.notifications import mail, webhooks
from kotacerdas.notifications.enums import OutboxChannel, OutboxStatus
from kotacerdas.notifications.models import OutboxMessage, WebhookEndpoint
from kotacerdas.pagination import Paged, PageRequest, paginate
from kotacerdas.web.templating import TEMPLATES_DIR

log = logging.getLogger("kotacerdas.notifications")

EMAIL_TEMPLATE_DIR = "notifications/email"
TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,99}$")
# Event names: dotted lower-case words (`report.received`); a subscription may also be `*` or `report.*`.
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
SUBSCRIPTION = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?)$")
SUBJECT_MAX = 300
DEDUPE_KEY_MAX = 180  # room for the "#<endpoint id>" of webhook copies within the column's 200
LAST_ERROR_MAX = 500
ENDPOINT_NAME_MAX = 100
ENDPOINT_URL_MAX = 500
EVENTS_MAX = 50
SECRET_MIN = 16
SECRET_MAX = 128

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=6)
# Messages claimed per short transaction; a worker sends one chunk before claiming the next.
CLAIM_CHUNK = 10
# A claim lasts long enough for its whole chunk to be sent, plus this margin; a message whose lease is about to
# run out is handed back unsent, so that a second worker never sends it while the first still might.
LEASE_MARGIN = timedelta(seconds=60)

_EMAIL_ADDRESS_MAX = 200


# --- rendering -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedEmail:
    """An email rendered in one language, ready to be queued."""

    subject: str
    body_text: str
    body_html: str | None


@cache
def _email_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # `.html` parts are escaped; `.txt` parts are plain text and must not be.
        autoescape=select_autoescape(("html",), default_for_string=False, default=False),
        extensions=["jinja2.ext.i18n"],
        # A missing variable fails when the email is queued (in the caller's tests), not as "Yth. ," in a mailbox.
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)
    return env


def _layout_values(settings: Settings | None) -> dict[str, Any]:
    """What the base layouts show, in the current language."""
    site_name = settings.region_name if settings is not None else "kotacerdas"
    zone = settings.zone if settings is not None else ZoneInfo(Settings.model_fields["timezone"].default)

    def local_time(value: datetime | None, fmt: str = "%d-%m-%Y %H:%M") -> str:
        if value is None:
            return "–"
        local = value.astimezone(zone)
        return f"{local.strftime(fmt)} {local.tzname()}"

    return {
        "site_name": site_name,
        "site_url": settings.public_base_url if settings is not None else None,
        "footer": _("This message was sent automatically by %(sender)s.") % {"sender": site_name},
        "no_reply": _("Please do not reply to this email."),
        "local_time": local_time,
    }


def render_email(
    *, template: str, context: dict[str, Any], locale: str = "id", settings: Settings | None = None
) -> RenderedEmail:
    """Render `notifications/email/<template>.txt` (blocks `subject` and `body`) and, when it exists,
    `<template>.html`, in `locale`."""
    if not TEMPLATE_NAME.match(template or ""):
        raise ValueError(f"email template names are lower-case words: {template!r}")
    env = _email_environment()
    token = set_locale(locale)
    try:
        values = {**_layout_values(settings), "locale": get_locale(), **context}
        text_template = env.get_template(f"{EMAIL_TEMPLATE_DIR}/{template}.txt")
        if "subject" not in text_template.blocks:
            raise ValueError(f"email template {template}.txt has no subject block")
        subject_parts = text_template.blocks["subject"](text_template.new_context(values))
        subject = " ".join("".join(subject_parts).split())[:SUBJECT_MAX]
        body_text = text_template.render(values).strip() + "\n"
        try:
            html_template = env.get_template(f"{EMAIL_TEMPLATE_DIR}/{template}.html")
        except TemplateNotFound:
            body_html = None
        else:
            body_html = html_template.render({**values, "subject": subject})
    finally:
        reset_locale(token)
    return RenderedEmail(subject=subject, body_text=body_text, body_html=body_html)


# --- queueing --------------------------------------------------------------------------------------------------


def _check_dedupe_key(dedupe_key: str | None) -> str | None:
    if dedupe_key is None:
        return None
    if not dedupe_key.strip() or len(dedupe_key) > DEDUPE_KEY_MAX:
        raise ValueError(f"a dedupe_key has 1 to {DEDUPE_KEY_MAX} characters")
    return dedupe_key


def _dedupe_taken(session: Session, dedupe_key: str) -> bool:
    return session.scalar(sa.select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)) is not None


def _add_message(session: Session, **values: Any) -> OutboxMessage | None:
    """Store a message; None when another transaction queued the same dedupe key first."""
    if values.get("dedupe_key") is None:
        # A plain INSERT: the unit of work's flush was a tenth of a report submission (bench/reports_submit.py).
        return insert_row(session, OutboxMessage, **values)
    if _dedupe_taken(session, values["dedupe_key"]):
        return None
    # Two requests queueing the same notice at once: the unique index decides, without spoiling the caller's
    # transaction.
    message = OutboxMessage(**values)
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        return None
    return message


def _clean_recipient(to: str) -> str:
    address = clean_email(to, field="to")
    if address is None:
        raise InvalidInput(
            _("%(field)s is required.") % {"field": _("Email")}, errors=[{"field": "to", "reason": "required"}]
        )
    if not mail.is_address(address):
        raise InvalidInput(_("The email address does not look right."), errors=[{"field": "to", "reason": "format"}])
    return address


def queue_email(
    session: Session,
    *,
    to: str,
    template: str,
    context: dict[str, Any],
    locale: str = "id",
    dedupe_key: str | None = None,
    settings: Settings | None = None,
) -> OutboxMessage | None:
    """Render an email from `notifications/email/<template>.txt` in `locale` and queue it; None when `dedupe_key`
    was queued before. Pass `settings` so that the layout's footer names the region and links the portal.

    Not audited on its own: the message row is the record, and the change that caused it is audited by its domain.
    """
    address = _clean_recipient(to)
    dedupe_key = _check_dedupe_key(dedupe_key)
    if dedupe_key is not None and _dedupe_taken(session, dedupe_key):
        return None
    rendered = render_email(template=template, context=context, locale=locale, settings=settings)
    return _add_message(
        session,
        channel=OutboxChannel.EMAIL.value,
        recipient=address,
        template=template,
        subject=rendered.subject,
        body_text=rendered.body_text,
        body_html=rendered.body_html,
        status=OutboxStatus.PENDING.value,
        attempts=0,
        next_attempt_at=utcnow(),
        dedupe_key=dedupe_key,
    )


def queue_test_email(
    session: Session, *, actor: Actor, to: str, locale: str = "id", settings: Settings | None = None
) -> OutboxMessage:
    """Queue a short test email (to check the mail settings from the console)."""
    token = set_locale(locale)
    try:
        context = {
            "title": _("Test message from %(sender)s") % {"sender": settings.region_name if settings else "kotacerdas"},
            "text": _("This is a test message. If you can read it, outgoing email works."),
            "requested_by": _("Requested by %(user)s.") % {"user": actor.label},
        }
    finally:
        reset_locale(token)
    message = queue_email(session, to=to, template="test_message", context=context, locale=locale, settings=settings)
    assert message is not None  # no dedupe key
    record_change(
        session,
        actor=actor,
        action="outbox.test_email",
        entity_type="outbox_message",
        entity_id=message.id,
        after=_audit_snapshot(message),
    )
    return message


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON serialisable in a webhook payload: {type(value).__name__}")


def subscribed(events: list[str], event: str) -> bool:
    """Whether a subscription list (`*`, exact names, `prefix.*`) covers `event`."""
    for entry in events or []:
        if entry == "*" or entry == event:
            return True
        if entry.endswith(".*") and event.startswith(entry[:-1]):
            return True
    return False


# Built once, as rows rather than objects: every report submission asks, and most find no endpoint.
_ACTIVE_ENDPOINTS = (
    sa.select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.events)
    .where(WebhookEndpoint.active.is_(True))
    .order_by(WebhookEndpoint.id)
)


def queue_webhooks(
    session: Session, *, event: str, payload: dict | Callable[[], dict], dedupe_key: str | None = None
) -> int:
    """Queue one delivery of `event` per active endpoint subscribed to it; how many were queued.

    The payload goes to outside systems as it is: leave out citizens' personal data. It may be a function that
    builds it, called only when some endpoint is subscribed (most changes have none, and building costs queries).
    With `dedupe_key`, each endpoint gets the event at most once.
    """
    if not EVENT_NAME.match(event or "") or len(event) > 100:
        raise ValueError(f"webhook event names are dotted lower-case words: {event!r}")
    dedupe_key = _check_dedupe_key(dedupe_key)
    endpoints = [endpoint for endpoint in session.execute(_ACTIVE_ENDPOINTS) if subscribed(endpoint.events, event)]
    if not endpoints:
        return 0
    document = json.loads(json.dumps(payload() if callable(payload) else payload, default=_json_default))
    queued = 0
    now = utcnow()
    for endpoint in endpoints:
        message = _add_message(
            session,
            channel=OutboxChannel.WEBHOOK.value,
            recipient=endpoint.url,
            subject=event,
            body_text="",
            payload=document,
            event=event,
            webhook_endpoint_id=endpoint.id,
            status=OutboxStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            dedupe_key=f"{dedupe_key}#{endpoint.id}" if dedupe_key is not None else None,
        )
        if message is not None:
            queued += 1
    return queued


def queue_webhook(
    session: Session, *, endpoint_id: int, event: str, payload: dict, dedupe_key: str | None = None
) -> OutboxMessage | None:
    """Queue one delivery of `event` to one endpoint that another domain's subscription chose (the events
    domain's filtered subscriptions), whatever the endpoint's own event list; None when the endpoint is missing or
    inactive, or `dedupe_key` was queued before. The same rule as `queue_webhooks`: no personal data."""
    if not EVENT_NAME.match(event or "") or len(event) > 100:
        raise ValueError(f"webhook event names are dotted lower-case words: {event!r}")
    dedupe_key = _check_dedupe_key(dedupe_key)
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or not endpoint.active:
        return None
    return _add_message(
        session,
        channel=OutboxChannel.WEBHOOK.value,
        recipient=endpoint.url,
        subject=event,
        body_text="",
        payload=json.loads(json.dumps(payload, default=_json_default)),
        event=event,
        webhook_endpoint_id=endpoint.id,
        status=OutboxStatus.PENDING.value,
        attempts=0,
        next_attempt_at=utcnow(),
        dedupe_key=dedupe_key,
    )


# --- delivery --------------------------------------------------------------------------------------------------


@dataclass
class DeliveryStats:
    """What one `deliver_due` call did."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Claim:
    """A claimed message, detached from the database, with what sending it needs."""

    id: int
    token: str
    channel: str
    recipient: str
    subject: str
    body_text: str
    body_html: str | None
    payload: Any
    event: str | None
    created_at: datetime
    secret: str | None
    attempts: int
    send_before: float  # time.monotonic() after which the lease may have run out


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 30 s doubling each time, at most 6 h, ±10 % jitter."""
    base = min(BACKOFF_BASE * (2 ** max(0, attempts - 1)), BACKOFF_MAX)
    return base * random.uniform(0.9, 1.1)


def _lease(settings: Settings, count: int) -> timedelta:
    # An SMTP delivery is several round trips, each bounded by the timeout.
    per_message = max(settings.smtp_timeout_seconds * 4, webhooks.TIMEOUT_SECONDS * 2)
    return LEASE_MARGIN + timedelta(seconds=per_message * count)


def _due_filter(settings: Settings, now: datetime) -> list[Any]:
    conditions: list[Any] = [
        OutboxMessage.status.in_((OutboxStatus.PENDING.value, OutboxStatus.SENDING.value)),
        OutboxMessage.next_attempt_at <= now,
    ]
    if not settings.smtp_host:
        # No mail server configured: emails wait in the outbox (the console shows them) until there is one.
        conditions.append(OutboxMessage.channel != OutboxChannel.EMAIL.value)
    return conditions


def _short_error(text: str, *, settings: Settings, secret: str | None = None) -> str:
    """An error for the outbox and the log: one line, no password or secret, at most LAST_ERROR_MAX characters."""
    for hidden in (settings.smtp_password, secret):
        if hidden:
            text = text.replace(hidden, "***")
    text = " ".join(text.split())
    return text if len(text) <= LAST_ERROR_MAX else text[: LAST_ERROR_MAX - 1] + "…"


def _write_session(session_factory: sessionmaker[Session]) -> Session:
    session = session_factory()
    # On SQLite this takes the write lock at BEGIN (see db.py), so a claim never fails half-way on "locked".
    session.connection(execution_options={"kotacerdas_write": True})
    return session


def _claim(
    session_factory: sessionmaker[Session], *, settings: Settings, now: datetime, limit: int, stats: DeliveryStats
) -> list[_Claim]:
    """Mark up to `limit` due messages as being sent by this worker, in one short transaction."""
    with session_factory() as session:
        # A read first: an idle outbox then never takes SQLite's write lock.
        if session.scalar(sa.select(OutboxMessage.id).where(*_due_filter(settings, now)).limit(1)) is None:
            return []
    with _write_session(session_factory) as session:
        statement = (
            sa.select(OutboxMessage)
            .where(*_due_filter(settings, now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            # Several workers: each skips the rows another is claiming right now, so none is claimed twice.
            statement = statement.with_for_update(skip_locked=True, of=OutboxMessage)
        messages = list(session.scalars(statement))
        lease = _lease(settings, len(messages))
        send_before = time.monotonic() + (lease - LEASE_MARGIN).total_seconds()
        claims: list[_Claim] = []
        for message in messages:
            secret = None
            if message.status == OutboxStatus.SENDING.value and message.attempts >= settings.outbox_max_attempts:
                _give_up(message, "worker stopped while sending; no attempts left", stats)
                continue
            if message.channel == OutboxChannel.WEBHOOK.value:
                endpoint = (
                    session.get(WebhookEndpoint, message.webhook_endpoint_id)
                    if message.webhook_endpoint_id is not None
                    else None
                )
                if endpoint is None or not endpoint.active:
                    _give_up(message, "the webhook endpoint is deactivated or removed", stats)
                    continue
                # An endpoint whose address was corrected gets its waiting deliveries at the new address.
                message.recipient = endpoint.url
                secret = endpoint.secret
            message.status = OutboxStatus.SENDING.value
            message.attempts += 1
            message.claim_token = secrets.token_hex(16)
            message.next_attempt_at = now + lease
            claims.append(
                _Claim(
                    id=message.id,
                    token=message.claim_token,
                    channel=message.channel,
                    recipient=message.recipient,
                    subject=message.subject,
                    body_text=message.body_text,
                    body_html=message.body_html,
                    payload=message.payload,
                    event=message.event,
                    created_at=message.created_at,
                    secret=secret,
                    attempts=message.attempts,
                    send_before=send_before,
                )
            )
        session.commit()
    stats.claimed += len(claims)
    return claims


def _give_up(message: OutboxMessage, reason: str, stats: DeliveryStats) -> None:
    message.status = OutboxStatus.FAILED.value
    message.claim_token = None
    message.last_error = reason
    stats.failed += 1
    log.warning("outbox message %s (%s) failed: %s", message.id, message.channel, reason)


def _send(claim: _Claim, *, settings: Settings) -> None:
    """Deliver one claimed message; DeliveryError when it did not go out."""
    if claim.channel == OutboxChannel.EMAIL.value:
        created = int(claim.created_at.timestamp())
        email = mail.build_email(
            settings,
            to=claim.recipient,
            subject=claim.subject,
            body_text=claim.body_text,
            body_html=claim.body_html,
            # Stable across retries, so that a message sent twice (worker died before recording) is one thread.
            message_id=f"<outbox.{claim.id}.{created}@{mail.sender_domain(settings)}>",
            date=utcnow(),
        )
        mail.send_email(settings, email)
    elif claim.channel == OutboxChannel.WEBHOOK.value:
        webhooks.send_webhook(
            url=claim.recipient,
            secret=claim.secret or "",
            event=claim.event or "",
            message_id=claim.id,
            created_at=claim.created_at,
            payload=claim.payload,
            allowed_hosts=settings.webhook_allowed_hosts,
            now=utcnow(),  # the receiver checks the timestamp against its own clock
        )
    else:
        raise mail.DeliveryError(f"unknown channel {claim.channel!r}", permanent=True)


def _record(
    session_factory: sessionmaker[Session],
    claim: _Claim,
    *,
    settings: Settings,
    now: datetime,
    error: mail.DeliveryError | None,
    release: bool,
    stats: DeliveryStats,
) -> None:
    """Store the outcome of one claim, if the claim is still this worker's."""
    with _write_session(session_factory) as session:
        message = session.scalar(
            sa.select(OutboxMessage).where(OutboxMessage.id == claim.id, OutboxMessage.claim_token == claim.token)
        )
        if message is None:
            log.warning("outbox message %s was claimed again by another worker; outcome not recorded", claim.id)
            return
        message.claim_token = None
        if release:
            message.status = OutboxStatus.PENDING.value
            message.attempts = max(0, message.attempts - 1)
            message.next_attempt_at = now
            stats.released += 1
        elif error is None:
            message.status = OutboxStatus.SENT.value
            message.sent_at = now
            message.last_error = None
            stats.sent += 1
        else:
            text = _short_error(str(error), settings=settings, secret=claim.secret)
            message.last_error = text
            stats.errors.append(text)
            if error.permanent or message.attempts >= settings.outbox_max_attempts:
                message.status = OutboxStatus.FAILED.value
                stats.failed += 1
                log.warning(
                    "outbox message %s (%s) failed after %d attempt(s): %s",
                    claim.id,
                    claim.channel,
                    message.attempts,
                    text,
                )
            else:
                message.status = OutboxStatus.PENDING.value
                message.next_attempt_at = now + backoff(message.attempts)
                stats.retrying += 1
                log.info(
                    "outbox message %s (%s) not delivered (attempt %d), next try %s: %s",
                    claim.id,
                    claim.channel,
                    message.attempts,
                    message.next_attempt_at.isoformat(timespec="seconds"),
                    text,
                )
        session.commit()


def deliver_due(
    session_factory: sessionmaker[Session], *, settings: Settings, now: datetime | None = None, limit: int = 50
) -> DeliveryStats:
    """Send up to `limit` due messages: claim a few at a time, send each outside any transaction, record sent or
    failed (retried with backoff until `settings.outbox_max_attempts`). Never raises for a send error."""
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    stats = DeliveryStats()
    # Errors are stored for the console, in the installation's language.
    token = set_locale(settings.default_locale)
    try:
        _deliver(session_factory, settings=settings, clock=clock, limit=limit, stats=stats)
    finally:
        reset_locale(token)
    return stats


def _deliver(
    session_factory: sessionmaker[Session],
    *,
    settings: Settings,
    clock: Callable[[], datetime],
    limit: int,
    stats: DeliveryStats,
) -> None:
    while stats.claimed < limit:
        claims = _claim(
            session_factory, settings=settings, now=clock(), limit=min(CLAIM_CHUNK, limit - stats.claimed), stats=stats
        )
        if not claims:
            break
        for claim in claims:
            error: mail.DeliveryError | None = None
            release = time.monotonic() > claim.send_before
            if not release:
                try:
                    _send(claim, settings=settings)
                except mail.DeliveryError as exc:
                    error = exc
                except Exception as exc:  # a bug or an odd library error must not stop the other messages
                    log.exception("outbox message %s: unexpected error while sending", claim.id)
                    error = mail.DeliveryError(f"{type(exc).__name__}: {exc}")
            try:
                _record(
                    session_factory, claim, settings=settings, now=clock(), error=error, release=release, stats=stats
                )
            except SQLAlchemyError:
                # The outcome is lost: the lease runs out and the message is tried again (at least once delivery).
                log.exception("outbox message %s: could not record the outcome", claim.id)


# --- the console and the API -----------------------------------------------------------------------------------

_MESSAGE_AUDIT_EXCLUDE = ("body_text", "body_html", "payload", "claim_token")


def _audit_snapshot(message: OutboxMessage) -> dict[str, Any]:
    return snapshot(message, exclude=_MESSAGE_AUDIT_EXCLUDE)


def get_outbox_message(session: Session, *, message_id: int) -> OutboxMessage:
    """The outbox message with this id, or NotFound."""
    message = session.get(OutboxMessage, message_id) if 1 <= message_id <= MAX_INT_ID else None
    if message is None:
        raise NotFound(_("Message not found."))
    return message


def list_outbox(
    session: Session, *, page: PageRequest, status: str | None = None, channel: str | None = None
) -> Paged[OutboxMessage]:
    """Outbox messages, newest first, optionally of one status and one channel."""
    statement = sa.select(OutboxMessage).order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    if status:
        statement = statement.where(OutboxMessage.status == OutboxStatus(status).value)
    if channel:
        statement = statement.where(OutboxMessage.channel == OutboxChannel(channel).value)
    return paginate(session, statement, page)


def count_outbox(session: Session) -> dict[str, int]:
    """How many messages are in each status (every status present, zero when none)."""
    rows = session.execute(sa.select(OutboxMessage.status, sa.func.count()).group_by(OutboxMessage.status)).all()
    counts = {status.value: 0 for status in OutboxStatus}
    counts.update({row[0]: row[1] for row in rows})
    return counts


def retry_message(session: Session, *, actor: Actor, message_id: int) -> OutboxMessage:
    """Send a failed (or waiting) message again now, with a fresh count of attempts."""
    message = get_outbox_message(session, message_id=message_id)
    if message.status not in (OutboxStatus.FAILED.value, OutboxStatus.PENDING.value):
        raise Conflict(
            _("Only a failed or waiting message can be sent again."), errors=[{"field": "status", "reason": "state"}]
        )
    before = _audit_snapshot(message)
    message.status = OutboxStatus.PENDING.value
    message.attempts = 0
    message.next_attempt_at = utcnow()
    session.flush()
    record_change(
        session,
        actor=actor,
        action="outbox.retry",
        entity_type="outbox_message",
        entity_id=message.id,
        before=before,
        after=_audit_snapshot(message),
    )
    return message


# --- webhook endpoints -----------------------------------------------------------------------------------------

_ENDPOINT_AUDIT_EXCLUDE = ("secret",)


def new_webhook_secret() -> str:
    """A fresh random signing secret (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def _clean_events(events: list[str] | None) -> list[str]:
    if not events:
        raise InvalidInput(
            _("Choose at least one event, or * for all events."), errors=[{"field": "events", "reason": "required"}]
        )
    cleaned: list[str] = []
    for entry in events:
        entry = (entry or "").strip().lower()
        if not entry:
            continue
        if not SUBSCRIPTION.match(entry) or len(entry) > 100:
            raise InvalidInput(
                _("%(event)s is not an event name: use names such as report.received, report.* or *.")
                % {"event": entry[:100]},
                errors=[{"field": "events", "reason": "format"}],
            )
        if entry not in cleaned:
            cleaned.append(entry)
    if not cleaned:
        raise InvalidInput(
            _("Choose at least one event, or * for all events."), errors=[{"field": "events", "reason": "required"}]
        )
    if len(cleaned) > EVENTS_MAX:
        raise InvalidInput(
            _("At most %(max)d events per webhook.") % {"max": EVENTS_MAX},
            errors=[{"field": "events", "reason": "too_many"}],
        )
    return ["*"] if "*" in cleaned else cleaned


def _clean_url(url: str | None, settings: Settings) -> str:
    url = clean_text(url, field="url", label=_("Address (URL)"), max_length=ENDPOINT_URL_MAX, required=True)
    outbound.check_url_allowed(url, allowed_hosts=settings.webhook_allowed_hosts)
    return url


def _clean_secret(secret: str | None) -> str:
    if secret is None:
        return new_webhook_secret()
    if not SECRET_MIN <= len(secret) <= SECRET_MAX or not secret.isascii() or not secret.isprintable():
        raise InvalidInput(
            _("A signing secret has %(min)d to %(max)d printable ASCII characters.")
            % {"min": SECRET_MIN, "max": SECRET_MAX},
            errors=[{"field": "secret", "reason": "format"}],
        )
    return secret


def _clean_active(active: bool | None) -> bool:
    if active is None:
        raise InvalidInput(_("Say whether the webhook is active."), errors=[{"field": "active", "reason": "required"}])
    return bool(active)


def get_webhook_endpoint(session: Session, *, endpoint_id: int) -> WebhookEndpoint:
    """The webhook endpoint with this id, or NotFound."""
    endpoint = session.get(WebhookEndpoint, endpoint_id) if 1 <= endpoint_id <= MAX_INT_ID else None
    if endpoint is None:
        raise NotFound(_("Webhook not found."))
    return endpoint


def list_webhook_endpoints(
    session: Session, *, page: PageRequest | None = None, active: bool | None = None
) -> Paged[WebhookEndpoint]:
    """Webhook endpoints by name, optionally only active or inactive ones."""
    statement = sa.select(WebhookEndpoint).order_by(WebhookEndpoint.name, WebhookEndpoint.id)
    if active is not None:
        statement = statement.where(WebhookEndpoint.active.is_(active))
    return paginate(session, statement, page or PageRequest(per_page=200))


def create_webhook_endpoint(
    session: Session,
    *,
    actor: Actor,
    settings: Settings,
    name: str,
    url: str,
    events: list[str],
    secret: str | None = None,
    active: bool = True,
) -> WebhookEndpoint:
    """Register a receiver of signed event deliveries; its URL's host must be on the webhook allowlist. Without
    `secret` a random one is made: show `endpoint.secret` to the administrator now (the API shows it only once)."""
    values = {
        "name": clean_text(name, field="name", label=_("Name"), max_length=ENDPOINT_NAME_MAX, required=True),
        "url": _clean_url(url, settings),
        "events": _clean_events(events),
        "secret": _clean_secret(secret),
        "active": _clean_active(active),
    }
    endpoint = WebhookEndpoint(**values)
    session.add(endpoint)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="webhook.create",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        after=snapshot(endpoint, exclude=_ENDPOINT_AUDIT_EXCLUDE),
    )
    return endpoint


def update_webhook_endpoint(
    session: Session,
    *,
    actor: Actor,
    settings: Settings,
    endpoint_id: int,
    name: str | Unset = UNSET,
    url: str | Unset = UNSET,
    events: list[str] | Unset = UNSET,
    active: bool | Unset = UNSET,
) -> WebhookEndpoint:
    """Change a webhook endpoint; only the given fields change (`active=False` deactivates it)."""
    endpoint = get_webhook_endpoint(session, endpoint_id=endpoint_id)
    checks: dict[str, Callable[[Any], Any]] = {
        "name": lambda v: clean_text(v, field="name", label=_("Name"), max_length=ENDPOINT_NAME_MAX, required=True),
        # The allowlist is checked for a new address; an unchanged one may stay while it is being deactivated.
        "url": lambda v: endpoint.url if (v or "").strip() == endpoint.url else _clean_url(v, settings),
        "events": _clean_events,
        "active": _clean_active,
    }
    given = {"name": name, "url": url, "events": events, "active": active}
    values = {key: checks[key](value) for key, value in given.items() if value is not UNSET}
    before = snapshot(endpoint, exclude=_ENDPOINT_AUDIT_EXCLUDE)
    for key, value in values.items():
        setattr(endpoint, key, value)
    session.flush()
    after = snapshot(endpoint, exclude=_ENDPOINT_AUDIT_EXCLUDE)
    if {k: v for k, v in before.items() if k != "updated_at"} != {k: v for k, v in after.items() if k != "updated_at"}:
        action = "webhook.update"
        if before["active"] != after["active"]:
            action = "webhook.activate" if after["active"] else "webhook.deactivate"
        record_change(
            session,
            actor=actor,
            action=action,
            entity_type="webhook_endpoint",
            entity_id=endpoint.id,
            before=before,
            after=after,
        )
    return endpoint


def deactivate_webhook_endpoint(
    session: Session, *, actor: Actor, settings: Settings, endpoint_id: int
) -> WebhookEndpoint:
    """Stop sending to a webhook endpoint; its waiting deliveries fail instead of going out."""
    return update_webhook_endpoint(session, actor=actor, settings=settings, endpoint_id=endpoint_id, active=False)


def rotate_webhook_secret(session: Session, *, actor: Actor, endpoint_id: int) -> WebhookEndpoint:
    """Give a webhook endpoint a new random signing secret (the old one stops working at once)."""
    endpoint = get_webhook_endpoint(session, endpoint_id=endpoint_id)
    endpoint.secret = new_webhook_secret()
    session.flush()
    record_change(
        session, actor=actor, action="webhook.rotate_secret", entity_type="webhook_endpoint", entity_id=endpoint.id
    )
    return endpoint
