"""Domain errors. Services raise these; the app turns them into RFC 9457 problem+json or an HTML page."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request that cannot be carried out, with a message already in the user's language."""

    status_code = 400
    slug = "bad-request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


class InvalidInput(DomainError):
    """The input is well-formed but wrong (a value out of range, a code that does not exist)."""

    status_code = 422
    slug = "invalid-input"


class NotFound(DomainError):
    """The thing asked for does not exist."""

    status_code = 404
    slug = "not-found"


class Conflict(DomainError):
    """The change collides with what is stored (a duplicate name, a stale state)."""

    status_code = 409
    slug = "conflict"


class PayloadTooLarge(DomainError):
    """The request body is larger than this endpoint accepts."""

    status_code = 413
    slug = "payload-too-large"


class NotAuthenticated(DomainError):
    """No valid login or token."""

    status_code = 401
    slug = "not-authenticated"


class PermissionDenied(DomainError):
    """Logged in, but not allowed to do this."""

    status_code = 403
    slug = "forbidden"


class CsrfFailed(PermissionDenied):
    """A form arrived without the token of the page that showed it."""

    slug = "csrf-failed"


class RateLimited(DomainError):
    """Too many attempts; try again later."""

    status_code = 429
    slug = "too-many-requests"


class Busy(DomainError):
    """The database stayed busy with other writers for longer than the configured wait; try again shortly."""

    status_code = 503
    slug = "busy"
