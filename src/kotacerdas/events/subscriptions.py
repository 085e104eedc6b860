"""Subscriptions to events: a citizen's email (double opt-in, one-click unsubscribe) or an integration's webhook
endpoint, for some kecamatan/desa, categories and a minimum alert level; and the notices of published changes,
queued in the notifications outbox (which retries them) in the same transaction as the change.

Matching is one query and a cheap filter: the confirmed subscriptions whose minimum level the event reaches are read
as plain rows (the level is the only filter SQL can do on every database without JSON operators), and the region and
category lists are compared in Python. Each comparison is a few string prefix checks, so tens of thousands of
subscriptions cost milliseconds; what grows with the audience is the rendering and inserting of one email per
matching subscriber, which the outbox then sends in the background.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from kotacerdas.accounts.service import Actor, clean_email, record_change, snapshot
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID, utcnow
from kotacerdas.errors import InvalidInput, NotFound, RateLimited
from kotacerdas.events import service as events
from kotacerdas.events.enums import AlertLevel, EventCategory, EventStatus, UpdateKind
from kotacerdas.events.models import Event, EventSubscription
from kotacerdas.i18n import _, reset_locale, set_locale
from kotacerdas.notifications import service as notifications
from kotacerdas.regions import service as regions
from kotacerdas.regions.enums import RegionLevel

SALT = "event-subscription"
EMAIL = "email"
WEBHOOK = "webhook"
LOCALES = ("id", "en")
REGIONS_MAX = 50
# One pending confirmation per address per window, and a few a day: the form cannot bomb a stranger's inbox.
CONFIRM_WINDOW = timedelta(minutes=10)
PENDING_PER_DAY = 5
# Confirmed subscriptions of one address: enough for every kecamatan of interest, not a way to multiply notices.
PER_ADDRESS_MAX = 20
_CODE_SHAPE = re.compile(r"[0-9]{2}(\.[0-9]{2,4}){1,3}")
_AREA_LEVELS = frozenset({RegionLevel.KECAMATAN.value, RegionLevel.DESA.value, RegionLevel.KELURAHAN.value})


def _invalid(message: str, field_name: str, reason: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field_name, "reason": reason}])


# --- what a subscription asks for ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The checked filters of a subscription: empty lists mean the whole kabupaten and every category."""

    region_codes: list[str]
    categories: list[str]
    min_level: str | None


def clean_filters(
    session: Session,
    *,
    settings: Settings,
    region_codes: list[str] | None,
    categories: list[str] | None,
    min_level: str | None,
) -> Filters:
    """Check a subscription's regions (kecamatan or desa of this kabupaten), categories and minimum level."""
    codes = list(dict.fromkeys(str(code).strip() for code in region_codes or [] if str(code).strip()))
    if len(codes) > REGIONS_MAX:
        raise _invalid(_("At most %(n)d regions per subscription.") % {"n": REGIONS_MAX}, "region_codes", "too_many")
    for code in codes:
        if not _CODE_SHAPE.fullmatch(code):  # never sent to the database as it is (PostgreSQL refuses NUL in text)
            raise _invalid(
                _("Unknown desa or kecamatan code: %(code)s.") % {"code": code[:20].replace("\x00", "")},
                "region_codes",
                "unknown",
            )
    found = regions.get_regions(session, codes=codes)
    for code in codes:
        region = found.get(code)
        if region is None or region.level not in _AREA_LEVELS or not code.startswith(settings.region_code + "."):
            raise _invalid(
                _("Unknown desa or kecamatan code: %(code)s.") % {"code": code[:20]}, "region_codes", "unknown"
            )
    # A desa under a kecamatan that is also chosen adds nothing.
    codes = [code for code in codes if not any(code.startswith(other + ".") for other in codes)]
    known = {category.value for category in EventCategory}
    chosen = list(dict.fromkeys(str(value).strip() for value in categories or [] if str(value).strip()))
    for value in chosen:
        if value not in known:
            raise _invalid(_("Unknown event category: %(code)s.") % {"code": value[:40]}, "categories", "unknown")
    level = (min_level or "").strip() or None
    if level is not None:
        try:
            level = AlertLevel(level).value
        except ValueError:
            raise _invalid(_("Unknown alert level."), "min_level", "unknown") from None
    return Filters(region_codes=sorted(codes), categories=sorted(chosen), min_level=level)


