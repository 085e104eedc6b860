"""Users, logins, API tokens and the audit log. Services flush; the caller commits."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kotacerdas.accounts.enums import Permission, Role, role_has
from kotacerdas.accounts.models import ApiToken, AuditEntry, LoginAttempt, User, UserSession
from kotacerdas.accounts.security import (
    burn_password_check,
    hash_password,
    new_token,
    token_hash,
    verify_password,
)
from kotacerdas.config import Settings
from kotacerdas.db import insert_row, utcnow
from kotacerdas.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, PermissionDenied, RateLimited
from kotacerdas.i18n import _
from kotacerdas.pagination import Paged, PageRequest, paginate

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
FULL_NAME_MAX = 200
EMAIL_MAX = 200
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")
# Sliding sessions are extended at most this often, so that reading pages does not write on every request.
SESSION_TOUCH_INTERVAL = timedelta(minutes=5)
TOKEN_TOUCH_INTERVAL = timedelta(hours=1)


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a user, or a named system part such as `cli` or `demo`."""

    user_id: int | None
    label: str
    ip: str | None = None

    @classmethod
    def system(cls, label: str) -> Actor:
        return cls(user_id=None, label=label)

    @classmethod
    def of(cls, user: User, ip: str | None = None) -> Actor:
        return cls(user_id=user.id, label=user.username, ip=ip)


class Unset(enum.Enum):
    """The value of an update argument that was not given, so that None can mean "clear this field"."""

    UNSET = "unset"


UNSET = Unset.UNSET
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def clean_text(
    value: str | None, *, field: str, label: str, max_length: int, required: bool = False, multiline: bool = False
) -> str | None:
    """`value` stripped, or None when empty; InvalidInput naming `label` when it is required or too long.

    `multiline` allows line breaks and tabs (a description, a note); other control characters are always refused."""
    value = (value or "").strip()
    if not value:
        if required:
            raise InvalidInput(
                _("%(field)s is required.") % {"field": label}, errors=[{"field": field, "reason": "required"}]
            )
        return None
    if len(value) > max_length:
        raise InvalidInput(
            _("%(field)s is too long: at most %(max)d characters.") % {"field": label, "max": max_length},
            errors=[{"field": field, "reason": "too_long"}],
        )
    # Control characters are never meant in a name or an address, and PostgreSQL refuses NUL in text outright.
    allowed = "\n\r\t" if multiline else ""
    if any(unicodedata.category(char) == "Cc" and char not in allowed for char in value):
        raise InvalidInput(
            _("%(field)s contains characters that are not allowed.") % {"field": label},
            errors=[{"field": field, "reason": "control_character"}],
        )
    return value


def search_text(value: str | None) -> str | None:
    """A filter value from a query string without NUL (PostgreSQL refuses it in text), or None when empty."""
    value = (value or "").replace("\x00", "").strip()
    return value or None


def clean_email(value: str | None, *, field: str = "email") -> str | None:
    """An email address stripped, or None when empty; InvalidInput when it does not look like one."""
    value = clean_text(value, field=field, label=_("Email"), max_length=EMAIL_MAX)
    if value is not None and not _EMAIL_SHAPE.match(value):
        raise InvalidInput(_("The email address does not look right."), errors=[{"field": field, "reason": "format"}])
    return value


# --- audit -----------------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def snapshot(obj: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The column values of a model instance as a JSON-safe dict, for the audit log."""
    return {
        column.key: _json_safe(getattr(obj, column.key))
        for column in sa.inspect(obj).mapper.column_attrs
        if column.key not in exclude
    }


def record_change(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    flush: bool = True,
) -> AuditEntry:
    """Write one audit entry in the caller's transaction, so it commits or rolls back with the change.

    The entry is a plain INSERT (`db.insert_row`); the caller's pending changes are flushed first unless
    `flush=False` (a hot path that has none saves the unit of work's round)."""
    if before is not None and after is not None:
        changed = {key for key in after if before.get(key) != after.get(key)}
        before = {key: before.get(key) for key in changed}
        after = {key: after[key] for key in changed}
    if flush:
        session.flush()
    return insert_row(
        session,
        AuditEntry,
        actor_id=actor.user_id,
        actor_label=actor.label,
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        before=before,
        after=after,
        ip=actor.ip,
    )


def list_audit(
    session: Session,
    *,
    page: PageRequest,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor_id: int | None = None,
    action: str | None = None,
) -> Paged[AuditEntry]:
    """Audit entries, newest first, optionally filtered."""
    statement = sa.select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    entity_type, entity_id, action = search_text(entity_type), search_text(entity_id), search_text(action)
    if entity_type:
        statement = statement.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        statement = statement.where(AuditEntry.entity_id == entity_id)
    if actor_id:
        statement = statement.where(AuditEntry.actor_id == actor_id)
    if action:
        statement = statement.where(AuditEntry.action == action)
    return paginate(session, statement, page)


