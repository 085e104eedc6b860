"""From raw asset values (a console form, the JSON API, one row of an import) to the columns the registry stores,
or every reason the values cannot be stored. One set of rules for all three ways in.

`AssetCleaner` loads the asset types, the OPDs and the attribute validators once and locates many points in one
call, so that an import of 100,000 rows does no query per row (bench/assets_import.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas.accounts.service import clean_text
from kotacerdas.agencies.models import Agency
from kotacerdas.assets import geometry as geometries
from kotacerdas.assets.enums import Condition, ConditionScale
from kotacerdas.assets.models import AssetType
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import InvalidInput
from kotacerdas.i18n import _
from kotacerdas.regions import service as regions

NAME_MAX = 200
ADDRESS_MAX = 300
DESCRIPTION_MAX = 4000
EXTERNAL_SYSTEM_MAX = 40
EXTERNAL_VALUE_MAX = 100


def local_today(settings: Settings) -> date:
    """Today in the regency's zone: an inspection date is a local date, and at 19:00 UTC it is already tomorrow in
    Musi Rawas (WIB), so the machine's `date.today()` would call today's inspections future ones."""
    return utcnow().astimezone(settings.zone).date()


@dataclass
class RawAsset:
    """Asset values as they come in, before any check. `type` is an asset type's code or id, `agency` an OPD's id,
    short name or name (an empty one means the type's default OPD); `geometry` a GeoJSON geometry (dict or text) or
    WKT; `external_ids` maps a system (simbada, npsn, kode_ruas …) to this asset's number in it; `condition` with
    `condition_on` records a first inspection."""

    type: str | int | None
    name: str | None
    geometry: Any
    agency: str | int | None = None
    attributes: dict[str, Any] | None = None
    description: str | None = None
    address: str | None = None
    external_ids: dict[str, str] = field(default_factory=dict)
    condition: str | None = None
    condition_on: date | None = None


@dataclass
class CleanAsset:
    """Checked values: `columns` for the `assets` row (without id, condition and timestamps), the external ids, and
    the first inspection's condition and date when one was given."""

    columns: dict[str, Any]
    type: AssetType
    external_ids: dict[str, str]
    condition: Condition | None
    condition_on: date | None


@dataclass(frozen=True)
class FieldError:
    """Why one field cannot be stored: the field, a short reason code and the message in the user's language."""

    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "message": self.message}


