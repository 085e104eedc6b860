"""Request dependencies as Annotated aliases: settings, the database session, the current user, permissions."""

# No `from __future__ import annotations` here: FastAPI reads these functions' signatures for every route that
# depends on them (about 2,000 times at start-up), and string annotations would be evaluated again each time.

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.accounts.security import csrf_matches, csrf_token
from kotacerdas.config import Settings
from kotacerdas.db import HOLDING_WRITER_QUEUE, LATE_WRITES, REQUEST_CONNECTIONS, WriterQueue, writer_queue
from kotacerdas.errors import Busy, CsrfFailed, NotAuthenticated
from kotacerdas.i18n import _

log = logging.getLogger("kotacerdas")
SESSION_COOKIE = "kc_session"
CSRF_COOKIE = "kc_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass
class _Gates:
    """Where one app's requests wait for their database turn: on the event loop, holding no thread. A request that
    waited in a pool thread held that thread while the request it waited for needed one for its next step; with
    more requests at once than threads (anyio's 40), every thread waited and nothing moved until a timeout
    (tests/test_app.py: 60 writers at once)."""

    # SQLite's writer queue: this app's write requests pass one at a time, in order; the one whose turn it is takes
    # the queue at once when it is free (no thread), else waits for it in a thread (a job or another process has it).
    writers: anyio.CapacityLimiter
    # Pooled connections: a request holds one from its first query to its end (db.REQUEST_CONNECTIONS).
    connections: anyio.CapacityLimiter
    # Commits and rollbacks have threads of their own, so that a request holding a connection can always end.
    finish: anyio.CapacityLimiter


def _gates(request: Request) -> _Gates:
    # Made in the event loop that serves the app (limiters wait on that loop's futures); tests start a loop per client.
    loop = asyncio.get_running_loop()
    held = getattr(request.app.state, "transaction_gates", None)
    if held is None or held[0] is not loop:
        gates = _Gates(anyio.CapacityLimiter(1), anyio.CapacityLimiter(REQUEST_CONNECTIONS), anyio.CapacityLimiter(16))
        held = request.app.state.transaction_gates = (loop, gates)
    return held[1]


def _take_writer_queue(writers: WriterQueue) -> None:
    try:
        writers.acquire()
    except sqlite3.OperationalError:
        raise Busy(_("The server is busy. Please try again in a moment."), headers={"Retry-After": "5"}) from None


def _roll_back(request: Request, session: Session) -> None:
    # The error page still shows who is logged in: keep the user's loaded values out of the rollback's expiry.
    user = request.state._state.get("current_user")
    if user is not None and user in session:
        session.expunge(user)
    session.rollback()


def _end(request: Request, session: Session, *, commit: bool) -> None:
    try:
        if not commit:
            _roll_back(request, session)
            return
        try:
            session.commit()
        except BaseException:
            _roll_back(request, session)
            raise
        _run_housekeeping(request, session)
    finally:
        session.close()


async def _in_thread(limiter: anyio.CapacityLimiter, call: Callable[[], None]) -> None:
    # Shielded: a request cancelled (its client gone) still ends its transaction and gives back what it holds.
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(call, limiter=limiter)


async def _take_writers_turn(gates: _Gates, writers: WriterQueue, holder: object) -> None:
    await gates.writers.acquire_on_behalf_of(holder)
    try:
        if not writers.try_acquire():
            await anyio.to_thread.run_sync(_take_writer_queue, writers, limiter=gates.finish)
    except BaseException:
        gates.writers.release_on_behalf_of(holder)
        raise


def _give_writers_turn(gates: _Gates, writers: WriterQueue, holder: object) -> None:
    try:
        writers.release()
    finally:
        gates.writers.release_on_behalf_of(holder)


@asynccontextmanager
async def _request_session(request: Request, *, late_writes: bool) -> AsyncIterator[Session]:
    gates = _gates(request)
    queue = writer_queue(request.app.state.engine) if request.method not in SAFE_METHODS else None
    # A late writer takes the queue itself, in its thread, at db.begin_writes.
    writers = None if late_writes else queue
    holder = object()
    with anyio.CancelScope(shield=True):
        if writers is not None:
            await _take_writers_turn(gates, writers, holder)
        try:
            await gates.connections.acquire_on_behalf_of(holder)
        except BaseException:
            if writers is not None:
                _give_writers_turn(gates, writers, holder)
            raise
    holding = HOLDING_WRITER_QUEUE.set(True) if writers is not None else None
    try:
        session = request.app.state.sessionmaker()
        if late_writes and queue is not None:
            session.info[LATE_WRITES] = True
        try:
            yield session
        except BaseException:
            await _in_thread(gates.finish, partial(_end, request, session, commit=False))
            raise
        await _in_thread(gates.finish, partial(_end, request, session, commit=True))
    finally:
        if holding is not None:
            HOLDING_WRITER_QUEUE.reset(holding)
            _give_writers_turn(gates, writers, holder)
        gates.connections.release_on_behalf_of(holder)


