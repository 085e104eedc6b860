"""Delivery through the outbox: a real SMTP server, a real webhook receiver, retries, leases, several workers."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from conftest import TEST_ACTOR, row_count, stored
from kotacerdas.db import utcnow
from kotacerdas.notifications import service as notifications
from kotacerdas.notifications import webhooks
from kotacerdas.notifications.models import OutboxMessage

from .conftest import MailServer

TEXT = "Perbaikan jalan di Desa Muara Beliti – selesai ✓"


def queue_test(session, settings, to="warga@example.id", text=TEXT, **kwargs):
    message = notifications.queue_email(
        session,
        to=to,
        template="test_message",
        context={"title": f"Uji: {text}", "text": text, "requested_by": "Diskominfo"},
        settings=settings,
        **kwargs,
    )
    session.commit()
    return message


def reload(session, message_id) -> OutboxMessage:
    session.rollback()
    session.expire_all()
    return session.get(OutboxMessage, message_id)


def test_an_email_goes_to_the_mail_server_with_its_subject_body_and_headers(
    session, session_factory, mail_settings, mail_server
):
    message = queue_test(session, mail_settings)

    stats = notifications.deliver_due(session_factory, settings=mail_settings)

    assert (stats.claimed, stats.sent, stats.failed) == (1, 1, 0)
    [received] = mail_server.messages
    assert received["Subject"] == f"Uji: {TEXT}"
    assert received["To"] == "warga@example.id"
    assert received["From"] == "Pemkab Musi Rawas <lapor@musirawaskab.go.id>"
    assert received["Message-ID"].startswith(f"<outbox.{message.id}.") and received["Message-ID"].endswith(
        "@musirawaskab.go.id>"
    )
    assert received["Date"] and received["Auto-Submitted"] == "auto-generated"
    assert mail_server.envelopes[0].rcpt_tos == ["warga@example.id"]
    assert received.is_multipart()
    text = received.get_body(("plain",)).get_content()
    html = received.get_body(("html",)).get_content()
    assert TEXT in text and "Diskominfo" in text
    assert TEXT in html and 'lang="id"' in html
    # The layout's footer: who sent it and the portal's address.
    assert mail_settings.region_name in text and mail_settings.public_base_url in text
    sent = reload(session, message.id)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 1, None)
    assert sent.sent_at is not None


def test_outbox_delivers_after_the_smtp_server_comes_back(session, session_factory, mail_settings, smtp_port):
    server = MailServer(smtp_port)  # not started: the mail server is down
    message = queue_test(session, mail_settings)
    now = utcnow()

    stats = notifications.deliver_due(session_factory, settings=mail_settings, now=now)

    waiting = reload(session, message.id)
    assert (stats.sent, stats.retrying) == (0, 1)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert waiting.next_attempt_at > now
    assert waiting.last_error and "ConnectionRefused" in waiting.last_error

    server.start()
    try:
        # Not yet due: the server is back, but the message waits for its next attempt.
        assert notifications.deliver_due(session_factory, settings=mail_settings, now=now).claimed == 0
        assert server.messages == []

        later = waiting.next_attempt_at + timedelta(seconds=1)
        stats = notifications.deliver_due(session_factory, settings=mail_settings, now=later)
    finally:
        server.stop()

    assert stats.sent == 1
    assert [m["Subject"] for m in server.messages] == [f"Uji: {TEXT}"]
    delivered = reload(session, message.id)
    assert (delivered.status, delivered.attempts, delivered.sent_at) == ("sent", 2, later)


def test_delivery_gives_up_after_the_last_attempt_with_growing_waits(session, session_factory, mail_settings):
    settings = mail_settings.model_copy(update={"outbox_max_attempts": 4})
    message = queue_test(session, settings)
    now = utcnow()
    waits = []

    for _attempt in range(4):
        notifications.deliver_due(session_factory, settings=settings, now=now)
        current = reload(session, message.id)
        waits.append(current.next_attempt_at - now)
        now = current.next_attempt_at + timedelta(seconds=1)

    failed = reload(session, message.id)
    assert (failed.status, failed.attempts) == ("failed", 4)
    assert waits[0] < waits[1] < waits[2]  # 30 s, 60 s, 120 s, with jitter
    assert timedelta(seconds=26) < waits[0] < timedelta(seconds=34)
    # A failed message is never picked up again by itself.
    assert notifications.deliver_due(session_factory, settings=settings, now=now + timedelta(days=30)).claimed == 0


def test_backoff_doubles_and_stops_at_six_hours():
    assert timedelta(seconds=27) <= notifications.backoff(1) <= timedelta(seconds=33)
    assert timedelta(seconds=54) <= notifications.backoff(2) <= timedelta(seconds=66)
    assert notifications.backoff(30) <= timedelta(hours=6.6)


def test_without_a_mail_server_emails_stay_pending(session, session_factory, settings):
    assert settings.smtp_host == ""
    message = queue_test(session, settings)

    stats = notifications.deliver_due(session_factory, settings=settings)

    waiting = reload(session, message.id)
    assert stats.claimed == 0
    assert (waiting.status, waiting.attempts, waiting.last_error) == ("pending", 0, None)


# aiosmtpd warns that AUTH without TLS is unsafe: true, and beside the point of this test.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_a_refused_login_fails_at_once_and_the_password_is_never_stored(
    session, session_factory, mail_settings, smtp_port
):
    def refuse_all(server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=False, handled=False)

    server = MailServer(smtp_port, authenticator=refuse_all, auth_required=True, auth_require_tls=False)
    server.start()
    password = "rahasia-smtp-JANGAN-bocor"
    settings = mail_settings.model_copy(update={"smtp_username": "kotacerdas", "smtp_password": password})
    message = queue_test(session, settings)
    try:
        notifications.deliver_due(session_factory, settings=settings)
    finally:
        server.stop()

    failed = reload(session, message.id)
    assert failed.status == "failed", failed.last_error  # 535: the server refused the login; trying again will not help
    assert "535" in failed.last_error
    assert password not in failed.last_error


def test_a_message_stuck_in_sending_is_due_again_after_its_lease(session, session_factory, mail_settings, mail_server):
    message = queue_test(session, mail_settings)
    now = utcnow()
    # A worker claimed it and died before recording anything.
    stuck = reload(session, message.id)
    stuck.status, stuck.attempts, stuck.claim_token = "sending", 1, "dead-worker"
    stuck.next_attempt_at = now + timedelta(minutes=10)
    session.commit()

    assert notifications.deliver_due(session_factory, settings=mail_settings, now=now).claimed == 0
    stats = notifications.deliver_due(session_factory, settings=mail_settings, now=now + timedelta(minutes=11))

    assert stats.sent == 1 and len(mail_server.messages) == 1
    assert reload(session, message.id).attempts == 2


def test_dedupe_key_queues_a_notice_once(session, mail_settings):
    first = queue_test(session, mail_settings, dedupe_key="report:MR-2026-000001:received")
    second = queue_test(session, mail_settings, dedupe_key="report:MR-2026-000001:received")

    assert first is not None and second is None
    assert row_count(session, OutboxMessage) == 1


def test_concurrent_workers_never_send_one_message_twice(session, session_factory, mail_settings, mail_server):
    ids = [queue_test(session, mail_settings, to=f"warga{n}@example.id").id for n in range(30)]
    results = []
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        results.append(notifications.deliver_due(session_factory, settings=mail_settings))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    recipients = [envelope.rcpt_tos[0] for envelope in mail_server.envelopes]
    assert sorted(recipients) == sorted(f"warga{n}@example.id" for n in range(30))
    assert sum(result.sent for result in results) == 30
    assert row_count(session, OutboxMessage, OutboxMessage.status == "sent") == len(ids)


# --- webhooks --------------------------------------------------------------------------------------------------


def make_endpoint(session, settings, url, events=("report.*",)):
    endpoint = notifications.create_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=settings, name="Penerima uji", url=url, events=list(events)
    )
    session.commit()
    return endpoint


def test_a_webhook_delivery_is_signed_so_the_receiver_can_verify_it(session, session_factory, mail_settings, receiver):
    endpoint = make_endpoint(session, mail_settings, receiver.url)
    payload = {"code": "MR-2026-000123", "status": "diterima", "judul": "Jalan berlubang – Desa Lubuk Besar"}
    assert notifications.queue_webhooks(session, event="report.received", payload=payload) == 1
    session.commit()
    message_id = stored(session, sa.select(OutboxMessage.id))

    stats = notifications.deliver_due(session_factory, settings=mail_settings)

    assert stats.sent == 1
    [request] = receiver.requests
    headers = {key.lower(): value for key, value in request["headers"].items()}
    body = request["body"]
    timestamp = headers["x-kotacerdas-timestamp"]
    expected = hmac.new(endpoint.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-kotacerdas-signature"] == f"sha256={expected}"
    assert webhooks.verify_signature(
        endpoint.secret, timestamp=timestamp, body=body, signature=headers["x-kotacerdas-signature"], now=time.time()
    )
    assert not webhooks.verify_signature(
        "another-secret-0123456789",
        timestamp=timestamp,
        body=body,
        signature=headers["x-kotacerdas-signature"],
        now=time.time(),
    )
    assert headers["x-kotacerdas-event"] == "report.received"
    assert headers["x-kotacerdas-delivery"] == str(message_id)
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert document["event"] == "report.received" and document["id"] == message_id
    assert document["data"] == payload and document["created_at"]


def test_a_webhook_is_retried_until_the_receiver_answers_2xx(session, session_factory, mail_settings, receiver):
    make_endpoint(session, mail_settings, receiver.url, events=["*"])
    notifications.queue_webhooks(session, event="report.resolved", payload={"code": "MR-2026-000001"})
    session.commit()
    receiver.status = 503
    now = utcnow()

    notifications.deliver_due(session_factory, settings=mail_settings, now=now)
    waiting = stored(session, sa.select(OutboxMessage))
    assert (waiting.status, waiting.attempts, waiting.last_error) == ("pending", 1, "HTTP 503")

    receiver.status = 204
    notifications.deliver_due(session_factory, settings=mail_settings, now=waiting.next_attempt_at)

    assert stored(session, sa.select(OutboxMessage.status)) == "sent"
    ids = {request["headers"]["X-Kotacerdas-Delivery"] for request in receiver.requests}
    assert len(receiver.requests) == 2 and len(ids) == 1  # the same delivery id on each try


def test_a_webhook_host_taken_off_the_allowlist_is_refused_at_send(session, session_factory, mail_settings, receiver):
    make_endpoint(session, mail_settings, receiver.url)
    notifications.queue_webhooks(session, event="report.received", payload={})
    session.commit()
    narrowed = mail_settings.model_copy(update={"webhook_allowed_hosts": ["lapor.go.id"]})

    notifications.deliver_due(session_factory, settings=narrowed)

    failed = stored(session, sa.select(OutboxMessage))
    assert receiver.requests == []
    # Stored in the installation's language, for the console.
    assert failed.status == "failed" and "tidak ada dalam daftar yang diizinkan" in failed.last_error


def test_deliveries_of_a_deactivated_endpoint_are_not_sent(session, session_factory, mail_settings, receiver):
    endpoint = make_endpoint(session, mail_settings, receiver.url)
    notifications.queue_webhooks(session, event="report.received", payload={})
    notifications.deactivate_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=mail_settings, endpoint_id=endpoint.id
    )
    session.commit()

    notifications.deliver_due(session_factory, settings=mail_settings)

    assert receiver.requests == []
    assert stored(session, sa.select(OutboxMessage.status)) == "failed"


@pytest.mark.parametrize("status", ["sent", "sending"])
def test_only_failed_or_waiting_messages_can_be_retried(session, mail_settings, status):
    from kotacerdas.errors import Conflict

    message = queue_test(session, mail_settings)
    message.status = status
    session.commit()

    with pytest.raises(Conflict):
        notifications.retry_message(session, actor=TEST_ACTOR, message_id=message.id)
