"""The demo's asset registry: a believable inventory of Musi Rawas roads, bridges and facilities.

Built on the stored regions, the same on every run from a seed (`kotacerdas demo`). Roads are chains of gently bent
segments between neighbouring kecamatan seats and, inside each kecamatan, a tree from its seat (the kelurahan, or
the desa nearest its centre) out to every desa, plus short streets inside desa; bridges, street lights and drains
sit on those roads; schools, health posts, markets, offices, water points, towers and river gauges sit inside the
desa their address names. With imported boundaries every point is drawn inside the desa polygon and checked with the
same point lookup the registry uses (so desa and kecamatan are derived, not invented); without boundaries the desa
are laid out around their kecamatan centre and only the kecamatan is exact.

Rows go through `AssetCleaner` like an import and are written with bulk Core statements, one inspection per
inspected asset and one audit entry for the whole seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import LineString, shape
from shapely.ops import substring
from sqlalchemy.orm import Session

from kotacerdas.accounts.service import Actor, record_change
from kotacerdas.assets.enums import Condition, ConditionScale
from kotacerdas.assets.models import Asset, AssetExternalId, AssetInspection, AssetType
from kotacerdas.assets.service import local_today
from kotacerdas.assets.validation import AssetCleaner, CleanAsset, FieldError, RawAsset
from kotacerdas.config import Settings
from kotacerdas.db import utcnow
from kotacerdas.regions import service as regions
from kotacerdas.regions.enums import LocateMethod, RegionLevel

# Demo assets carry the external id ("demo", "<n>"): how a second run knows the registry is already seeded.
DEMO_SYSTEM = "demo"
DEFAULT_SEED = 1605
KM_PER_DEGREE = 111.195
# Coordinates are rounded to this many decimals (about 10 cm) before anything is checked, so the stored GeoJSON
# (7 decimals) is the very geometry that was located.
DECIMALS = 6
# Without boundaries: desa are laid out this far (km) from their kecamatan centre, closer than half the distance
# between the two nearest kecamatan centres (about 8 km), so the nearest-centre lookup keeps them in their kecamatan.
PSEUDO_RING_KM = (1.2, 3.0)
PSEUDO_SPREAD_KM = 0.5
# How many verified points each desa keeps for the assets placed in it.
POOL_SEAT, POOL_VILLAGE = 48, 18
# Inspections: this share of assets was inspected within the last year, the rest one to two years ago.
RECENT_SHARE = 0.62
UNINSPECTED_SHARE = 0.04

# The main river of each kecamatan of Musi Rawas (the Musi and its tributaries Kelingi, Lakitan and Beliti): bridges
# are named after it. Kecamatan not listed here (another kabupaten) use GENERIC_RIVERS.
RIVERS = {
    "16.05.01": "Kelingi",
    "16.05.02": "Lakitan",
    "16.05.03": "Kelingi",
    "16.05.08": "Musi",
    "16.05.09": "Beliti",
    "16.05.10": "Lakitan",
    "16.05.11": "Lakitan",
    "16.05.12": "Lakitan",
    "16.05.13": "Kelingi",
    "16.05.14": "Musi",
    "16.05.18": "Musi",
    "16.05.19": "Kelingi",
    "16.05.20": "Beliti",
    "16.05.21": "Beliti",
}
GENERIC_RIVERS = ("Musi", "Kelingi", "Lakitan", "Beliti")
# River gauge sites (pos duga air): river, kecamatan code; each in the kecamatan's seat, where the rivers meet.
GAUGES = (
    ("Musi", "16.05.14"),
    ("Musi", "16.05.03"),
    ("Musi", "16.05.02"),
    ("Kelingi", "16.05.01"),
    ("Kelingi", "16.05.03"),
    ("Kelingi", "16.05.13"),
    ("Lakitan", "16.05.10"),
    ("Lakitan", "16.05.02"),
    ("Beliti", "16.05.09"),
    ("Beliti", "16.05.20"),
)
# The kabupaten's offices, in the capital's government complex: name, instansi, owner OPD (short name).
CAPITAL_OFFICES = (
    ("Kantor Bupati Musi Rawas", "Pemerintah Kabupaten Musi Rawas", "Sekretariat Daerah"),
    ("Kantor Dinas PUPR", "Dinas Pekerjaan Umum dan Penataan Ruang", "Dinas PUPR"),
    ("Kantor Dinas Pendidikan", "Dinas Pendidikan", "Dinas Pendidikan"),
    ("Kantor Dinas Kesehatan", "Dinas Kesehatan", "Dinas Kesehatan"),
    ("Kantor BPBD", "Badan Penanggulangan Bencana Daerah", "BPBD"),
    ("Kantor Diskominfo", "Dinas Komunikasi dan Informatika", "Diskominfo"),
    ("Kantor Bappeda", "Badan Perencanaan Pembangunan Daerah", "Bappeda"),
)
CAPITAL_DESA = "Muara Beliti Baru"
FLOWERS = ("Melati", "Mawar", "Anggrek", "Kenanga", "Dahlia", "Flamboyan", "Cempaka", "Teratai", "Seroja", "Kemuning")
PIOUS = ("Nurul Huda", "Al-Hidayah", "Nurul Iman", "Darul Falah", "Al-Ikhlas", "Miftahul Jannah")
OPERATORS = ("Telkomsel", "Indosat Ooredoo Hutchison", "XL Axiata", "Mitratel", "Protelindo")
CCTV_VIEWS = ("Simpang empat, ke arah pasar", "Simpang tiga, ke arah kantor camat", "Jalan lintas")
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII", "XIV", "XV")

# Who inspects each type, as written on the inspection.
INSPECTORS = {
    "jalan": "Tim Teknis Bina Marga, Dinas PUPR",
    "jembatan": "Tim Teknis Bina Marga, Dinas PUPR",
    "drainase": "Tim Teknis Sumber Daya Air, Dinas PUPR",
    "pju": "Petugas PJU, Dinas Perhubungan",
    "sekolah": "Pengawas Sekolah, Dinas Pendidikan",
    "puskesmas": "Tim Sarana Kesehatan, Dinas Kesehatan",
    "pustu": "Tim Sarana Kesehatan, Dinas Kesehatan",
    "posyandu": "Tim Sarana Kesehatan, Dinas Kesehatan",
    "pasar": "Bagian Perekonomian, Sekretariat Daerah",
    "kantor": "Bagian Umum, Sekretariat Daerah",
    "air-bersih": "Tim Teknis Air Minum, Dinas Perkim",
    "toilet-umum": "Petugas Kebersihan, DLH",
    "taman": "Petugas Pertamanan, DLH",
    "cctv": "Tim Infrastruktur TIK, Diskominfo",
    "menara-telekomunikasi": "Tim Infrastruktur TIK, Diskominfo",
    "pos-duga-air": "TRC BPBD",
}
NOTES = {
    Condition.BAIK: "Kondisi baik, tidak ada kerusakan berarti.",
    Condition.SEDANG: "Retak rambut di beberapa titik, masih nyaman dilalui.",
    Condition.RUSAK_RINGAN: "Kerusakan ringan setempat; perlu pemeliharaan rutin.",
    Condition.RUSAK_SEDANG: "Kerusakan pada beberapa elemen; perlu perbaikan tahun ini.",
    Condition.RUSAK_BERAT: "Kerusakan berat; perlu penanganan segera.",
    Condition.BERFUNGSI: "Berfungsi normal saat diperiksa.",
    Condition.BERFUNGSI_SEBAGIAN: "Sebagian sarana tidak berfungsi; menunggu perbaikan.",
    Condition.TIDAK_BERFUNGSI: "Tidak berfungsi saat diperiksa; dilaporkan ke OPD pemilik.",
}
# Condition weights: roads by status and surface (Bina Marga scale), other structures, facilities.
ROAD_WEIGHTS = {
    "kabupaten": (46, 28, 16, 10),
    "desa": (30, 32, 23, 15),
    "kerikil/agregat": (18, 36, 30, 16),
    "tanah": (8, 30, 36, 26),
}
STRUCTURE_WEIGHTS = (58, 24, 12, 6)
FACILITY_WEIGHTS = (80, 14, 6)
SURFACES = {
    "kabupaten": (("aspal", 74), ("beton", 16), ("kerikil/agregat", 10)),
    "desa": (("aspal", 24), ("beton", 28), ("kerikil/agregat", 30), ("tanah", 18)),
}

Point2 = tuple[float, float]  # (lon, lat)


# --- geography ----------------------------------------------------------------------------------------------------


@dataclass
class _Village:
    """A desa or kelurahan with the verified points where its assets go."""

    code: str
    name: str
    level: str
    kecamatan: _Kecamatan
    polygon: Any = None  # shapely geometry, when boundaries are imported
    centre: Point2 | None = None
    pool: list[Point2] = field(default_factory=list)
    used: int = 0

    @property
    def label(self) -> str:
        return ("Kelurahan " if self.level == RegionLevel.KELURAHAN.value else "Desa ") + self.name

    @property
    def address(self) -> str:
        return f"{self.label}, Kecamatan {self.kecamatan.name}"

    def take(self) -> Point2:
        """The next unused verified point (pools are sized so that the demo does not run out)."""
        point = self.pool[self.used % len(self.pool)]
        self.used += 1
        return point


@dataclass
class _Kecamatan:
    code: str
    name: str
    centroid: Point2
    villages: list[_Village] = field(default_factory=list)
    seat: _Village | None = None

    @property
    def centre(self) -> Point2:
        return self.seat.centre

    @property
    def river(self) -> str:
        return RIVERS.get(self.code) or GENERIC_RIVERS[int(self.code.replace(".", "")) % len(GENERIC_RIVERS)]


@dataclass
class _Geography:
    kecamatan: list[_Kecamatan]
    boundaries: bool
    kabupaten: Any  # shapely geometry or None
    shrink: float  # cos(latitude): km per degree of longitude over km per degree of latitude

    def km(self, point: Point2) -> Point2:
        return (point[0] * self.shrink * KM_PER_DEGREE, point[1] * KM_PER_DEGREE)

    def degrees(self, x: float, y: float) -> Point2:
        return (round(x / (self.shrink * KM_PER_DEGREE), DECIMALS), round(y / KM_PER_DEGREE, DECIMALS))


def _load_geography(session: Session, *, settings: Settings, rng: random.Random) -> _Geography | None:
    """The kecamatan and desa of the kabupaten with a verified pool of points per desa; None without kecamatan."""
    families = [
        (k, villages)
        for k, villages in regions.list_kecamatan_with_villages(session, settings=settings)
        if k.centroid_lat is not None and villages
    ]
    if not families:
        return None
    shapes: dict[str, Any] = {}
    for level in (RegionLevel.KABUPATEN, RegionLevel.DESA, RegionLevel.KELURAHAN):
        for feature in regions.regions_geojson(session, level=level)["features"]:
            shapes[feature["id"]] = shape(feature["geometry"])
    boundaries = any(v.code in shapes for _k, villages in families for v in villages)
    kabupaten = shapes.get(settings.region_code)
    if kabupaten is not None:
        shapely.prepare(kabupaten)
    mean_lat = sum(k.centroid_lat for k, _v in families) / len(families)
    geo = _Geography([], boundaries, kabupaten, math.cos(math.radians(mean_lat)))
    for region, villages in families:
        kecamatan = _Kecamatan(region.code, region.name, (region.centroid_lon, region.centroid_lat))
        for village in villages:
            polygon = shapes.get(village.code)
            if polygon is not None:
                shapely.prepare(polygon)
            centre = (village.centroid_lon, village.centroid_lat) if village.centroid_lat is not None else None
            kecamatan.villages.append(
                _Village(village.code, village.name, village.level, kecamatan, polygon=polygon, centre=centre)
            )
        geo.kecamatan.append(kecamatan)
    _place_villages(geo, rng)
    _verify_pools(session, settings=settings, geo=geo)
    for kecamatan in geo.kecamatan:
        kecamatan.villages = [v for v in kecamatan.villages if v.pool and v.centre is not None]
        kecamatan.seat = _choose_seat(geo, kecamatan)
    geo.kecamatan = [k for k in geo.kecamatan if k.seat is not None]
    return geo if geo.kecamatan else None


def _choose_seat(geo: _Geography, kecamatan: _Kecamatan) -> _Village | None:
    """The kecamatan's seat: its first kelurahan, else (with boundaries) the desa nearest its centre."""
    if not kecamatan.villages:
        return None
    for village in kecamatan.villages:
        if village.level == RegionLevel.KELURAHAN.value:
            return village
    if not geo.boundaries:
        return kecamatan.villages[0]
    centre = geo.km(kecamatan.centroid)
    return min(kecamatan.villages, key=lambda v: math.dist(geo.km(v.centre), centre))


