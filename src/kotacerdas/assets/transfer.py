"""Importing assets from CSV or GeoJSON, and exporting any filtered selection to GeoJSON, CSV or XLSX.

One import is one pass over the file, streamed: rows are read, turned into `RawAsset`s, checked in chunks by
`validation.AssetCleaner.clean_many` (the same rules as the console and the API) and written with Core statements
inside a savepoint. Every bad row is reported with its place (CSV line, GeoJSON feature index) and reason; by
default a file with any bad row stores nothing (the savepoint is rolled back). No row's Python objects outlive its
chunk, so memory stays flat however long the file is (bench/assets_import.py).

The columns (CSV header, GeoJSON property names; Indonesian aliases in brackets):

- `type` (jenis, jenis_aset): an asset type's code (`jalan`, `sekolah` …); required unless a default is given.
- `name` (nama, nama_aset): required.
- `agency` (opd, pemilik): the owner OPD's short name, name or id; empty means the default (see `import_assets`).
- `lat` (latitude, lintang) and `lon` (lng, longitude, bujur): a point in WGS 84 degrees; or `wkt` (geometry,
  geometri): WKT or GeoJSON geometry text, needed for lines. When `wkt` is filled, `lat`/`lon` are not read.
- `attr.<name>` (atribut.<name>): one attribute each, typed by the asset type's schema (numbers, integers, ya/tidak);
  or `attributes` (atribut): one JSON object. Both may be given; an `attr.` column wins.
- `id.<system>`: the asset's number in another inventory (`id.simbada`, `id.npsn`, `id.kode_ruas`). A row whose
  number is already stored updates that asset in place (upsert); otherwise it is a new asset.
- `condition` (kondisi): a condition code or its Indonesian label (Baik, Rusak Ringan …), recorded as an inspection;
  `condition_on` (inspected_on, tanggal_kondisi, tanggal_inspeksi): its date (YYYY-MM-DD or DD/MM/YYYY; default
  today).
- `address` (alamat), `description` (deskripsi, keterangan).
- `kecamatan_code`, `desa_code`, `length_km`: written by the export, ignored on import (derived from the geometry).

In GeoJSON the geometry is the feature's, and `attributes` and `external_ids` may also be objects. Any other
column or property refuses the file, so that a misspelt column is never silently dropped.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.enums import Permission, Role
from kotacerdas.accounts.models import User
from kotacerdas.agencies.models import Agency
from kotacerdas.assets import service
from kotacerdas.assets.enums import Condition
from kotacerdas.assets.models import Asset, AssetExternalId, AssetInspection, AssetType
from kotacerdas.assets.validation import AssetCleaner, CleanAsset, FieldError, RawAsset
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.errors import InvalidInput, PermissionDenied
from kotacerdas.i18n import _

# Rows checked (and located) per call of `AssetCleaner.clean_many` and written per statement.
CHUNK_ROWS = 2_000
# Large files are checked in worker processes (`auto_workers`).
PARALLEL_FROM_ROWS = 20_000
PARALLEL_WORKERS = 4
# Row errors kept in the result (and so in an API answer); every one still goes to `on_error`.
MAX_KEPT_ERRORS = 1_000
# A long road in WKT (up to geometry.MAX_VERTICES points) is larger than the csv module's default field limit.
MAX_FIELD_CHARS = 2 * 1024 * 1024
INSPECTOR_MAX = 120

ANALYZE_FIRST_AFTER_ROWS = 4_000
NEXT_ASSET_IDS = sa.text("SELECT nextval(pg_get_serial_sequence('assets', 'id')) FROM generate_series(1, :n)")
# Canonical column → the names it is also read under (lower case, spaces as underscores).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "type": ("type", "jenis", "jenis_aset", "kode_jenis"),
    "name": ("name", "nama", "nama_aset"),
    "agency": ("agency", "opd", "pemilik"),
    "lat": ("lat", "latitude", "lintang"),
    "lon": ("lon", "lng", "long", "longitude", "bujur"),
    "wkt": ("wkt", "geometry", "geometri"),
    "attributes": ("attributes", "atribut"),
    "external_ids": ("external_ids",),
    "condition": ("condition", "kondisi"),
    "condition_on": ("condition_on", "inspected_on", "tanggal_kondisi", "tanggal_inspeksi"),
    "address": ("address", "alamat"),
    "description": ("description", "deskripsi", "keterangan"),
}
CSV_FIELDS = tuple(name for name in FIELD_ALIASES if name != "external_ids")
ALIASES = {alias: name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
# Written by the export for the reader's sake; derived from the geometry, so an import does not read them.
IGNORED_COLUMNS = frozenset({"kecamatan_code", "desa_code", "length_km"})
ATTRIBUTE_PREFIXES = ("attr.", "atribut.")
EXTERNAL_ID_PREFIX = "id."
# Export columns before the attributes and external ids (the import reads them all).
EXPORT_COLUMNS = (
    "type", "name", "agency", "lat", "lon", "wkt", "condition", "condition_on", "address", "description",
    "kecamatan_code", "desa_code", "length_km",
)  # fmt: skip
TRUE_WORDS = frozenset({"true", "ya", "y", "yes", "1", "benar"})
FALSE_WORDS = frozenset({"false", "tidak", "t", "no", "n", "0", "salah"})
DMY_DATE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")


# --- results ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one row of a file cannot be imported. `place` is its CSV line (the header is line 1) or GeoJSON feature
    index (from 0), as `place_kind` ("line" or "feature") says."""

    place: int
    place_kind: str
    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {self.place_kind: self.place, "field": self.field, "reason": self.reason, "message": self.message}


@dataclass
class ImportResult:
    """What an import did (or, in a dry run, would do): rows read, assets inserted and updated, inspections
    recorded, the bad rows, and whether anything was stored."""

    file_format: str
    dry_run: bool
    partial: bool
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    inspections: int = 0
    bad_rows: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    stored: bool = False

    def summary(self) -> dict[str, Any]:
        """The counts, as the API answers them and the audit entry records them."""
        return {
            "format": self.file_format,
            "dry_run": self.dry_run,
            "partial": self.partial,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "inspections": self.inspections,
            "bad_rows": self.bad_rows,
            "stored": self.stored,
        }


@dataclass(slots=True)
class _Parsed:
    """One row read from the file: its place, the raw values, and what was already wrong before cleaning."""

    place: int
    raw: RawAsset | None
    errors: list[tuple[str, str, str]]  # (field, reason, message)


