"""Background work of the reports domain, run by the worker (`kotacerdas worker` or inside `serve`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from kotacerdas.config import Settings
from kotacerdas.reports import service


def flag_breaches(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Flag and escalate missed deadlines, in short transactions of at most 500 reports each."""
    flagged = 0
    while True:
        with session_factory() as session:
            session.connection(execution_options={"kotacerdas_write": True})
            count = service.flag_breaches(session, settings=settings, now=now, limit=500)
            session.commit()
        flagged += count
        if count < 500:
            return flagged