def _place_villages(geo: _Geography, rng: random.Random) -> None:
    """Candidate points for each desa: drawn inside its polygon, or (without one) around a made-up desa centre."""
    sampler = np.random.default_rng(rng.getrandbits(64))
    for kecamatan in geo.kecamatan:
        seat_first = sorted(kecamatan.villages, key=lambda v: v.level != RegionLevel.KELURAHAN.value)
        seat_code = seat_first[0].code if seat_first[0].level == RegionLevel.KELURAHAN.value else None
        for index, village in enumerate(kecamatan.villages):
            # A seat (or, without a kelurahan, any desa that may become one) and the capital's desa hold more.
            busy = seat_code in (None, village.code) or village.name == CAPITAL_DESA
            size = POOL_SEAT if busy else POOL_VILLAGE
            if village.polygon is not None:
                village.pool = _inside(village.polygon, size, sampler)
                # The region's stored centre, or a point surely inside: candidates for the desa centre.
                candidates = [village.centre] if village.centre is not None else []
                surface = village.polygon.point_on_surface()
                village.pool = [*candidates, (surface.x, surface.y), *village.pool]
                village.centre = None
            elif not geo.boundaries:
                if village.code == (seat_code or kecamatan.villages[0].code):
                    centre_km = geo.km(kecamatan.centroid)
                else:
                    angle = 2 * math.pi * index / len(kecamatan.villages) + rng.uniform(-0.3, 0.3)
                    radius = rng.uniform(*PSEUDO_RING_KM)
                    x0, y0 = geo.km(kecamatan.centroid)
                    centre_km = (x0 + radius * math.cos(angle), y0 + radius * math.sin(angle))
                pool = [geo.degrees(*centre_km)]
                for _ in range(size):
                    r = PSEUDO_SPREAD_KM * math.sqrt(rng.random())
                    a = rng.uniform(0, 2 * math.pi)
                    pool.append(geo.degrees(centre_km[0] + r * math.cos(a), centre_km[1] + r * math.sin(a)))
                village.pool = pool
                village.centre = None
            else:
                village.pool = []  # boundaries are imported, but not for this desa: nothing can be placed in it
            village.pool = [(round(x, DECIMALS), round(y, DECIMALS)) for x, y in village.pool]