def _file_error(message: str, reason: str, **extra: Any) -> InvalidInput:
    """The file as a whole cannot be read: one error, nothing imported."""
    return InvalidInput(
        _("The file cannot be imported: %(reason)s") % {"reason": message},
        errors=[{"field": "file", "reason": reason, "message": message, **extra}],
    )


# --- reading CSV -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    index: int
    kind: str  # a canonical field, "attr", "id" or "ignored"
    key: str  # the attribute name or external system, else the field


def _normal(name: str) -> str:
    return "_".join(name.strip().lower().split())


def _columns(header: list[str], *, default_type: bool) -> list[_Column]:
    """The meaning of each header cell; InvalidInput for a wrong delimiter, unknown or missing columns."""
    cells = [cell.strip() for cell in header]
    if len(cells) == 1:
        for delimiter, label in ((";", _("semicolons (;)")), ("\t", _("tabs")), ("|", _("vertical bars (|)"))):
            if delimiter in cells[0]:
                raise _file_error(
                    _(
                        "its columns are separated by %(delimiter)s; kotacerdas reads comma-separated CSV. Save it "
                        'again as "CSV UTF-8 (comma delimited)".'
                    )
                    % {"delimiter": label},
                    "delimiter",
                    delimiter=delimiter,
                )
    columns: list[_Column] = []
    unknown: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for index, cell in enumerate(cells):
        lowered = cell.lower()
        prefix = next((p for p in ATTRIBUTE_PREFIXES if lowered.startswith(p)), None)
        if prefix is not None and cell[len(prefix) :].strip():
            column = _Column(index, "attr", cell[len(prefix) :].strip())
        elif lowered.startswith(EXTERNAL_ID_PREFIX) and cell[len(EXTERNAL_ID_PREFIX) :].strip():
            column = _Column(index, "id", _normal(cell[len(EXTERNAL_ID_PREFIX) :]))
        elif _normal(cell) in ALIASES and ALIASES[_normal(cell)] != "external_ids":
            name = ALIASES[_normal(cell)]
            column = _Column(index, name, name)
        elif _normal(cell) in IGNORED_COLUMNS:
            column = _Column(index, "ignored", _normal(cell))
        elif not cell:
            continue  # a spreadsheet's stray empty column; its values are checked to be empty below
        else:
            unknown.append(cell)
            continue
        if column.kind != "ignored" and (column.kind, column.key) in seen:
            raise _file_error(
                _("the columns %(first)s and %(second)s say the same thing.")
                % {"first": seen[(column.kind, column.key)], "second": cell},
                "duplicate_column",
                column=cell,
            )
        seen[(column.kind, column.key)] = cell
        columns.append(column)
    if unknown:
        raise _file_error(
            _("unknown columns: %(columns)s. Known columns: %(known)s, attr.<name> and id.<system>.")
            % {"columns": ", ".join(unknown), "known": ", ".join(CSV_FIELDS)},
            "unknown_columns",
            columns=unknown,
        )
    kinds = {column.kind for column in columns}
    missing = [name for name in ("name",) if name not in kinds]
    if "type" not in kinds and not default_type:
        missing.insert(0, "type")
    if "wkt" not in kinds and not {"lat", "lon"} <= kinds:
        missing.append("lat + lon / wkt")
    if missing:
        raise _file_error(
            _("missing columns: %(columns)s (a geometry needs lat and lon, or wkt).") % {"columns": ", ".join(missing)},
            "missing_columns",
            columns=missing,
        )
    return columns


def _encoding_error(line: int | None) -> InvalidInput:
    message = (
        _('it is not UTF-8 text (near line %(line)d). Save it again as "CSV UTF-8".') % {"line": line}
        if line
        else _('it is not UTF-8 text. Save it again as "CSV UTF-8".')
    )
    return _file_error(message, "encoding", line=line)


