"""Subscriptions to events on the web: the public pages (subscribe, confirm, unsubscribe) and the JSON API (a
citizen's email subscription, public; webhook subscriptions and the list for staff with notifications.manage, because
subscriptions hold email addresses and point at endpoints that hold secrets).

The API's schemas live here rather than in schemas.py: they are used nowhere else."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import CsrfChecked, OptionalUser, SessionDep, SettingsDep, actor_of, require
from kotacerdas.errors import DomainError
from kotacerdas.events import subscriptions
from kotacerdas.events.enums import AlertLevel, EventCategory, EventGroup
from kotacerdas.i18n import _, get_locale
from kotacerdas.problems import PROBLEM_RESPONSES
from kotacerdas.regions import service as regions
from kotacerdas.web.forms import PostedForm, render_form
from kotacerdas.web.templating import render

router = APIRouter()

PAGE = "/peristiwa/langganan"
TokenPath = Annotated[str, Path(max_length=500)]
SubscriptionIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Subscription id")]
NotificationManager = Annotated[User, Depends(require(Permission.NOTIFICATIONS_MANAGE))]
NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
# The links carry a token: keep it out of caches, search engines and other sites' logs.
TOKEN_PAGE_HEADERS = {**NO_STORE, "Referrer-Policy": "no-referrer"}

RegionCodes = Annotated[
    list[Annotated[str, Field(max_length=20)]],
    Field(max_length=subscriptions.REGIONS_MAX, description="Kemendagri codes of kecamatan or desa; empty: everywhere"),
]
Categories = Annotated[
    list[Annotated[str, Field(max_length=40)]],
    Field(max_length=len(EventCategory), description="Event category codes, e.g. banjir; empty: every category"),
]
MinLevel = Annotated[
    str | None,
    Field(
        max_length=12,
        description="Only disasters at this level or above (normal, waspada, siaga, awas); "
        "empty: every event, with or without a level",
    ),
]


class EmailSubscriptionIn(BaseModel):
    """A citizen's request for notices by email; a confirmation link is sent first."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=300, description="Where the notices go")
    region_codes: RegionCodes = []
    categories: Categories = []
    min_level: MinLevel = None
    locale: Literal["id", "en"] | None = Field(None, description="Language of the emails; default: the request's")


class SubscriptionAccepted(BaseModel):
    """The same answer whether or not the address had subscribed already."""

    detail: str


class WebhookSubscriptionIn(BaseModel):
    """Notices of matching events for a registered webhook endpoint (see /api/v1/webhooks)."""

    model_config = ConfigDict(extra="forbid")

    webhook_endpoint_id: int = Field(ge=1, le=MAX_INT_ID, description="A registered, active webhook endpoint")
    region_codes: RegionCodes = []
    categories: Categories = []
    min_level: MinLevel = None