def _inside(polygon: Any, count: int, sampler: np.random.Generator) -> list[Point2]:
    """Up to `count` uniform random points inside a polygon (rejection sampling in its bounding box)."""
    min_x, min_y, max_x, max_y = polygon.bounds
    found: list[Point2] = []
    for _ in range(8):
        xs = sampler.uniform(min_x, max_x, 6 * count)
        ys = sampler.uniform(min_y, max_y, 6 * count)
        keep = shapely.contains_xy(polygon, xs, ys)
        found.extend(zip(xs[keep].tolist(), ys[keep].tolist(), strict=True))
        if len(found) >= count:
            break
    return found[:count]


def _verify_pools(session: Session, *, settings: Settings, geo: _Geography) -> None:
    """Keep only the points the registry's own lookup puts in the desa (with boundaries) or kecamatan (without);
    the first kept candidate becomes the desa centre. One lookup for every point of the kabupaten."""
    villages = [v for k in geo.kecamatan for v in k.villages if v.pool]
    points = [(lat, lon) for v in villages for lon, lat in v.pool]
    if not points:
        return
    batch = regions.locate_many(session, settings=settings, points=points)
    # Simplified desa polygons may stick out of the kabupaten's own: such points stay out.
    in_kabupaten = (
        shapely.contains_xy(geo.kabupaten, [lon for _lat, lon in points], [lat for lat, _lon in points])
        if geo.kabupaten is not None
        else np.ones(len(points), dtype=bool)
    )
    n = 0
    for village in villages:
        kept = []
        for point in village.pool:
            if in_kabupaten[n] and _lands_in(batch, n, village, geo.boundaries):
                kept.append(point)
            n += 1
        village.centre = kept[0] if kept else None
        village.pool = kept[1:] or kept
        village.used = 0


def _lands_in(batch: Any, n: int, village: _Village, boundaries: bool) -> bool:
    if not bool(batch.inside[n]) or batch.kecamatan_code[n] != village.kecamatan.code:
        return False
    return not boundaries or (batch.desa_code[n] == village.code and batch.method[n] == LocateMethod.BOUNDARY.value)


# --- roads --------------------------------------------------------------------------------------------------------


@dataclass
class _Road:
    """A planned road: its vertices in km, its name, status and the kecamatan it starts in."""

    name: str
    status: str
    vertices: list[Point2]
    kecamatan: _Kecamatan
    from_seat: bool
    to_seat: bool
    number: int
    seats: tuple[str, ...] = ()  # the kecamatan whose seat it starts or ends at


