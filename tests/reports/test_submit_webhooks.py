"""Integrations hear about a submission only when an active endpoint subscribes, and never the reporter's details."""

from __future__ import annotations

import sqlalchemy as sa

from conftest import TEST_ACTOR
from kotacerdas.notifications import service as notifications
from kotacerdas.notifications.models import OutboxMessage

from .helpers import REPORTER


def webhooks(session) -> list[OutboxMessage]:
    return list(session.scalars(sa.select(OutboxMessage).where(OutboxMessage.channel == "webhook")))


def test_a_submission_is_sent_to_subscribed_endpoints_only(session, settings, make_report):
    make_report()
    assert webhooks(session) == []  # nobody listens: nothing queued (and no payload built)
    settings = settings.model_copy(update={"webhook_allowed_hosts": ["lapor.example.id", "other.example.id"]})
    notifications.create_webhook_endpoint(
        session, settings=settings, actor=TEST_ACTOR, name="SP4N", url="https://lapor.example.id/hook",
        events=["report.*"],
    )  # fmt: skip
    notifications.create_webhook_endpoint(
        session, settings=settings, actor=TEST_ACTOR, name="Lain", url="https://other.example.id/hook",
        events=["event.*"],
    )  # fmt: skip
    session.commit()
    report = make_report().report
    (message,) = webhooks(session)
    assert message.event == "report.created" and message.payload["tracking_code"] == report.tracking_code
    text = str(message.payload)
    assert REPORTER["email"] not in text and REPORTER["phone"] not in text and REPORTER["name"] not in text