# --- tokens --------------------------------------------------------------------------------------------------------


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key, salt=SALT)


def _nonce(subscription: EventSubscription | sa.Row) -> str:
    # Binds a token to this row: a later subscription that gets the same id (SQLite reuses a deleted top id) has
    # another address or creation time, so an old link never confirms or ends someone else's subscription.
    created = int(subscription.created_at.timestamp())
    text = f"{subscription.id}|{subscription.email or ''}|{created}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _token(settings: Settings, subscription: EventSubscription, purpose: str) -> str:
    return _serializer(settings).dumps({"s": subscription.id, "n": _nonce(subscription), "a": purpose})


def confirm_url(settings: Settings, subscription: EventSubscription) -> str:
    """The link of the confirmation email."""
    return f"{settings.public_base_url}/peristiwa/langganan/konfirmasi/{_token(settings, subscription, 'confirm')}"


def unsubscribe_url(settings: Settings, subscription: EventSubscription) -> str:
    """The one-click unsubscribe link of every notice."""
    return f"{settings.public_base_url}/peristiwa/langganan/berhenti/{_token(settings, subscription, 'stop')}"


def _read_token(settings: Settings, token: str, purpose: str) -> dict[str, Any]:
    try:
        data = _serializer(settings).loads(token)
    except BadSignature:
        data = None
    if not isinstance(data, dict) or data.get("a") != purpose or not isinstance(data.get("s"), int):
        raise NotFound(_("This link is no longer valid."))
    return data


def _from_token(session: Session, data: dict[str, Any]) -> EventSubscription | None:
    subscription = session.get(EventSubscription, data["s"]) if 1 <= data["s"] <= MAX_INT_ID else None
    if subscription is None or not hmac.compare_digest(_nonce(subscription), str(data.get("n"))):
        return None
    return subscription


# --- citizens by email ---------------------------------------------------------------------------------------------


def subscribe_email(
    session: Session,
    *,
    settings: Settings,
    email: str | None,
    region_codes: list[str] | None = None,
    categories: list[str] | None = None,
    min_level: str | None = None,
    locale: str = "id",
    now: datetime | None = None,
) -> EventSubscription | None:
    """Ask for notices by email; a confirmation link is sent first (double opt-in). The subscription, or None when
    the address already has the same confirmed one (the caller answers the same either way)."""
    now = now or utcnow()
    address = clean_email(email)
    if address is None:
        raise _invalid(_("Enter your email address."), "email", "required")
    address = address.lower()
    filters = clean_filters(
        session, settings=settings, region_codes=region_codes, categories=categories, min_level=min_level
    )
    locale = locale if locale in LOCALES else "id"
    mine = list(
        session.scalars(
            sa.select(EventSubscription).where(EventSubscription.channel == EMAIL, EventSubscription.email == address)
        )
    )
    pending = [row for row in mine if row.confirmed_at is None]
    if any(row.created_at > now - CONFIRM_WINDOW for row in pending):
        raise RateLimited(
            _("A confirmation link was sent to this address a few minutes ago. Open it, or try again later."),
            headers={"Retry-After": str(int(CONFIRM_WINDOW.total_seconds()))},
        )
    if sum(row.created_at > now - timedelta(days=1) for row in pending) >= PENDING_PER_DAY:
        raise RateLimited(_("Too many subscription requests for this address today. Please try again tomorrow."))
    same = [
        row
        for row in mine
        if (sorted(row.region_codes or []), sorted(row.categories or []), row.min_level)
        == (filters.region_codes, filters.categories, filters.min_level)
    ]
    if any(row.confirmed_at is not None for row in same):
        return None  # already subscribed; the answer does not tell a stranger what an address follows
    if sum(row.confirmed_at is not None for row in mine) >= PER_ADDRESS_MAX:
        raise _invalid(
            _("This address has %(n)d subscriptions already; end one before adding another.") % {"n": PER_ADDRESS_MAX},
            "email",
            "too_many",
        )
    for row in same:  # an earlier request with the same filters was never confirmed: replace it
        session.delete(row)
    subscription = EventSubscription(
        channel=EMAIL,
        email=address,
        region_codes=filters.region_codes,
        categories=filters.categories,
        min_level=filters.min_level,
        locale=locale,
        created_at=now,
    )
    session.add(subscription)
    session.flush()
    notifications.queue_email(
        session,
        settings=settings,
        to=address,
        template="event_subscription_confirm",
        context={**_describe(session, settings, filters, locale), "confirm_url": confirm_url(settings, subscription)},
        locale=locale,
        dedupe_key=f"event-subscription:{subscription.id}:{_nonce(subscription)}",
    )
    return subscription