def _bent(rng: random.Random, a: Point2, b: Point2, *, spacing: float, bend: float) -> list[Point2]:
    """A line from a to b (km) with a vertex about every `spacing` km and a gentle, smooth bend."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy)
    if length < 1e-6:
        return [a, b]
    n = max(2, math.ceil(length / spacing))
    px, py = -dy / length, dx / length
    first = rng.uniform(-bend, bend) * length
    second = rng.uniform(-bend / 2, bend / 2) * length
    vertices = []
    for i in range(n + 1):
        t = i / n
        offset = first * math.sin(math.pi * t) + second * math.sin(2 * math.pi * t)
        if 0 < i < n:
            offset += rng.uniform(-0.06, 0.06) * spacing
        vertices.append((a[0] + t * dx + px * offset, a[1] + t * dy + py * offset))
    return vertices


def _segments(rng: random.Random, vertices: list[Point2]) -> list[list[Point2]]:
    """Cut a road into segments of four to seven vertices (the last one takes a short tail)."""
    pieces, start, last = [], 0, len(vertices) - 1
    while start < last:
        end = min(start + rng.randint(3, 6), last)
        if last - end < 2:
            end = last
        pieces.append(vertices[start : end + 1])
        start = end
    return pieces


def _plan_roads(geo: _Geography, rng: random.Random) -> list[_Road]:
    """Kabupaten roads between neighbouring kecamatan seats, then each kecamatan's tree from its seat to its desa."""
    roads: list[_Road] = []
    seats = {k.code: geo.km(k.centre) for k in geo.kecamatan}
    pairs: set[tuple[str, str]] = set()
    for kecamatan in geo.kecamatan:
        others = sorted(
            (math.dist(seats[kecamatan.code], seats[o.code]), o.code) for o in geo.kecamatan if o is not kecamatan
        )
        for _distance, code in others[:2]:
            pairs.add(tuple(sorted((kecamatan.code, code))))
    by_code = {k.code: k for k in geo.kecamatan}
    for a_code, b_code in sorted(pairs):
        a, b = by_code[a_code], by_code[b_code]
        vertices = _bent(rng, seats[a_code], seats[b_code], spacing=0.9, bend=0.05)
        name = f"Ruas {a.name} – {b.name}"
        roads.append(_Road(name, "kabupaten", vertices, a, True, True, len(roads) + 1, (a_code, b_code)))
    for kecamatan in geo.kecamatan:
        for parent, child in _tree(geo, kecamatan):
            status = "kabupaten" if rng.random() < (0.7 if parent is kecamatan.seat else 0.35) else "desa"
            vertices = _bent(rng, geo.km(parent.centre), geo.km(child.centre), spacing=0.7, bend=0.07)
            prefix = "Ruas" if status == "kabupaten" else "Jalan"
            name = f"{prefix} {parent.name} – {child.name}"
            from_seat = parent is kecamatan.seat
            seats = (kecamatan.code,) if from_seat else ()
            roads.append(_Road(name, status, vertices, kecamatan, from_seat, False, len(roads) + 1, seats))
    return roads


def _tree(geo: _Geography, kecamatan: _Kecamatan) -> list[tuple[_Village, _Village]]:
    """The shortest road tree from the seat to every desa of the kecamatan (Prim), as (from, to) pairs."""
    joined = [kecamatan.seat]
    waiting = [v for v in kecamatan.villages if v is not kecamatan.seat]
    edges = []
    while waiting:
        _d, i, j = min(
            (math.dist(geo.km(a.centre), geo.km(b.centre)), i, j)
            for i, a in enumerate(joined)
            for j, b in enumerate(waiting)
        )
        edges.append((joined[i], waiting[j]))
        joined.append(waiting.pop(j))
    return edges


# --- the plan: raw assets with the place they claim -----------------------------------------------------------------


@dataclass
class _Spec:
    """One planned asset and the desa/kecamatan its address names (checked after locating)."""

    raw: RawAsset
    desa: str | None = None
    kecamatan: str | None = None


