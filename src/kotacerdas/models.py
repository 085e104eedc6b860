"""Every domain's tables, imported in one place so that the metadata (and Alembic) sees them all."""

from kotacerdas.accounts.models import ApiToken, AuditEntry, LoginAttempt, User, UserSession
from kotacerdas.agencies.models import Agency
from kotacerdas.db import Base
from kotacerdas.regions.models import Region

__all__ = ["Agency", "ApiToken", "AuditEntry", "Base", "LoginAttempt", "Region", "User", "UserSession"]