def confirm_subscription(
    session: Session, *, settings: Settings, token: str, now: datetime | None = None
) -> EventSubscription:
    """Confirm a subscription from the emailed link (again: no change); NotFound for a bad or used-up link."""
    subscription = _from_token(session, _read_token(settings, token, "confirm"))
    if subscription is None:
        raise NotFound(_("This link is no longer valid."))
    if subscription.confirmed_at is None:
        subscription.confirmed_at = now or utcnow()
        session.flush()
    return subscription


def unsubscribe(session: Session, *, settings: Settings, token: str) -> bool:
    """End a subscription from the link in a notice; True when one ended, False when it had ended already (the
    link still answers, so a second click is not an error). NotFound for a link this server did not make."""
    subscription = _from_token(session, _read_token(settings, token, "stop"))
    if subscription is None:
        return False
    session.delete(subscription)
    session.flush()
    return True


def check_unsubscribe_token(settings: Settings, *, token: str) -> None:
    """NotFound unless `token` is an unsubscribe link this server made (the page checks it before showing)."""
    _read_token(settings, token, "stop")


def check_confirm_token(settings: Settings, *, token: str) -> None:
    """NotFound unless `token` is a confirmation link this server made."""
    _read_token(settings, token, "confirm")


# --- systems by webhook --------------------------------------------------------------------------------------------


def create_webhook_subscription(
    session: Session,
    *,
    settings: Settings,
    actor: Actor,
    webhook_endpoint_id: int,
    region_codes: list[str] | None = None,
    categories: list[str] | None = None,
    min_level: str | None = None,
) -> EventSubscription:
    """Send the notices of matching events to a registered webhook endpoint (signed POSTs through the outbox);
    confirmed at once, because the endpoint was registered by an administrator."""
    try:
        endpoint = notifications.get_webhook_endpoint(session, endpoint_id=webhook_endpoint_id)
    except NotFound:
        raise _invalid(_("Webhook not found."), "webhook_endpoint_id", "unknown") from None
    if not endpoint.active:
        raise _invalid(_("The webhook is not active."), "webhook_endpoint_id", "inactive")
    filters = clean_filters(
        session, settings=settings, region_codes=region_codes, categories=categories, min_level=min_level
    )
    subscription = EventSubscription(
        channel=WEBHOOK,
        webhook_endpoint_id=endpoint.id,
        region_codes=filters.region_codes,
        categories=filters.categories,
        min_level=filters.min_level,
        locale=settings.default_locale,
        confirmed_at=utcnow(),
    )
    session.add(subscription)
    session.flush()
    record_change(
        session, actor=actor, action="event_subscription.create", entity_type="event_subscription",
        entity_id=subscription.id, after=snapshot(subscription),
    )  # fmt: skip
    return subscription