class _Planner:
    """Builds the demo's assets in a fixed order, drawing every random choice from one generator."""

    def __init__(self, geo: _Geography, rng: random.Random, *, today: date, agencies: set[str]) -> None:
        self.geo = geo
        self.rng = rng
        self.today = today
        self.agencies = agencies
        self.specs: list[_Spec] = []
        self.npsn = 0
        self.bridges: dict[str, int] = {}
        # Kabupaten roads meeting at each kecamatan seat: the busiest junctions get CCTV.
        self.junctions: dict[str, int] = {}

    # -- helpers --

    def condition(self, scale: ConditionScale, weights: Sequence[int]) -> tuple[str | None, date | None]:
        if self.rng.random() < UNINSPECTED_SHARE:
            return None, None
        condition = self.rng.choices(scale.conditions, weights=weights)[0]
        if self.rng.random() < RECENT_SHARE:
            days = self.rng.randint(0, 364)
        else:
            days = self.rng.randint(366, 729)
        return condition.value, self.today - timedelta(days=days)

    def add(
        self,
        type_code: str,
        name: str,
        geometry: dict[str, Any],
        attributes: dict[str, Any],
        *,
        scale: ConditionScale,
        weights: Sequence[int],
        village: _Village | None = None,
        kecamatan: _Kecamatan | None = None,
        address: str | None = None,
        agency: str | None = None,
        npsn: str | None = None,
    ) -> None:
        condition, condition_on = self.condition(scale, weights)
        if village is not None:
            address = village.address
            kecamatan = village.kecamatan
        elif kecamatan is not None and address is None:
            address = f"Kecamatan {kecamatan.name}"
        raw = RawAsset(
            type=type_code,
            name=name,
            geometry=geometry,
            agency=agency if agency and agency.casefold() in self.agencies else None,
            attributes=attributes,
            address=address,
            external_ids={"npsn": npsn} if npsn else {},
            condition=condition,
            condition_on=condition_on,
        )
        self.specs.append(
            _Spec(raw, desa=village.code if village else None, kecamatan=kecamatan.code if kecamatan else None)
        )

    def point(self, village: _Village) -> dict[str, Any]:
        lon, lat = village.take()
        return {"type": "Point", "coordinates": [lon, lat]}

    def facility(self, type_code: str, name: str, village: _Village, attributes: dict[str, Any], **extra: Any):
        self.add(
            type_code, name, self.point(village), attributes,
            scale=ConditionScale.FACILITY, weights=FACILITY_WEIGHTS, village=village, **extra,
        )  # fmt: skip

    def line(self, vertices: list[Point2]) -> dict[str, Any]:
        return {"type": "LineString", "coordinates": [list(self.geo.degrees(x, y)) for x, y in vertices]}

    def fits_kabupaten(self, vertices: list[Point2]) -> bool:
        """With boundaries, a line is kept only when it lies wholly inside the kabupaten."""
        if self.geo.kabupaten is None:
            return True
        return bool(self.geo.kabupaten.contains(LineString([self.geo.degrees(x, y) for x, y in vertices])))

    # -- roads and what stands on them --

    def roads(self) -> None:
        rng = self.rng
        for road in _plan_roads(self.geo, rng):
            pieces = _segments(rng, road.vertices)
            for number, piece in enumerate(pieces, start=1):
                if not self.fits_kabupaten(piece):
                    continue
                name = road.name if len(pieces) == 1 else f"{road.name} (segmen {number})"
                self.road(name, road.status, piece, kode=f"{road.number:03d}")
                if rng.random() < (0.2 if road.status == "kabupaten" else 0.1):
                    self.bridge(road.kecamatan, piece)
            if road.status == "kabupaten":
                for code in road.seats:
                    self.junctions[code] = self.junctions.get(code, 0) + 1
                number = self.street_lights(road.name, road.vertices, 0) if road.from_seat else 0
                if road.to_seat:
                    self.street_lights(road.name, road.vertices[::-1], number)
        for kecamatan in self.geo.kecamatan:
            for village in kecamatan.villages:
                for number in range(1, self.street_count(village) + 1):
                    self.street(village, number)
            self.drain(kecamatan)

    def road(self, name: str, status: str, vertices: list[Point2], *, kode: str, village: _Village | None = None):
        rng = self.rng
        surfaces, surface_weights = zip(*SURFACES[status], strict=True)
        surface = rng.choices(surfaces, weights=surface_weights)[0]
        weights = ROAD_WEIGHTS.get(surface, ROAD_WEIGHTS[status])
        width = rng.choice((4.5, 5.0, 5.5, 6.0, 7.0)) if status == "kabupaten" else rng.choice((3.0, 3.5, 4.0, 4.5))
        attributes = {"status_jalan": status, "permukaan": surface, "lebar_m": width, "kode_ruas": kode}
        self.add(
            "jalan", name, self.line(vertices), attributes,
            scale=ConditionScale.ROAD, weights=weights, village=village,
        )  # fmt: skip

    def street_count(self, village: _Village) -> int:
        roll = self.rng.random()
        if village is village.kecamatan.seat:
            return 2 if roll < 0.8 else 3
        return 0 if roll < 0.4 else (1 if roll < 0.85 else 2)

    def street(self, village: _Village, number: int) -> None:
        """A short street inside one desa, kept only when it lies inside the desa polygon."""
        rng = self.rng
        start = self.geo.km(village.take())
        length = rng.uniform(0.6, 1.4)
        for _attempt in range(6):
            angle = rng.uniform(0, 2 * math.pi)
            end = (start[0] + length * math.cos(angle), start[1] + length * math.sin(angle))
            vertices = _bent(rng, start, end, spacing=0.25, bend=0.08)
            if village.polygon is None or village.polygon.contains(
                LineString([self.geo.degrees(x, y) for x, y in vertices])
            ):
                prefix = "Jalan Lingkungan" if village.level == RegionLevel.KELURAHAN.value else "Jalan Desa"
                name = f"{prefix} {village.name}" + (f" {ROMAN[number - 1]}" if number > 1 else "")
                code = village.code.rsplit(".", 1)[-1]
                self.road(name, "desa", vertices, kode=f"D{code}.{number}", village=village)
                return
            length *= 0.7

    def bridge(self, kecamatan: _Kecamatan, vertices: list[Point2]) -> None:
        rng = self.rng
        river = kecamatan.river if rng.random() < 0.7 else rng.choice(GENERIC_RIVERS)
        self.bridges[river] = self.bridges.get(river, 0) + 1
        where = LineString(vertices).interpolate(rng.uniform(0.3, 0.7), normalized=True)
        lon, lat = self.geo.degrees(where.x, where.y)
        construction = rng.choices(("beton", "komposit", "baja", "kayu", "gantung"), weights=(50, 15, 15, 12, 8))[0]
        attributes = {
            "panjang_m": float(rng.randint(8, 30) if construction == "kayu" else rng.randint(12, 120)),
            "lebar_m": 1.5 if construction == "gantung" else rng.choice((3.5, 4.0, 5.0, 6.0, 7.0)),
            "konstruksi": construction,
            "sungai": f"Sungai {river}",
            "tahun_dibangun": rng.randint(1985, min(2024, self.today.year)),
        }
        number = self.bridges[river]
        name = f"Jembatan {river} {ROMAN[number - 1] if number <= len(ROMAN) else number}"
        self.add(
            "jembatan", name, {"type": "Point", "coordinates": [lon, lat]}, attributes,
            scale=ConditionScale.STRUCTURE, weights=STRUCTURE_WEIGHTS,
        )  # fmt: skip

    def street_lights(self, road_name: str, vertices: list[Point2], number: int) -> int:
        """Street lights every 200–300 m along the first one to two km of a kabupaten road out of a seat (the line
        starts at the seat); numbered on from `number`, which is returned for the other end of the road."""
        rng = self.rng
        line = LineString(vertices)
        reach = min(rng.uniform(1.0, 2.0), line.length * 0.45)
        at = 0.1
        lamp = rng.choices(("LED", "SON-T", "tenaga surya"), weights=(60, 25, 15))[0]
        powers = {"LED": (60, 90, 120), "SON-T": (150, 250), "tenaga surya": (40, 60)}[lamp]
        while at <= reach:
            number += 1
            where = line.interpolate(at)
            lon, lat = self.geo.degrees(where.x, where.y)
            attributes = {"jenis_lampu": lamp, "daya_watt": rng.choice(powers), "tiang_m": rng.choice((7, 8, 9))}
            self.add(
                "pju", f"PJU {road_name} No. {number}", {"type": "Point", "coordinates": [lon, lat]}, attributes,
                scale=ConditionScale.FACILITY, weights=(74, 12, 14), address=road_name,
            )  # fmt: skip
            at += rng.uniform(0.2, 0.3)
        return number

    def drain(self, kecamatan: _Kecamatan) -> None:
        """A roadside drain along the first few hundred metres of a road out of the seat."""
        rng = self.rng
        seat = kecamatan.seat
        start = self.geo.km(kecamatan.centre)
        angle = rng.uniform(0, 2 * math.pi)
        length = rng.uniform(0.3, 0.6)
        base = LineString(_bent(rng, start, (start[0] + length * math.cos(angle), start[1] + length * math.sin(angle)),
                                spacing=0.1, bend=0.03))  # fmt: skip
        drain = substring(base, 0.02, base.length).offset_curve(0.008, join_style="mitre")
        if drain.geom_type != "LineString" or drain.is_empty:
            return
        vertices = list(drain.coords)
        if seat.polygon is not None and not seat.polygon.contains(
            LineString([self.geo.degrees(x, y) for x, y in vertices])
        ):
            return
        attributes = {
            "jenis": rng.choice(("saluran terbuka", "saluran tertutup")),
            "lebar_m": rng.choice((0.6, 0.8, 1.0, 1.2)),
            "material": rng.choices(("beton", "pasangan batu", "tanah"), weights=(50, 35, 15))[0],
        }
        self.add(
            "drainase", f"Saluran Drainase {seat.label}", self.line(vertices), attributes,
            scale=ConditionScale.STRUCTURE, weights=STRUCTURE_WEIGHTS, village=seat,
        )  # fmt: skip

    # -- facilities in the desa --

    def school(self, name: str, level: str, village: _Village, *, status: str = "negeri") -> None:
        self.npsn += 1
        npsn = f"1064{self.npsn:04d}"
        rooms = {"PAUD": (2, 4), "TK": (2, 5), "SD": (6, 12), "MI": (6, 9), "SLB": (6, 12)}.get(level, (9, 27))
        attributes = {"jenjang": level, "status": status, "npsn": npsn, "jumlah_ruang_kelas": self.rng.randint(*rooms)}
        self.facility("sekolah", name, village, attributes, npsn=npsn)

    def seat_facilities(self, kecamatan: _Kecamatan) -> None:
        rng, seat, name = self.rng, kecamatan.seat, kecamatan.name
        self.add(
            "kantor", f"Kantor Camat {name}", self.point(seat), {"instansi": f"Kecamatan {name}"},
            scale=ConditionScale.STRUCTURE, weights=STRUCTURE_WEIGHTS, village=seat, agency=f"Kec. {name}",
        )  # fmt: skip
        code = "P" + kecamatan.code.replace(".", "") + "01"
        self.facility(
            "puskesmas", f"Puskesmas {name}", seat, {"rawat_inap": rng.random() < 0.45, "kode_puskesmas": code}
        )
        self.facility("pasar", f"Pasar {name}", seat, {"jenis": "pasar induk", "jumlah_kios": rng.randint(80, 320)})
        self.facility("toilet-umum", f"Toilet Umum Pasar {name}", seat, {"jumlah_bilik": rng.randint(2, 8)})
        if rng.random() < 0.5:
            self.school(f"TK Negeri Pembina {name}", "TK", seat)
        else:
            self.school(f"TK Aisyiyah {name}", "TK", seat, status="swasta")
        self.school(f"SMP Negeri 1 {name}", "SMP", seat)
        self.school(f"SMA Negeri 1 {name}", "SMA", seat)
        if rng.random() < 0.55:
            self.school(f"SMK Negeri 1 {name}", "SMK", seat)
        if rng.random() < 0.5:
            self.school(f"MTs {rng.choice(PIOUS)} {name}", "MTs", seat, status="swasta")
        if rng.random() < 0.3:
            self.school(f"MA {rng.choice(PIOUS)} {name}", "MA", seat, status="swasta")
        if rng.random() < 0.3:
            capacity = round(rng.uniform(5, 40), 1)
            self.facility("air-bersih", f"IPA {name}", seat, {"jenis": "IPA", "kapasitas_liter_detik": capacity})

    def village_facilities(self, kecamatan: _Kecamatan) -> None:
        rng, name = self.rng, kecamatan.name
        sd = 0
        others = [v for v in kecamatan.villages if v is not kecamatan.seat]
        if len(others) >= 9:
            self.school(f"SMP Negeri 2 {name}", "SMP", rng.choice(others))
        for village in kecamatan.villages:
            roll = rng.random()
            for _ in range(1 if roll < 0.8 else (2 if roll < 0.9 else 0)):
                sd += 1
                self.school(f"SD Negeri {sd} {name}", "SD", village)
            if village is kecamatan.seat:
                sd += 1
                self.school(f"SD Negeri {sd} {name}", "SD", village)
            roll = rng.random()
            if roll < 0.15:
                self.school(f"PAUD {rng.choice(FLOWERS)} {village.name}", "PAUD", village, status="swasta")
            elif roll < 0.25:
                self.school(f"MI {rng.choice(PIOUS)} {village.name}", "MI", village, status="swasta")
            if rng.random() < 0.75:
                strata = rng.choices(("pratama", "madya", "purnama", "mandiri"), weights=(10, 35, 40, 15))[0]
                self.facility("posyandu", f"Posyandu {rng.choice(FLOWERS)} {village.name}", village, {"strata": strata})
            if village is not kecamatan.seat and rng.random() < 0.28:
                self.facility("pustu", f"Pustu {village.name}", village, {"puskesmas_induk": f"Puskesmas {name}"})
            if village is not kecamatan.seat and rng.random() < 0.12:
                kind = rng.choice(("pasar desa", "pasar kalangan"))
                label = "Pasar Desa" if kind == "pasar desa" else "Pasar Kalangan"
                attributes = {"jenis": kind, "jumlah_kios": rng.randint(8, 60)}
                self.facility("pasar", f"{label} {village.name}", village, attributes)
            if rng.random() < 0.3:
                kind = rng.choices(("sumur bor", "hidran umum", "reservoir", "mata air"), weights=(55, 30, 10, 5))[0]
                capacity = round(rng.uniform(0.5, 5.0), 1)
                self.facility(
                    "air-bersih", f"Sarana Air Bersih {village.name}", village,
                    {"jenis": kind, "kapasitas_liter_detik": capacity},
                )  # fmt: skip
            if village is not kecamatan.seat and rng.random() < 0.4:
                self.add(
                    "kantor", f"Kantor {village.label}", self.point(village),
                    {"instansi": f"Pemerintah {village.label}"},
                    scale=ConditionScale.STRUCTURE, weights=STRUCTURE_WEIGHTS, village=village,
                )  # fmt: skip
            if rng.random() < 0.06:
                attributes = {"tinggi_m": float(rng.choice((32, 42, 52, 62, 72))), "operator": rng.choice(OPERATORS)}
                self.add(
                    "menara-telekomunikasi", f"Menara {attributes['operator'].split()[0]} {village.name}",
                    self.point(village), attributes,
                    scale=ConditionScale.STRUCTURE, weights=STRUCTURE_WEIGHTS, village=village,
                )  # fmt: skip

    def intersections(self) -> None:
        """CCTV at the main junction of the seven busiest seats (where the most kabupaten roads meet)."""
        rng = self.rng
        busiest = sorted(self.geo.kecamatan, key=lambda k: (-self.junctions.get(k.code, 0), k.code))
        for kecamatan in sorted(busiest[:7], key=lambda k: k.code):
            lon, lat = kecamatan.centre
            attributes = {
                "arah": rng.choice(CCTV_VIEWS),
                "terhubung_command_center": rng.random() < 0.8,
            }
            self.add(
                "cctv", f"CCTV Simpang {kecamatan.name}", {"type": "Point", "coordinates": [lon, lat]}, attributes,
                scale=ConditionScale.FACILITY, weights=(78, 10, 12), village=kecamatan.seat,
            )  # fmt: skip

    def capital(self) -> None:
        """The kabupaten's offices and the town park, in the capital's government complex."""
        rng = self.rng
        villages = [v for k in self.geo.kecamatan for v in k.villages]
        complex_ = next((v for v in villages if v.name == CAPITAL_DESA), None)
        if complex_ is None:
            complex_ = self.geo.kecamatan[0].seat
        for name, instansi, owner in CAPITAL_OFFICES:
            self.add(
                "kantor", name, self.point(complex_), {"instansi": instansi},
                scale=ConditionScale.STRUCTURE, weights=STRUCTURE_WEIGHTS, village=complex_, agency=owner,
            )  # fmt: skip
        self.facility("taman", "Taman Kota Musi Rawas", complex_, {"luas_m2": float(rng.randint(8000, 25000))})
        self.school("SLB Negeri Musi Rawas", "SLB", complex_)
        for kecamatan in self.geo.kecamatan[1::4]:
            self.facility(
                "taman", f"Ruang Terbuka Hijau {kecamatan.name}", kecamatan.seat,
                {"luas_m2": float(rng.randint(1500, 6000))},
            )  # fmt: skip

    def gauges(self) -> None:
        rng = self.rng
        by_code = {k.code: k for k in self.geo.kecamatan}
        places = [(river, by_code[code]) for river, code in GAUGES if code in by_code]
        if not places:  # another kabupaten: one gauge per river in the first seats
            places = list(zip(GENERIC_RIVERS, self.geo.kecamatan, strict=False))
        for river, kecamatan in places:
            waspada = rng.randrange(250, 400, 10)
            siaga = waspada + rng.randrange(100, 160, 10)
            attributes = {
                "sungai": f"Sungai {river}",
                "waspada_cm": float(waspada),
                "siaga_cm": float(siaga),
                "awas_cm": float(siaga + rng.randrange(100, 160, 10)),
            }
            self.facility("pos-duga-air", f"Pos Duga Air Sungai {river} – {kecamatan.name}", kecamatan.seat, attributes)

    def plan(self) -> list[_Spec]:
        self.roads()
        self.intersections()
        for kecamatan in self.geo.kecamatan:
            self.seat_facilities(kecamatan)
            self.village_facilities(kecamatan)
        self.capital()
        self.gauges()
        return self.specs