class SubscriptionRead(BaseModel):
    """A subscription as staff see it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: Literal["email", "webhook"]
    email: str | None
    webhook_endpoint_id: int | None
    region_codes: list[str]
    categories: list[str]
    min_level: str | None
    locale: str
    confirmed_at: datetime | None
    created_at: datetime


# --- JSON API ------------------------------------------------------------------------------------------------------

api = APIRouter(prefix="/api/v1/events/subscriptions", tags=["events"], responses=PROBLEM_RESPONSES)


@api.post("", response_model=SubscriptionAccepted, status_code=202)
def subscribe(session: SessionDep, settings: SettingsDep, body: EmailSubscriptionIn) -> SubscriptionAccepted:
    """Subscribe an email address to event notices (no login); nothing is sent until the emailed link is opened."""
    subscriptions.subscribe_email(
        session, settings=settings, email=body.email, region_codes=body.region_codes, categories=body.categories,
        min_level=body.min_level, locale=body.locale or get_locale(),
    )  # fmt: skip
    return SubscriptionAccepted(detail=_("We sent a link to this address. Notices follow once you open it."))


@api.get("", response_model=list[SubscriptionRead])
def list_subscriptions(
    session: SessionDep,
    _user: NotificationManager,
    channel: Annotated[Literal["email", "webhook"] | None, Query(description="Only this channel")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[SubscriptionRead]:
    """Subscriptions, newest first (needs notifications.manage: they hold email addresses)."""
    found = subscriptions.list_subscriptions(session, channel=channel, limit=limit, offset=offset)
    return [SubscriptionRead.model_validate(row) for row in found]


@api.post("/webhooks", response_model=SubscriptionRead, status_code=201)
def create_webhook_subscription(
    request: Request, session: SessionDep, settings: SettingsDep, user: NotificationManager, body: WebhookSubscriptionIn
) -> SubscriptionRead:
    """Send signed notices of matching events to a registered webhook endpoint (needs notifications.manage)."""
    subscription = subscriptions.create_webhook_subscription(
        session, settings=settings, actor=actor_of(request, user), webhook_endpoint_id=body.webhook_endpoint_id,
        region_codes=body.region_codes, categories=body.categories, min_level=body.min_level,
    )  # fmt: skip
    return SubscriptionRead.model_validate(subscription)


@api.delete("/{subscription_id}", status_code=204, response_class=Response)
def delete_subscription(
    request: Request, session: SessionDep, user: NotificationManager, subscription_id: SubscriptionIdPath
) -> Response:
    """End a subscription, email or webhook (needs notifications.manage)."""
    subscriptions.delete_subscription(session, actor=actor_of(request, user), subscription_id=subscription_id)
    return Response(status_code=204)


# --- public pages --------------------------------------------------------------------------------------------------

pages = APIRouter(include_in_schema=False)


def _form_context(session: Session, settings: Settings, form: dict[str, Any]) -> dict[str, Any]:
    return {
        "form": form,
        "regions": regions.list_kecamatan_with_villages(session, settings=settings),
        "category_groups": [
            (group.label, [(c.value, c.label) for c in EventCategory if c.group is group]) for group in EventGroup
        ],
        "level_options": AlertLevel.choices(),
    }


def _read_form(posted: FormData) -> dict[str, Any]:
    def text(name: str) -> str:
        value = posted.get(name)
        return value.strip()[:300] if isinstance(value, str) else ""

    def many(name: str) -> list[str]:
        return [value[:40] for value in posted.getlist(name) if isinstance(value, str) and value][:100]

    return {
        "email": text("email"),
        "region_codes": many("region_codes"),
        "categories": many("categories"),
        "min_level": text("min_level"),
        "website": text("website"),
    }


@pages.get(PAGE, response_class=HTMLResponse)
def subscribe_page(request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser) -> HTMLResponse:
    """The form to get event notices by email."""
    empty = {"email": "", "region_codes": [], "categories": [], "min_level": ""}
    return render(request, "events/subscribe.html", _form_context(session, settings, empty))


@pages.post(PAGE, response_class=HTMLResponse, dependencies=[CsrfChecked])
def subscribe_submit(
    request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser, posted: PostedForm
) -> HTMLResponse:
    """Ask for notices by email; the answer is the same whether or not the address had subscribed already."""
    form = _read_form(posted)
    if form["website"]:
        # Only robots fill the hidden field: they get the usual answer, and nothing is stored or sent.
        return render(request, "events/subscribe_done.html", {"state": "requested"}, status_code=202)
    try:
        subscriptions.subscribe_email(
            session, settings=settings, email=form["email"], region_codes=form["region_codes"],
            categories=form["categories"], min_level=form["min_level"] or None, locale=get_locale(),
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        return render_form(request, "events/subscribe.html", _form_context(session, settings, form), error=exc)
    return render(request, "events/subscribe_done.html", {"state": "requested"}, status_code=202)


def _token_page(request: Request, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = render(request, "events/subscribe_done.html", context, status_code=status_code)
    response.headers.update(TOKEN_PAGE_HEADERS)
    return response


@pages.get(PAGE + "/konfirmasi/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, settings: SettingsDep, _user: OptionalUser, token: TokenPath) -> HTMLResponse:
    """The emailed confirmation link shows a button; only the button (a POST) confirms, so that mail scanners
    opening links confirm nothing."""
    subscriptions.check_confirm_token(settings, token=token)
    return _token_page(request, {"state": "confirm", "action": f"{PAGE}/konfirmasi/{token}"})


@pages.post(PAGE + "/konfirmasi/{token}", response_class=HTMLResponse, dependencies=[CsrfChecked])
def confirm(
    request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser, token: TokenPath
) -> HTMLResponse:
    """Confirm a subscription; notices start with the next published change."""
    subscription = subscriptions.confirm_subscription(session, settings=settings, token=token)
    covers = subscriptions.describe_subscription(
        session, settings=settings, subscription=subscription, locale=get_locale()
    )
    return _token_page(
        request,
        {"state": "confirmed", "covers": covers, "stop_url": subscriptions.unsubscribe_url(settings, subscription)},
    )


@pages.get(PAGE + "/berhenti/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, settings: SettingsDep, _user: OptionalUser, token: TokenPath) -> HTMLResponse:
    """The unsubscribe link of every notice shows one button; pressing it ends the subscription."""
    subscriptions.check_unsubscribe_token(settings, token=token)
    return _token_page(request, {"state": "stop", "action": f"{PAGE}/berhenti/{token}"})


# No CSRF check here, by design: the signed token in the address is the credential (a forged request would need
# it), and RFC 8058 one-click unsubscribe has mail programs POST to this address without the site's cookie.
@pages.post(PAGE + "/berhenti/{token}", response_class=HTMLResponse)
def unsubscribe(
    request: Request, session: SessionDep, settings: SettingsDep, _user: OptionalUser, token: TokenPath
) -> HTMLResponse:
    """End a subscription with one click (again: the same answer)."""
    subscriptions.unsubscribe(session, settings=settings, token=token)
    return _token_page(request, {"state": "stopped"})


router.include_router(api)
router.include_router(pages)
