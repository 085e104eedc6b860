"""Subscriptions to events: double opt-in by email over a real SMTP server, notices only to the subscriptions a
published change matches, one-click unsubscribe, signed webhook deliveries to a real receiver, and bad input refused
with nothing stored."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import TEST_ACTOR, assert_problem, bearer, csrf_from, new_api_token, row_count
from kotacerdas.app import create_app
from kotacerdas.db import make_sessionmaker, utcnow
from kotacerdas.errors import InvalidInput, NotFound, RateLimited
from kotacerdas.events import service, subscriptions
from kotacerdas.events.models import EventSubscription
from kotacerdas.notifications import service as notifications
from kotacerdas.notifications import webhooks
from kotacerdas.notifications.models import OutboxMessage
from notifications.conftest import MailServer

from .helpers import DESA, KECAMATAN, OTHER_KECAMATAN, act, activity, flood

OTHER_DESA = "16.05.09.2002"  # Muara Beliti Baru, beside Pedang (DESA) in Kecamatan Muara Beliti
LINK = re.compile(r"https?://\S+/peristiwa/langganan/(?:konfirmasi|berhenti)/\S+")


@pytest.fixture
def mail_server(seeded):
    from conftest import free_port

    server = MailServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(settings, mail_server):
    """The test settings with the loopback mail server, loopback webhooks allowed."""
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": mail_server.port,
            "smtp_timeout_seconds": 5,
            "mail_from": "BPBD Musi Rawas <bpbd@musirawaskab.go.id>",
            "webhook_allowed_hosts": ["127.0.0.1"],
        }
    )


@pytest.fixture
def mail_client(mail_settings):
    with TestClient(create_app(mail_settings)) as client:
        yield client


@pytest.fixture
def deliver(engine, mail_settings):
    """Run the outbox once, as the worker does; what it did."""
    factory = make_sessionmaker(engine)
    return lambda: notifications.deliver_due(factory, settings=mail_settings)


def notices(session) -> list[OutboxMessage]:
    session.rollback()
    session.expire_all()
    return list(
        session.scalars(sa.select(OutboxMessage).where(OutboxMessage.template == "event_notice").order_by("id"))
    )


def path_of(url: str) -> str:
    return urlsplit(url).path


def subscribe(session, settings, email: str, **filters) -> EventSubscription:
    """A confirmed email subscription, through the service: request, then the emailed token."""
    subscription = subscriptions.subscribe_email(session, settings=settings, email=email, **filters)
    token = path_of(subscriptions.confirm_url(settings, subscription)).rsplit("/", 1)[1]
    subscriptions.confirm_subscription(session, settings=settings, token=token)
    session.commit()
    return subscription


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


# --- double opt-in, notices and unsubscribe over SMTP --------------------------------------------------------------


def test_a_citizen_subscribes_confirms_gets_a_notice_and_unsubscribes_with_one_click(
    mail_client, session, mail_settings, mail_server, deliver, staff
):
    operator = staff("operator")
    token = csrf_from(mail_client, "/peristiwa/langganan")
    page = mail_client.post(
        "/peristiwa/langganan",
        data={"csrf_token": token, "email": "Warga@Example.id", "region_codes": [KECAMATAN], "min_level": "waspada",
              "categories": ["banjir", "tanah_longsor"], "website": ""},
    )  # fmt: skip
    assert page.status_code == 202, page.text
    assert row_count(session, EventSubscription) == 1

    # Not confirmed yet: a matching warning is published and nobody is told.
    event = service.raise_event(session, settings=mail_settings, data=flood(), **act(operator))
    session.commit()
    assert notices(session) == []

    assert deliver().sent == 1
    [confirmation] = mail_server.messages
    assert confirmation["To"] == "warga@example.id"
    body = text_of(confirmation)
    assert "Muara Beliti" in body and "Banjir" in body and "Waspada" in body
    [link] = LINK.findall(body)
    assert link.startswith(mail_settings.public_base_url + "/peristiwa/langganan/konfirmasi/")

    # Opening the link only shows a button (a mail scanner confirms nothing); the button confirms.
    shown = mail_client.get(path_of(link))
    assert shown.status_code == 200 and shown.headers["referrer-policy"] == "no-referrer"
    assert session.scalar(sa.select(EventSubscription.confirmed_at)) is None
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', shown.text).group(1)
    confirmed = mail_client.post(path_of(link), data={"csrf_token": csrf})
    assert confirmed.status_code == 200 and "Muara Beliti" in confirmed.text
    session.rollback()
    assert session.scalar(sa.select(EventSubscription.confirmed_at)) is not None

    # The next published change reaches the subscriber, in one email with the event and a way out.
    service.update_event(
        session, settings=mail_settings, event_id=event.id, note="Air terus naik.", **act(operator),
        data=service.EventInput(level="awas", given=frozenset({"level"})),
    )  # fmt: skip
    session.commit()
    assert len(notices(session)) == 1
    assert deliver().sent == 1
    notice = mail_server.messages[-1]
    assert notice["Subject"] == "[Awas] Banjir Sungai Kelingi (Diperbarui)"
    text = text_of(notice)
    assert "Pedang" in text and f"{mail_settings.public_base_url}/peristiwa/{event.id}" in text
    assert "Warga di bantaran sungai diminta mengungsi" in text
    [stop] = LINK.findall(text)
    assert "/peristiwa/langganan/berhenti/" in stop
    assert 'href="' + stop in notice.get_body(("html",)).get_content()

    # One click on the page ends it (no form token needed: the link is the credential), and a second is harmless.
    assert "button" in mail_client.get(path_of(stop)).text
    fresh = TestClient(mail_client.app)
    assert fresh.post(path_of(stop)).status_code == 200
    assert fresh.post(path_of(stop)).status_code == 200
    assert row_count(session, EventSubscription) == 0
    service.end_event(session, settings=mail_settings, event_id=event.id, note="Air surut.", **act(operator))
    session.commit()
    assert len(notices(session)) == 1


def test_a_notice_is_in_the_subscribers_language(session, settings, staff, mail_settings, deliver, mail_server):
    subscribe(session, settings, "english@example.id", locale="en")
    subscribe(session, settings, "indonesia@example.id", locale="id")
    service.raise_event(session, settings=settings, data=flood(), **act(staff("operator")))
    session.commit()
    assert deliver().sent == 4  # two confirmations, two notices
    by_address = {message["To"]: message for message in mail_server.messages if "Kelingi" in message["Subject"]}
    assert by_address["english@example.id"]["Subject"] == "[Standby] Banjir Sungai Kelingi (Active)"
    assert "Alert level: Standby" in text_of(by_address["english@example.id"])
    assert by_address["indonesia@example.id"]["Subject"] == "[Siaga] Banjir Sungai Kelingi (Aktif)"


# --- matching -------------------------------------------------------------------------------------------------------


def test_a_published_change_notifies_only_the_matching_subscriptions(session, settings, staff):
    subscribe(session, settings, "kabupaten@example.id")
    subscribe(session, settings, "kecamatan@example.id", region_codes=[KECAMATAN])
    subscribe(session, settings, "desa@example.id", region_codes=[DESA])
    subscribe(session, settings, "desa-sebelah@example.id", region_codes=[OTHER_DESA])
    subscribe(session, settings, "lain@example.id", region_codes=[OTHER_KECAMATAN])
    subscribe(session, settings, "banjir@example.id", categories=["banjir"])
    subscribe(session, settings, "jalan@example.id", categories=["jalan_ditutup"])
    subscribe(session, settings, "waspada@example.id", min_level="waspada")
    subscribe(session, settings, "awas@example.id", min_level="awas")
    operator = staff("operator")

    # A Siaga flood in one desa of Muara Beliti.
    event = service.raise_event(session, settings=settings, data=flood(), **act(operator))
    session.commit()
    assert {m.recipient for m in notices(session)} == {
        "kabupaten@example.id", "kecamatan@example.id", "desa@example.id", "banjir@example.id", "waspada@example.id",
    }  # fmt: skip

    # Raised to Awas: the next version reaches the Awas subscriber too, each subscriber once per version.
    service.update_event(
        session, settings=settings, event_id=event.id, **act(operator),
        data=service.EventInput(level="awas", given=frozenset({"level"})),
    )  # fmt: skip
    session.commit()
    assert len(notices(session)) == 5 + 6

    # A posyandu day (no level) for a whole kecamatan: the desa subscriber of that kecamatan hears of it, the
    # level subscribers do not (an event without a level is below every minimum).
    before = len(notices(session))
    service.raise_event(session, settings=settings, data=activity(region_codes=[KECAMATAN]), **act(operator))
    session.commit()
    assert {m.recipient for m in notices(session)[before:]} == {
        "kabupaten@example.id", "kecamatan@example.id", "desa@example.id", "desa-sebelah@example.id",
    }  # fmt: skip


def test_region_and_level_rules():
    assert subscriptions.region_matches([], codes=["16.05.09.2001", "16.05.09"], named=["16.05.09.2001"])
    assert subscriptions.region_matches(["16.05.09"], codes=["16.05.09.2001", "16.05.09"], named=["16.05.09.2001"])
    assert not subscriptions.region_matches(
        ["16.05.09.2002"], codes=["16.05.09.2001", "16.05.09"], named=["16.05.09.2001"]
    )
    assert subscriptions.region_matches(["16.05.09.2002"], codes=["16.05.09"], named=["16.05.09"])
    # 16.05.1 is not a parent of 16.05.10: codes nest by whole parts.
    assert not subscriptions.region_matches(["16.05.1"], codes=["16.05.10"], named=["16.05.10"])
    assert subscriptions.level_matches(None, None) and subscriptions.level_matches(None, "normal")
    assert not subscriptions.level_matches("normal", None)
    assert subscriptions.level_matches("siaga", "awas") and not subscriptions.level_matches("awas", "siaga")


def test_a_draft_notifies_nobody_until_it_is_approved(session, settings, staff):
    subscribe(session, settings, "warga@example.id")
    settings.events_require_approval = True
    draft = service.raise_event(session, settings=settings, data=flood(), **act(staff("operator")))
    session.commit()
    assert notices(session) == []
    service.approve_event(session, settings=settings, event_id=draft.id, **act(staff("operator2")))
    session.commit()
    assert [m.recipient for m in notices(session)] == ["warga@example.id"]


# --- webhooks -------------------------------------------------------------------------------------------------------


def test_a_webhook_subscription_gets_a_signed_post_with_the_public_view_only(
    client, session, mail_settings, staff, receiver, deliver
):
    endpoint = notifications.create_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=mail_settings, name="Radio BPBD", url=receiver.url, events=["report.*"]
    )
    session.commit()
    admin = bearer(new_api_token(session, staff("admin")))
    created = client.post(
        "/api/v1/events/subscriptions/webhooks",
        json={"webhook_endpoint_id": endpoint.id, "region_codes": [KECAMATAN], "min_level": "siaga"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["channel"] == "webhook" and created.json()["confirmed_at"]
    other = client.post(
        "/api/v1/events/subscriptions/webhooks",
        json={"webhook_endpoint_id": endpoint.id, "region_codes": [OTHER_KECAMATAN]},
        headers=admin,
    )
    assert other.status_code == 201

    event = service.raise_event(session, settings=mail_settings, data=flood(), **act(staff("operator")))
    session.commit()
    assert deliver().sent == 1
    [delivery] = receiver.requests
    headers = {key.lower(): value for key, value in delivery["headers"].items()}
    assert headers["x-kotacerdas-event"] == "event.published"
    assert webhooks.verify_signature(
        endpoint.secret, timestamp=headers["x-kotacerdas-timestamp"], body=delivery["body"],
        signature=headers["x-kotacerdas-signature"], now=time.time(),
    )  # fmt: skip
    document = json.loads(delivery["body"])
    data = document["data"]
    assert data["kind"] == "published" and data["subscription_id"] == created.json()["id"]
    assert data["event"]["id"] == event.id and data["event"]["level"]["value"] == "siaga"
    assert data["event"]["areas"][0]["code"] == DESA
    raw = delivery["body"].decode()
    assert "created_by" not in raw and "approved_by" not in raw and "agency" not in raw and "@" not in raw

    listed = client.get("/api/v1/events/subscriptions?channel=webhook", headers=admin)
    assert listed.status_code == 200 and len(listed.json()) == 2
    assert client.delete(f"/api/v1/events/subscriptions/{created.json()['id']}", headers=admin).status_code == 204
    assert row_count(session, EventSubscription) == 1


def test_webhook_subscriptions_need_notifications_manage(client, session, settings, staff):
    endpoint = notifications.create_webhook_endpoint(
        session, actor=TEST_ACTOR, settings=settings.model_copy(update={"webhook_allowed_hosts": ["hook.example.id"]}),
        name="X", url="https://hook.example.id/h", events=["*"],
    )  # fmt: skip
    session.commit()
    body = {"webhook_endpoint_id": endpoint.id}
    assert_problem(client.post("/api/v1/events/subscriptions/webhooks", json=body), 401)
    assert_problem(client.get("/api/v1/events/subscriptions"), 401)
    operator = bearer(new_api_token(session, staff("operator")))
    assert_problem(client.post("/api/v1/events/subscriptions/webhooks", json=body, headers=operator), 403)
    assert_problem(client.get("/api/v1/events/subscriptions", headers=operator), 403)
    assert_problem(client.delete("/api/v1/events/subscriptions/1", headers=operator), 403)
    admin = bearer(new_api_token(session, staff("admin")))
    missing = assert_problem(
        client.post("/api/v1/events/subscriptions/webhooks", json={"webhook_endpoint_id": 999}, headers=admin), 422
    )
    assert missing["errors"][0]["field"] == "webhook_endpoint_id"
    assert_problem(client.delete("/api/v1/events/subscriptions/999", headers=admin), 404)
    assert row_count(session, EventSubscription) == 0


# --- bad input and abuse --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "bukan email"}, "email"),
        ({"email": ""}, "email"),
        ({"email": "a@example.id", "region_codes": ["16.05.99"]}, "region_codes"),
        ({"email": "a@example.id", "region_codes": ["31.71.01"]}, "region_codes"),  # Jakarta: not this kabupaten
        ({"email": "a@example.id", "region_codes": ["16.05"]}, "region_codes"),  # the kabupaten itself: leave empty
        ({"email": "a@example.id", "region_codes": ["16.05.09\x00"]}, "region_codes"),
        ({"email": "a@example.id", "categories": ["gempa"]}, "categories"),
        ({"email": "a@example.id", "min_level": "bahaya"}, "min_level"),
        ({"email": "a\x00@example.id"}, "email"),
    ],
)
def test_bad_input_is_a_4xx_and_nothing_is_stored(client, session, seeded, body, field):
    problem = assert_problem(client.post("/api/v1/events/subscriptions", json=body), 422)
    assert problem["errors"][0]["field"].endswith(field)
    assert row_count(session, EventSubscription) == 0
    assert row_count(session, OutboxMessage) == 0


def test_the_form_shows_what_is_wrong_and_a_robot_stores_nothing(client, session, seeded):
    token = csrf_from(client, "/peristiwa/langganan")
    refused = client.post("/peristiwa/langganan", data={"csrf_token": token, "email": "bukan email"})
    assert refused.status_code == 422 and 'aria-invalid="true"' in refused.text
    robot = client.post(
        "/peristiwa/langganan", data={"csrf_token": token, "email": "a@example.id", "website": "http://spam"}
    )
    assert robot.status_code == 202
    assert client.post("/peristiwa/langganan", data={"email": "a@example.id"}).status_code == 403  # no CSRF token
    assert row_count(session, EventSubscription) == 0 and row_count(session, OutboxMessage) == 0


def test_one_address_gets_one_confirmation_per_window(client, session, settings, seeded):
    first = client.post("/api/v1/events/subscriptions", json={"email": "korban@example.id"})
    assert first.status_code == 202
    again = client.post("/api/v1/events/subscriptions", json={"email": "korban@example.id"})
    assert_problem(again, 429)
    assert again.headers["retry-after"] == "600"
    assert_problem(
        client.post("/api/v1/events/subscriptions", json={"email": "KORBAN@example.id", "categories": ["banjir"]}), 429
    )
    assert row_count(session, OutboxMessage) == 1
    # After the window, asking again replaces the unconfirmed request instead of adding to it.
    later = utcnow() + subscriptions.CONFIRM_WINDOW + timedelta(seconds=1)
    subscriptions.subscribe_email(session, settings=settings, email="korban@example.id", now=later)
    session.commit()
    assert row_count(session, EventSubscription) == 1 and row_count(session, OutboxMessage) == 2
    with pytest.raises(RateLimited):
        subscriptions.subscribe_email(session, settings=settings, email="korban@example.id", now=later)


def test_an_address_already_subscribed_gets_the_same_answer_and_no_email(client, session, settings, seeded):
    subscribe(session, settings, "warga@example.id", region_codes=[KECAMATAN])
    sent = row_count(session, OutboxMessage)
    again = client.post("/api/v1/events/subscriptions", json={"email": "warga@example.id", "region_codes": [KECAMATAN]})
    assert again.status_code == 202
    assert row_count(session, OutboxMessage) == sent and row_count(session, EventSubscription) == 1


def test_links_this_server_did_not_make_are_refused(client, session, settings, seeded):
    assert client.get("/peristiwa/langganan/konfirmasi/palsu").status_code == 404
    assert client.get("/peristiwa/langganan/berhenti/palsu").status_code == 404
    assert client.post("/peristiwa/langganan/berhenti/palsu").status_code == 404
    subscription = subscribe(session, settings, "warga@example.id")
    stop = path_of(subscriptions.unsubscribe_url(settings, subscription)).rsplit("/", 1)[1]
    # A confirmation link does not unsubscribe, nor the other way round.
    with pytest.raises(NotFound):
        subscriptions.confirm_subscription(session, settings=settings, token=stop)
    assert row_count(session, EventSubscription) == 1


def test_the_service_refuses_a_bad_filter_before_storing(session, settings, seeded):
    with pytest.raises(InvalidInput):
        subscriptions.subscribe_email(session, settings=settings, email="a@example.id", region_codes=["16.05.09.9999"])
    session.rollback()
    assert row_count(session, EventSubscription) == 0
