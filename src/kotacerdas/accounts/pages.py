"""HTML pages of the accounts domain: log in and out, staff accounts, own API tokens, the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from kotacerdas.accounts import service
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.agencies import service as agencies
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import (
    SESSION_COOKIE,
    CsrfChecked,
    OptionalUser,
    SessionDep,
    SettingsDep,
    actor_of,
    client_ip,
    require,
    verify_csrf,
)
from kotacerdas.errors import DomainError, RateLimited
from kotacerdas.i18n import _
from kotacerdas.pagination import PageQuery
from kotacerdas.web.forms import active_filter, chosen_agency_id, kept_filters, render_form
from kotacerdas.web.templating import render

router = APIRouter(include_in_schema=False)

UserManager = Annotated[User, Depends(require(Permission.USERS_MANAGE))]
TokenOwner = Annotated[User, Depends(require(Permission.TOKENS_OWN))]
AuditReader = Annotated[User, Depends(require(Permission.AUDIT_READ))]
UserIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
TokenIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID)]
FilterText = Annotated[str, Query(max_length=100)]
DEFAULT_AFTER_LOGIN = "/konsol"


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this site, else the console: a login link cannot send anyone elsewhere."""
    if (
        target
        and len(target) <= 2000
        and target.startswith("/")
        and not target.startswith("//")
        # Browsers read a backslash as a slash (/\evil.example), and control characters split headers.
        and not any(char == "\\" or ord(char) < 32 or ord(char) == 127 for char in target)
        # Back to the login page itself would go round in circles once logged in.
        and target.split("?")[0].rstrip("/") not in ("/masuk", "/keluar")
    ):
        return target
    return DEFAULT_AFTER_LOGIN


# --- log in and out --------------------------------------------------------------------------------------------


def _render_login(
    request: Request,
    *,
    username: str = "",
    next_url: str,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "accounts/login.html",
        {"username": username, "next_url": next_url, "error": error, "notice": notice},
        status_code=status_code,
    )


@router.get("/masuk", response_class=HTMLResponse)
def login_form(
    request: Request, settings: SettingsDep, user: OptionalUser, next: Annotated[str, Query(max_length=2000)] = ""
) -> Response:
    """The login form; says so when the visitor's session has expired."""
    next_url = safe_next(next)
    if user is not None:
        return RedirectResponse(next_url, status_code=303)
    if not getattr(request.state, "session_expired", False):
        return _render_login(request, next_url=next_url)
    # The session cookie names an expired (or ended) login: say so once, and drop the cookie.
    notice = _("Your session has expired. Please log in again.")
    return _without_session_cookie(_render_login(request, next_url=next_url, notice=notice), settings)


class LoginForm(BaseModel):
    """The login form's fields."""

    username: str = ""
    password: str = ""
    next: str = ""


@router.post("/masuk", response_class=HTMLResponse, dependencies=[CsrfChecked])
def login(request: Request, session: SessionDep, settings: SettingsDep, form: Annotated[LoginForm, Form()]) -> Response:
    """Check the password and open a login session (the session cookie is HttpOnly and SameSite=Lax)."""
    next_url = safe_next(form.next)
    username = form.username.strip()[:64]
    try:
        result = service.login(
            session,
            settings=settings,
            username=username,
            password=form.password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    except RateLimited as exc:
        response = _render_login(request, username=username, next_url=next_url, error=exc.detail, status_code=429)
        response.headers.update(exc.headers)
        return response
    if result is None:
        # Returned, not raised: the request's transaction commits the failed attempt that the rate limit counts.
        return _render_login(
            request,
            username=username,
            next_url=next_url,
            error=_("The username or password is wrong."),
            status_code=401,
        )
    _user, token = result
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.mode == "production",
        path="/",
    )
    return response


def _without_session_cookie(response: Response, settings: Settings) -> Response:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings.mode == "production"
    )
    return response


async def _csrf_if_logged_in(request: Request, user: OptionalUser) -> None:
    # Only a live session needs the check: without one there is nothing a forged request could end.
    if user is not None:
        await verify_csrf(request, user)


