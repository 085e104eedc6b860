"""Queueing: emails rendered in the recipient's language at queue time, webhooks per subscribed endpoint, the
checks on endpoints, and the audit of every change an administrator makes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import TEST_ACTOR, row_count, stored, translated
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.errors import InvalidInput
from kotacerdas.notifications import service as notifications
from kotacerdas.notifications.models import OutboxMessage


def test_an_email_is_rendered_in_indonesian_at_queue_time_with_the_region_footer(session, settings):
    message = notifications.queue_test_email(session, actor=TEST_ACTOR, to="warga@example.id", settings=settings)
    session.commit()

    assert message.subject == "Pesan uji dari Kabupaten Musi Rawas"
    assert "Pesan ini dikirim otomatis oleh Kabupaten Musi Rawas." in message.body_text
    assert settings.public_base_url in message.body_text
    assert "Pesan ini dikirim otomatis oleh Kabupaten Musi Rawas." in message.body_html
    assert (message.status, message.attempts, message.channel) == ("pending", 0, "email")


def test_an_email_in_english_when_the_recipient_chose_english(session, settings):
    message = notifications.queue_test_email(
        session, actor=TEST_ACTOR, to="resident@example.org", locale="en", settings=settings
    )

    assert message.subject == "Test message from Kabupaten Musi Rawas"
    assert "This message was sent automatically by Kabupaten Musi Rawas." in message.body_text


def test_the_current_language_is_left_as_it_was(session, settings):
    from kotacerdas.i18n import get_locale, reset_locale, set_locale

    token = set_locale("en")
    try:
        notifications.queue_test_email(session, actor=TEST_ACTOR, to="warga@example.id", locale="id", settings=settings)
        assert get_locale() == "en"
    finally:
        reset_locale(token)


@pytest.mark.parametrize("to", ["", "bukan-alamat", "a@b.id\nBcc: x@y.id"])
def test_a_bad_recipient_is_refused(session, to):
    with pytest.raises(InvalidInput) as raised:
        notifications.queue_email(session, to=to, template="test_message", context={})

    assert raised.value.errors[0]["field"] == "to"


def test_a_missing_template_variable_fails_at_queue_time(session):
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        notifications.queue_email(session, to="warga@example.id", template="test_message", context={"title": "x"})
    assert row_count(session, OutboxMessage) == 0


def test_template_names_cannot_leave_the_email_folder(session):
    with pytest.raises(ValueError):
        notifications.queue_email(session, to="warga@example.id", template="../../base", context={})


def test_the_same_dedupe_key_keeps_the_first_message_and_the_callers_transaction(session, settings):
    context = {"title": "Laporan diterima", "text": "Terima kasih", "requested_by": "-"}
    first = notifications.queue_email(
        session, to="warga@example.id", template="test_message", context=context, dedupe_key="laporan:1:diterima"
    )
    again = notifications.queue_email(
        session, to="warga@example.id", template="test_message", context=context, dedupe_key="laporan:1:diterima"
    )
    other = notifications.queue_email(
        session, to="warga@example.id", template="test_message", context=context, dedupe_key="laporan:2:diterima"
    )
    session.commit()

    assert first is not None and again is None and other is not None
    assert row_count(session, OutboxMessage) == 2


def test_webhooks_are_queued_once_per_active_subscribed_endpoint(session, settings):
    allowed = settings.model_copy(update={"webhook_allowed_hosts": ["lapor.go.id", "data.musirawaskab.go.id"]})

    def endpoint(name, url, events, active=True):
        return notifications.create_webhook_endpoint(
            session, actor=TEST_ACTOR, settings=allowed, name=name, url=url, events=events, active=active
        )

    everything = endpoint("Semua", "https://lapor.go.id/hook", ["*"])
    reports = endpoint("Laporan", "https://data.musirawaskab.go.id/in", ["report.*"])
    endpoint("Peristiwa", "https://data.musirawaskab.go.id/events", ["event.raised"])
    endpoint("Nonaktif", "https://lapor.go.id/old", ["*"], active=False)

    count = notifications.queue_webhooks(session, event="report.received", payload={"code": "MR-1"}, dedupe_key="r1")
    repeated = notifications.queue_webhooks(session, event="report.received", payload={"code": "MR-1"}, dedupe_key="r1")
    session.commit()

    assert (count, repeated) == (2, 0)
    rows = stored(session, sa.select(sa.func.count()).select_from(OutboxMessage))
    assert rows == 2
    endpoints = set(session.scalars(sa.select(OutboxMessage.webhook_endpoint_id)))
    assert endpoints == {everything.id, reports.id}


def test_webhook_payload_dates_become_iso_text(session, settings):
    from datetime import UTC, datetime

    allowed = settings.model_copy(update={"webhook_allowed_hosts": ["lapor.go.id"]})
    notifications.create_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=allowed, name="A", url="https://lapor.go.id/h", events=["*"]
    )
    notifications.queue_webhooks(
        session, event="report.received", payload={"at": datetime(2026, 11, 27, 3, 0, tzinfo=UTC)}
    )

    assert session.scalar(sa.select(OutboxMessage.payload)) == {"at": "2026-11-27T03:00:00+00:00"}


def test_an_endpoint_outside_the_allowlist_is_refused_with_a_translated_reason(session, settings):
    allowed = settings.model_copy(update={"webhook_allowed_hosts": ["lapor.go.id"]})

    with pytest.raises(InvalidInput) as raised:
        notifications.create_webhook_endpoint(
            session, actor=TEST_ACTOR, settings=allowed, name="Jahat", url="http://169.254.169.254/", events=["*"]
        )

    assert raised.value.errors == [{"field": "url", "reason": "host_not_allowed"}]
    assert "169.254.169.254" in raised.value.detail
    assert raised.value.detail == translated(
        "The server may not connect to %(host)s: that host is not on its allowlist.", "id"
    ) % {"host": "169.254.169.254"}


@pytest.mark.parametrize(
    ("events", "reason"), [([], "required"), (["Report Received"], "format"), (["a"] * 0 + ["x;y"], "format")]
)
def test_bad_event_subscriptions_are_refused(session, settings, events, reason):
    allowed = settings.model_copy(update={"webhook_allowed_hosts": ["lapor.go.id"]})

    with pytest.raises(InvalidInput) as raised:
        notifications.create_webhook_endpoint(
            session, actor=TEST_ACTOR, settings=allowed, name="A", url="https://lapor.go.id/h", events=events
        )

    assert raised.value.errors[0] == {"field": "events", "reason": reason}


def test_endpoint_changes_are_audited_without_the_secret(session, settings):
    allowed = settings.model_copy(update={"webhook_allowed_hosts": ["lapor.go.id"]})
    endpoint = notifications.create_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=allowed, name="SP4N", url="https://lapor.go.id/h", events=["report.*"]
    )
    secret = endpoint.secret
    notifications.update_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=allowed, endpoint_id=endpoint.id, name="SP4N-LAPOR!"
    )
    notifications.deactivate_webhook_endpoint(session, actor=TEST_ACTOR, settings=allowed, endpoint_id=endpoint.id)
    notifications.rotate_webhook_secret(session, actor=TEST_ACTOR, endpoint_id=endpoint.id)
    session.commit()

    entries = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [entry.action for entry in entries] == [
        "webhook.create",
        "webhook.update",
        "webhook.deactivate",
        "webhook.rotate_secret",
    ]
    assert all(secret not in str(entry.before) + str(entry.after) for entry in entries)
    assert endpoint.secret != secret and len(endpoint.secret) >= 32


def test_an_unchanged_address_may_stay_after_its_host_left_the_allowlist(session, settings):
    allowed = settings.model_copy(update={"webhook_allowed_hosts": ["lapor.go.id"]})
    endpoint = notifications.create_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=allowed, name="A", url="https://lapor.go.id/h", events=["*"]
    )

    notifications.update_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=settings, endpoint_id=endpoint.id, url=endpoint.url, active=False
    )
    with pytest.raises(InvalidInput):
        notifications.update_webhook_endpoint(
            session, actor=TEST_ACTOR, settings=settings, endpoint_id=endpoint.id, url="https://lapor.go.id/baru"
        )


def test_retry_gives_a_failed_message_a_fresh_start_and_is_audited(session, settings):
    message = notifications.queue_test_email(session, actor=TEST_ACTOR, to="warga@example.id", settings=settings)
    message.status, message.attempts, message.last_error = "failed", 12, "ConnectionRefusedError"
    session.commit()

    notifications.retry_message(session, actor=TEST_ACTOR, message_id=message.id)
    session.commit()

    assert (message.status, message.attempts) == ("pending", 0)
    entry = stored(session, sa.select(AuditEntry).where(AuditEntry.action == "outbox.retry"))
    assert entry.before == {"status": "failed", "attempts": 12, "next_attempt_at": entry.before["next_attempt_at"]}
    assert entry.after["status"] == "pending"


def test_counts_by_status(session, settings):
    for n in range(3):
        notifications.queue_test_email(session, actor=TEST_ACTOR, to=f"w{n}@example.id", settings=settings)
    session.flush()

    assert notifications.count_outbox(session) == {"pending": 3, "sending": 0, "sent": 0, "failed": 0}