# --- seeding ------------------------------------------------------------------------------------------------------


def demo_assets_exist(session: Session) -> bool:
    """True when the demo registry is already seeded."""
    statement = sa.select(AssetExternalId.id).where(AssetExternalId.system == DEMO_SYSTEM).limit(1)
    return session.scalar(statement) is not None


def seed_demo_assets(
    session: Session, *, settings: Settings, seed: int = DEFAULT_SEED, today: date | None = None
) -> int:
    """Seed the demo registry (a few hundred roads, bridges, facilities…) from `seed`; returns how many assets were
    stored. Nothing when demo assets exist, when the kabupaten has no kecamatan or when the asset types are missing.
    `today` anchors the inspection dates (the last two years); the same seed and day give the same rows."""
    if demo_assets_exist(session):
        return 0
    # An inspection date is a local date; never one the cleaner (which compares with the server's) calls future.
    today = today or min(date.today(), local_today(settings))
    cleaner = AssetCleaner(session, settings)
    if "jalan" not in cleaner.types_by_code:
        return 0
    rng = random.Random(seed)
    geo = _load_geography(session, settings=settings, rng=rng)
    if geo is None:
        return 0
    active = {name for name, agency_id in cleaner.agency_ids.items() if agency_id in cleaner.active_agency_ids}
    planner = _Planner(geo, rng, today=today, agencies=active)
    types = {code for code, kind in cleaner.types_by_code.items() if kind.active}
    specs = [s for s in planner.plan() if s.raw.type in types]
    kept: list[CleanAsset] = []
    for spec, result in zip(specs, cleaner.clean_many([s.raw for s in specs]), strict=True):
        if _placed(spec, result, geo=geo):
            kept.append(result)
    if kept:
        _store(session, kept, inspectors=INSPECTORS)
        # One entry for the whole seed, as an import records one.
        record_change(
            session, actor=Actor.system("demo"), action="assets.demo", entity_type="asset", entity_id=None,
            after={"created": len(kept), "seed": seed},
        )  # fmt: skip
    return len(kept)


