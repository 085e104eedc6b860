"""Console pages of the notifications domain: the outbox (see, filter, retry, send a test email) and webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, require
from kotacerdas.errors import DomainError
from kotacerdas.i18n import get_locale
from kotacerdas.notifications import service
from kotacerdas.notifications.enums import OutboxChannel, OutboxStatus
from kotacerdas.notifications.models import WebhookEndpoint
from kotacerdas.pagination import PageQuery, PageRequest
from kotacerdas.web.forms import kept_filters, render_form
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

NotificationManager = Annotated[User, Depends(require(Permission.NOTIFICATIONS_MANAGE))]
MessageIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
EndpointIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
FilterText = Annotated[str, Query(max_length=100)]


def _choice(value: str, enum: type[OutboxStatus] | type[OutboxChannel]) -> str | None:
    return value if value in {member.value for member in enum} else None


# --- outbox ----------------------------------------------------------------------------------------------------


def _render_outbox(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    page: PageRequest,
    status: str | None,
    channel: str | None,
    test_to: str = "",
    test_queued: bool = False,
    error: DomainError | None = None,
) -> HTMLResponse:
    paged = service.list_outbox(session, page=page, status=status, channel=channel)
    return render_form(
        request,
        "notifications/outbox.html",
        {
            "paged": paged,
            "filters": kept_filters(status=status, channel=channel),
            "counts": service.count_outbox(session),
            "statuses": OutboxStatus,
            "channels": OutboxChannel,
            "mail_configured": bool(settings.smtp_host),
            "test_to": test_to,
            "test_queued": test_queued,
            "retried": request.query_params.get("retried", ""),
        },
        error=error,
    )


@router.get("/konsol/notifikasi", response_class=HTMLResponse)
def outbox_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: NotificationManager,
    page: PageQuery,
    status: FilterText = "",
    channel: FilterText = "",
) -> HTMLResponse:
    """The outbox: outgoing emails and webhook deliveries, with their status and a retry button."""
    return _render_outbox(
        request,
        session,
        settings,
        page=page,
        status=_choice(status, OutboxStatus),
        channel=_choice(channel, OutboxChannel),
    )


@router.post("/konsol/notifikasi/{message_id}/ulang")
def retry(request: Request, session: SessionDep, user: NotificationManager, message_id: MessageIdPath) -> Response:
    """Send a failed or waiting message again now."""
    service.retry_message(session, actor=actor_of(request, user), message_id=message_id)
    return RedirectResponse(f"/konsol/notifikasi?retried={message_id}", status_code=303)


@router.post("/konsol/notifikasi/uji", response_class=HTMLResponse)
def send_test(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: NotificationManager,
    page: PageQuery,
    to: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """Queue a test email, to check the mail settings."""
    try:
        service.queue_test_email(session, actor=actor_of(request, user), to=to, locale=get_locale(), settings=settings)
    except DomainError as exc:
        session.rollback()
        return _render_outbox(request, session, settings, page=page, status=None, channel=None, test_to=to, error=exc)
    return _render_outbox(request, session, settings, page=page, status=None, channel=None, test_queued=True)


# --- webhooks --------------------------------------------------------------------------------------------------


class WebhookForm(BaseModel):
    """The fields of the webhook form, as typed (checked by the service, re-shown on error)."""

    name: str = ""
    url: str = ""
    events: str = "*"
    active: str | None = None

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookForm:
        return cls(
            name=endpoint.name,
            url=endpoint.url,
            events=", ".join(endpoint.events),
            active="on" if endpoint.active else None,
        )

    def event_list(self) -> list[str]:
        """The events typed, split at commas, spaces or new lines."""
        return self.events.replace(",", " ").split()


@router.get("/konsol/webhook", response_class=HTMLResponse)
def webhooks_page(
    request: Request, session: SessionDep, settings: SettingsDep, _user: NotificationManager
) -> HTMLResponse:
    """The webhook endpoints."""
    return render(
        request,
        "notifications/webhooks.html",
        {"endpoints": service.list_webhook_endpoints(session).items, "allowed_hosts": settings.webhook_allowed_hosts},
    )


def _render_webhook_form(
    request: Request,
    settings: Settings,
    *,
    form: WebhookForm,
    endpoint: WebhookEndpoint | None,
    error: DomainError | None = None,
    saved: bool = False,
    secret: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render_form(
        request,
        "notifications/webhook_form.html",
        {
            "form": form,
            "endpoint": endpoint,
            "saved": saved,
            "secret": secret,
            "allowed_hosts": settings.webhook_allowed_hosts,
        },
        error=error,
        status_code=status_code,
    )


@router.get("/konsol/webhook/baru", response_class=HTMLResponse)
def new_webhook_form(request: Request, settings: SettingsDep, _user: NotificationManager) -> HTMLResponse:
    """The form for a new webhook endpoint."""
    return _render_webhook_form(request, settings, form=WebhookForm(active="on"), endpoint=None)


@router.post("/konsol/webhook/baru", response_class=HTMLResponse)
def create_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: NotificationManager,
    form: Annotated[WebhookForm, Form()],
) -> HTMLResponse:
    """Register a webhook endpoint and show its signing secret this once."""
    try:
        endpoint = service.create_webhook_endpoint(
            session,
            actor=actor_of(request, user),
            settings=settings,
            name=form.name,
            url=form.url,
            events=form.event_list(),
        )
    except DomainError as exc:
        session.rollback()
        return _render_webhook_form(request, settings, form=form, endpoint=None, error=exc)
    # Shown now and not again: a redirect would have to carry the secret in its URL.
    return _render_webhook_form(
        request, settings, form=WebhookForm.of(endpoint), endpoint=endpoint, secret=endpoint.secret, status_code=201
    )


@router.get("/konsol/webhook/{endpoint_id}", response_class=HTMLResponse)
def edit_webhook_form(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: NotificationManager,
    endpoint_id: EndpointIdPath,
    saved: bool = False,
) -> HTMLResponse:
    """The form to change a webhook endpoint."""
    endpoint = service.get_webhook_endpoint(session, endpoint_id=endpoint_id)
    return _render_webhook_form(request, settings, form=WebhookForm.of(endpoint), endpoint=endpoint, saved=saved)


@router.post("/konsol/webhook/{endpoint_id}", response_class=HTMLResponse)
def update_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: NotificationManager,
    endpoint_id: EndpointIdPath,
    form: Annotated[WebhookForm, Form()],
) -> Response:
    """Save the changes to a webhook endpoint (an unticked "active" box deactivates it)."""
    endpoint = service.get_webhook_endpoint(session, endpoint_id=endpoint_id)
    try:
        service.update_webhook_endpoint(
            session,
            actor=actor_of(request, user),
            settings=settings,
            endpoint_id=endpoint.id,
            name=form.name,
            url=form.url,
            events=form.event_list(),
            active=form.active is not None,
        )
    except DomainError as exc:
        session.rollback()
        endpoint = service.get_webhook_endpoint(session, endpoint_id=endpoint_id)
        return _render_webhook_form(request, settings, form=form, endpoint=endpoint, error=exc)
    return RedirectResponse(f"/konsol/webhook/{endpoint.id}?saved=1", status_code=303)


@router.post("/konsol/webhook/{endpoint_id}/rahasia", response_class=HTMLResponse)
def rotate_secret(
    request: Request, session: SessionDep, settings: SettingsDep, user: NotificationManager, endpoint_id: EndpointIdPath
) -> HTMLResponse:
    """Give a webhook endpoint a new signing secret and show it this once."""
    endpoint = service.rotate_webhook_secret(session, actor=actor_of(request, user), endpoint_id=endpoint_id)
    return _render_webhook_form(
        request, settings, form=WebhookForm.of(endpoint), endpoint=endpoint, secret=endpoint.secret
    )