def read_csv(source: BinaryIO, *, typer: _Typer, default_type: bool = False) -> Iterator[_Parsed]:
    """The rows of a CSV file (UTF-8, with or without a byte order mark, comma-separated), streamed."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    last_line = 0
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise _file_error(_("the file is empty."), "empty") from None
        columns = _columns(header, default_type=default_type)
        last_line = reader.line_num
        width = len(header)
        for values in reader:
            line = last_line + 1
            last_line = reader.line_num
            if not any(value.strip() for value in values):
                continue  # a blank line (spreadsheets often end with some)
            yield _row_from_csv(line, values, columns, width, typer)
    except UnicodeDecodeError:
        raise _encoding_error(last_line + 1) from None
    except csv.Error as exc:
        raise _file_error(
            _("line %(line)d cannot be read as CSV (%(problem)s).") % {"line": last_line + 1, "problem": str(exc)},
            "csv",
            line=last_line + 1,
        ) from None
    finally:
        with contextlib.suppress(ValueError):  # already closed, when the caller stopped early
            text.detach()  # the caller owns the binary file


def _row_from_csv(line: int, values: list[str], columns: list[_Column], width: int, typer: _Typer) -> _Parsed:
    errors: list[tuple[str, str, str]] = []
    if len(values) > width and any(value.strip() for value in values[width:]):
        errors.append(
            (
                "row",
                "columns",
                _("The row has %(found)d values; the header has %(expected)d columns.")
                % {"found": len(values), "expected": width},
            )
        )
    fields: dict[str, str] = {}
    attributes: dict[str, str] = {}
    external_ids: dict[str, str] = {}
    for column in columns:
        value = values[column.index].strip() if column.index < len(values) else ""
        if column.kind == "attr":
            if value:
                attributes[column.key] = value
        elif column.kind == "id":
            if value:
                external_ids[column.key] = value
        elif column.kind != "ignored":
            fields[column.kind] = value
    return _parsed(line, fields, attributes, external_ids, None, errors, typer)


# --- reading GeoJSON -------------------------------------------------------------------------------------------

ACCEPTED_CRS = frozenset(
    {
        "urn:ogc:def:crs:OGC:1.3:CRS84",
        "urn:ogc:def:crs:OGC::CRS84",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "OGC:CRS84",
        "CRS84",
        "EPSG:4326",
        "urn:ogc:def:crs:EPSG::4326",
        "http://www.opengis.net/def/crs/EPSG/0/4326",
    }
)


def _crs_error(member: Any) -> InvalidInput | None:
    """None when a GeoJSON `crs` member names WGS 84 longitude/latitude (RFC 7946 has none; older files may)."""
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if isinstance(name, str) and name.strip() in ACCEPTED_CRS:
        return None
    shown = name if isinstance(name, str) else json.dumps(member)[:80]
    return _file_error(
        _(
            "its coordinate reference system is %(crs)s; kotacerdas reads WGS 84 longitude/latitude only (RFC 7946, "
            "CRS84 or EPSG:4326). Reproject the file first."
        )
        % {"crs": shown},
        "crs",
        crs=shown,
    )


class _GeoJSONState:
    """What the top level of a GeoJSON document said, checked once the whole file has been read."""

    def __init__(self) -> None:
        self.type: Any = None
        self.crs: Any = None
        self.has_crs = False
        self.crs_builder: Any = None
        self.features_seen = False
        self.unknown: set[str] = set()

    def check(self) -> None:
        if self.type != "FeatureCollection":
            raise _file_error(_('the top level must be an object with "type": "FeatureCollection".'), "geojson")
        if self.has_crs and (error := _crs_error(self.crs)):
            raise error
        if not self.features_seen:
            raise _file_error(_('"features" must be a list.'), "geojson")
        if self.unknown:
            names = sorted(self.unknown)
            raise _file_error(
                _("unknown properties: %(names)s. Known properties: %(known)s, attr.<name> and id.<system>.")
                % {"names": ", ".join(names[:20]), "known": ", ".join(FIELD_ALIASES)},
                "unknown_columns",
                columns=names[:100],
            )


def read_geojson(source: BinaryIO, *, typer: _Typer, state: _GeoJSONState) -> Iterator[_Parsed]:
    """The features of a GeoJSON FeatureCollection, streamed with ijson; `state.check()` after the last one says
    whether the file as a whole was right (a `crs` member may come after the features)."""
    import ijson  # loaded on use: only imports need it

    head = source.read(4)
    source.seek(0)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _encoding_error(None)
    builder: Any = None
    index = -1
    try:
        for prefix, event, value in ijson.parse(source, use_float=True):
            if builder is not None:
                builder.event(event, value)
                if prefix == "features.item" and event == "end_map":
                    feature, builder = builder.value, None
                    yield _row_from_feature(index, feature, typer, state)
                continue
            if prefix == "features.item" and event == "start_map":
                index += 1
                builder = ijson.ObjectBuilder()
                builder.event(event, value)
            elif prefix == "features.item" and event != "end_array":
                index += 1
                yield _Parsed(index, None, [("feature", "geojson", _("A feature must be a JSON object."))])
            elif prefix == "features" and event == "start_array":
                state.features_seen = True
            elif prefix == "type" and event in ("string", "number", "boolean", "null"):
                state.type = value
            elif prefix == "crs" or prefix.startswith("crs."):
                if not state.has_crs:
                    state.has_crs, state.crs_builder = True, ijson.ObjectBuilder()
                state.crs_builder.event(event, value)
                state.crs = state.crs_builder.value
            elif prefix == "" and event == "start_map":
                pass
            elif prefix == "" and event not in ("map_key", "end_map"):
                raise _file_error(_('the top level must be an object with "type": "FeatureCollection".'), "geojson")
    except UnicodeDecodeError:
        raise _encoding_error(None) from None
    except ijson.JSONError as exc:
        raise _file_error(
            _("it is not valid JSON (%(problem)s).") % {"problem": str(exc)[:200]}, "json", feature=index
        ) from None


def _row_from_feature(index: int, feature: dict[str, Any], typer: _Typer, state: _GeoJSONState) -> _Parsed:
    errors: list[tuple[str, str, str]] = []
    if feature.get("type") != "Feature":
        errors.append(("feature", "geojson", _('A feature must have "type": "Feature".')))
    if "crs" in feature and (problem := _crs_error(feature["crs"])):
        errors.append(("crs", "crs", problem.errors[0]["message"]))
    properties = feature.get("properties") or {}
    if not isinstance(properties, dict):
        errors.append(("properties", "geojson", _('"properties" must be an object.')))
        properties = {}
    fields: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    external_ids: dict[str, Any] = {}
    attribute_object: Any = None
    for key, value in properties.items():
        lowered = key.strip().lower()
        prefix = next((p for p in ATTRIBUTE_PREFIXES if lowered.startswith(p)), None)
        if prefix is not None:
            if value is not None and value != "":
                attributes[key.strip()[len(prefix) :].strip()] = value
        elif lowered.startswith(EXTERNAL_ID_PREFIX):
            if value is not None and value != "":
                external_ids[_normal(key[len(EXTERNAL_ID_PREFIX) :])] = value
        elif _normal(key) in ALIASES:
            name = ALIASES[_normal(key)]
            if name == "attributes":
                attribute_object = value
            elif name == "external_ids":
                if isinstance(value, dict):
                    for system, number in value.items():
                        if number is not None and number != "":
                            external_ids.setdefault(_normal(str(system)), number)
                elif value is not None:
                    errors.append(("external_ids", "format", _('"external_ids" must be an object.')))
            else:
                fields[name] = value
        elif _normal(key) not in IGNORED_COLUMNS and _normal(key) not in ("id", "condition_label"):
            state.unknown.add(key)
    geometry = feature.get("geometry")
    if geometry is not None and not isinstance(geometry, dict):
        errors.append(("geometry", "invalid", _("The geometry cannot be read (GeoJSON geometry or WKT).")))
        geometry = None
    if isinstance(geometry, dict) and "crs" in geometry and (problem := _crs_error(geometry["crs"])):
        errors.append(("crs", "crs", problem.errors[0]["message"]))
    return _parsed(index, fields, attributes, external_ids, (geometry, attribute_object), errors, typer)


# --- a row's values --------------------------------------------------------------------------------------------


class _Typer:
    """Turns text attribute values into the JSON types the asset type's schema wants (a CSV cell is always text),
    and fills the defaults given for the whole file."""

    def __init__(self, cleaner: AssetCleaner, *, default_type: str | None, default_agency: str | None) -> None:
        self.cleaner = cleaner
        self.default_type = default_type
        self.default_agency = default_agency
        self._properties: dict[str, dict[str, Any]] = {}

    def properties(self, type_value: Any) -> dict[str, Any]:
        key = str(type_value).strip().lower() if type_value is not None else ""
        if key not in self._properties:
            kind = None
            if key.isdecimal():
                kind = self.cleaner.types_by_id.get(int(key))
            elif key:
                kind = self.cleaner.types_by_code.get(key)
            schema = (kind.attribute_schema if kind is not None else None) or {}
            self._properties[key] = schema.get("properties") or {}
        return self._properties[key]

    def value(self, schema: dict[str, Any], value: Any) -> Any:
        if not isinstance(value, str):
            return value
        kinds = schema.get("type")
        kinds = {kinds} if isinstance(kinds, str) else set(kinds or ())
        text = value.strip()
        try:
            if "integer" in kinds:
                number = float(_decimal(text))
                return int(number) if number.is_integer() else number
            if "number" in kinds:
                return float(_decimal(text))
        except ValueError:
            return value  # the schema check says what is wrong, in the user's language
        if "boolean" in kinds and text.lower() in TRUE_WORDS | FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        return value


def _decimal(text: str) -> str:
    # "12,5" from a spreadsheet in the Indonesian locale.
    return text.replace(",", ".") if text.count(",") == 1 and "." not in text else text


def _number(text: Any, field_name: str, errors: list[tuple[str, str, str]]) -> float | None:
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    try:
        return float(_decimal(str(text).strip()))
    except ValueError:
        errors.append((field_name, "format", _("%(field)s is not a number.") % {"field": field_name}))
        return None


def _date(value: Any, errors: list[tuple[str, str, str]]) -> date | None:
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        pass
    if match := DMY_DATE.match(text):
        try:
            return date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
        except ValueError:
            pass
    errors.append(("condition_on", "format", _("The inspection date must be YYYY-MM-DD or DD/MM/YYYY.")))
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _parsed(
    place: int,
    fields: dict[str, Any],
    attributes: dict[str, Any],
    external_ids: dict[str, Any],
    geojson: tuple[Any, Any] | None,
    errors: list[tuple[str, str, str]],
    typer: _Typer,
) -> _Parsed:
    """A RawAsset from one row's fields (CSV: all text; GeoJSON: JSON values, `geojson` = (geometry, attributes))."""
    type_value = fields.get("type")
    if type_value is None or (isinstance(type_value, str) and not type_value.strip()):
        type_value = typer.default_type
    agency = fields.get("agency")
    if agency is None or (isinstance(agency, str) and not agency.strip()):
        agency = typer.default_agency
    # The geometry: a GeoJSON feature's own, or wkt, or lat + lon.
    geometry: Any = None
    wkt = fields.get("wkt")
    if geojson is not None and geojson[0] is not None:
        geometry = geojson[0]
    elif isinstance(wkt, dict) or (isinstance(wkt, str) and wkt.strip()):
        geometry = wkt
    else:
        lat, lon = fields.get("lat"), fields.get("lon")
        lat_given = lat is not None and str(lat).strip() != ""
        lon_given = lon is not None and str(lon).strip() != ""
        if lat_given and lon_given:
            lat_value, lon_value = _number(lat, "lat", errors), _number(lon, "lon", errors)
            if lat_value is not None and lon_value is not None:
                geometry = {"type": "Point", "coordinates": [lon_value, lat_value]}
        elif lat_given or lon_given:
            missing = "lon" if lat_given else "lat"
            errors.append((missing, "required", _("A point needs both lat and lon.")))
    # Attributes: a JSON object (column or property), then one attr.<name> column each.
    values: dict[str, Any] = {}
    attribute_object = geojson[1] if geojson is not None else fields.get("attributes")
    if isinstance(attribute_object, str) and attribute_object.strip():
        try:
            attribute_object = json.loads(attribute_object)
        except ValueError:
            attribute_object = None
            errors.append(("attributes", "format", _("The attributes column must hold a JSON object.")))
    if isinstance(attribute_object, dict):
        values.update(attribute_object)
    elif attribute_object not in (None, ""):
        errors.append(("attributes", "format", _("The attributes column must hold a JSON object.")))
    if attributes:
        schema = typer.properties(type_value)
        for key, value in attributes.items():
            values[key] = typer.value(schema.get(key, {}), value)
    numbers = {system: _text(number) for system, number in external_ids.items()}
    raw = RawAsset(
        type=_text(type_value) if not isinstance(type_value, int) else type_value,
        name=_text(fields.get("name")),
        geometry=geometry,
        agency=agency if isinstance(agency, int) and not isinstance(agency, bool) else _text(agency),
        attributes=values,
        description=_text(fields.get("description")),
        address=_text(fields.get("address")),
        external_ids=numbers,
        condition=_text(fields.get("condition")),
        condition_on=_date(fields.get("condition_on"), errors),
    )
    return _Parsed(place, raw, errors)