def _placed(spec: _Spec, result: CleanAsset | list[FieldError], *, geo: _Geography) -> bool:
    """Whether a cleaned demo asset lies where it claims. A planned asset that falls outside the kabupaten or, with
    boundaries, in a gap between them or in another desa is left out; any other rejection is a bug of the plan."""
    if not isinstance(result, CleanAsset):
        if all(error.reason == "outside" for error in result):
            return False
        raise RuntimeError(f"demo asset {spec.raw.name!r} rejected: {[error.as_dict() for error in result]}")
    columns = result.columns
    if geo.boundaries and columns["locate_method"] != LocateMethod.BOUNDARY.value:
        return False
    if spec.kecamatan is not None and columns["kecamatan_code"] != spec.kecamatan:
        return False
    if geo.boundaries and spec.desa is not None and columns["desa_code"] != spec.desa:
        return False
    # The whole geometry, as stored, inside the kabupaten's boundary (when imported).
    return geo.kabupaten is None or bool(geo.kabupaten.contains(shapely.from_geojson(columns["geometry"])))


def _store(session: Session, assets: list[CleanAsset], *, inspectors: dict[str, str]) -> None:
    """Insert the assets, their external ids and first inspections with three bulk statements."""
    now = utcnow()
    session.flush()
    connection = session.connection()
    rows = [
        {**asset.columns, "condition": asset.condition.value if asset.condition else None,
         "condition_on": asset.condition_on, "active": True, "created_at": now, "updated_at": now}
        for asset in assets
    ]  # fmt: skip
    statement = sa.insert(Asset.__table__).returning(Asset.__table__.c.id, sort_by_parameter_order=True)
    ids = list(connection.execute(statement, rows).scalars())
    external = []
    inspections = []
    for number, (asset_id, asset) in enumerate(zip(ids, assets, strict=True), start=1):
        external.append({"asset_id": asset_id, "system": DEMO_SYSTEM, "value": str(number)})
        external.extend(
            {"asset_id": asset_id, "system": system, "value": value} for system, value in asset.external_ids.items()
        )
        if asset.condition is not None:
            inspections.append(
                {
                    "asset_id": asset_id,
                    "inspected_on": asset.condition_on,
                    "inspector": inspectors.get(asset.type.code, "Petugas OPD"),
                    "user_id": None,
                    "condition": asset.condition.value,
                    "notes": NOTES[asset.condition],
                    "source": "inspection",
                    "report_id": None,
                    "created_at": now,
                }
            )
    connection.execute(sa.insert(AssetExternalId.__table__), external)
    if inspections:
        connection.execute(sa.insert(AssetInspection.__table__), inspections)


