"""Fixtures of the accounts tests."""

from __future__ import annotations

import pytest

from conftest import TEST_ACTOR
from kotacerdas.agencies import service as agencies


@pytest.fixture
def agency(session):
    """An OPD for accounts that need one (agency administrators and staff)."""
    agency = agencies.create_agency(session, actor=TEST_ACTOR, name="Dinas PUPR", short_name="Dinas PUPR", kind="dinas")
    session.commit()
    return agency