# --- the import --------------------------------------------------------------------------------------------------


def import_scope(by: User | None) -> set[int] | None:
    """The OPDs whose assets `by` may import: None for any (admins, and the CLI where `by` is None); an OPD admin's
    own OPD; PermissionDenied for anyone without ASSETS_IMPORT."""
    if by is None:
        return None
    accounts.require_permission(by, Permission.ASSETS_IMPORT)
    if by.role == Role.ADMIN.value:
        return None
    if by.agency_id is None:
        raise PermissionDenied(_("You do not have permission to do this."))
    return {by.agency_id}


def detect_format(filename: str | None, head: bytes) -> str:
    """ "geojson" or "csv", from the file name, else from the first bytes."""
    name = (filename or "").lower()
    if name.endswith((".geojson", ".json")):
        return "geojson"
    if name.endswith((".csv", ".txt")):
        return "csv"
    if name.endswith((".xlsx", ".xls", ".ods")):
        raise _file_error(_('spreadsheets are imported as CSV: save the sheet as "CSV UTF-8" first.'), "format")
    stripped = head.lstrip(codecs.BOM_UTF8).lstrip()
    return "geojson" if stripped.startswith(b"{") else "csv"


@dataclass(frozen=True, slots=True)
class _Stored:
    """A stored asset that a row's external number belongs to."""

    asset_id: int
    agency_id: int
    condition: str | None
    condition_on: date | None


