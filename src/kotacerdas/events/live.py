"""The live stream of event changes (placeholder until the live-stream work lands: announce does nothing yet)."""

from __future__ import annotations

from sqlalchemy.orm import Session


def announce(session: Session, *, event_id: int, version: int, kind: str, status: str) -> None:
    """Queue a published change of an event for the live stream, delivered when the transaction commits."""