# --- users -----------------------------------------------------------------------------------------------------

_USER_AUDIT_EXCLUDE = ("password_hash",)


def _check_username(username: str) -> str:
    username = username.strip().lower()
    if not 3 <= len(username) <= 64 or not set(username) <= USERNAME_CHARS:
        raise InvalidInput(
            _("A username has 3 to 64 characters: lowercase letters, digits, dot, dash or underscore."),
            errors=[{"field": "username", "reason": "format"}],
        )
    return username


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            _("The password must have at least 8 characters."), errors=[{"field": "password", "reason": "too_short"}]
        )
    # Hashing time grows with the length: a megabyte "password" is an attack, not a password.
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            _("The password is too long: at most 256 characters."),
            errors=[{"field": "password", "reason": "too_long"}],
        )


def _parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(_("Unknown role."), errors=[{"field": "role", "reason": "unknown"}]) from None


def _check_role(session: Session, role: str, agency_id: int | None) -> Role:
    from kotacerdas.agencies import service as agencies_service

    parsed = _parse_role(role)
    if parsed.needs_agency and agency_id is None:
        raise InvalidInput(_("OPD roles need an OPD."), errors=[{"field": "agency_id", "reason": "required"}])
    if agency_id is not None:
        try:
            agencies_service.get_agency(session, agency_id=agency_id)
        except NotFound:
            # A wrong id inside the body is bad input, not a missing resource.
            raise InvalidInput(
                _("That OPD does not exist."), errors=[{"field": "agency_id", "reason": "not_found"}]
            ) from None
    return parsed


def _active_admins(session: Session) -> int:
    return (
        session.scalar(
            sa.select(sa.func.count()).select_from(User).where(User.role == Role.ADMIN.value, User.active.is_(True))
        )
        or 0
    )


