"""OPD registry. Services flush; the caller commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from kotacerdas.agencies.models import Agency
from kotacerdas.errors import NotFound
from kotacerdas.i18n import _


def get_agency(session: Session, *, agency_id: int) -> Agency:
    """The OPD with this id, or NotFound."""
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise NotFound(_("OPD not found."))
    return agency
