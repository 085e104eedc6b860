"""Sensor warning rules: a river gauge above its siaga level for ten minutes raises "Siaga Banjir" for the desa of its
Thing by itself, and ends it once the river has been below waspada for half an hour (docs/sensors.md, "Rules").

Four kinds of rule (`RuleKind`):

- `threshold`: a Datastream's value >= a level for at least `duration_minutes` raises an event of `category` at
  `level`; >= `escalate_threshold` for as long raises the event to `escalate_level`; below `clear_threshold` for
  `clear_minutes` ends it (hysteresis: between the two nothing changes). Thresholds left empty are read by name
  from the Datastream's `levels` ({"waspada": 250, "siaga": 300, "awas": 350}) each time the rule is evaluated.
- `rate_of_change`: the rise over the last `window_minutes`, per hour, above `threshold` (50 cm/h) raises an event;
  it ends once the rise has stayed under the limit for `clear_minutes`.
- `no_data`: a Datastream without an observation for `duration_minutes`.
- `device_offline`: a Thing not heard from (its `last_seen_at`, or its newest observation) for longer than its
  `offline_after_minutes`, else the rule's `duration_minutes`, else `settings.sensor_offline_after_minutes` (as
  the device list counts it, sensors/devices.py).

The first two publish events, and only through the events service (`raise_event` with source `sensor_rule`,
`update_event`, `end_event`), so that CAP, the feeds, the live stream and the subscribers follow. The two
device-health rules publish nothing: a dead gauge is not a disaster the public must hear of, and a public event
would cry wolf; they flag the rule (the console lists it) and email the Thing's OPD through the notifications
outbox.

Each rule's state (normal, pending, raised; since when; the event it raised; the level it carries) is a row of its
own table, `sensor_rule_states`. `evaluate_rules` reads the observations through the observation store and the
clock it is given, locks the state rows it evaluates (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's writer
queue serializes writers), and changes a state only when the data say so: evaluating again changes nothing, and a
rule holds at most one event at a time. The rules of one Thing share one event of a category (a fast rise raises
"Waspada", the level crossing makes it "Siaga"), and the last of them to clear ends it. Durations are measured on
the observations' phenomenon times, so a late worker or a restart decides as a punctual one would.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from kotacerdas.accounts.service import Actor, record_change
from kotacerdas.config import Settings
from kotacerdas.db import MAX_INT_ID, utcnow
from kotacerdas.enums import LabelledEnum
from kotacerdas.errors import DomainError, InvalidInput, NotFound
from kotacerdas.events.enums import ONGOING_STATUSES, AlertLevel, EventCategory, LinkKind
from kotacerdas.i18n import _, reset_locale, set_locale
from kotacerdas.sensors import devices
from kotacerdas.sensors.models import Datastream, Location, SensorRule, SensorRuleState, Thing, ThingLocation

if TYPE_CHECKING:
    from kotacerdas.events.models import Event
    from kotacerdas.sensors.store import CurrentValue, Observation

log = logging.getLogger("kotacerdas.sensors.rules")

SYSTEM_ACTOR_LABEL = "sensor-rules"
NAME_MAX = 200
TITLE_MAX = 200
TEXT_MAX = 4000
MINUTES_MAX = 7 * 24 * 60
# Defaults of a new rule when a field is left empty.
DEFAULT_DURATION_MINUTES = 10
DEFAULT_CLEAR_MINUTES = 30
DEFAULT_WINDOW_MINUTES = 60
DEFAULT_NO_DATA_MINUTES = 60
# A threshold or rate rule does not raise on a newest observation older than this (the no-data rule's business).
FRESH_FOR = timedelta(hours=1)
# Observations one look at a Datastream reads at most (a window of an hour and a half at one a second).
POINTS_MAX = 6000
# The default rise that raises a flood watch: 50 cm per hour, in the Datastream's unit.
RISE_PER_HOUR_CM = 50.0
_CM_PER_UNIT = {"cm": 1.0, "m": 100.0, "mm": 0.1}


class RuleKind(LabelledEnum):
    """What a rule watches."""

    THRESHOLD = ("threshold", "Ambang batas", "Threshold", "#ef6c00")
    RATE_OF_CHANGE = ("rate_of_change", "Laju kenaikan", "Rate of rise", "#f9a825")
    NO_DATA = ("no_data", "Tidak ada data", "No data", "#5f6b7a")
    DEVICE_OFFLINE = ("device_offline", "Perangkat tidak aktif", "Device offline", "#78909c")

    @property
    def raises_event(self) -> bool:
        """True for the rules that publish events; the device-health rules tell the OPD instead."""
        return self in (RuleKind.THRESHOLD, RuleKind.RATE_OF_CHANGE)


class RuleState(LabelledEnum):
    """Where a rule is: nothing to report, its condition met but not yet for long enough, or fired."""

    NORMAL = ("normal", "Normal", "Normal", "#2e7d32")
    PENDING = ("pending", "Menunggu durasi", "Pending", "#f9a825")
    RAISED = ("raised", "Terpicu", "Raised", "#c62828")


def _invalid(message: str, field_name: str, reason: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field_name, "reason": reason}])


# --- input ---------------------------------------------------------------------------------------------------------


_FIELDS = (
    "name", "kind", "datastream_id", "thing_id", "enabled", "category", "level", "threshold", "escalate_level",
    "escalate_threshold", "clear_level", "clear_threshold", "duration_minutes", "clear_minutes", "window_minutes",
    "title", "instruction",
)  # fmt: skip
# What a kind keeps; the other fields are cleared.
_KIND_FIELDS = {
    RuleKind.THRESHOLD: {
        "category", "level", "threshold", "escalate_level", "escalate_threshold", "clear_level", "clear_threshold",
        "duration_minutes", "clear_minutes", "title", "instruction",
    },
    RuleKind.RATE_OF_CHANGE: {
        "category", "level", "threshold", "duration_minutes", "clear_minutes", "window_minutes", "title",
        "instruction",
    },
    RuleKind.NO_DATA: {"duration_minutes"},
    RuleKind.DEVICE_OFFLINE: {"duration_minutes"},
}  # fmt: skip


@dataclass
class RuleInput:
    """What an operator gives for a rule; on an update only the fields named in `given` change."""

    name: str | None = None
    kind: str | None = None
    datastream_id: int | None = None
    thing_id: int | None = None
    enabled: bool | None = None
    category: str | None = None
    level: str | None = None
    threshold: float | None = None
    escalate_level: str | None = None
    escalate_threshold: float | None = None
    clear_level: str | None = None
    clear_threshold: float | None = None
    duration_minutes: int | None = None
    clear_minutes: int | None = None
    window_minutes: int | None = None
    title: str | None = None
    instruction: str | None = None
    given: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Thresholds:
    """A rule's levels as numbers, the Datastream's `levels` filled in where the rule names a level only."""

    raise_at: float | None
    escalate_at: float | None
    clear_below: float | None


def _level_value(datastream: Datastream | None, name: str | None) -> float | None:
    if datastream is None or not name or not isinstance(datastream.levels, dict):
        return None
    wanted = name.lower()
    for key, value in datastream.levels.items():
        if str(key).lower() == wanted and not isinstance(value, bool) and isinstance(value, int | float):
            return float(value) if math.isfinite(value) else None
    return None


def thresholds(rule: SensorRule, datastream: Datastream | None) -> Thresholds:
    """The numbers a threshold rule compares with, or InvalidInput naming the field that has none.

    Explicit values win; otherwise the rule's level names are looked up in the Datastream's `levels`. With no end
    level, the rule ends below its raising threshold (no hysteresis)."""
    if RuleKind(rule.kind) is RuleKind.RATE_OF_CHANGE:
        return Thresholds(rule.threshold, None, None)
    if RuleKind(rule.kind) is not RuleKind.THRESHOLD:
        return Thresholds(None, None, None)
    raise_at = rule.threshold if rule.threshold is not None else _level_value(datastream, rule.level)
    if raise_at is None:
        raise _invalid(
            _("Give the threshold, or set the Datastream's level %(level)s.") % {"level": rule.level or "siaga"},
            "threshold",
            "required",
        )
    escalate_at = None
    if rule.escalate_level:
        escalate_at = (
            rule.escalate_threshold
            if rule.escalate_threshold is not None
            else _level_value(datastream, rule.escalate_level)
        )
        if escalate_at is None:
            raise _invalid(
                _("Give the escalation threshold, or set the Datastream's level %(level)s.")
                % {"level": rule.escalate_level},
                "escalate_threshold",
                "required",
            )
        if escalate_at <= raise_at:
            raise _invalid(
                _("The escalation threshold must be above the threshold."), "escalate_threshold", "not_above"
            )
    clear_below = rule.clear_threshold
    if clear_below is None and rule.clear_level:
        clear_below = _level_value(datastream, rule.clear_level)
        if clear_below is None:
            raise _invalid(
                _("Give the end threshold, or set the Datastream's level %(level)s.") % {"level": rule.clear_level},
                "clear_threshold",
                "required",
            )
    if clear_below is None:
        clear_below = raise_at
    if clear_below > raise_at:
        raise _invalid(_("The end threshold must not be above the threshold."), "clear_threshold", "above_threshold")
    return Thresholds(raise_at, escalate_at, clear_below)


def _number(value: Any, field_name: str, *, positive: bool = False) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(_("Give a finite number."), field_name, "invalid")
    if positive and value <= 0:
        raise _invalid(_("Give a number above zero."), field_name, "not_positive")
    return float(value)


def _minutes(value: Any, field_name: str, *, default: int | None, low: int = 0, high: int = MINUTES_MAX) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(
            _("Give a whole number of minutes from %(low)d to %(high)d.") % {"low": low, "high": high},
            field_name,
            "range",
        )
    return value


def _alert_level(value: Any, field_name: str) -> AlertLevel | None:
    if value is None or value == "":
        return None
    try:
        level = AlertLevel(value)
    except ValueError:
        raise _invalid(_("Unknown alert level."), field_name, "unknown") from None
    if level is AlertLevel.NORMAL:
        raise _invalid(_("A warning is at least at level waspada."), field_name, "normal")
    return level


def _id(value: Any, field_name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT_ID:
        raise _invalid(_("Give a positive whole number."), field_name, "invalid")
    return value


def _clean_event_text(value: str | None, *, field_name: str, label: str, max_length: int) -> str | None:
    from kotacerdas.events import service as events

    return events.clean_event_text(value, field_name=field_name, label=label, max_length=max_length, required=False)


def _checked(session: Session, *, data: RuleInput, rule: SensorRule | None) -> dict[str, Any]:
    """The values of a new or changed rule, checked as a whole; InvalidInput names the first bad field."""
    given = set(_FIELDS) if rule is None else set(data.given)
    values = {name: getattr(rule, name) for name in _FIELDS} if rule is not None else {}
    for name in given & set(_FIELDS):
        values[name] = getattr(data, name)
    if rule is not None:
        for name in ("kind", "datastream_id", "thing_id"):
            if name in data.given and values[name] != getattr(rule, name):
                raise _invalid(
                    _("A rule's kind and what it watches cannot change; create another rule."), name, "immutable"
                )
    try:
        kind = RuleKind(values.get("kind") or "")
    except ValueError:
        raise _invalid(_("Unknown rule kind."), "kind", "unknown") from None
    datastream_id = _id(values.get("datastream_id"), "datastream_id")
    thing_id = _id(values.get("thing_id"), "thing_id")
    datastream = None
    if datastream_id is not None:
        datastream = session.get(Datastream, datastream_id)
        if datastream is None:
            raise _invalid(_("Datastream not found."), "datastream_id", "not_found")
        if thing_id is not None and thing_id != datastream.thing_id:
            raise _invalid(_("The Datastream belongs to another Thing."), "thing_id", "mismatch")
        thing_id = datastream.thing_id
    elif kind is not RuleKind.DEVICE_OFFLINE:
        raise _invalid(_("Choose the Datastream the rule watches."), "datastream_id", "required")
    if thing_id is None:
        raise _invalid(_("Choose the Thing the rule watches."), "thing_id", "required")
    thing = session.get(Thing, thing_id)
    if thing is None:
        raise _invalid(_("Thing not found."), "thing_id", "not_found")
    if kind is RuleKind.DEVICE_OFFLINE:
        datastream_id = None
    checked: dict[str, Any] = dict.fromkeys(_FIELDS)
    checked.update(kind=kind.value, datastream_id=datastream_id, thing_id=thing_id)
    enabled = values.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise _invalid(_("Give true or false."), "enabled", "invalid")
    checked["enabled"] = True if enabled is None else enabled
    kept = _KIND_FIELDS[kind]
    value = {name: values.get(name) if name in kept else None for name in _FIELDS}

    if kind.raises_event:
        try:
            category = EventCategory(value["category"] or "")
        except ValueError:
            raise _invalid(_("Choose the category of the event the rule raises."), "category", "required") from None
        level = _alert_level(value["level"], "level")
        if category.is_hazard and level is None:
            raise _invalid(_("Choose the alert level of the warning."), "level", "required")
        if not category.is_hazard and (level is not None or value["escalate_level"]):
            raise _invalid(
                _("Only disasters carry an alert level; leave it empty for this category."), "level", "not_hazard"
            )
        checked.update(category=category.value, level=level.value if level else None)
        checked["title"] = _clean_event_text(value["title"], field_name="title", label=_("Title"), max_length=TITLE_MAX)
        checked["instruction"] = _clean_event_text(
            value["instruction"], field_name="instruction", label=_("Instructions"), max_length=TEXT_MAX
        )
    elif values.get("category") not in (None, ""):
        raise _invalid(
            _("A device-health rule tells the device's OPD and publishes no event; leave the category empty."),
            "category",
            "not_applicable",
        )

    if kind is RuleKind.THRESHOLD:
        escalate = _alert_level(value["escalate_level"], "escalate_level")
        if escalate is not None and level is not None and escalate.rank <= level.rank:
            raise _invalid(_("The escalation level must be above the rule's level."), "escalate_level", "not_above")
        if escalate is None and value["escalate_threshold"] not in (None, ""):
            raise _invalid(_("Choose the level the escalation raises the event to."), "escalate_level", "required")
        clear = _alert_level(value["clear_level"], "clear_level")
        checked.update(
            threshold=_number(value["threshold"], "threshold"),
            escalate_level=escalate.value if escalate else None,
            escalate_threshold=_number(value["escalate_threshold"], "escalate_threshold"),
            clear_level=clear.value if clear else None,
            clear_threshold=_number(value["clear_threshold"], "clear_threshold"),
            duration_minutes=_minutes(value["duration_minutes"], "duration_minutes", default=DEFAULT_DURATION_MINUTES),
            clear_minutes=_minutes(value["clear_minutes"], "clear_minutes", default=DEFAULT_CLEAR_MINUTES),
        )
    elif kind is RuleKind.RATE_OF_CHANGE:
        limit = _number(value["threshold"], "threshold", positive=True)
        if limit is None:
            raise _invalid(_("Give the rise per hour that raises the warning."), "threshold", "required")
        checked.update(
            threshold=limit,
            window_minutes=_minutes(
                value["window_minutes"], "window_minutes", default=DEFAULT_WINDOW_MINUTES, low=5, high=24 * 60
            ),
            duration_minutes=_minutes(value["duration_minutes"], "duration_minutes", default=0),
            clear_minutes=_minutes(value["clear_minutes"], "clear_minutes", default=DEFAULT_CLEAR_MINUTES),
        )
    elif kind is RuleKind.NO_DATA:
        checked["duration_minutes"] = _minutes(
            value["duration_minutes"], "duration_minutes", default=DEFAULT_NO_DATA_MINUTES, low=1
        )
    else:
        checked["duration_minutes"] = _minutes(value["duration_minutes"], "duration_minutes", default=None, low=1)

    probe = SensorRule(**{name: checked[name] for name in _FIELDS if name not in ("name",)})
    thresholds(probe, datastream)  # every level it names must resolve now
    name = _clean_event_text(values.get("name"), field_name="name", label=_("Name"), max_length=NAME_MAX)
    if name is None:
        watched = datastream.name if datastream is not None else thing.name
        name = f"{kind.label}: {watched}"[:NAME_MAX]
    checked["name"] = name
    return checked


# --- access and changes --------------------------------------------------------------------------------------------


def _audit_view(rule: SensorRule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in _FIELDS}


def _state_view(state: SensorRuleState) -> dict[str, Any]:
    return {
        "state": state.state,
        "level": state.level,
        "event_id": state.event_id,
        "since": state.since.isoformat() if state.since else None,
    }


def get_rule(session: Session, *, rule_id: int) -> SensorRule:
    """A rule by id, or NotFound."""
    rule = session.get(SensorRule, rule_id) if 1 <= rule_id <= MAX_INT_ID else None
    if rule is None:
        raise NotFound(_("Rule not found."))
    return rule


def list_rules(
    session: Session,
    *,
    thing_id: int | None = None,
    datastream_id: int | None = None,
    kind: str | None = None,
    state: str | None = None,
    limit: int = 500,
) -> list[SensorRule]:
    """Rules, by Thing then id, optionally of one Thing, Datastream, kind or state."""
    statement = sa.select(SensorRule)
    if thing_id is not None:
        statement = statement.where(SensorRule.thing_id == thing_id)
    if datastream_id is not None:
        statement = statement.where(SensorRule.datastream_id == datastream_id)
    if kind:
        statement = statement.where(SensorRule.kind == kind)
    if state:
        statement = statement.join(SensorRuleState, SensorRuleState.rule_id == SensorRule.id).where(
            SensorRuleState.state == state
        )
    return list(session.scalars(statement.order_by(SensorRule.thing_id, SensorRule.id).limit(limit)))


def get_states(session: Session, *, rule_ids: Sequence[int]) -> dict[int, SensorRuleState]:
    """The state of each rule (a rule without a stored state is normal)."""
    found = {
        state.rule_id: state
        for state in session.scalars(sa.select(SensorRuleState).where(SensorRuleState.rule_id.in_(list(rule_ids))))
    }
    for rule_id in rule_ids:
        found.setdefault(rule_id, SensorRuleState(rule_id=rule_id, state=RuleState.NORMAL.value))
    return found


def create_rule(session: Session, *, data: RuleInput, actor: Actor, now: datetime | None = None) -> SensorRule:
    """Create a rule (normal until its condition holds)."""
    now = now or utcnow()
    values = _checked(session, data=data, rule=None)
    rule = SensorRule(**values, created_at=now, updated_at=now)
    session.add(rule)
    session.flush()
    session.add(SensorRuleState(rule_id=rule.id, state=RuleState.NORMAL.value, changed_at=now))
    record_change(
        session, actor=actor, action="sensor_rule.create", entity_type="sensor_rule", entity_id=rule.id,
        after=_audit_view(rule),
    )  # fmt: skip
    return rule


def _release(session: Session, *, rule: SensorRule, actor: Actor, now: datetime, reason: str) -> None:
    """Put a rule back to normal without touching its event: disabling or deleting a rule leaves a published
    warning to the operators, who decide when it is over."""
    state = session.get(SensorRuleState, rule.id)
    if state is None or (state.state == RuleState.NORMAL.value and state.event_id is None):
        return
    before = _state_view(state)
    state.state, state.level, state.event_id, state.since, state.clear_since = (
        RuleState.NORMAL.value,
        None,
        None,
        now,
        None,
    )
    state.changed_at = now
    session.flush()
    record_change(
        session, actor=actor, action=f"sensor_rule.{reason}", entity_type="sensor_rule", entity_id=rule.id,
        before=before, after=_state_view(state),
    )  # fmt: skip


def update_rule(
    session: Session, *, rule_id: int, data: RuleInput, actor: Actor, now: datetime | None = None
) -> SensorRule:
    """Change a rule's levels, durations, texts or name; a disabled rule lets its event be."""
    now = now or utcnow()
    rule = get_rule(session, rule_id=rule_id)
    before = _audit_view(rule)
    values = _checked(session, data=data, rule=rule)
    for name, value in values.items():
        setattr(rule, name, value)
    rule.updated_at = now
    if not rule.enabled and before["enabled"]:
        _release(session, rule=rule, actor=actor, now=now, reason="release")
    session.flush()
    record_change(
        session, actor=actor, action="sensor_rule.update", entity_type="sensor_rule", entity_id=rule.id,
        before=before, after=_audit_view(rule),
    )  # fmt: skip
    return rule