def like_pattern(text: str) -> str:
    """A `%text%` LIKE pattern in which the user's own % and _ match literally (escape character backslash)."""
    escaped = (search_text(text) or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def get_user(session: Session, *, user_id: int) -> User:
    """The user with this id, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(_("User not found."))
    return user


def get_user_by_username(session: Session, *, username: str) -> User | None:
    """The user with this username, or None."""
    return session.scalar(sa.select(User).where(User.username == username.strip().lower()))


def list_users(
    session: Session,
    *,
    page: PageRequest,
    agency_id: int | None = None,
    role: str | None = None,
    active: bool | None = None,
    q: str | None = None,
) -> Paged[User]:
    """Users ordered by username, optionally of one OPD or role, active or not, or matching `q`."""
    statement = sa.select(User).order_by(User.username)
    if agency_id is not None:
        statement = statement.where(User.agency_id == agency_id)
    if role := search_text(role):
        statement = statement.where(User.role == role)
    if active is not None:
        statement = statement.where(User.active.is_(active))
    if q and q.strip():
        pattern = like_pattern(q)
        statement = statement.where(
            sa.or_(User.username.ilike(pattern, escape="\\"), User.full_name.ilike(pattern, escape="\\"))
        )
    return paginate(session, statement, page)


def create_user(
    session: Session,
    *,
    actor: Actor,
    username: str,
    full_name: str,
    password: str,
    role: str,
    agency_id: int | None = None,
    email: str | None = None,
) -> User:
    """Create a staff account."""
    username = _check_username(username)
    full_name = clean_text(full_name, field="full_name", label=_("Full name"), max_length=FULL_NAME_MAX, required=True)
    email = clean_email(email)
    _check_password(password)
    _check_role(session, role, agency_id)
    if get_user_by_username(session, username=username) is not None:
        raise Conflict(_("That username is already taken."), errors=[{"field": "username", "reason": "taken"}])
    user = User(
        username=username,
        full_name=full_name,
        password_hash=hash_password(password),
        role=role,
        agency_id=agency_id,
        email=email,
        active=True,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        # The same username saved by someone else at the same moment: the unique index decides.
        raise Conflict(
            _("That username is already taken."), errors=[{"field": "username", "reason": "taken"}]
        ) from None
    record_change(
        session,
        actor=actor,
        action="user.create",
        entity_type="user",
        entity_id=user.id,
        after=snapshot(user, exclude=_USER_AUDIT_EXCLUDE),
    )
    return user


def update_user(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    full_name: str | Unset = UNSET,
    email: str | None | Unset = UNSET,
    role: str | Unset = UNSET,
    agency_id: int | None | Unset = UNSET,
    active: bool | Unset = UNSET,
    password: str | Unset = UNSET,
) -> User:
    """Change a staff account; only the given fields change (None clears `email` or `agency_id`).

    A new role without an OPD drops the OPD unless `agency_id` is given too. The last active administrator can
    be neither demoted nor deactivated, so that nobody is locked out of the console.
    """
    user = get_user(session, user_id=user_id)
    # Check everything before touching the object, so that a refusal leaves nothing half changed.
    new_full_name = user.full_name
    if full_name is not UNSET:
        new_full_name = clean_text(
            full_name, field="full_name", label=_("Full name"), max_length=FULL_NAME_MAX, required=True
        )
    new_email = user.email if email is UNSET else clean_email(email)
    new_role = user.role if role is UNSET else _parse_role(role).value
    new_agency = user.agency_id if agency_id is UNSET else agency_id
    if role is not UNSET and agency_id is UNSET and not Role(new_role).needs_agency:
        new_agency = None
    if role is not UNSET or agency_id is not UNSET:
        _check_role(session, new_role, new_agency)
    if active is None:
        raise InvalidInput(_("Say whether the account is active."), errors=[{"field": "active", "reason": "required"}])
    new_active = user.active if active is UNSET else bool(active)
    if password is not UNSET:
        _check_password(password or "")
    was_admin = user.role == Role.ADMIN.value and user.active
    if was_admin and (new_role != Role.ADMIN.value or not new_active) and _active_admins(session) <= 1:
        raise Conflict(
            _("This is the last active administrator; make another administrator first."),
            errors=[{"field": "role" if new_role != Role.ADMIN.value else "active", "reason": "last_admin"}],
        )

    before = snapshot(user, exclude=_USER_AUDIT_EXCLUDE)
    user.full_name, user.email, user.role, user.agency_id, user.active = (
        new_full_name,
        new_email,
        new_role,
        new_agency,
        new_active,
    )
    if password is not UNSET:
        user.password_hash = hash_password(password)
    if not new_active or password is not UNSET:
        end_all_sessions(session, user_id=user.id)
    session.flush()
    after = snapshot(user, exclude=_USER_AUDIT_EXCLUDE)
    if password is not UNSET:
        # Say that the password changed without putting any form of it in the log.
        before["password"], after["password"] = None, "changed"
    if before != after:
        record_change(
            session,
            actor=actor,
            action="user.update",
            entity_type="user",
            entity_id=user.id,
            before=before,
            after=after,
        )
    return user


def user_can(user: User, permission: Permission) -> bool:
    """True when the user's role grants `permission`."""
    return user.active and role_has(user.role, permission)


def require_permission(user: User, permission: Permission) -> None:
    """Raise PermissionDenied unless the user's role grants `permission`."""
    if not user_can(user, permission):
        raise PermissionDenied(_("You do not have permission to do this."))


# --- login sessions --------------------------------------------------------------------------------------------


def _recent_failures(session: Session, *, column: Any, value: str, since: datetime) -> int:
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(LoginAttempt)
            .where(column == value, LoginAttempt.at >= since, LoginAttempt.succeeded.is_(False))
        )
        or 0
    )


