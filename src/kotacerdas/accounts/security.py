"""Password hashing, random tokens and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


@cache
def _hasher() -> PasswordHash:
    return PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    """An Argon2id hash of `password`."""
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """True when `password` matches `password_hash`."""
    try:
        return _hasher().verify(password, password_hash)
    except Exception:  # a malformed stored hash is a failed login, not a crash
        return False


# Compared against when the username does not exist, so that timing does not reveal which usernames exist.
_DUMMY_HASH: str | None = None


def burn_password_check(password: str) -> None:
    """Spend the time a real password check takes."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    verify_password(password, _DUMMY_HASH)


def new_token(prefix: str = "") -> str:
    """A random URL-safe token, optionally with a readable prefix (e.g. `kc_` for API tokens)."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a session or API token (SHA-256; tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(secret_key: str, seed: str) -> str:
    """The CSRF token bound to `seed` (a login session's hash or the anonymous CSRF cookie)."""
    return hmac.new(secret_key.encode(), f"csrf:{seed}".encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret_key: str, seed: str, presented: str | None) -> bool:
    """True when `presented` is the CSRF token for `seed`."""
    return bool(presented) and hmac.compare_digest(csrf_token(secret_key, seed), presented)
