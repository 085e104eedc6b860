"""JSON API of the notifications domain: the outbox (see and retry messages) and the webhook endpoints.

Both need notifications.manage: the outbox holds recipients' addresses (personal data), endpoints hold secrets.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, SettingsDep, actor_of, require
from kotacerdas.notifications import service
from kotacerdas.notifications.enums import OutboxChannel, OutboxStatus
from kotacerdas.notifications.schemas import (
    OutboxMessageDetail,
    OutboxMessageRead,
    OutboxPage,
    WebhookEndpointCreate,
    WebhookEndpointPage,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from kotacerdas.pagination import PageQuery
from kotacerdas.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses=PROBLEM_RESPONSES)

MessageIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Outbox message id")]
EndpointIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Webhook endpoint id")]
NotificationManager = Annotated[User, Depends(require(Permission.NOTIFICATIONS_MANAGE))]


@router.get("/outbox", response_model=OutboxPage)
def list_outbox(
    session: SessionDep,
    _user: NotificationManager,
    page: PageQuery,
    status: Annotated[OutboxStatus | None, Query(description="Only messages in this status")] = None,
    channel: Annotated[OutboxChannel | None, Query(description="Only email or only webhook messages")] = None,
) -> OutboxPage:
    """List outgoing messages, newest first (needs notifications.manage)."""
    result = service.list_outbox(
        session, page=page, status=status.value if status else None, channel=channel.value if channel else None
    )
    return OutboxPage.model_validate(result, from_attributes=True)


@router.get("/outbox/{message_id}", response_model=OutboxMessageDetail)
def get_outbox_message(
    session: SessionDep, _user: NotificationManager, message_id: MessageIdPath
) -> OutboxMessageDetail:
    """One outgoing message with its content (needs notifications.manage)."""
    return OutboxMessageDetail.model_validate(service.get_outbox_message(session, message_id=message_id))


@router.post("/outbox/{message_id}/retry", response_model=OutboxMessageRead)
def retry_message(
    request: Request, session: SessionDep, user: NotificationManager, message_id: MessageIdPath
) -> OutboxMessageRead:
    """Send a failed or waiting message again now, with a fresh count of attempts (needs notifications.manage)."""
    message = service.retry_message(session, actor=actor_of(request, user), message_id=message_id)
    return OutboxMessageRead.model_validate(message)


@router.get("/webhooks", response_model=WebhookEndpointPage)
def list_webhooks(
    session: SessionDep,
    _user: NotificationManager,
    page: PageQuery,
    active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) endpoints")] = None,
) -> WebhookEndpointPage:
    """List webhook endpoints (needs notifications.manage)."""
    result = service.list_webhook_endpoints(session, page=page, active=active)
    return WebhookEndpointPage.model_validate(result, from_attributes=True)


@router.post("/webhooks", response_model=WebhookEndpointWithSecret, status_code=201)
def create_webhook(
    request: Request, session: SessionDep, settings: SettingsDep, user: NotificationManager, body: WebhookEndpointCreate
) -> WebhookEndpointWithSecret:
    """Register a webhook endpoint; the answer holds its signing secret, shown this once (needs
    notifications.manage). The URL's host must be on the webhook allowlist."""
    endpoint = service.create_webhook_endpoint(
        session, actor=actor_of(request, user), settings=settings, **body.model_dump()
    )
    return WebhookEndpointWithSecret.model_validate(endpoint)


@router.get("/webhooks/{endpoint_id}", response_model=WebhookEndpointRead)
def get_webhook(session: SessionDep, _user: NotificationManager, endpoint_id: EndpointIdPath) -> WebhookEndpointRead:
    """One webhook endpoint, without its secret (needs notifications.manage)."""
    return WebhookEndpointRead.model_validate(service.get_webhook_endpoint(session, endpoint_id=endpoint_id))


@router.patch("/webhooks/{endpoint_id}", response_model=WebhookEndpointRead)
def update_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: NotificationManager,
    endpoint_id: EndpointIdPath,
    body: WebhookEndpointUpdate,
) -> WebhookEndpointRead:
    """Change a webhook endpoint; only the fields sent change, `active: false` deactivates it (needs
    notifications.manage)."""
    endpoint = service.update_webhook_endpoint(
        session,
        actor=actor_of(request, user),
        settings=settings,
        endpoint_id=endpoint_id,
        **body.model_dump(exclude_unset=True),
    )
    return WebhookEndpointRead.model_validate(endpoint)


@router.post("/webhooks/{endpoint_id}/secret", response_model=WebhookEndpointWithSecret)
def rotate_webhook_secret(
    request: Request, session: SessionDep, user: NotificationManager, endpoint_id: EndpointIdPath
) -> WebhookEndpointWithSecret:
    """Give the endpoint a new random signing secret, answered this once; the old one stops working at once
    (needs notifications.manage)."""
    endpoint = service.rotate_webhook_secret(session, actor=actor_of(request, user), endpoint_id=endpoint_id)
    return WebhookEndpointWithSecret.model_validate(endpoint)