def login(
    session: Session, *, settings: Settings, username: str, password: str, ip: str, user_agent: str | None = None
) -> tuple[User, str] | None:
    """Check a password and open a login session; returns (user, cookie token), or None when it is wrong.

    A wrong password is returned, not raised, so that the caller commits the failed attempt that the rate
    limit counts. Too many recent failures for the username or the address raise RateLimited.
    """
    username = username.replace("\x00", "").strip().lower()[:64]
    user_agent = (user_agent or "").replace("\x00", "")
    since = utcnow() - timedelta(minutes=settings.login_window_minutes)
    # An address gets more tries than one username, since an office shares one public address.
    if (
        _recent_failures(session, column=LoginAttempt.username, value=username, since=since)
        >= settings.login_max_failures
        or _recent_failures(session, column=LoginAttempt.ip, value=ip, since=since) >= settings.login_max_failures * 4
    ):
        raise RateLimited(
            _("Too many failed logins. Try again in a few minutes."),
            headers={"Retry-After": str(settings.login_window_minutes * 60)},
        )
    user = get_user_by_username(session, username=username)
    if user is None:
        burn_password_check(password)
    ok = user is not None and user.active and verify_password(password, user.password_hash)
    session.add(LoginAttempt(username=username, ip=ip, succeeded=ok))
    if not ok:
        session.flush()
        return None
    token = new_token()
    now = utcnow()
    session.add(
        UserSession(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=settings.session_hours),
            ip=ip,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    user.last_login_at = now
    session.flush()
    record_change(session, actor=Actor.of(user, ip), action="user.login", entity_type="user", entity_id=user.id)
    return user, token


def get_session_user(session: Session, *, token: str) -> tuple[User, UserSession]:
    """The user behind a session cookie; NotAuthenticated when it is unknown, revoked or expired. Reads only."""
    row = session.scalar(sa.select(UserSession).where(UserSession.token_hash == token_hash(token)))
    now = utcnow()
    if row is None or row.revoked_at is not None:
        raise NotAuthenticated(_("Please log in."))
    if row.expires_at <= now:
        raise NotAuthenticated(_("Your session has expired. Please log in again."))
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise NotAuthenticated(_("Please log in."))
    return user, row


def session_touch_due(login_session: UserSession) -> bool:
    """True when a sliding login session should be extended (at most every few minutes)."""
    return utcnow() - login_session.last_seen_at >= SESSION_TOUCH_INTERVAL


def touch_session(session: Session, *, settings: Settings, session_id: int) -> None:
    """Extend a login session that is in use."""
    now = utcnow()
    session.execute(
        sa.update(UserSession)
        .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
        .values(last_seen_at=now, expires_at=now + timedelta(hours=settings.session_hours))
    )


def logout(session: Session, *, token: str, ip: str | None = None) -> None:
    """End the login session of this cookie token."""
    row = session.scalar(sa.select(UserSession).where(UserSession.token_hash == token_hash(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        user = session.get(User, row.user_id)
        session.flush()
        if user is not None:
            record_change(
                session, actor=Actor.of(user, ip), action="user.logout", entity_type="user", entity_id=user.id
            )


def end_all_sessions(session: Session, *, user_id: int) -> None:
    """Revoke every open login session of a user (on deactivation or a password change)."""
    session.execute(
        sa.update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


# --- API tokens ------------------------------------------------------------------------------------------------

API_TOKEN_PREFIX = "kc_"


def create_api_token(session: Session, *, actor: Actor, user_id: int, name: str) -> tuple[ApiToken, str]:
    """Create an API token for a user; the plain token is returned once and never stored."""
    user = get_user(session, user_id=user_id)
    name = clean_text(name, field="name", label=_("Name"), max_length=100, required=True)
    plain = new_token(API_TOKEN_PREFIX)
    token = ApiToken(
        user_id=user.id, name=name, prefix=plain[: len(API_TOKEN_PREFIX) + 6], token_hash=token_hash(plain)
    )
    session.add(token)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="api_token.create",
        entity_type="api_token",
        entity_id=token.id,
        after=snapshot(token, exclude=("token_hash",)),
    )
    return token, plain


def list_api_tokens(session: Session, *, user_id: int | None = None) -> list[ApiToken]:
    """API tokens, newest first; of one user when `user_id` is given."""
    statement = sa.select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if user_id is not None:
        statement = statement.where(ApiToken.user_id == user_id)
    return list(session.scalars(statement))


def revoke_api_token(session: Session, *, actor: Actor, token_id: int, owner_id: int | None = None) -> ApiToken:
    """Revoke an API token; with `owner_id`, only that user's own token."""
    token = session.get(ApiToken, token_id)
    if token is None or (owner_id is not None and token.user_id != owner_id):
        raise NotFound(_("API token not found."))
    if token.revoked_at is None:
        before = snapshot(token, exclude=("token_hash",))
        token.revoked_at = utcnow()
        session.flush()
        record_change(
            session,
            actor=actor,
            action="api_token.revoke",
            entity_type="api_token",
            entity_id=token.id,
            before=before,
            after=snapshot(token, exclude=("token_hash",)),
        )
    return token


def get_token_user(session: Session, *, token: str) -> tuple[User, ApiToken]:
    """The user and token row behind a Bearer token; NotAuthenticated when unknown, revoked or expired. Reads only."""
    row = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    now = utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise NotAuthenticated(_("The API token is invalid or revoked."))
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise NotAuthenticated(_("The API token is invalid or revoked."))
    return user, row


def token_use_due(api_token: ApiToken) -> bool:
    """True when a token's last use should be recorded: once an hour is enough to see which tokens live."""
    return api_token.last_used_at is None or utcnow() - api_token.last_used_at >= TOKEN_TOUCH_INTERVAL


def touch_api_token(session: Session, *, token_id: int) -> None:
    """Record that an API token was used."""
    session.execute(sa.update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))