def set_rule_enabled(
    session: Session, *, rule_id: int, enabled: bool, actor: Actor, now: datetime | None = None
) -> SensorRule:
    """Enable or disable a rule; disabling returns it to normal and leaves its event to the operators."""
    return update_rule(
        session, rule_id=rule_id, data=RuleInput(enabled=enabled, given=frozenset({"enabled"})), actor=actor, now=now
    )


def delete_rule(session: Session, *, rule_id: int, actor: Actor) -> None:
    """Delete a rule and its state; an event it raised stays, for the operators to end."""
    rule = get_rule(session, rule_id=rule_id)
    before = _audit_view(rule)
    session.execute(sa.delete(SensorRuleState).where(SensorRuleState.rule_id == rule.id))
    session.delete(rule)
    session.flush()
    record_change(
        session, actor=actor, action="sensor_rule.delete", entity_type="sensor_rule", entity_id=rule_id,
        before=before,
    )  # fmt: skip


def _unit_symbol(datastream: Datastream) -> str:
    return _symbol(datastream.unit_of_measurement)


def seed_level_rules(session: Session, *, datastream_id: int, actor: Actor) -> list[SensorRule]:
    """The default rules of a river gauge from its Datastream's levels: >= siaga for 10 minutes raises a siaga
    flood warning (>= awas raises it to awas, below waspada for 30 minutes ends it), a rise above 50 cm per hour
    raises a waspada one, and 60 minutes without data tells the OPD. A rule of a kind the Datastream has already
    is kept as it is, so calling this again changes nothing."""
    datastream = session.get(Datastream, datastream_id)
    if datastream is None:
        raise _invalid(_("Datastream not found."), "datastream_id", "not_found")
    existing = {rule.kind: rule for rule in reversed(list_rules(session, datastream_id=datastream_id))}
    per_cm = _CM_PER_UNIT.get(_unit_symbol(datastream).lower(), 1.0)
    wanted = [
        RuleInput(
            kind=RuleKind.THRESHOLD.value, datastream_id=datastream_id, category=EventCategory.BANJIR.value,
            level=AlertLevel.SIAGA.value, escalate_level=AlertLevel.AWAS.value if _level_value(datastream, "awas")
            is not None else None, clear_level=AlertLevel.WASPADA.value if _level_value(datastream, "waspada")
            is not None else None, duration_minutes=DEFAULT_DURATION_MINUTES, clear_minutes=DEFAULT_CLEAR_MINUTES,
        ),
        RuleInput(
            kind=RuleKind.RATE_OF_CHANGE.value, datastream_id=datastream_id, category=EventCategory.BANJIR.value,
            level=AlertLevel.WASPADA.value, threshold=round(RISE_PER_HOUR_CM / per_cm, 6),
            window_minutes=DEFAULT_WINDOW_MINUTES, clear_minutes=DEFAULT_CLEAR_MINUTES,
        ),
        RuleInput(kind=RuleKind.NO_DATA.value, datastream_id=datastream_id, duration_minutes=DEFAULT_NO_DATA_MINUTES),
    ]  # fmt: skip
    rules = []
    for data in wanted:
        rule = existing.get(data.kind)
        rules.append(rule if rule is not None else create_rule(session, data=data, actor=actor))
    return rules


