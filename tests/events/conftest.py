"""Fixtures of the events tests: regions and OPDs seeded; staff by role; an event factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import TEST_ACTOR, users_by_name
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service as agencies
from kotacerdas.events import service
from kotacerdas.events.models import Event
from kotacerdas.regions import service as regions
from kotacerdas.reports import service as reports

from .helpers import act, flood


@pytest.fixture
def seeded(session, settings) -> None:
    """Built-in regions, the default OPDs and report categories, committed."""
    regions.seed_builtin_regions(session, settings=settings)
    agencies.seed_default_agencies(session, settings=settings, actor=TEST_ACTOR)
    reports.seed_default_categories(session, actor=TEST_ACTOR)
    session.commit()


@pytest.fixture
def staff(seeded, session, make_user) -> Callable[[str], User]:
    """Staff users by name (created on first use): admin, operator, operator2 (another operator), pimpinan,
    pupr_staff."""
    roles = {
        "admin": ("admin", None),
        "operator": ("operator", None),
        "operator2": ("operator", None),
        "pimpinan": ("pimpinan", None),
        "pupr_staff": ("opd_staff", "Dinas PUPR"),
    }
    return users_by_name(session, make_user, roles)


@pytest.fixture
def make_event(session, settings, staff) -> Callable[..., Event]:
    """Publish an event as the operator (a flood warning unless `data` is given) and commit it."""

    def make(data: Any = None, **overrides: Any) -> Event:
        event = service.raise_event(
            session, settings=settings, data=data or flood(**overrides), **act(staff("operator"))
        )
        session.commit()
        return event

    return make