# --- links from demo reports -----------------------------------------------------------------------------------------


def nearest_demo_assets(
    session: Session, *, points: Sequence[tuple[float, float, Sequence[str]]], radius_m: float
) -> list[int | None]:
    """For each (lat, lon, type codes), the id of the nearest active demo asset of those types within `radius_m`
    (measured to the line for roads), or None. For linking the demo's sample reports to the registry."""
    codes = sorted({code for _lat, _lon, types in points for code in types})
    if not codes:
        return [None] * len(points)
    rows = session.execute(
        sa.select(Asset.id, Asset.geometry, AssetType.code)
        .join(AssetType, AssetType.id == Asset.type_id)
        .join(AssetExternalId, sa.and_(AssetExternalId.asset_id == Asset.id, AssetExternalId.system == DEMO_SYSTEM))
        .where(AssetType.code.in_(codes), Asset.active.is_(True))
        .order_by(Asset.id)
    ).all()
    if not rows:
        return [None] * len(points)
    shrink = math.cos(math.radians(points[0][0])) if points else 1.0
    scale = np.array([shrink * KM_PER_DEGREE * 1000, KM_PER_DEGREE * 1000])
    geometries = shapely.transform(shapely.from_geojson([row.geometry for row in rows]), lambda xy: xy * scale)
    ids = np.array([row.id for row in rows])
    types = np.array([row.code for row in rows], dtype=object)
    found: list[int | None] = []
    for lat, lon, wanted in points:
        mask = np.isin(types, list(wanted))
        if not mask.any():
            found.append(None)
            continue
        here = shapely.points(lon * scale[0], lat * scale[1])
        distance = shapely.distance(geometries[mask], here)
        best = int(np.argmin(distance))
        found.append(int(ids[mask][best]) if distance[best] <= radius_m else None)
    return found
