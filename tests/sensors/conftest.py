"""Fixtures of the sensors tests: the regions and OPDs seeded, staff users by name and their API tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conftest import TEST_ACTOR, bearer, new_api_token, users_by_name
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service as agencies
from kotacerdas.regions import service as regions


@pytest.fixture
def seeded(session, settings) -> None:
    regions.seed_builtin_regions(session, settings=settings)
    agencies.seed_default_agencies(session, settings=settings, actor=TEST_ACTOR)
    session.commit()


@pytest.fixture
def staff(seeded, session, make_user) -> Callable[[str], User]:
    """Users by name: admin, pimpinan, pupr_staff, dlh_staff."""
    roles = {
        "admin": ("admin", None),
        "pimpinan": ("pimpinan", None),
        "pupr_staff": ("opd_staff", "Dinas PUPR"),
        "dlh_staff": ("opd_staff", "DLH"),
    }
    return users_by_name(session, make_user, roles)


@pytest.fixture
def tokens(staff, session) -> Callable[[str], dict[str, str]]:
    """Bearer headers by user name."""
    cache: dict[str, dict[str, str]] = {}

    def get(name: str) -> dict[str, str]:
        if name not in cache:
            cache[name] = bearer(new_api_token(session, staff(name)))
        return cache[name]

    return get
