"""Every domain's tables, imported in one place so that the metadata (and Alembic) sees them all."""

from kotacerdas.accounts.models import ApiToken, AuditEntry, LoginAttempt, User, UserSession
from kotacerdas.agencies.models import Agency
from kotacerdas.assets.models import (
    Asset,
    AssetConditionProposal,
    AssetExternalId,
    AssetInspection,
    AssetPhoto,
    AssetType,
)
from kotacerdas.db import Base
from kotacerdas.events.models import (
    Event,
    EventArea,
    EventLink,
    EventSubscription,
    EventSuggestion,
    EventUpdate,
)
from kotacerdas.notifications.models import OutboxMessage, WebhookEndpoint
from kotacerdas.regions.models import Region
from kotacerdas.reports.models import (
    Report,
    ReportCategory,
    ReportFollower,
    ReportPhoto,
    ReportUpdate,
    ResponseTemplate,
)
from kotacerdas.sensors.models import (
    Datastream,
    DeadLetter,
    FeatureOfInterest,
    HistoricalLocation,
    HistoricalLocationLocation,
    Location,
    ObservedProperty,
    Sensor,
    Thing,
    ThingLocation,
)

__all__ = [
    "Agency",
    "ApiToken",
    "Asset",
    "AssetConditionProposal",
    "AssetExternalId",
    "AssetInspection",
    "AssetPhoto",
    "AssetType",
    "AuditEntry",
    "Base",
    "Datastream",
    "DeadLetter",
    "Event",
    "EventArea",
    "EventLink",
    "EventSubscription",
    "EventSuggestion",
    "EventUpdate",
    "FeatureOfInterest",
    "HistoricalLocation",
    "HistoricalLocationLocation",
    "Location",
    "LoginAttempt",
    "ObservedProperty",
    "OutboxMessage",
    "Region",
    "Report",
    "ReportCategory",
    "ReportFollower",
    "ReportPhoto",
    "ReportUpdate",
    "ResponseTemplate",
    "Sensor",
    "Thing",
    "ThingLocation",
    "User",
    "UserSession",
    "WebhookEndpoint",
]