def get_subscription(session: Session, *, subscription_id: int) -> EventSubscription:
    """A subscription by id, or NotFound."""
    found = session.get(EventSubscription, subscription_id) if 1 <= subscription_id <= MAX_INT_ID else None
    if found is None:
        raise NotFound(_("Subscription not found."))
    return found


def list_subscriptions(
    session: Session, *, channel: str | None = None, limit: int = 500, offset: int = 0
) -> list[EventSubscription]:
    """Subscriptions, newest first, optionally of one channel (staff only: they hold email addresses)."""
    statement = sa.select(EventSubscription).order_by(EventSubscription.id.desc())
    if channel:
        statement = statement.where(EventSubscription.channel == channel)
    return list(session.scalars(statement.limit(limit).offset(offset)))


def delete_subscription(session: Session, *, actor: Actor, subscription_id: int) -> None:
    """End a subscription (staff: a webhook no longer wanted, or an address that asks by other means)."""
    subscription = get_subscription(session, subscription_id=subscription_id)
    before = snapshot(subscription, exclude=("email",))
    session.delete(subscription)
    session.flush()
    record_change(
        session, actor=actor, action="event_subscription.delete", entity_type="event_subscription",
        entity_id=subscription_id, before=before,
    )  # fmt: skip


# --- matching and notices ------------------------------------------------------------------------------------------


def region_matches(subscribed: list[str], *, codes: list[str], named: list[str]) -> bool:
    """Whether an event touching `codes` (its desa, their kecamatan; `named` those the publisher named) is in the
    subscribed regions: a kecamatan covers its desa (Kemendagri codes nest: 16.05.09 holds 16.05.09.2001), and an
    event named for a whole kecamatan reaches the subscribers of each of its desa. No region: the whole kabupaten."""
    if not subscribed:
        return True
    for wanted in subscribed:
        if any(code == wanted or code.startswith(wanted + ".") for code in codes):
            return True
        if any(wanted.startswith(code + ".") for code in named):
            return True
    return False


def level_matches(min_level: str | None, level: str | None) -> bool:
    """An event without a level (not a disaster) reaches only subscriptions without a minimum level."""
    if not min_level:
        return True
    if not level:
        return False
    return AlertLevel(level).rank >= AlertLevel(min_level).rank


def _candidates(session: Session, level: str | None) -> list[sa.Row]:
    columns = (
        EventSubscription.id, EventSubscription.channel, EventSubscription.email,
        EventSubscription.webhook_endpoint_id, EventSubscription.region_codes, EventSubscription.categories,
        EventSubscription.min_level, EventSubscription.locale, EventSubscription.created_at,
    )  # fmt: skip
    statement = sa.select(*columns).where(EventSubscription.confirmed_at.is_not(None))
    if level:
        reached = [item.value for item in AlertLevel if item.rank <= AlertLevel(level).rank]
        statement = statement.where(
            sa.or_(EventSubscription.min_level.is_(None), EventSubscription.min_level.in_(reached))
        )
    else:
        statement = statement.where(EventSubscription.min_level.is_(None))
    return list(session.execute(statement.order_by(EventSubscription.id)))


def matching_subscriptions(session: Session, *, event: Event) -> list[sa.Row]:
    """The confirmed subscriptions a published event reaches (rows, not objects: there may be many)."""
    codes = events.region_codes_of(session, event_ids=[event.id])[event.id]
    named = events.named_region_codes(session, event_id=event.id)
    return [
        row
        for row in _candidates(session, event.level)
        if (not row.categories or event.category in row.categories)
        and level_matches(row.min_level, event.level)
        and region_matches(row.region_codes or [], codes=codes, named=named)
    ]