# --- evaluation ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleChange:
    """What one evaluation changed for one rule."""

    rule_id: int
    action: str  # pending, normal, raise, escalate, end, release, flag, recover
    state: str
    level: str | None = None
    event_id: int | None = None


@dataclass
class _Decision:
    state: RuleState
    action: str
    since: datetime | None
    level: str | None = None
    clear_since: datetime | None = None
    value: float | None = None
    observed_at: datetime | None = None
    threshold: float | None = None
    minutes: int | None = None


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _run_start(points: Sequence[Observation], holds: Callable[[float], bool]) -> datetime | None:
    """The time of the oldest observation of the newest unbroken run that meets `holds` (points newest first)."""
    start = None
    for point in points:
        number = _numeric(point.result)
        if number is None or not holds(number):
            break
        start = point.phenomenon_time
    return start


class _Reader:
    """Reads observations for one evaluation, each Datastream's window once."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self._cache: dict[tuple[int, int], list[Observation]] = {}

    def newest_first(self, datastream_id: int, newest: datetime, minutes: int) -> list[Observation]:
        """The observations from `minutes` (and a margin that finds where a run began) before `newest` to it."""
        from kotacerdas.sensors import store

        span = minutes + max(minutes, 30)
        key = (datastream_id, span)
        if key not in self._cache:
            self._cache[key] = store.list_observations(
                self.session,
                datastream_id=datastream_id,
                start=newest - timedelta(minutes=span),
                end=newest + timedelta(microseconds=1),
                limit=POINTS_MAX,
                order="desc",
            )
        return self._cache[key]


def _held(
    reader: _Reader, current: CurrentValue, holds: Callable[[float], bool], minutes: int
) -> tuple[bool, datetime | None]:
    """Whether the newest observations have met `holds` for `minutes`, and since when."""
    number = _numeric(current.result)
    if number is None or not holds(number):
        return False, None
    if minutes <= 0:
        return True, current.phenomenon_time
    start = _run_start(reader.newest_first(current.datastream_id, current.phenomenon_time, minutes), holds)
    start = start or current.phenomenon_time
    return current.phenomenon_time - start >= timedelta(minutes=minutes), start


def _decide_threshold(
    rule: SensorRule, state: SensorRuleState, limits: Thresholds, current: CurrentValue | None, reader: _Reader
) -> _Decision | None:
    current_state = RuleState(state.state)
    number = _numeric(current.result) if current is not None else None
    if current is None or number is None:
        return None  # nothing to compare; the no-data rule tells of a silent gauge
    duration = rule.duration_minutes or 0
    escalate_at = limits.escalate_at
    context = {"value": number, "observed_at": current.phenomenon_time}
    if current_state is not RuleState.RAISED:
        if number < limits.raise_at or reader.now - current.phenomenon_time > FRESH_FOR:
            if current_state is RuleState.PENDING:
                return _Decision(RuleState.NORMAL, "normal", current.phenomenon_time, **context)
            return None
        held, start = _held(reader, current, lambda v: v >= limits.raise_at, duration)
        if not held:
            if current_state is RuleState.PENDING and state.since == start:
                return None
            return _Decision(RuleState.PENDING, "pending", start, **context)
        level = rule.level
        threshold = limits.raise_at
        if escalate_at is not None and _held(reader, current, lambda v: v >= escalate_at, duration)[0]:
            level, threshold = rule.escalate_level, escalate_at
        return _Decision(
            RuleState.RAISED, "raise", reader.now, level=level, threshold=threshold, minutes=duration, **context
        )
    if number < limits.clear_below:
        held, start = _held(reader, current, lambda v: v < limits.clear_below, rule.clear_minutes or 0)
        if held:
            return _Decision(
                RuleState.NORMAL, "end", reader.now, threshold=limits.clear_below, minutes=rule.clear_minutes,
                **context,
            )  # fmt: skip
        return None
    if (
        escalate_at is not None
        and number >= escalate_at
        and _rank(state.level) < _rank(rule.escalate_level)
        and _held(reader, current, lambda v: v >= escalate_at, duration)[0]
    ):
        return _Decision(
            RuleState.RAISED, "escalate", state.since, level=rule.escalate_level, threshold=escalate_at,
            minutes=duration, **context,
        )  # fmt: skip
    return None


def _rank(level: str | None) -> int:
    try:
        return AlertLevel(level or "").rank
    except ValueError:
        return -1


def _rise_per_hour(rule: SensorRule, current: CurrentValue, reader: _Reader) -> float | None:
    """The rise per hour from the oldest observation of the window to the newest; None when the window holds
    less than half its length of data (two readings a minute apart say little about an hour)."""
    window = rule.window_minutes or DEFAULT_WINDOW_MINUTES
    newest = _numeric(current.result)
    if newest is None:
        return None
    points = reader.newest_first(current.datastream_id, current.phenomenon_time, window)
    cutoff = current.phenomenon_time - timedelta(minutes=window)
    inside = [point for point in points if point.phenomenon_time >= cutoff and _numeric(point.result) is not None]
    if not inside:
        return None
    oldest = inside[-1]
    span = current.phenomenon_time - oldest.phenomenon_time
    if span < timedelta(minutes=window) / 2:
        return None
    return (newest - _numeric(oldest.result)) / (span.total_seconds() / 3600)


def _decide_rate(
    rule: SensorRule, state: SensorRuleState, current: CurrentValue | None, reader: _Reader
) -> _Decision | None:
    current_state = RuleState(state.state)
    fresh = current is not None and reader.now - current.phenomenon_time <= FRESH_FOR
    rate = _rise_per_hour(rule, current, reader) if fresh else None
    rising = rate is not None and rate > rule.threshold
    context = {
        "value": rate,
        "observed_at": current.phenomenon_time if current else None,
        "threshold": rule.threshold,
        "minutes": rule.window_minutes,
    }
    # Durations on the readings' own times, as the threshold rule measures them: a late worker, or readings
    # replayed faster than real time (the simulator's --speed), decide as a punctual worker would.
    now = current.phenomenon_time if fresh and current is not None else reader.now
    if current_state is not RuleState.RAISED:
        if not rising:
            return _Decision(RuleState.NORMAL, "normal", now, **context) if current_state is RuleState.PENDING else None
        duration = timedelta(minutes=rule.duration_minutes or 0)
        since = state.since if current_state is RuleState.PENDING and state.since else now
        if now - since >= duration:
            return _Decision(RuleState.RAISED, "raise", now, level=rule.level, **context)
        return None if current_state is RuleState.PENDING else _Decision(RuleState.PENDING, "pending", now, **context)
    if rising:
        if state.clear_since is not None:
            return _Decision(RuleState.RAISED, "rising", state.since, level=state.level, **context)
        return None
    if state.clear_since is None:
        return _Decision(RuleState.RAISED, "calming", state.since, level=state.level, clear_since=now, **context)
    if now - state.clear_since >= timedelta(minutes=rule.clear_minutes or 0):
        return _Decision(RuleState.NORMAL, "end", now, **{**context, "minutes": rule.clear_minutes})
    return None


def _decide_silence(
    rule: SensorRule,
    state: SensorRuleState,
    last_heard: datetime | None,
    minutes: int,
    now: datetime,
    *,
    device: bool = False,
) -> _Decision | None:
    """no_data: silent once N minutes have passed. device_offline (`device`): silent for longer than the limit,
    by the one rule of the console and the public tiles (`devices.is_offline`), so all three agree at its edge. Never
    heard from counts from the rule's creation, so a new rule does not fire at once."""
    reference = last_heard or rule.created_at
    if device:
        silent = devices.is_offline(reference, minutes, now)
    else:
        silent = now - reference >= timedelta(minutes=minutes)
    current_state = RuleState(state.state)
    if silent and current_state is not RuleState.RAISED:
        return _Decision(RuleState.RAISED, "flag", reference, observed_at=last_heard, minutes=minutes)
    if not silent and current_state is RuleState.RAISED:
        return _Decision(RuleState.NORMAL, "recover", now, observed_at=last_heard, minutes=minutes)
    return None