@router.post("/keluar", dependencies=[Depends(_csrf_if_logged_in)])
def logout(request: Request, session: SessionDep, settings: SettingsDep, user: OptionalUser) -> Response:
    """End the login session and clear its cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if user is not None and token:
        service.logout(session, token=token, ip=client_ip(request))
    return _without_session_cookie(RedirectResponse("/", status_code=303), settings)


# --- staff accounts --------------------------------------------------------------------------------------------


class UserForm(BaseModel):
    """The fields of the account forms, as typed."""

    username: str = ""
    full_name: str = ""
    email: str = ""
    role: str = ""
    agency_id: str = ""
    password: str = ""
    active: str | None = None


def _agency_options(session: Session) -> list[tuple[int, str]]:
    return [(agency.id, agency.short_name) for agency in agencies.list_agency_choices(session)]


def _render_users(
    request: Request,
    session: Session,
    *,
    page: Any,
    filters: dict[str, str],
    form: UserForm,
    error: DomainError | None = None,
) -> HTMLResponse:
    paged = service.list_users(
        session,
        page=page,
        role=filters.get("role") or None,
        active=active_filter(filters.get("active", "")),
        q=filters.get("q") or None,
    )
    agency_options = _agency_options(session)
    return render_form(
        request,
        "accounts/users.html",
        {
            "paged": paged,
            "filters": filters,
            "form": form,
            "roles": Role,
            "agency_names": dict(agency_options),
            "agency_options": agency_options,
        },
        error=error,
    )


def _user_filters(role: str, active: str, q: str) -> dict[str, str]:
    return kept_filters(
        role=role if role in {r.value for r in Role} else "",
        active=active if active in ("true", "false") else "",
        q=q.strip(),
    )


@router.get("/konsol/pengguna", response_class=HTMLResponse)
def users_page(
    request: Request,
    session: SessionDep,
    _user: UserManager,
    page: PageQuery,
    role: FilterText = "",
    active: FilterText = "",
    q: FilterText = "",
) -> HTMLResponse:
    """Staff accounts, with the form for a new one."""
    return _render_users(
        request, session, page=page, filters=_user_filters(role, active, q), form=UserForm(role=Role.OPD_STAFF.value)
    )


@router.post("/konsol/pengguna", response_class=HTMLResponse)
def create_user(
    request: Request, session: SessionDep, user: UserManager, page: PageQuery, form: Annotated[UserForm, Form()]
) -> Response:
    """Create a staff account from the form."""
    try:
        created = service.create_user(
            session,
            actor=actor_of(request, user),
            username=form.username,
            full_name=form.full_name,
            password=form.password,
            role=form.role,
            agency_id=chosen_agency_id(form.agency_id, field="agency_id", max_id=MAX_INT_ID),
            email=form.email or None,
        )
    except DomainError as exc:
        session.rollback()
        form.password = ""
        return _render_users(request, session, page=page, filters={}, form=form, error=exc)
    return RedirectResponse(f"/konsol/pengguna/{created.id}?saved=1", status_code=303)


def _render_user(
    request: Request,
    session: Session,
    *,
    account: User,
    form: UserForm,
    error: DomainError | None = None,
    password_error: DomainError | None = None,
    saved: str = "",
) -> HTMLResponse:
    return render_form(
        request,
        "accounts/user_form.html",
        {
            "account": account,
            "form": form,
            "roles": Role,
            "agency_options": _agency_options(session),
            "password_error": password_error.detail if password_error else None,
            "saved": saved,
        },
        error=error,
        status_code=password_error.status_code if password_error else 200,
    )


def _form_of(account: User) -> UserForm:
    return UserForm(
        username=account.username,
        full_name=account.full_name,
        email=account.email or "",
        role=account.role,
        agency_id=str(account.agency_id or ""),
        active="on" if account.active else None,
    )


@router.get("/konsol/pengguna/{user_id}", response_class=HTMLResponse)
def user_page(
    request: Request,
    session: SessionDep,
    _user: UserManager,
    user_id: UserIdPath,
    saved: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    """One staff account: change it, deactivate it, reset its password."""
    account = service.get_user(session, user_id=user_id)
    return _render_user(request, session, account=account, form=_form_of(account), saved=saved)


@router.post("/konsol/pengguna/{user_id}", response_class=HTMLResponse)
def update_user(
    request: Request, session: SessionDep, user: UserManager, user_id: UserIdPath, form: Annotated[UserForm, Form()]
) -> Response:
    """Save changes to a staff account (an unticked "active" box deactivates it and ends its logins)."""
    account = service.get_user(session, user_id=user_id)
    try:
        service.update_user(
            session,
            actor=actor_of(request, user),
            user_id=account.id,
            full_name=form.full_name,
            email=form.email or None,
            role=form.role,
            agency_id=chosen_agency_id(form.agency_id, field="agency_id", max_id=MAX_INT_ID),
            active=form.active is not None,
        )
    except DomainError as exc:
        session.rollback()
        account = service.get_user(session, user_id=user_id)
        form.username = account.username
        return _render_user(request, session, account=account, form=form, error=exc)
    return RedirectResponse(f"/konsol/pengguna/{account.id}?saved=1", status_code=303)


@router.post("/konsol/pengguna/{user_id}/sandi", response_class=HTMLResponse)
def reset_password(
    request: Request,
    session: SessionDep,
    user: UserManager,
    user_id: UserIdPath,
    password: Annotated[str, Form()] = "",
) -> Response:
    """Set a new password for a staff account; its open logins end."""
    account = service.get_user(session, user_id=user_id)
    try:
        service.update_user(session, actor=actor_of(request, user), user_id=account.id, password=password)
    except DomainError as exc:
        session.rollback()
        account = service.get_user(session, user_id=user_id)
        return _render_user(request, session, account=account, form=_form_of(account), password_error=exc)
    return RedirectResponse(f"/konsol/pengguna/{account.id}?saved=password", status_code=303)


# --- own API tokens --------------------------------------------------------------------------------------------


def _render_tokens(
    request: Request,
    session: Session,
    *,
    user: User,
    name: str = "",
    created: tuple[Any, str] | None = None,
    error: DomainError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render_form(
        request,
        "accounts/tokens.html",
        {"tokens": service.list_api_tokens(session, user_id=user.id), "name": name, "created": created},
        error=error,
        status_code=status_code,
    )


@router.get("/konsol/token", response_class=HTMLResponse)
def tokens_page(request: Request, session: SessionDep, user: TokenOwner) -> HTMLResponse:
    """Your API tokens, with the form for a new one."""
    return _render_tokens(request, session, user=user)


@router.post("/konsol/token", response_class=HTMLResponse)
def create_token(
    request: Request, session: SessionDep, user: TokenOwner, name: Annotated[str, Form()] = ""
) -> HTMLResponse:
    """Create an API token and show it this once."""
    try:
        created = service.create_api_token(session, actor=actor_of(request, user), user_id=user.id, name=name)
    except DomainError as exc:
        session.rollback()
        return _render_tokens(request, session, user=user, name=name[:100], error=exc)
    # Shown in the answer to the POST, never stored in plain: a reload does not show it again.
    return _render_tokens(request, session, user=user, created=created, status_code=201)


@router.post("/konsol/token/{token_id}/cabut")
def revoke_token(request: Request, session: SessionDep, user: TokenOwner, token_id: TokenIdPath) -> Response:
    """Revoke one of your API tokens."""
    service.revoke_api_token(session, actor=actor_of(request, user), token_id=token_id, owner_id=user.id)
    return RedirectResponse("/konsol/token", status_code=303)


# --- audit log -------------------------------------------------------------------------------------------------


@router.get("/konsol/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: SessionDep,
    _user: AuditReader,
    page: PageQuery,
    entity_type: Annotated[str, Query(max_length=40)] = "",
    entity_id: Annotated[str, Query(max_length=60)] = "",
    action: Annotated[str, Query(max_length=60)] = "",
    actor_id: Annotated[str, Query(max_length=12)] = "",
) -> HTMLResponse:
    """The audit log: who changed what, when, with the values before and after."""
    actor = int(actor_id) if actor_id.strip().isdecimal() and 1 <= int(actor_id) <= MAX_INT_ID else None
    filters = kept_filters(
        entity_type=entity_type.strip(),
        entity_id=entity_id.strip(),
        action=action.strip(),
        actor_id=str(actor) if actor else "",
    )
    paged = service.list_audit(
        session,
        page=page,
        entity_type=filters.get("entity_type"),
        entity_id=filters.get("entity_id"),
        action=filters.get("action"),
        actor_id=actor,
    )
    return render(request, "accounts/audit.html", {"paged": paged, "filters": filters})