def notify_subscribers(session: Session, *, settings: Settings, event: Event, kind: UpdateKind) -> int:
    """Queue a notice of a published change to every confirmed subscription it matches; how many were queued."""
    if event.status == EventStatus.DRAF.value or kind is UpdateKind.SUBMITTED:
        return 0  # a draft is not public: nobody hears of it before approval
    matched = matching_subscriptions(session, event=event)
    if not matched:
        return 0
    queued = 0
    contexts: dict[str, dict[str, Any]] = {}
    payload: dict[str, Any] | None = None
    serializer = _serializer(settings)
    for row in matched:
        dedupe = f"event-notice:{event.id}:{event.version}:{row.id}"
        if row.channel == EMAIL and row.email:
            if row.locale not in contexts:
                contexts[row.locale] = _notice_context(session, settings, event, kind, row.locale)
            stop = serializer.dumps({"s": row.id, "n": _nonce(row), "a": "stop"})
            message = notifications.queue_email(
                session,
                settings=settings,
                to=row.email,
                template="event_notice",
                context={
                    **contexts[row.locale],
                    "unsubscribe_url": f"{settings.public_base_url}/peristiwa/langganan/berhenti/{stop}",
                },
                locale=row.locale,
                dedupe_key=dedupe,
            )
        elif row.channel == WEBHOOK and row.webhook_endpoint_id is not None:
            if payload is None:
                payload = _webhook_payload(session, settings, event, kind)
            message = notifications.queue_webhook(
                session,
                endpoint_id=row.webhook_endpoint_id,
                event=f"event.{kind.value}",
                payload={**payload, "subscription_id": row.id},
                dedupe_key=dedupe,
            )
        else:
            message = None
        if message is not None:
            queued += 1
    return queued


def _webhook_payload(session: Session, settings: Settings, event: Event, kind: UpdateKind) -> dict[str, Any]:
    # The public view, the one every public output goes through: no staff, no user id, no reporter's data. Its
    # labels in the installation's language, whatever the language of the request that published.
    token = set_locale(settings.default_locale)
    try:
        view = events.public_event(session, settings=settings, event=event, with_timeline=False)
    finally:
        reset_locale(token)
    return {"kind": kind.value, "event": view.model_dump(mode="json", exclude={"timeline"})}


def _label(member: Any, locale: str) -> str:
    return member.label_en if locale == "en" else member.label_id


def _area_names(session: Session, codes: list[str]) -> list[str]:
    found = regions.get_regions(session, codes=codes)
    return [found[code].name for code in codes if code in found]


def _notice_context(session: Session, settings: Settings, event: Event, kind: UpdateKind, locale: str) -> dict:
    codes = (
        events.named_region_codes(session, event_id=event.id)
        or events.region_codes_of(session, event_ids=[event.id])[event.id]
    )
    return {
        "title": event.title,
        "category": _label(EventCategory(event.category), locale),
        "level": _label(AlertLevel(event.level), locale) if event.level else None,
        "status": _label(EventStatus(event.status), locale),
        "kind": _label(kind, locale),
        "areas": ", ".join(_area_names(session, codes)),
        "description": event.description,
        "instruction": event.instruction,
        "starts_at": event.starts_at,
        "url": events.event_url(settings, event.id),
    }


def _describe(session: Session, settings: Settings, filters: Filters, locale: str) -> dict[str, Any]:
    """What a subscription covers, in words, for the confirmation email."""
    token = set_locale(locale)
    try:
        everything = _("all")
        areas = ", ".join(_area_names(session, filters.region_codes)) or _("the whole of %(region)s") % {
            "region": settings.region_name
        }
        categories = ", ".join(_label(EventCategory(value), locale) for value in filters.categories) or everything
        level = (
            _label(AlertLevel(filters.min_level), locale) if filters.min_level else _("any, and events without a level")
        )
    finally:
        reset_locale(token)
    return {"areas": areas, "categories": categories, "min_level": level}


def describe_subscription(
    session: Session, *, settings: Settings, subscription: EventSubscription, locale: str
) -> dict:
    """What a subscription covers, in words (the confirmation page)."""
    filters = Filters(
        region_codes=list(subscription.region_codes or []),
        categories=list(subscription.categories or []),
        min_level=subscription.min_level,
    )
    return _describe(session, settings, filters, locale)