LATE_WRITES_ATTRIBUTE = "kotacerdas_writes_late"


def writes_late(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an endpoint that reads and checks at length before it writes (a citizen's submission): on SQLite its
    request takes the writer queue only when the service calls `db.begin_writes`, so that the app's other processes
    write while this one validates. The service must call it before its first write. Put it under the route's
    decorator, so that the route registers the marked function."""
    setattr(endpoint, LATE_WRITES_ATTRIBUTE, True)
    return endpoint


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: committed before the response is sent, rolled back on any error.

    The request first waits for a pooled connection and, when it writes on SQLite, for its turn in the writer queue
    (db.py), both on the event loop; it keeps them until its transaction ends. An endpoint marked `writes_late`
    takes the queue later, itself. Every dependency of the request shares this one session."""
    late = getattr(request.scope.get("endpoint"), LATE_WRITES_ATTRIBUTE, False)
    async with _request_session(request, late_writes=late) as session:
        yield session


def defer_housekeeping(request: Request, write: Callable[[Session], None]) -> None:
    """Run a best-effort write (a session's expiry, a token's last use) after the request's transaction commits.

    Done apart so that a GET never upgrades its read snapshot to a write: on SQLite that fails at once when
    another writer committed in between. Losing one of these writes is harmless; losing the request is not.
    """
    request.state._state.setdefault("housekeeping", []).append(write)


def _run_housekeeping(request: Request, session: Session) -> None:
    for write in request.state._state.pop("housekeeping", []):
        try:
            write(session)
            session.commit()
        except SQLAlchemyError:
            session.rollback()
            log.warning("housekeeping write skipped on %s %s", request.method, request.url.path, exc_info=True)


# scope="function": the commit runs before the response goes out, so a 2xx always means "stored".
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def client_ip(request: Request) -> str:
    """The caller's address as the server sees it (put the app behind a proxy that sets it right)."""
    return request.client.host if request.client else "unknown"


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _sep, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def get_optional_user(request: Request, session: SessionDep, settings: SettingsDep) -> User | None:
    """The logged-in user (session cookie) or token holder (Bearer header), or None for a visitor."""
    if "current_user" in request.state._state:
        return request.state.current_user
    user = None
    token = _bearer_token(request)
    if token is not None:
        user, api_token = accounts.get_token_user(session, token=token)
        request.state.auth_kind = "token"
        if accounts.token_use_due(api_token):
            defer_housekeeping(request, partial(accounts.touch_api_token, token_id=api_token.id))
    elif cookie := request.cookies.get(SESSION_COOKIE):
        try:
            user, login_session = accounts.get_session_user(session, token=cookie)
        except NotAuthenticated:
            request.state.session_expired = True
            user = None
        else:
            request.state.auth_kind = "session"
            request.state.csrf_seed = login_session.token_hash
            if accounts.session_touch_due(login_session):
                defer_housekeeping(
                    request, partial(accounts.touch_session, settings=settings, session_id=login_session.id)
                )
    request.state.current_user = user
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


def get_current_user(request: Request, user: OptionalUser) -> User:
    """The logged-in user; a visitor gets 401 (API) or is sent to the login page (pages)."""
    if user is None:
        if getattr(request.state, "session_expired", False):
            raise NotAuthenticated(_("Your session has expired. Please log in again."))
        raise NotAuthenticated(_("Please log in."))
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def request_csrf_token(request: Request) -> str:
    """The CSRF token that forms on this page must send back."""
    seed = getattr(request.state, "csrf_seed", None) or request.scope.get("kc_csrf_cookie", "")
    return csrf_token(request.app.state.settings.secret_key, seed)


async def verify_csrf(request: Request, user: OptionalUser) -> None:
    """Refuse a state-changing request made with cookies unless it carries the page's CSRF token."""
    if request.method in SAFE_METHODS or getattr(request.state, "auth_kind", None) == "token":
        return
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        presented = (await request.form()).get(CSRF_FIELD)
    seed = getattr(request.state, "csrf_seed", None) or request.scope.get("kc_csrf_cookie", "")
    if not seed or not csrf_matches(request.app.state.settings.secret_key, seed, presented):
        raise CsrfFailed(_("The form has expired or did not come from this site. Reload the page and try again."))


CsrfChecked = Depends(verify_csrf)


def require(permission: Permission) -> Callable[..., User]:
    """A dependency that returns the current user when their role grants `permission` (pages and API alike)."""

    def dependency(user: CurrentUser, _csrf: Annotated[None, CsrfChecked]) -> User:
        accounts.require_permission(user, permission)
        return user

    dependency.__name__ = f"require_{permission.value.replace('.', '_')}"
    return dependency


def actor_of(request: Request, user: User) -> accounts.Actor:
    """The audit actor for a change made by `user` in this request."""
    return accounts.Actor.of(user, client_ip(request))