class _Importer:
    """The state of one import while it runs; see `import_assets`."""

    def __init__(
        self,
        session: Session,
        *,
        settings: Settings,
        by: User | None,
        result: ImportResult,
        place_kind: str,
        scope: set[int] | None,
        inspector: str,
        on_error: Callable[[RowError], None] | None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.by = by
        self.result = result
        self.place_kind = place_kind
        self.scope = scope
        self.inspector = inspector
        self.on_error = on_error
        self.connection = session.connection()
        self.cleaner = AssetCleaner(session, settings)
        self.today = service.local_today(settings)
        self.now = utcnow()
        # (system, number) digests seen in this file → the place of their row: a number twice in one file is a bad
        # row. Eight-byte digests, not the texts, so that 100,000 rows cost a few MB.
        self.seen_ids: dict[int, int] = {}
        self.assets = Asset.__table__
        self.insert_assets = sa.insert(self.assets).returning(self.assets.c.id, sort_by_parameter_order=True)
        self.update_assets = self.assets.update().where(self.assets.c.id == sa.bindparam("b_asset_id"))
        # PostgreSQL plans the look-ups of `_existing` from the statistics of the tables as they were when the import
        # began: empty, or far smaller. It then scanned the whole external-number table for every chunk, comparing
        # each row with the chunk's 2,000 numbers (7 s a chunk at 100,000 rows, bench/assets_import.py). The import
        # analyzes the tables it writes whenever its own rows have doubled since the last time (ANALYZE inside the
        # transaction counts the rows this transaction inserted), a handful of times per import.
        self.written_since_analyze = 0
        self.analyze_after = ANALYZE_FIRST_AFTER_ROWS

    @property
    def writing(self) -> bool:
        return not self.result.dry_run and (self.result.partial or self.result.bad_rows == 0)

    def fail(self, place: int, errors: Iterable[tuple[str, str, str]]) -> None:
        self.result.bad_rows += 1
        for field_name, reason, message in errors:
            error = RowError(place, self.place_kind, field_name, reason, message)
            self.result.error_count += 1
            if len(self.result.errors) < MAX_KEPT_ERRORS:
                self.result.errors.append(error)
            if self.on_error is not None:
                self.on_error(error)

    def clean(self, rows: list[_Parsed]) -> list[CleanAsset | list[FieldError]]:
        """The cleaner's answer for each readable row of a chunk (in this process)."""
        readable = [row.raw for row in rows if row.raw is not None]
        return self.cleaner.clean_many(readable) if readable else []

    def chunk(self, rows: list[_Parsed], cleaned: list[CleanAsset | list[FieldError]]) -> None:
        """Take one chunk of rows with the cleaner's answers (`clean`, here or in a worker process), then write its
        good rows (unless the import will store nothing anyway)."""
        self.result.rows += len(rows)
        readable = [row for row in rows if row.raw is not None]
        checked = {id(row): clean for row, clean in zip(readable, cleaned, strict=True)}
        good: list[tuple[_Parsed, CleanAsset, list[int]]] = []
        for row in rows:
            clean = checked.get(id(row))
            if row.errors or not isinstance(clean, CleanAsset):
                # Every reason at once: what reading found, then what the checks found (less the empty geometry
                # that an unreadable lat/lon leaves behind).
                found = list(row.errors)
                unreadable_point = any(error[0] in ("lat", "lon") for error in row.errors)
                for error in clean if isinstance(clean, list) else []:
                    if not (unreadable_point and error.field == "geometry" and error.reason == "empty"):
                        found.append((error.field, error.reason, error.message))
                self.fail(row.place, found or [("row", "invalid", _("The row cannot be imported."))])
                continue
            if self.scope is not None and clean.columns["agency_id"] not in self.scope:
                self.fail(row.place, [("agency", "forbidden", _("You may import only your own OPD's assets."))])
                continue
            digests, problem = self._new_numbers(row.place, clean.external_ids)
            if problem:
                self.fail(row.place, [problem])
                continue
            good.append((row, clean, digests))
        if good:
            self._upsert(good)

    def _new_numbers(self, place: int, numbers: dict[str, str]) -> tuple[list[int], tuple[str, str, str] | None]:
        digests = []
        for system, number in numbers.items():
            digest = int.from_bytes(
                hashlib.blake2b(f"{system}\x00{number}".encode(), digest_size=8).digest(), "big", signed=True
            )
            first = self.seen_ids.get(digest)
            if first is not None:
                return [], (
                    f"id.{system}",
                    "duplicate",
                    _("The number %(number)s (id.%(system)s) is also on %(kind)s %(place)d of this file.")
                    % {"number": number, "system": system, "kind": _place_word(self.place_kind), "place": first},
                )
            digests.append(digest)
        for digest in digests:
            self.seen_ids[digest] = place
        return digests, None

    def _existing(self, good: list[tuple[_Parsed, CleanAsset, list[int]]]) -> dict[tuple[str, str], Any]:
        """The stored assets that the chunk's external numbers belong to, by (system, number)."""
        wanted: dict[str, set[str]] = {}
        for _row, clean, _digests in good:
            for system, number in clean.external_ids.items():
                wanted.setdefault(system, set()).add(number)
        if not wanted:
            return {}
        # Two simple lookups, by the unique (system, value) index and then by primary key, rather than one join: in
        # a long import the tables grow inside the transaction while their statistics stay those of the start, and
        # PostgreSQL then planned the join so that each chunk cost more than the last.
        ids = AssetExternalId.__table__.c
        found = self.connection.execute(
            sa.select(ids.system, ids.value, ids.asset_id).where(
                sa.or_(*(sa.and_(ids.system == key, ids.value.in_(numbers)) for key, numbers in wanted.items()))
            )
        ).all()
        if not found:
            return {}
        assets = self.assets.c
        stored = {
            row.id: row
            for row in self.connection.execute(
                sa.select(assets.id, assets.agency_id, assets.condition, assets.condition_on).where(
                    assets.id.in_({row.asset_id for row in found})
                )
            )
        }
        return {
            (row.system, row.value): _Stored(row.asset_id, *tuple(stored[row.asset_id])[1:])
            for row in found
            if row.asset_id in stored
        }

    def _upsert(self, good: list[tuple[_Parsed, CleanAsset, list[int]]]) -> None:
        existing = self._existing(good)
        inserts: list[tuple[CleanAsset, dict[str, Any]]] = []
        updates: list[dict[str, Any]] = []
        new_numbers: list[dict[str, Any]] = []
        inspections: list[dict[str, Any]] = []
        for row, clean, _digests in good:
            matches = {existing[key].asset_id: existing[key] for key in clean.external_ids.items() if key in existing}
            if len(matches) > 1:
                self.fail(
                    row.place,
                    [
                        (
                            "external_ids",
                            "conflict",
                            _("The row's external numbers belong to different assets (%(ids)s).")
                            % {"ids": ", ".join(f"#{asset_id}" for asset_id in sorted(matches))},
                        )
                    ],
                )
                continue
            condition = clean.condition.value if clean.condition is not None else None
            inspected_on = (clean.condition_on or self.today) if condition is not None else None
            values = {**clean.columns, "updated_at": self.now}
            if not matches:
                self.result.inserted += 1
                values.update(condition=condition, condition_on=inspected_on, active=True, created_at=self.now)
                inserts.append((clean, values))
                continue
            asset_id, stored = next(iter(matches.items()))
            if self.scope is not None and stored.agency_id not in self.scope:
                self.fail(
                    row.place,
                    [("external_ids", "forbidden", _("The asset with this number belongs to another OPD (#%(id)d).")
                      % {"id": asset_id})],
                )  # fmt: skip
                continue
            self.result.updated += 1
            values["condition"], values["condition_on"] = stored.condition, stored.condition_on
            if condition is not None and (condition, inspected_on) != (stored.condition, stored.condition_on):
                inspections.append(self._inspection(asset_id, condition, inspected_on))
                if stored.condition_on is None or inspected_on >= stored.condition_on:
                    values["condition"], values["condition_on"] = condition, inspected_on
            updates.append({"b_asset_id": asset_id, **values})
            for system, number in clean.external_ids.items():
                if (system, number) not in existing:
                    new_numbers.append({"asset_id": asset_id, "system": system, "value": number})
        self.result.inspections += len(inspections) + sum(1 for _clean, values in inserts if values["condition"])
        if not self.writing:
            return
        if inserts:
            rows = [values for _clean, values in inserts]
            if self.connection.dialect.name == "postgresql":
                # The ids are taken from the sequence first, so that the INSERT needs no RETURNING: SQLAlchemy then
                # sends one short statement in psycopg's pipeline, instead of multi-row VALUES statements with
                # thousands of parameters that psycopg parses anew each time (a third of the import's time).
                ids = self.connection.execute(NEXT_ASSET_IDS, {"n": len(rows)}).scalars().all()
                for asset_id, values in zip(ids, rows, strict=True):
                    values["id"] = asset_id
                self.connection.execute(sa.insert(self.assets), rows)
            else:
                # SQLite: RETURNING with ordered rows costs one statement per row. The first row's INSERT takes the
                # database's write lock and gets the largest rowid (SQLite gives max + 1), so the rest can take
                # the next ids in one executemany: no other connection can write before this transaction ends.
                first = self.connection.execute(self.insert_assets, rows[:1]).scalar_one()
                ids = list(range(first, first + len(rows)))
                for asset_id, values in zip(ids[1:], rows[1:], strict=True):
                    values["id"] = asset_id
                if len(rows) > 1:
                    self.connection.execute(sa.insert(self.assets), rows[1:])
            for asset_id, (clean, values) in zip(ids, inserts, strict=True):
                for system, number in clean.external_ids.items():
                    new_numbers.append({"asset_id": asset_id, "system": system, "value": number})
                if values["condition"] is not None:
                    inspections.append(self._inspection(asset_id, values["condition"], values["condition_on"]))
        if updates:
            self.connection.execute(self.update_assets, updates)
        if new_numbers:
            self.connection.execute(sa.insert(AssetExternalId.__table__), new_numbers)
        if inspections:
            self.connection.execute(sa.insert(AssetInspection.__table__), inspections)
        self._analyze_when_grown(len(inserts) + len(new_numbers))

    def _analyze_when_grown(self, written: int) -> None:
        if self.connection.dialect.name != "postgresql":
            return  # SQLite plans these look-ups on the unique index whatever its statistics
        self.written_since_analyze += written
        if self.written_since_analyze < self.analyze_after:
            return
        for table in (AssetExternalId.__table__, self.assets):
            self.connection.exec_driver_sql(f"ANALYZE {table.name}")
        self.analyze_after = 2 * self.written_since_analyze
        self.written_since_analyze = 0

    def _inspection(self, asset_id: int, condition: str, inspected_on: date) -> dict[str, Any]:
        return {
            "asset_id": asset_id,
            "inspected_on": inspected_on,
            "inspector": self.inspector,
            "user_id": self.by.id if self.by is not None else None,
            "condition": condition,
            "notes": None,
            "source": "import",
            "report_id": None,
            "created_at": self.now,
        }


def _place_word(kind: str) -> str:
    return _("line") if kind == "line" else _("feature")


def import_assets(
    session: Session,
    *,
    settings: Settings,
    actor: accounts.Actor,
    by: User | None,
    source: BinaryIO,
    filename: str | None = None,
    dry_run: bool = False,
    partial: bool = False,
    default_type: str | None = None,
    default_agency: str | None = None,
    progress: Callable[[int], None] | None = None,
    on_error: Callable[[RowError], None] | None = None,
    workers: int = 1,
) -> ImportResult:
    """Import the assets of a CSV or GeoJSON file (see the module's docstring for the columns).

    Each row is checked as the console checks one asset; a row whose external number is stored updates that asset,
    any other row is a new asset; a row with a condition records an inspection (source "import"). `by` is the
    importing user (None: the CLI, any OPD); an OPD admin may import only rows of their own OPD, and empty OPD cells
    default to it. `default_type`/`default_agency` fill empty type and OPD cells. A dry run stores nothing. By default
    a file with any bad row stores nothing (`result.stored` is False and `result.errors` says why); `partial` stores
    the good rows. A file that cannot be read at all raises InvalidInput. One audit entry per stored import.

    `workers` > 1 checks the rows in that many worker processes (see `_run_in_workers`): for large files on a
    machine with cores to spare. The workers read the asset types, OPDs and regions as committed, so use it only
    when those are not changed in the same transaction."""
    scope = import_scope(by)
    if default_agency is None and by is not None and scope is not None:
        default_agency = str(by.agency_id)
    head = source.read(2048)
    source.seek(0)
    file_format = detect_format(filename, head)
    result = ImportResult(file_format=file_format, dry_run=dry_run, partial=partial)
    base_name = os.path.basename(filename or "") or "-"
    inspector = (_("Import %(file)s") % {"file": base_name})[:INSPECTOR_MAX]
    savepoint = session.begin_nested()
    try:
        importer = _Importer(
            session, settings=settings, by=by, result=result, place_kind="line" if file_format == "csv" else "feature",
            scope=scope, inspector=inspector, on_error=on_error,
        )  # fmt: skip
        typer = _Typer(importer.cleaner, default_type=default_type, default_agency=default_agency)
        state = _GeoJSONState()
        rows = (
            read_csv(source, typer=typer, default_type=default_type is not None)
            if file_format == "csv"
            else read_geojson(source, typer=typer, state=state)
        )
        if workers > 1:
            _run_in_workers(importer, _chunks(rows), settings=settings, workers=workers, progress=progress)
        else:
            for chunk in _chunks(rows):
                importer.chunk(chunk, importer.clean(chunk))
                if progress is not None:
                    progress(result.rows)
        if progress is not None:
            progress(result.rows)
        if file_format == "geojson":
            state.check()
        if result.rows == 0:
            raise _file_error(_("the file has no rows."), "empty")
    except BaseException:
        savepoint.rollback()
        raise
    if dry_run or (result.bad_rows and not partial):
        savepoint.rollback()
        if not dry_run:
            result.inserted = result.updated = result.inspections = 0
        return result
    savepoint.commit()
    result.stored = True
    accounts.record_change(
        session,
        actor=actor,
        action="asset.import",
        entity_type="asset",
        entity_id=None,
        after={"file": base_name, **result.summary()},
        flush=False,
    )
    return result


def auto_workers(rows: int | None) -> int:
    """How many worker processes `kotacerdas aset import` checks a file of about `rows` rows with: one per core up
    to PARALLEL_WORKERS for files of PARALLEL_FROM_ROWS rows or more (starting a worker costs a second or two);
    none (checking in this process) for smaller files."""
    if rows is None or rows < PARALLEL_FROM_ROWS:
        return 1
    return max(1, min(PARALLEL_WORKERS, os.cpu_count() or 1))


def _chunks(rows: Iterable[_Parsed]) -> Iterator[list[_Parsed]]:
    chunk: list[_Parsed] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- checking in worker processes ----------------------------------------------------------------------------------
#
# Checking a row (`AssetCleaner`: geometry, JSON Schema, texts) costs most of an import's time, and all of it is pure
# computation on the row: worker processes check chunks while this process reads the file and writes. The chunks go
# out in order and come back in order, at most `workers + 1` in flight, so memory stays flat. Workers are spawned,
# not forked (a forked copy of an open database connection is unsafe), each with its own engine and read-only session.

_worker: dict[str, Any] = {}


def _worker_start(settings: Settings, locale: str) -> None:
    from kotacerdas.db import make_engine, make_sessionmaker
    from kotacerdas.i18n import set_locale

    set_locale(locale)
    engine = make_engine(settings)
    session = make_sessionmaker(engine)()
    _worker.update(engine=engine, session=session, cleaner=AssetCleaner(session, settings))


def _worker_clean(raws: list[RawAsset]) -> list[tuple[Any, ...]]:
    """The cleaner's answers for `raws`, as plain tuples (an ORM object does not travel well between processes):
    ("ok", columns, type id, external ids, condition value, condition date) or ("bad", [(field, reason, message)])."""
    answers: list[tuple[Any, ...]] = []
    for clean in _worker["cleaner"].clean_many(raws):
        if isinstance(clean, CleanAsset):
            condition = clean.condition.value if clean.condition is not None else None
            answers.append(("ok", clean.columns, clean.type.id, clean.external_ids, condition, clean.condition_on))
        else:
            answers.append(("bad", [(error.field, error.reason, error.message) for error in clean]))
    return answers


def _from_worker(importer: _Importer, answers: list[tuple[Any, ...]]) -> list[CleanAsset | list[FieldError]]:
    cleaned: list[CleanAsset | list[FieldError]] = []
    for answer in answers:
        if answer[0] == "ok":
            _ok, columns, type_id, external_ids, condition, condition_on = answer
            kind = importer.cleaner.types_by_id[type_id]
            cleaned.append(
                CleanAsset(
                    columns=columns, type=kind, external_ids=external_ids,
                    condition=Condition(condition) if condition else None, condition_on=condition_on,
                )
            )  # fmt: skip
        else:
            cleaned.append([FieldError(*error) for error in answer[1]])
    return cleaned


def _run_in_workers(
    importer: _Importer,
    chunks: Iterator[list[_Parsed]],
    *,
    settings: Settings,
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    from kotacerdas.i18n import get_locale

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_worker_start, initargs=(settings, get_locale())
    ) as pool:
        pending: deque[tuple[list[_Parsed], Any]] = deque()
        try:
            for chunk in chunks:
                raws = [row.raw for row in chunk if row.raw is not None]
                pending.append((chunk, pool.submit(_worker_clean, raws) if raws else None))
                if len(pending) > workers:
                    _take(importer, pending.popleft(), progress)
            while pending:
                _take(importer, pending.popleft(), progress)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _take(importer: _Importer, item: tuple[list[_Parsed], Any], progress: Callable[[int], None] | None) -> None:
    chunk, future = item
    importer.chunk(chunk, _from_worker(importer, future.result()) if future is not None else [])
    if progress is not None:
        progress(importer.result.rows)


def errors_csv(errors: Iterable[RowError], target: IO[str]) -> int:
    """Write row errors as CSV (place, field, reason, message) to `target`; how many were written."""
    writer = csv.writer(target)
    writer.writerow(["place", "number", "field", "reason", "message"])
    count = 0
    for error in errors:
        writer.writerow([error.place_kind, error.place, error.field, error.reason, error.message])
        count += 1
    return count


# --- export ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRecord:
    """One exported asset: the import's columns, plus the stored id and derived place, and its geometry."""

    id: int
    geometry: dict[str, Any]
    values: dict[str, Any]  # type, name, agency, lat, lon, wkt, condition, … (see EXPORT_COLUMNS)
    attributes: dict[str, Any]
    external_ids: dict[str, str]


class Export:
    """A filtered selection of assets, read in batches (never all at once) and written in one of three formats.

    Public: assets hold no personal data, and inspections (with their inspectors) are not part of an export."""

    def __init__(self, session: Session, *, filters: service.AssetFilters, batch: int = CHUNK_ROWS) -> None:
        self.session = session
        self.filters = filters
        self.batch = batch
        self.written = 0  # assets read so far
        types = list(
            session.execute(
                sa.select(AssetType.code, AssetType.attribute_schema, AssetType.geometry_kind).order_by(
                    AssetType.position, AssetType.id
                )
            )
        )
        chosen = set(filters.type_codes or [])
        selected = [kind for kind in types if not chosen or kind.code in chosen]
        names: dict[str, None] = {}
        self.open_attributes = False
        for kind in selected:
            schema = kind.attribute_schema or {}
            names.update(dict.fromkeys(schema.get("properties") or {}))
            if schema.get("additionalProperties", True) is not False:
                self.open_attributes = True
        self.attribute_names = list(names)
        self.systems = list(
            session.scalars(sa.select(AssetExternalId.system).distinct().order_by(AssetExternalId.system))
        )

    @property
    def columns(self) -> list[str]:
        """The CSV/XLSX header: what the import reads, so that an export can be imported again."""
        extra = ["attributes"] if self.open_attributes else []
        return [
            *EXPORT_COLUMNS,
            *(f"attr.{name}" for name in self.attribute_names),
            *extra,
            *(f"id.{system}" for system in self.systems),
        ]

    def records(self) -> Iterator[ExportRecord]:
        """The selected assets by id, a batch at a time (keyset pagination: no long-held cursor)."""
        assets = Asset.__table__.c
        statement = (
            sa.select(
                assets.id, AssetType.code.label("type_code"), assets.name, Agency.short_name.label("agency"),
                assets.geometry, assets.lat, assets.lon, assets.condition, assets.condition_on, assets.address,
                assets.description, assets.kecamatan_code, assets.desa_code, assets.length_km, assets.attributes,
            )
            .join(AssetType, AssetType.id == assets.type_id)
            .join(Agency, Agency.id == assets.agency_id)
            .order_by(assets.id)
            .limit(self.batch)
        )  # fmt: skip
        statement = service.filter_statement(statement, self.filters)
        labels = {condition.value: condition.label_id for condition in Condition}
        after = 0
        while True:
            rows = self.session.execute(statement.where(assets.id > after)).all()
            if not rows:
                return
            after = rows[-1].id
            numbers: dict[int, dict[str, str]] = {}
            ids = AssetExternalId.__table__.c
            for asset_id, system, value in self.session.execute(
                sa.select(ids.asset_id, ids.system, ids.value).where(ids.asset_id.in_([row.id for row in rows]))
            ):
                numbers.setdefault(asset_id, {})[system] = value
            for row in rows:
                self.written += 1
                geometry = json.loads(row.geometry)
                yield ExportRecord(
                    id=row.id,
                    geometry=geometry,
                    values={
                        "type": row.type_code,
                        "name": row.name,
                        "agency": row.agency,
                        "lat": row.lat,
                        "lon": row.lon,
                        "wkt": _wkt(geometry) if geometry.get("type") != "Point" else None,
                        "condition": row.condition,
                        "condition_label": labels.get(row.condition) if row.condition else None,
                        "condition_on": row.condition_on.isoformat() if row.condition_on else None,
                        "address": row.address,
                        "description": row.description,
                        "kecamatan_code": row.kecamatan_code,
                        "desa_code": row.desa_code,
                        "length_km": row.length_km,
                    },
                    attributes=dict(row.attributes or {}),
                    external_ids=numbers.get(row.id, {}),
                )

    # --- formats -----------------------------------------------------------------------------------------------

    def _cells(self, record: ExportRecord) -> list[Any]:
        values = dict(record.values)
        # A spreadsheet reader wants the label; the import reads labels and codes alike.
        values["condition"] = values.pop("condition_label")
        cells: list[Any] = [values[name] for name in EXPORT_COLUMNS]
        cells += [_cell(record.attributes.get(name)) for name in self.attribute_names]
        if self.open_attributes:
            rest = {key: value for key, value in record.attributes.items() if key not in set(self.attribute_names)}
            cells.append(json.dumps(rest, ensure_ascii=False) if rest else None)
        cells += [record.external_ids.get(system) for system in self.systems]
        return cells

    def iter_csv(self) -> Iterator[str]:
        """The selection as CSV text (UTF-8 with a byte order mark, so that spreadsheets read it right), in pieces."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(self.columns)
        for n, record in enumerate(self.records(), start=1):
            writer.writerow(["" if cell is None else cell for cell in self._cells(record)])
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    def iter_geojson(self) -> Iterator[str]:
        """The selection as an RFC 7946 FeatureCollection, in pieces."""
        yield '{"type":"FeatureCollection","features":['
        pieces: list[str] = []
        first = True
        for record in self.records():
            properties = {key: value for key, value in record.values.items() if key not in ("lat", "lon", "wkt")}
            properties["attributes"] = record.attributes
            properties["external_ids"] = record.external_ids
            feature = {"type": "Feature", "id": record.id, "geometry": record.geometry, "properties": properties}
            pieces.append(("" if first else ",") + json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
            first = False
            if len(pieces) >= 500:
                yield "".join(pieces)
                pieces = []
        pieces.append("]}")
        yield "".join(pieces)

    def write_xlsx(self, target: str | os.PathLike[str]) -> int:
        """Write the selection as an XLSX workbook to the file `target`, row by row (XlsxWriter's constant memory
        mode); how many assets were written."""
        import xlsxwriter  # loaded on use: only exports need it

        workbook = xlsxwriter.Workbook(
            os.fspath(target), {"constant_memory": True, "strings_to_numbers": False, "strings_to_urls": False}
        )
        try:
            sheet = workbook.add_worksheet("aset")
            bold = workbook.add_format({"bold": True})
            sheet.write_row(0, 0, self.columns, bold)
            sheet.freeze_panes(1, 0)
            count = 0
            for count, record in enumerate(self.records(), start=1):  # noqa: B007 (the count is returned)
                for column, cell in enumerate(self._cells(record)):
                    if cell is None:
                        continue
                    if isinstance(cell, str):
                        sheet.write_string(count, column, cell)
                    else:
                        sheet.write(count, column, cell)
        finally:
            workbook.close()
        return count

    def iter_xlsx(self) -> Iterator[bytes]:
        """The selection as XLSX bytes, in pieces: built in a temporary file (a workbook is a zip, finished only at
        the end), then streamed from it."""
        with tempfile.TemporaryDirectory(prefix="kc-export-") as folder:
            path = os.path.join(folder, "aset.xlsx")
            self.write_xlsx(path)
            with open(path, "rb") as handle:
                while piece := handle.read(256 * 1024):
                    yield piece


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "ya" if value else "tidak"
    return value


def _wkt(geometry: dict[str, Any]) -> str:
    import shapely
    from shapely.geometry import shape

    return shapely.to_wkt(shape(geometry), rounding_precision=7, trim=True)