def offline_minutes(rule: SensorRule, thing: Thing, settings: Settings) -> int:
    """How long a Thing may be silent: its own setting, else the rule's, else the installation's default (the limit of
    the device console and the public tiles, `devices.offline_limit`, with the rule's duration before the default)."""
    return devices.offline_limit(thing.offline_after_minutes, settings=settings, fallback=rule.duration_minutes)


@dataclass
class _World:
    """What the rules of one evaluation read, loaded once for all of them."""

    datastreams: dict[int, Datastream]
    things: dict[int, Thing]
    currents: dict[int, CurrentValue]
    newest_of_thing: dict[int, datetime]


def _load_world(session: Session, rules: Sequence[SensorRule]) -> _World:
    from kotacerdas.sensors import store

    thing_ids = {rule.thing_id for rule in rules}
    wanted = {rule.datastream_id for rule in rules if rule.datastream_id}
    datastreams = {ds.id: ds for ds in session.scalars(sa.select(Datastream).where(Datastream.id.in_(wanted)))}
    things = {thing.id: thing for thing in session.scalars(sa.select(Thing).where(Thing.id.in_(thing_ids)))}
    currents = store.current_values(session, list(datastreams))
    # A device is heard from when any of its Datastreams reports (devices.newest_readings, as the console).
    newest = devices.newest_readings(
        session, {rule.thing_id for rule in rules if rule.kind == RuleKind.DEVICE_OFFLINE.value}
    )
    return _World(datastreams, things, currents, newest)


