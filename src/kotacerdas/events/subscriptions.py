"""Subscriptions to events (placeholder until the subscriptions work lands: nobody is notified yet)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from kotacerdas.config import Settings
from kotacerdas.events.enums import UpdateKind
from kotacerdas.events.models import Event


def notify_subscribers(session: Session, *, settings: Settings, event: Event, kind: UpdateKind) -> int:
    """Queue a notice of a published change to every confirmed subscription it matches; how many were queued."""
    return 0