class AssetCleaner:
    """Checks raw asset values against the types, OPDs and boundaries of one database session."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        types = list(session.scalars(sa.select(AssetType)))
        self.types_by_code = {kind.code: kind for kind in types}
        self.types_by_id = {kind.id: kind for kind in types}
        agencies = session.execute(sa.select(Agency.id, Agency.short_name, Agency.name, Agency.active)).all()
        self.active_agency_ids = {row.id for row in agencies if row.active}
        self.agency_ids: dict[str, int] = {}
        for row in agencies:
            self.agency_ids[row.name.casefold()] = row.id
        for row in agencies:  # a short name wins over another OPD's full name
            self.agency_ids[row.short_name.casefold()] = row.id
        self._validators: dict[int, Any] = {}

    # --- one field at a time -------------------------------------------------------------------------------

    def asset_type(self, value: str | int | None) -> AssetType:
        """The active asset type named by code or id; InvalidInput otherwise."""
        kind = None
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdecimal()):
            kind = self.types_by_id.get(int(value))
        elif isinstance(value, str):
            kind = self.types_by_code.get(value.strip().lower())
        if kind is None or not kind.active:
            raise InvalidInput(_("Unknown asset type."), errors=[{"field": "type", "reason": "unknown"}])
        return kind

    def agency_id(self, value: str | int | None, kind: AssetType) -> int:
        """The owner OPD's id from an id, short name or name; the type's default OPD when empty."""
        if value is None or (isinstance(value, str) and not value.strip()):
            if kind.agency_id is None:
                raise InvalidInput(_("Choose the owner OPD."), errors=[{"field": "agency", "reason": "required"}])
            return kind.agency_id
        found: int | None
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdecimal()):
            found = int(value) if int(value) in self.active_agency_ids else None
        else:
            found = self.agency_ids.get(value.strip().casefold())
        if found is None or found not in self.active_agency_ids:
            raise InvalidInput(_("Unknown OPD."), errors=[{"field": "agency", "reason": "unknown"}])
        return found

    def attributes(self, kind: AssetType, values: dict[str, Any] | None) -> dict[str, Any]:
        """The attributes, checked against the type's JSON Schema; InvalidInput listing every failing attribute."""
        values = dict(values or {})
        validator = self._validators.get(kind.id)
        if validator is None:
            import jsonschema  # on first use: it is slow to import, and the app starts without it

            schema = kind.attribute_schema or {"type": "object"}
            validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
            self._validators[kind.id] = validator
        problems = sorted(validator.iter_errors(values), key=lambda error: list(error.absolute_path))
        if problems:
            errors = []
            for problem in problems:
                where = ".".join(str(part) for part in problem.absolute_path)
                if not where and problem.validator == "required":
                    where = str(problem.message.split("'")[1]) if "'" in problem.message else ""
                errors.append({"field": f"attributes.{where}" if where else "attributes", "reason": problem.validator})
            raise InvalidInput(
                _("Some attributes do not fit the asset type: %(details)s")
                % {"details": "; ".join(_describe(problem) for problem in problems[:5])},
                errors=errors,
            )
        return values

    def condition(self, kind: AssetType, value: str | None) -> Condition | None:
        """A condition on the type's scale, or None when empty."""
        if value is None or not str(value).strip():
            return None
        text = str(value).strip().lower().replace(" ", "_").replace("-", "_")
        scale = ConditionScale(kind.condition_scale)
        for condition in scale.conditions:
            if text in (condition.value, condition.label_id.lower().replace(" ", "_")):
                return condition
        raise InvalidInput(
            _("Condition must be one of: %(allowed)s.")
            % {"allowed": ", ".join(condition.label for condition in scale.conditions)},
            errors=[{"field": "condition", "reason": "unknown"}],
        )

    # --- a whole asset ---------------------------------------------------------------------------------------

    def clean(self, raw: RawAsset) -> CleanAsset:
        """One asset's values checked and located; InvalidInput (all its field errors) when any is wrong."""
        result = self.clean_many([raw])[0]
        if isinstance(result, CleanAsset):
            return result
        raise InvalidInput(result[0].message, errors=[error.as_dict() for error in result])

    def clean_many(self, raws: list[RawAsset]) -> list[CleanAsset | list[FieldError]]:
        """Each asset's checked values, or the list of its field errors; the points are located in one call."""
        staged: list[tuple[dict[str, Any], geometries.CheckedGeometry | None, list[FieldError]]] = []
        for raw in raws:
            errors: list[FieldError] = []
            values: dict[str, Any] = {"raw": raw}
            checked = None
            kind = self._field(errors, "type", lambda raw=raw: self.asset_type(raw.type))
            values["name"] = self._field(
                errors,
                "name",
                lambda raw=raw: clean_text(raw.name, field="name", label=_("Name"), max_length=NAME_MAX, required=True),
            )
            values["address"] = self._field(
                errors,
                "address",
                lambda raw=raw: clean_text(raw.address, field="address", label=_("Address"), max_length=ADDRESS_MAX),
            )
            values["description"] = self._field(
                errors,
                "description",
                lambda raw=raw: clean_text(
                    raw.description,
                    field="description",
                    label=_("Description"),
                    max_length=DESCRIPTION_MAX,
                    multiline=True,
                ),
            )
            values["external_ids"] = self._field(
                errors, "external_ids", lambda raw=raw: _external_ids(raw.external_ids)
            )
            if kind is not None:
                values["type"] = kind
                values["agency_id"] = self._field(
                    errors, "agency", lambda raw=raw, k=kind: self.agency_id(raw.agency, k)
                )
                values["attributes"] = self._field(
                    errors, "attributes", lambda raw=raw, k=kind: self.attributes(k, raw.attributes)
                )
                values["condition"] = self._field(
                    errors, "condition", lambda raw=raw, k=kind: self.condition(k, raw.condition)
                )
                try:
                    checked = geometries.check(raw.geometry, kind=kind.geometry_kind)
                except geometries.GeometryError as error:
                    errors.append(FieldError("geometry", error.reason, error.message))
            if raw.condition_on is not None and raw.condition_on > local_today(self.settings):
                errors.append(FieldError("condition_on", "future", _("The inspection date is in the future.")))
            staged.append((values, checked, errors))

        located = [i for i, (_values, checked, errors) in enumerate(staged) if checked is not None and not errors]
        batch = (
            regions.locate_many(
                self.session, settings=self.settings, points=[(staged[i][1].lat, staged[i][1].lon) for i in located]
            )
            if located
            else None
        )
        results: list[CleanAsset | list[FieldError]] = []
        position = {index: n for n, index in enumerate(located)}
        for index, (values, checked, errors) in enumerate(staged):
            if errors or checked is None:
                results.append(errors)
                continue
            n = position[index]
            if not bool(batch.inside[n]):
                results.append(
                    [
                        FieldError(
                            "geometry",
                            "outside",
                            _("The location is outside %(region)s.") % {"region": self.settings.region_name},
                        )
                    ]
                )
                continue
            kind: AssetType = values["type"]
            raw: RawAsset = values["raw"]
            columns = {
                "type_id": kind.id,
                "name": values["name"],
                "description": values["description"],
                "address": values["address"],
                "agency_id": values["agency_id"],
                **checked.columns(),
                "desa_code": batch.desa_code[n] or None,
                "kecamatan_code": batch.kecamatan_code[n] or None,
                "locate_method": str(batch.method[n]),
                "attributes": values["attributes"],
            }
            results.append(
                CleanAsset(
                    columns=columns,
                    type=kind,
                    external_ids=values["external_ids"],
                    condition=values["condition"],
                    condition_on=raw.condition_on if values["condition"] is not None else None,
                )
            )
        return results

    @staticmethod
    def _field(errors: list[FieldError], name: str, check: Any) -> Any:
        try:
            return check()
        except InvalidInput as error:
            reasons = error.errors or [{"field": name, "reason": "invalid"}]
            for item in reasons:
                errors.append(FieldError(item.get("field", name), item.get("reason", "invalid"), error.detail))
            return None


def _external_ids(values: dict[str, str] | None) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for system, value in (values or {}).items():
        key = clean_text(
            str(system).lower(), field="external_ids", label=_("Inventory"), max_length=EXTERNAL_SYSTEM_MAX
        )
        number = clean_text(
            None if value is None else str(value),
            field="external_ids",
            label=_("Number"),
            max_length=EXTERNAL_VALUE_MAX,
        )
        if key and number:
            cleaned[key] = number
    return cleaned


def _describe(problem: Any) -> str:
    where = ".".join(str(part) for part in problem.absolute_path)
    return f"{where}: {problem.message}" if where else problem.message