def _decide(
    rule: SensorRule, state: SensorRuleState, world: _World, reader: _Reader, settings: Settings
) -> _Decision | None:
    kind = RuleKind(rule.kind)
    current = world.currents.get(rule.datastream_id) if rule.datastream_id else None
    if kind is RuleKind.THRESHOLD:
        return _decide_threshold(
            rule, state, thresholds(rule, world.datastreams.get(rule.datastream_id)), current, reader
        )
    if kind is RuleKind.RATE_OF_CHANGE:
        return _decide_rate(rule, state, current, reader)
    if kind is RuleKind.NO_DATA:
        return _decide_silence(
            rule, state, current.phenomenon_time if current else None, rule.duration_minutes or 1, reader.now
        )
    thing = world.things[rule.thing_id]
    heard = devices.heard_from(thing.last_seen_at, world.newest_of_thing.get(thing.id), reader.now)
    return _decide_silence(rule, state, heard, offline_minutes(rule, thing, settings), reader.now, device=True)


def _ensure_states(session: Session, rule_ids: Sequence[int] | None) -> None:
    """A state row for every rule (rules are created with one; this covers any made otherwise)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    missing = sa.select(SensorRule.id, sa.literal(RuleState.NORMAL.value)).where(
        ~sa.exists().where(SensorRuleState.rule_id == SensorRule.id)
    )
    if rule_ids is not None:
        missing = missing.where(SensorRule.id.in_(list(rule_ids)))
    session.execute(insert(SensorRuleState).from_select(["rule_id", "state"], missing).on_conflict_do_nothing())


def evaluate_rules(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    rule_ids: Sequence[int] | None = None,
    dry_run: bool = False,
) -> list[RuleChange]:
    """Evaluate the enabled rules (or those of `rule_ids`) at `now` and apply what changed: raise, escalate and end
    events through the events service, flag silent devices. The state rows are locked as they are read (rows
    another worker holds are skipped), so two workers never act on one rule. `dry_run` only says what would change
    (a read-only look before taking SQLite's writer queue). The caller commits."""
    if not dry_run:
        _ensure_states(session, rule_ids)
    statement = (
        sa.select(SensorRule, SensorRuleState)
        .outerjoin(SensorRuleState, SensorRuleState.rule_id == SensorRule.id)
        .where(SensorRule.enabled.is_(True))
        .order_by(SensorRule.id)
    )
    if not dry_run:
        statement = (
            sa.select(SensorRule, SensorRuleState)
            .join(SensorRuleState, SensorRuleState.rule_id == SensorRule.id)
            .where(SensorRule.enabled.is_(True))
            .order_by(SensorRule.id)
            .with_for_update(of=SensorRuleState, skip_locked=True)
        )
    if rule_ids is not None:
        statement = statement.where(SensorRule.id.in_(list(rule_ids)))
    rows = session.execute(statement).all()
    if not rows:
        return []
    world = _load_world(session, [rule for rule, _state in rows])
    reader = _Reader(session, now)
    changes: list[RuleChange] = []
    actor = Actor.system(SYSTEM_ACTOR_LABEL)
    for rule, state in rows:
        state = state or SensorRuleState(rule_id=rule.id, state=RuleState.NORMAL.value)
        try:
            decision = _decide(rule, state, world, reader, settings)
        except InvalidInput as error:  # a level the Datastream no longer has
            _note_problem(session, changes, rule, state, error.detail, dry_run=dry_run)
            continue
        if decision is None:
            if state.problem and RuleKind(rule.kind).raises_event:
                _note_problem(session, changes, rule, state, None, dry_run=dry_run)
            continue
        if dry_run:
            changes.append(RuleChange(rule.id, decision.action, decision.state.value, decision.level, state.event_id))
            continue
        try:
            with session.begin_nested():
                _apply(session, settings=settings, rule=rule, state=state, decision=decision, world=world,
                       actor=actor, now=now)  # fmt: skip
        except DomainError as error:
            log.warning("sensor rule %s could not %s: %s", rule.id, decision.action, error.detail)
            session.refresh(state)
            _set_problem(session, state, error.detail)
            continue
        changes.append(RuleChange(rule.id, decision.action, state.state, state.level, state.event_id))
    return changes


def _note_problem(
    session: Session,
    changes: list[RuleChange],
    rule: SensorRule,
    state: SensorRuleState,
    problem: str | None,
    *,
    dry_run: bool,
) -> None:
    """Keep (or clear) why a rule cannot act; a look only says that the state row is to be written."""
    if state.problem == (problem[:500] if problem else None):
        return
    if dry_run:
        changes.append(RuleChange(rule.id, "problem", state.state, state.level, state.event_id))
    else:
        _set_problem(session, state, problem)


def _set_problem(session: Session, state: SensorRuleState, problem: str | None) -> None:
    problem = problem[:500] if problem else None
    if state.problem != problem:
        state.problem = problem
        session.flush()


# --- applying a decision -------------------------------------------------------------------------------------------


def _apply(
    session: Session,
    *,
    settings: Settings,
    rule: SensorRule,
    state: SensorRuleState,
    decision: _Decision,
    world: _World,
    actor: Actor,
    now: datetime,
) -> None:
    before = _state_view(state)
    thing = world.things[rule.thing_id]
    datastream = world.datastreams.get(rule.datastream_id) if rule.datastream_id else None
    action = decision.action
    if action == "raise":
        state.event_id = _raise(session, settings=settings, rule=rule, decision=decision, thing=thing,
                                datastream=datastream, actor=actor, now=now)  # fmt: skip
        state.level = decision.level
    elif action == "escalate":
        state.event_id = _escalate(session, settings=settings, rule=rule, state=state, decision=decision,
                                   thing=thing, datastream=datastream, actor=actor, now=now)  # fmt: skip
        state.level = decision.level
    elif action == "end":
        _end(session, settings=settings, rule=rule, state=state, decision=decision, datastream=datastream,
             actor=actor, now=now)  # fmt: skip
        state.event_id, state.level = None, None
    elif action == "flag":
        _notify_owner(session, settings=settings, rule=rule, thing=thing, datastream=datastream, decision=decision)
    state.state = decision.state.value
    state.since = decision.since
    state.clear_since = decision.clear_since
    state.problem = None
    state.changed_at = now
    session.flush()
    after = _state_view(state)
    if after != before:
        record_change(
            session, actor=actor, action=f"sensor_rule.{action}", entity_type="sensor_rule", entity_id=rule.id,
            before=before, after=after,
        )  # fmt: skip


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _texts(
    *,
    settings: Settings,
    rule: SensorRule,
    decision: _Decision,
    thing: Thing,
    datastream: Datastream | None,
    level: str | None,
) -> dict[str, str]:
    """The title, description and instruction of the rule's event, in the installation's language."""
    token = set_locale(settings.default_locale)
    try:
        category = EventCategory(rule.category)
        place = thing.name[:120]
        # The level is not in the title: every view shows it beside the title (CAP: "Siaga: Banjir di …").
        title = rule.title or _("%(category)s at %(place)s") % {"category": category.label, "place": place}
        observed = datastream.name if datastream is not None else thing.name
        values = {
            "observed": observed,
            "thing": thing.name,
            "value": _fmt(decision.value),
            "unit": _unit_symbol(datastream) if datastream is not None else "",
            "threshold": _fmt(decision.threshold),
            "minutes": decision.minutes or 0,
            "time": decision.observed_at.astimezone(settings.zone).strftime("%d-%m-%Y %H:%M")
            if decision.observed_at
            else "-",
            "level": AlertLevel(level).label if level else "",
        }
        if RuleKind(rule.kind) is RuleKind.RATE_OF_CHANGE:
            description = (
                _(
                    "%(observed)s at %(thing)s rose by %(value)s %(unit)s per hour over the last %(minutes)d minutes "
                    "(the limit is %(threshold)s %(unit)s per hour); newest reading at %(time)s."
                )
                % values
            )
        else:
            description = (
                _(
                    "%(observed)s at %(thing)s has been at or above the %(level)s level (%(threshold)s %(unit)s) for "
                    "%(minutes)d minutes: %(value)s %(unit)s at %(time)s."
                )
                % values
            )
        end_note = (
            _(
                "%(observed)s has been below %(threshold)s %(unit)s for %(minutes)d minutes: %(value)s %(unit)s at "
                "%(time)s."
            )
            % values
            if RuleKind(rule.kind) is RuleKind.THRESHOLD
            else _("%(observed)s is no longer rising fast.") % values
        )
        return {
            "title": title[:TITLE_MAX],
            "description": description,
            "instruction": rule.instruction or "",
            "end_note": end_note,
            "note": _('Raised by the sensor rule "%(rule)s".') % {"rule": rule.name},
        }
    finally:
        reset_locale(token)


def _lock_thing(session: Session, thing_id: int) -> None:
    """Serialize the rules of one Thing that raise or end its shared event (PostgreSQL; SQLite's writers queue)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(Thing.id).where(Thing.id == thing_id).with_for_update())


def _shared_event(session: Session, *, rule: SensorRule, exclude_rule: int) -> Event | None:
    """An ongoing event that another rule of the same Thing raised for the same category."""
    from kotacerdas.events.models import Event

    return session.scalars(
        sa.select(Event)
        .join(SensorRuleState, SensorRuleState.event_id == Event.id)
        .join(SensorRule, SensorRule.id == SensorRuleState.rule_id)
        .where(
            SensorRule.thing_id == rule.thing_id,
            SensorRule.id != exclude_rule,
            SensorRuleState.state == RuleState.RAISED.value,
            Event.category == rule.category,
            Event.status.in_([status.value for status in ONGOING_STATUSES]),
        )
        .order_by(Event.id)
        .limit(1)
    ).first()


def _area(session: Session, thing: Thing) -> tuple[list[str] | None, dict[str, Any] | None]:
    if thing.desa_code:
        return [thing.desa_code], None
    point = session.execute(
        sa.select(Location.lat, Location.lon)
        .join(ThingLocation, ThingLocation.location_id == Location.id)
        .where(ThingLocation.thing_id == thing.id, Location.lat.is_not(None), Location.lon.is_not(None))
        .limit(1)
    ).first()
    if point is None:
        raise _invalid(_("The Thing has no desa and no location: the warning has no area."), "thing_id", "no_area")
    return None, {"type": "Point", "coordinates": [point.lon, point.lat]}


def _raise(
    session: Session,
    *,
    settings: Settings,
    rule: SensorRule,
    decision: _Decision,
    thing: Thing,
    datastream: Datastream | None,
    actor: Actor,
    now: datetime,
) -> int:
    from kotacerdas.events import service as events
    from kotacerdas.events.enums import EventSource

    _lock_thing(session, thing.id)
    shared = _shared_event(session, rule=rule, exclude_rule=rule.id)
    texts = _texts(settings=settings, rule=rule, decision=decision, thing=thing, datastream=datastream,
                   level=decision.level)  # fmt: skip
    if shared is not None:
        if _rank(decision.level) > _rank(shared.level):
            _update_level(session, settings=settings, event=shared, level=decision.level, texts=texts, actor=actor,
                          now=now)  # fmt: skip
        return shared.id
    codes, geometry = _area(session, thing)
    links = [(LinkKind.DEVICE.value, thing.id)]
    if thing.asset_id:
        links.append((LinkKind.ASSET.value, thing.asset_id))
    event = events.raise_event(
        session,
        settings=settings,
        data=events.EventInput(
            category=rule.category, level=decision.level, title=texts["title"], description=texts["description"],
            instruction=texts["instruction"] or None, starts_at=now, region_codes=codes, geometry=geometry,
            links=links,
        ),
        by=None,
        actor=actor,
        source=EventSource.SENSOR_RULE,
        note=texts["note"],
        now=now,
    )  # fmt: skip
    return event.id


def _update_level(
    session: Session, *, settings: Settings, event: Event, level: str | None, texts: dict[str, str], actor: Actor,
    now: datetime,
) -> None:  # fmt: skip
    from kotacerdas.events import service as events

    events.update_event(
        session,
        settings=settings,
        event_id=event.id,
        data=events.EventInput(
            level=level, description=texts["description"], given=frozenset({"level", "description"})
        ),
        by=None,
        actor=actor,
        note=texts["description"],
        now=now,
    )


def _escalate(
    session: Session,
    *,
    settings: Settings,
    rule: SensorRule,
    state: SensorRuleState,
    decision: _Decision,
    thing: Thing,
    datastream: Datastream | None,
    actor: Actor,
    now: datetime,
) -> int:
    from kotacerdas.events.models import Event

    event = session.get(Event, state.event_id) if state.event_id else None
    if event is None or event.status not in {status.value for status in ONGOING_STATUSES}:
        # Ended or cancelled by an operator meanwhile: a rise to a higher level is news again.
        return _raise(session, settings=settings, rule=rule, decision=decision, thing=thing, datastream=datastream,
                      actor=actor, now=now)  # fmt: skip
    if _rank(decision.level) > _rank(event.level):
        texts = _texts(settings=settings, rule=rule, decision=decision, thing=thing, datastream=datastream,
                       level=decision.level)  # fmt: skip
        _update_level(session, settings=settings, event=event, level=decision.level, texts=texts, actor=actor, now=now)
    return event.id


def _end(
    session: Session,
    *,
    settings: Settings,
    rule: SensorRule,
    state: SensorRuleState,
    decision: _Decision,
    datastream: Datastream | None,
    actor: Actor,
    now: datetime,
) -> None:
    from kotacerdas.events import service as events
    from kotacerdas.events.models import Event

    if state.event_id is None:
        return
    _lock_thing(session, rule.thing_id)
    still_held = session.scalar(
        sa.select(sa.func.count())
        .select_from(SensorRuleState)
        .where(
            SensorRuleState.event_id == state.event_id,
            SensorRuleState.rule_id != rule.id,
            SensorRuleState.state == RuleState.RAISED.value,
        )
    )
    event = session.get(Event, state.event_id)
    if still_held or event is None or event.status not in {status.value for status in ONGOING_STATUSES}:
        return  # another rule still holds it, or an operator closed it already
    thing = session.get(Thing, rule.thing_id)
    texts = _texts(settings=settings, rule=rule, decision=decision, thing=thing, datastream=datastream,
                   level=event.level)  # fmt: skip
    events.end_event(session, settings=settings, event_id=event.id, by=None, actor=actor, note=texts["end_note"],
                     now=now)  # fmt: skip


def _notify_owner(
    session: Session,
    *,
    settings: Settings,
    rule: SensorRule,
    thing: Thing,
    datastream: Datastream | None,
    decision: _Decision,
) -> None:
    """Email the Thing's OPD (its admins and staff; Diskominfo's admins and the operators when it has none) that a
    device went silent, once per silence."""
    from kotacerdas.accounts.enums import Role
    from kotacerdas.accounts.models import User
    from kotacerdas.notifications import service as notifications

    if thing.agency_id is not None:
        who = sa.and_(User.agency_id == thing.agency_id, User.role.in_([Role.OPD_ADMIN.value, Role.OPD_STAFF.value]))
    else:
        who = User.role.in_([Role.ADMIN.value, Role.OPERATOR.value])
    users = session.scalars(
        sa.select(User).where(who, User.active.is_(True), User.email.is_not(None)).order_by(User.id)
    )
    locale = settings.default_locale
    token = set_locale(locale)
    try:
        kind = RuleKind(rule.kind).label
    finally:
        reset_locale(token)
    since = decision.since or rule.created_at
    for user in users:
        notifications.queue_email(
            session,
            settings=settings,
            to=user.email,
            template="sensor_rule_alert",
            context={
                "kind": kind,
                "rule_name": rule.name,
                "thing": thing.name,
                "datastream": datastream.name if datastream is not None else None,
                "last_heard": decision.observed_at.astimezone(settings.zone).strftime("%d-%m-%Y %H:%M")
                if decision.observed_at
                else None,
                "minutes": decision.minutes,
                "console_url": f"{settings.public_base_url}/konsol/sensor/aturan/{rule.id}",
            },
            locale=locale,
            dedupe_key=f"sensor-rule:{rule.id}:{since.isoformat()}:{user.id}",
        )


# --- the worker ----------------------------------------------------------------------------------------------------


def run_rules(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """The worker's job: look at every rule in a read-only transaction, then apply each change in a short
    transaction of its own (on SQLite the writer queue is taken only then); how many rules changed."""
    with session_factory() as session:
        planned = evaluate_rules(session, settings=settings, now=now, dry_run=True)
    changed = 0
    for change in planned:
        with session_factory() as session:
            session.connection(execution_options={"kotacerdas_write": True})
            changed += len(evaluate_rules(session, settings=settings, now=now, rule_ids=[change.rule_id]))
            session.commit()
    return changed


def watchable(session: Session, *, limit: int = 2000) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """What a rule can watch, for the console's select boxes: (Datastream id, "Thing: Datastream (unit)") and
    (Thing id, name), by name."""
    rows = session.execute(
        sa.select(Datastream.id, Datastream.name, Thing.name, Datastream.unit_of_measurement)
        .join(Thing, Thing.id == Datastream.thing_id)
        .order_by(Thing.name, Datastream.name, Datastream.id)
        .limit(limit)
    )
    datastreams = []
    for datastream_id, name, thing_name, unit in rows:
        symbol = _symbol(unit)
        datastreams.append((datastream_id, f"{thing_name}: {name}" + (f" ({symbol})" if symbol else "")))
    things = session.execute(sa.select(Thing.id, Thing.name).order_by(Thing.name, Thing.id).limit(limit)).all()
    return datastreams, [(thing_id, name) for thing_id, name in things]


def _symbol(unit: Any) -> str:
    return str(unit.get("symbol") or "").strip() if isinstance(unit, dict) else ""


# --- views ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleView:
    """A rule as the console and the API show it: its state, its event and what it watches now."""

    rule: SensorRule
    state: SensorRuleState
    thing_name: str | None
    datastream_name: str | None
    unit: str
    thresholds: Thresholds | None
    thresholds_problem: str | None
    current_value: Any
    current_time: datetime | None
    event_title: str | None
    event_status: str | None
    event_level: str | None


def rule_views(session: Session, *, rules: Sequence[SensorRule]) -> list[RuleView]:
    """The views of `rules`, in a handful of queries."""
    from kotacerdas.events.models import Event
    from kotacerdas.sensors import store

    if not rules:
        return []
    states = get_states(session, rule_ids=[rule.id for rule in rules])
    datastreams = {
        row.id: row
        for row in session.scalars(
            sa.select(Datastream).where(Datastream.id.in_({rule.datastream_id for rule in rules if rule.datastream_id}))
        )
    }
    thing_rows = session.execute(sa.select(Thing.id, Thing.name).where(Thing.id.in_({rule.thing_id for rule in rules})))
    things = dict(thing_rows.all())
    currents = store.current_values(session, list(datastreams))
    event_ids = {state.event_id for state in states.values() if state.event_id}
    events = (
        {event.id: event for event in session.scalars(sa.select(Event).where(Event.id.in_(event_ids)))}
        if event_ids
        else {}
    )
    views = []
    for rule in rules:
        state = states[rule.id]
        datastream = datastreams.get(rule.datastream_id) if rule.datastream_id else None
        try:
            limits, problem = thresholds(rule, datastream), None
        except InvalidInput as error:
            limits, problem = None, error.detail
        current = currents.get(rule.datastream_id) if rule.datastream_id else None
        event = events.get(state.event_id) if state.event_id else None
        views.append(
            RuleView(
                rule=rule,
                state=state,
                thing_name=things.get(rule.thing_id),
                datastream_name=datastream.name if datastream is not None else None,
                unit=_unit_symbol(datastream) if datastream is not None else "",
                thresholds=limits,
                thresholds_problem=problem,
                current_value=current.result if current else None,
                current_time=current.phenomenon_time if current else None,
                event_title=event.title if event else None,
                event_status=event.status if event else None,
                event_level=event.level if event else None,
            )
        )
    return views
