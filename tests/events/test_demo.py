"""The demo's events: believable Musi Rawas events, published once, with a warning still going on."""

from __future__ import annotations

from conftest import TEST_ACTOR
from kotacerdas.accounts import service as accounts
from kotacerdas.events import service
from kotacerdas.events.demo import DEMO_EVENTS, seed_demo_events


def test_the_demo_publishes_its_events_once(seeded, session, settings):
    accounts.create_user(
        session, actor=TEST_ACTOR, username="operator", full_name="Operator", password="rahasia-uji-123",
        role="operator", agency_id=None,
    )  # fmt: skip
    assert seed_demo_events(session, settings=settings) == len(DEMO_EVENTS)
    session.commit()
    assert seed_demo_events(session, settings=settings) == 0

    events = service.list_public_events(session)
    ongoing = service.list_public_events(session, filters=service.EventFilters(ongoing_only=True))
    assert len(events) == len(DEMO_EVENTS) and len(ongoing) == len(DEMO_EVENTS) - 1
    assert ongoing[0].category == "banjir" and ongoing[0].level == "siaga"
    road = next(event for event in events if event.category == "jalan_ditutup")
    assert service.named_region_codes(session, event_id=road.id) == ["16.05.03.2012"]  # Desa Mandi Aur
