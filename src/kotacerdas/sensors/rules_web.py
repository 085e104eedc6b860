"""Sensor warning rules on the web: the JSON API under /api/v1/sensors/rules and the console pages under
/konsol/sensor/aturan (list with each rule's state and event, a form to create, edit, disable or delete). Both need
`sensors.rules` and call the same service functions (sensors/rules.py); bad input is a 422 naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from kotacerdas.accounts.enums import Permission
from kotacerdas.accounts.models import User
from kotacerdas.db import MAX_INT_ID
from kotacerdas.deps import SessionDep, actor_of, require
from kotacerdas.errors import DomainError, InvalidInput
from kotacerdas.events.enums import AlertLevel, EventCategory, EventStatus
from kotacerdas.i18n import _
from kotacerdas.problems import PROBLEM_RESPONSES
from kotacerdas.sensors import rules
from kotacerdas.web.forms import PostedForm, render_form
from kotacerdas.web.templating import render

api_router = APIRouter(prefix="/api/v1/sensors/rules", responses=PROBLEM_RESPONSES, tags=["sensors"])
console_router = APIRouter(include_in_schema=False)
router = APIRouter()

RULES = "/konsol/sensor/aturan"
RuleManager = Annotated[User, Depends(require(Permission.SENSORS_RULES))]
RuleIdPath = Annotated[int, Path(ge=1, le=MAX_INT_ID, description="Rule id")]


# --- schemas -------------------------------------------------------------------------------------------------------


class RuleWrite(BaseModel):
    """A rule as sent; on PATCH only the fields sent change. Thresholds left empty come from the Datastream's
    `levels` by the level's name."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200, description="Shown in the console; made from the kind if empty")
    kind: str | None = Field(None, description="threshold, rate_of_change, no_data or device_offline")
    datastream_id: int | None = Field(None, description="The Datastream watched (all kinds but device_offline)")
    thing_id: int | None = Field(None, description="The Thing watched (device_offline)")
    enabled: bool | None = None
    category: str | None = Field(None, description="Event category raised (threshold, rate_of_change), e.g. banjir")
    level: str | None = Field(None, description="Alert level raised: waspada, siaga or awas")
    threshold: float | None = Field(
        None, description="threshold: the value that raises (default: the Datastream's level of that name); "
        "rate_of_change: the rise per hour that raises"
    )  # fmt: skip
    escalate_level: str | None = Field(None, description="threshold: the higher level the event is raised to")
    escalate_threshold: float | None = None
    clear_level: str | None = Field(None, description="threshold: below this level's value the event ends")
    clear_threshold: float | None = None
    duration_minutes: int | None = Field(None, description="How long the condition must hold before the rule fires")
    clear_minutes: int | None = Field(None, description="How long the end condition must hold before the event ends")
    window_minutes: int | None = Field(None, description="rate_of_change: the window the rise is measured over")
    title: str | None = Field(None, max_length=200, description="The event's title (default: made from the rule)")
    instruction: str | None = Field(None, max_length=4000, description="What people should do (the event's text)")


class Labelled(BaseModel):
    value: str
    label: str
    colour: str


class RuleEventRead(BaseModel):
    id: int
    title: str
    status: Labelled
    level: Labelled | None
    console_url: str


class RuleRead(BaseModel):
    """A rule with its state, the numbers it compares with now, the current value and its event."""

    id: int
    name: str
    kind: Labelled
    thing_id: int
    thing_name: str | None
    datastream_id: int | None
    datastream_name: str | None
    unit: str
    enabled: bool
    category: str | None
    level: str | None
    threshold: float | None
    escalate_level: str | None
    escalate_threshold: float | None
    clear_level: str | None
    clear_threshold: float | None
    duration_minutes: int | None
    clear_minutes: int | None
    window_minutes: int | None
    title: str | None
    instruction: str | None
    effective: dict[str, float | None] | None = Field(description="raise_at, escalate_at, clear_below as used now")
    state: Labelled
    state_since: datetime | None
    state_level: str | None
    problem: str | None
    current_value: Any
    current_time: datetime | None
    event: RuleEventRead | None
    created_at: datetime
    updated_at: datetime


class RulePage(BaseModel):
    items: list[RuleRead]
    count: int


class DefaultRules(BaseModel):
    """The Datastream of a river gauge whose default rules are to be made."""

    model_config = ConfigDict(extra="forbid")

    datastream_id: int = Field(ge=1, le=MAX_INT_ID)


def _labelled(member: Any) -> Labelled:
    return Labelled(value=member.value, label=member.label, colour=member.colour)


