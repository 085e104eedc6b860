"""Fixtures of the regions tests: English messages and the real Musi Rawas boundaries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import BOUNDARIES_FILE
from kotacerdas.accounts import service as accounts
from kotacerdas.i18n import reset_locale, set_locale
from kotacerdas.regions import service as regions

ACTOR = accounts.Actor.system("test")


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """Service messages in English, so assertions do not depend on the Indonesian catalogue."""
    token = set_locale("en")
    yield
    reset_locale(token)


@pytest.fixture(scope="session")
def boundaries_bytes() -> bytes:
    """The real Musi Rawas boundaries (214 features); tests that need them skip when the file is absent."""
    if not BOUNDARIES_FILE.is_file():
        pytest.skip(f"reference boundaries not found at {BOUNDARIES_FILE}")
    return BOUNDARIES_FILE.read_bytes()


@pytest.fixture
def seeded(session, settings) -> None:
    """The built-in regions seeded and committed, without boundaries."""
    regions.seed_builtin_regions(session, settings=settings)
    session.commit()


@pytest.fixture
def imported(session, settings, boundaries_bytes):
    """Built-in regions seeded and the real boundaries imported and committed."""
    regions.seed_builtin_regions(session, settings=settings)
    regions.import_boundaries(session, settings=settings, data=boundaries_bytes, actor=ACTOR)
    session.commit()
