"""Request and response bodies of the outbox and webhook API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from kotacerdas.notifications import service
from kotacerdas.notifications.enums import OutboxChannel, OutboxStatus
from kotacerdas.pagination import Page

EndpointName = Annotated[
    str, Field(min_length=1, max_length=service.ENDPOINT_NAME_MAX, examples=["SP4N-LAPOR! penghubung"])
]
EndpointUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=service.ENDPOINT_URL_MAX,
        description="http(s) address; its host must be in KOTACERDAS_WEBHOOK_ALLOWED_HOSTS",
        examples=["https://integrasi.example.go.id/kotacerdas"],
    ),
]
Events = Annotated[
    list[Annotated[str, Field(max_length=100)]],
    Field(
        min_length=1,
        max_length=service.EVENTS_MAX,
        description="Event names to receive: exact names (report.received), a prefix (report.*) or * for all",
        examples=[["report.received", "report.resolved"]],
    ),
]


class OutboxMessageRead(BaseModel):
    """An outgoing message and where it is on its way out (the recipient is personal data)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: OutboxChannel
    recipient: str = Field(description="Email address or webhook URL")
    template: str | None
    subject: str = Field(description="Email subject, or the event name of a webhook delivery")
    event: str | None
    webhook_endpoint_id: int | None
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    dedupe_key: str | None

    @computed_field
    @property
    def status_label(self) -> str:
        """The status in the request's language."""
        return self.status.label

    @computed_field
    @property
    def channel_label(self) -> str:
        """The channel in the request's language."""
        return self.channel.label


class OutboxMessageDetail(OutboxMessageRead):
    """An outgoing message with its content."""

    body_text: str
    body_html: str | None
    payload: Any | None = Field(description="The `data` of a webhook delivery")


class OutboxPage(Page[OutboxMessageRead]):
    """One page of outgoing messages, newest first."""


class WebhookEndpointCreate(BaseModel):
    """A new receiver of signed event deliveries."""

    model_config = ConfigDict(extra="forbid")

    name: EndpointName
    url: EndpointUrl
    events: Events = Field(default_factory=lambda: ["*"])
    secret: str | None = Field(
        None,
        min_length=service.SECRET_MIN,
        max_length=service.SECRET_MAX,
        description="Signing secret agreed with the receiver; omit it to get a random one (shown once)",
    )
    active: bool = True


class WebhookEndpointUpdate(BaseModel):
    """Changes to a webhook endpoint: only the fields sent change; `active: false` deactivates it."""

    model_config = ConfigDict(extra="forbid")

    name: EndpointName | None = None
    url: EndpointUrl | None = None
    events: Events | None = None
    active: bool | None = None


class WebhookEndpointRead(BaseModel):
    """A webhook endpoint (without its signing secret)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    url: str
    events: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpointRead):
    """A webhook endpoint with its signing secret: answered once, on creation or when the secret is renewed."""

    secret: str = Field(description="HMAC-SHA256 key of X-Kotacerdas-Signature; store it in the receiver now")


class WebhookEndpointPage(Page[WebhookEndpointRead]):
    """One page of webhook endpoints."""