def _read(view: rules.RuleView) -> RuleRead:
    rule, state = view.rule, view.state
    event = None
    if state.event_id and view.event_title is not None:
        event = RuleEventRead(
            id=state.event_id,
            title=view.event_title,
            status=_labelled(EventStatus(view.event_status)),
            level=_labelled(AlertLevel(view.event_level)) if view.event_level else None,
            console_url=f"/konsol/peristiwa/{state.event_id}",
        )
    limits = view.thresholds
    return RuleRead(
        id=rule.id,
        name=rule.name,
        kind=_labelled(rules.RuleKind(rule.kind)),
        thing_id=rule.thing_id,
        thing_name=view.thing_name,
        datastream_id=rule.datastream_id,
        datastream_name=view.datastream_name,
        unit=view.unit,
        enabled=rule.enabled,
        **{
            name: getattr(rule, name)
            for name in (
                "category",
                "level",
                "threshold",
                "escalate_level",
                "escalate_threshold",
                "clear_level",
                "clear_threshold",
                "duration_minutes",
                "clear_minutes",
                "window_minutes",
                "title",
                "instruction",
            )
        },  # fmt: skip
        effective=None
        if limits is None
        else {"raise_at": limits.raise_at, "escalate_at": limits.escalate_at, "clear_below": limits.clear_below},
        state=_labelled(rules.RuleState(state.state)),
        state_since=state.since,
        state_level=state.level,
        problem=state.problem or view.thresholds_problem,
        current_value=view.current_value,
        current_time=view.current_time,
        event=event,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


def _one(session: Session, rule: rules.SensorRule) -> RuleRead:
    return _read(rules.rule_views(session, rules=[rule])[0])


def _input(body: RuleWrite) -> rules.RuleInput:
    given = body.model_fields_set
    return rules.RuleInput(**{name: getattr(body, name) for name in given}, given=frozenset(given))


# --- the API -------------------------------------------------------------------------------------------------------


@api_router.get("", response_model=RulePage)
def list_rules(
    session: SessionDep,
    user: RuleManager,
    thing_id: Annotated[int | None, Query(ge=1, le=MAX_INT_ID)] = None,
    datastream_id: Annotated[int | None, Query(ge=1, le=MAX_INT_ID)] = None,
    kind: Annotated[rules.RuleKind | None, Query()] = None,
    state: Annotated[rules.RuleState | None, Query()] = None,
) -> RulePage:
    """Sensor warning rules with their state and event; needs sensors.rules."""
    found = rules.list_rules(
        session, thing_id=thing_id, datastream_id=datastream_id, kind=kind.value if kind else None,
        state=state.value if state else None,
    )  # fmt: skip
    items = [_read(view) for view in rules.rule_views(session, rules=found)]
    return RulePage(items=items, count=len(items))


@api_router.post("", response_model=RuleRead, status_code=201)
def create_rule(request: Request, session: SessionDep, user: RuleManager, body: RuleWrite) -> RuleRead:
    """Create a rule; 422 names the field that is wrong."""
    rule = rules.create_rule(session, data=_input(body), actor=actor_of(request, user))
    return _one(session, rule)


@api_router.post("/defaults", response_model=RulePage, status_code=201)
def create_default_rules(request: Request, session: SessionDep, user: RuleManager, body: DefaultRules) -> RulePage:
    """The default rules of a river gauge from its Datastream's levels (rules it has already are kept)."""
    made = rules.seed_level_rules(session, datastream_id=body.datastream_id, actor=actor_of(request, user))
    items = [_read(view) for view in rules.rule_views(session, rules=made)]
    return RulePage(items=items, count=len(items))


@api_router.get("/{rule_id}", response_model=RuleRead)
def get_rule(session: SessionDep, user: RuleManager, rule_id: RuleIdPath) -> RuleRead:
    """One rule with its state and event."""
    return _one(session, rules.get_rule(session, rule_id=rule_id))


@api_router.patch("/{rule_id}", response_model=RuleRead)
def update_rule(
    request: Request, session: SessionDep, user: RuleManager, rule_id: RuleIdPath, body: RuleWrite
) -> RuleRead:
    """Change a rule; only the fields sent change (its kind and what it watches stay)."""
    rule = rules.update_rule(session, rule_id=rule_id, data=_input(body), actor=actor_of(request, user))
    return _one(session, rule)


@api_router.post("/{rule_id}/enable", response_model=RuleRead)
def enable_rule(request: Request, session: SessionDep, user: RuleManager, rule_id: RuleIdPath) -> RuleRead:
    """Enable a rule."""
    rule = rules.set_rule_enabled(session, rule_id=rule_id, enabled=True, actor=actor_of(request, user))
    return _one(session, rule)


@api_router.post("/{rule_id}/disable", response_model=RuleRead)
def disable_rule(request: Request, session: SessionDep, user: RuleManager, rule_id: RuleIdPath) -> RuleRead:
    """Disable a rule: it is back to normal, and an event it raised is left to the operators."""
    rule = rules.set_rule_enabled(session, rule_id=rule_id, enabled=False, actor=actor_of(request, user))
    return _one(session, rule)


@api_router.delete("/{rule_id}", status_code=204)
def delete_rule(request: Request, session: SessionDep, user: RuleManager, rule_id: RuleIdPath) -> Response:
    """Delete a rule; an event it raised stays for the operators to end."""
    rules.delete_rule(session, rule_id=rule_id, actor=actor_of(request, user))
    return Response(status_code=204)


# --- the console ---------------------------------------------------------------------------------------------------

_TEXT_FIELDS = ("name", "kind", "category", "level", "escalate_level", "clear_level", "title", "instruction")
_ID_FIELDS = ("datastream_id", "thing_id")
_NUMBER_FIELDS = ("threshold", "escalate_threshold", "clear_threshold")
_MINUTE_FIELDS = ("duration_minutes", "clear_minutes", "window_minutes")
_FORM_FIELDS = _TEXT_FIELDS + _ID_FIELDS + _NUMBER_FIELDS + _MINUTE_FIELDS


def _form_values(posted: FormData) -> dict[str, str]:
    values = {}
    for name in _FORM_FIELDS:
        value = posted.get(name)
        values[name] = value.strip() if isinstance(value, str) else ""
    values["enabled"] = "on" if posted.get("enabled") else ""
    return values


def _rule_form(rule: rules.SensorRule) -> dict[str, str]:
    values = {name: "" if getattr(rule, name) is None else str(getattr(rule, name)) for name in _FORM_FIELDS}
    for name in _NUMBER_FIELDS:
        number = getattr(rule, name)
        values[name] = "" if number is None else f"{number:g}"
    values["enabled"] = "on" if rule.enabled else ""
    return values


def _form_input(form: dict[str, str], *, creating: bool) -> rules.RuleInput:
    """The service's input from the typed form; a number that is not one is refused naming its field."""
    values: dict[str, Any] = {name: form[name] or None for name in _TEXT_FIELDS}
    for name in _ID_FIELDS + _MINUTE_FIELDS:
        text = form[name]
        if text and not text.isdecimal():
            raise InvalidInput(_("Give a whole number."), errors=[{"field": name, "reason": "format"}])
        values[name] = int(text) if text else None
    for name in _NUMBER_FIELDS:
        text = form[name].replace(",", ".")
        try:
            values[name] = float(text) if text else None
        except ValueError:
            raise InvalidInput(_("Give a number."), errors=[{"field": name, "reason": "format"}]) from None
    values["enabled"] = form["enabled"] == "on"
    if not creating:
        for name in ("kind", *_ID_FIELDS):
            values.pop(name)
    return rules.RuleInput(**values, given=frozenset(values))


def _form_context(session: Session, form: dict[str, str], rule: rules.SensorRule | None = None) -> dict[str, Any]:
    datastreams, things = rules.watchable(session)
    levels = [(level.value, level.label) for level in AlertLevel if level is not AlertLevel.NORMAL]
    return {
        "form": form,
        "rule": rule,
        "kinds": rules.RuleKind.choices(),
        "categories": [(category.value, category.label) for category in EventCategory],
        "levels": levels,
        "datastreams": datastreams,
        "things": things,
    }


@console_router.get(RULES, response_class=HTMLResponse)
def console_rules(request: Request, session: SessionDep, user: RuleManager) -> HTMLResponse:
    """Every rule with its state, its event and the value it watches now."""
    views = rules.rule_views(session, rules=rules.list_rules(session))
    notices = {"deleted": _("The rule is deleted."), "defaults": _("The default rules of the gauge are in place.")}
    return render(
        request,
        "sensors/console_rules.html",
        {
            "views": views,
            "states": {state.value: state for state in rules.RuleState},
            "kinds": {kind.value: kind for kind in rules.RuleKind},
            "levels": {level.value: level for level in AlertLevel},
            "event_statuses": {status.value: status for status in EventStatus},
            "notice": notices.get(request.query_params.get("done") or ""),
        },
    )


@console_router.get(RULES + "/baru", response_class=HTMLResponse)
def new_rule_page(request: Request, session: SessionDep, user: RuleManager) -> HTMLResponse:
    """The form for a new rule."""
    form = dict.fromkeys(_FORM_FIELDS, "") | {"kind": rules.RuleKind.THRESHOLD.value, "enabled": "on"}
    return render(request, "sensors/console_rules_form.html", _form_context(session, form))


@console_router.post(RULES + "/baru", response_class=HTMLResponse)
def create_rule_page(request: Request, session: SessionDep, user: RuleManager, posted: PostedForm) -> Response:
    """Create the rule from the form."""
    form = _form_values(posted)
    try:
        rule = rules.create_rule(session, data=_form_input(form, creating=True), actor=actor_of(request, user))
    except DomainError as exc:
        session.rollback()
        return render_form(request, "sensors/console_rules_form.html", _form_context(session, form), error=exc)
    return RedirectResponse(f"{RULES}/{rule.id}?done=created", status_code=303)


@console_router.post(RULES + "/bawaan", response_class=HTMLResponse)
def default_rules_page(request: Request, session: SessionDep, user: RuleManager, posted: PostedForm) -> Response:
    """Make the default rules of a river gauge from its Datastream's levels."""
    form = dict.fromkeys(_FORM_FIELDS, "") | {"kind": rules.RuleKind.THRESHOLD.value, "enabled": "on"}
    form["datastream_id"] = str(posted.get("datastream_id") or "").strip()
    try:
        if not form["datastream_id"].isdecimal():
            raise InvalidInput(
                _("Choose the Datastream the rule watches."), errors=[{"field": "datastream_id", "reason": "required"}]
            )
        rules.seed_level_rules(session, datastream_id=int(form["datastream_id"]), actor=actor_of(request, user))
    except DomainError as exc:
        session.rollback()
        return render_form(request, "sensors/console_rules_form.html", _form_context(session, form), error=exc)
    return RedirectResponse(f"{RULES}?done=defaults", status_code=303)


def _rule_page(
    request: Request, session: Session, *, rule: rules.SensorRule, form: dict[str, str] | None = None,
    error: DomainError | None = None,
) -> HTMLResponse:  # fmt: skip
    notices = {
        "created": _("The rule is created."),
        "saved": _("The rule is saved."),
        "enabled": _("The rule is enabled."),
        "disabled": _("The rule is disabled; an event it raised is left to the operators."),
    }
    context = _form_context(session, form or _rule_form(rule), rule)
    view = rules.rule_views(session, rules=[rule])[0]
    context.update(
        view=view,
        state=rules.RuleState(view.state.state),
        kind_label=rules.RuleKind(rule.kind).label,
        event_statuses={status.value: status for status in EventStatus},
        level_labels={level.value: level for level in AlertLevel},
        notice=notices.get(request.query_params.get("done") or ""),
    )
    return render_form(request, "sensors/console_rules_form.html", context, error=error)


@console_router.get(RULES + "/{rule_id}", response_class=HTMLResponse)
def console_rule(request: Request, session: SessionDep, user: RuleManager, rule_id: RuleIdPath) -> HTMLResponse:
    """A rule: its state and event, and the form to change it."""
    return _rule_page(request, session, rule=rules.get_rule(session, rule_id=rule_id))


@console_router.post(RULES + "/{rule_id}", response_class=HTMLResponse)
def update_rule_page(
    request: Request, session: SessionDep, user: RuleManager, rule_id: RuleIdPath, posted: PostedForm
) -> Response:
    """Save the rule from the form."""
    form = _form_values(posted)
    try:
        rules.update_rule(
            session, rule_id=rule_id, data=_form_input(form, creating=False), actor=actor_of(request, user)
        )
    except DomainError as exc:
        session.rollback()
        return _rule_page(request, session, rule=rules.get_rule(session, rule_id=rule_id), form=form, error=exc)
    return RedirectResponse(f"{RULES}/{rule_id}?done=saved", status_code=303)


@console_router.post(RULES + "/{rule_id}/aktif", response_class=HTMLResponse)
def toggle_rule_page(
    request: Request, session: SessionDep, user: RuleManager, rule_id: RuleIdPath, posted: PostedForm
) -> Response:
    """Enable (enabled=1) or disable the rule."""
    enabled = posted.get("enabled") == "1"
    rules.set_rule_enabled(session, rule_id=rule_id, enabled=enabled, actor=actor_of(request, user))
    return RedirectResponse(f"{RULES}/{rule_id}?done={'enabled' if enabled else 'disabled'}", status_code=303)


@console_router.post(RULES + "/{rule_id}/hapus", response_class=HTMLResponse)
def delete_rule_page(request: Request, session: SessionDep, user: RuleManager, rule_id: RuleIdPath) -> Response:
    """Delete the rule."""
    rules.delete_rule(session, rule_id=rule_id, actor=actor_of(request, user))
    return RedirectResponse(f"{RULES}?done=deleted", status_code=303)


router.include_router(api_router)
router.include_router(console_router)
