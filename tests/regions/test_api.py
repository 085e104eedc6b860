"""Regions API: lists, one region, GeoJSON, point lookup and the admin import, with problem+json errors."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kotacerdas.problems import PROBLEM_MEDIA_TYPE
from kotacerdas.regions.models import Region

from .helpers import bowtie, collection, small_features, sukomulyo

GEOJSON = "application/geo+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


@pytest.mark.usefixtures("seeded")
def test_list_kecamatan_page_by_page(client):
    response = client.get("/api/v1/regions", params={"level": "kecamatan", "per_page": 10, "page": 2})

    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["page"], body["per_page"]) == (14, 2, 10)
    assert [item["code"] for item in body["items"]] == ["16.05.18", "16.05.19", "16.05.20", "16.05.21"]
    item = body["items"][0]
    assert item["level"] == "kecamatan" and item["parent_code"] == "16.05"
    assert item["name"] == "Tiang Pumpung Kepungut"
    assert item["centroid"] == {"lat": -3.360673, "lon": 103.082037}
    assert item["has_boundary"] is False and item["bbox"] is None


@pytest.mark.usefixtures("seeded")
def test_list_filters_by_parent_and_name(client):
    villages = client.get("/api/v1/regions", params={"parent": "16.05.09", "per_page": 200}).json()
    named = client.get("/api/v1/regions", params={"q": "Muara Beliti"}).json()

    assert villages["total"] > 5 and all(item["parent_code"] == "16.05.09" for item in villages["items"])
    assert {item["code"] for item in named["items"]} >= {"16.05.09", "16.05.09.1003"}


@pytest.mark.parametrize("params", [{"per_page": 0}, {"per_page": 201}, {"page": 0}, {"level": "provinsi"}], ids=str)
def test_list_with_a_wrong_parameter_is_422(client, params):
    body = assert_problem(client.get("/api/v1/regions", params=params), 422)

    assert body["errors"]


@pytest.mark.usefixtures("seeded")
def test_get_one_region_with_parent_and_children(client):
    response = client.get("/api/v1/regions/16.05.09")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Muara Beliti" and body["level"] == "kecamatan"
    assert body["parent"] == {"code": "16.05", "name": "Kabupaten Musi Rawas", "level": "kabupaten"}
    assert len(body["children"]) > 5 and all(child["code"].startswith("16.05.09.") for child in body["children"])


@pytest.mark.usefixtures("seeded")
def test_an_unknown_region_is_a_404_problem_in_the_callers_language(client):
    english = assert_problem(client.get("/api/v1/regions/16.05.99", headers={"Accept-Language": "en"}), 404)

    assert english["detail"] == "There is no region with code 16.05.99."
    assert english["instance"] == "/api/v1/regions/16.05.99"


@pytest.mark.usefixtures("imported")
def test_geojson_is_served_as_geo_json(client):
    response = client.get("/api/v1/regions/geojson", params={"level": "kecamatan"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GEOJSON)
    body = response.json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 14
    assert {f["properties"]["kode"] for f in body["features"]} >= {"16.05.01", "16.05.21"}


def test_openapi_declares_the_geojson_media_type(client):
    document = client.get("/api/openapi.json").json()

    content = document["paths"]["/api/v1/regions/geojson"]["get"]["responses"]["200"]["content"]
    assert GEOJSON in content
    assert "/api/v1/regions/locate" in document["paths"] and "/api/v1/regions/{code}" in document["paths"]


@pytest.mark.usefixtures("imported")
def test_locate_a_point_to_its_desa(client):
    response = client.get("/api/v1/regions/locate", params={"lat": -3.257691, "lon": 103.031964})

    assert response.status_code == 200
    body = response.json()
    assert body["desa"] == {"code": "16.05.09.1003", "name": "Pasar Muara Beliti", "level": "kelurahan"}
    assert body["kecamatan"]["code"] == "16.05.09"
    assert (body["method"], body["inside"], body["approximate"]) == ("boundary", True, False)


@pytest.mark.usefixtures("seeded")
def test_locate_before_any_import_says_it_is_approximate(client):
    body = client.get("/api/v1/regions/locate", params={"lat": -3.259, "lon": 103.008}).json()

    assert (body["method"], body["approximate"], body["desa"]) == ("centroid", True, None)
    assert body["kecamatan"]["code"] == "16.05.09"


@pytest.mark.parametrize(
    "params",
    [{"lat": 200, "lon": 103}, {"lat": -3.2, "lon": -181}, {"lat": "nan", "lon": 103}, {"lat": -3.2}],
    ids=["lat-200", "lon-181", "nan", "no-lon"],
)
def test_locate_with_a_wrong_point_is_422(client, params):
    assert_problem(client.get("/api/v1/regions/locate", params=params), 422)


def test_an_admin_imports_boundaries_through_the_api(client, session, auth_headers):
    data = collection(small_features())

    dry = client.post("/api/v1/regions/import?dry_run=true", content=data, headers=auth_headers)
    real = client.post("/api/v1/regions/import", content=data, headers={**auth_headers, "Content-Type": GEOJSON})

    assert dry.status_code == 200, dry.text
    assert dry.json() == {"created": 3, "updated": 0, "total": 3, "dry_run": True}
    assert real.status_code == 200, real.text
    assert real.json() == {"created": 3, "updated": 0, "total": 3, "dry_run": False}
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Region)) == 3


def test_a_bad_import_through_the_api_names_the_feature_and_stores_nothing(client, session, auth_headers):
    features = [*small_features(), sukomulyo(bowtie(102.95, -3.16, 0.01))]

    response = client.post(
        "/api/v1/regions/import", content=collection(features), headers={**auth_headers, "Accept-Language": "en"}
    )

    body = assert_problem(response, 422)
    [error] = body["errors"]
    assert (error["index"], error["kode"]) == (3, "16.05.01.2003")
    assert "Self-intersection" in error["reason"]
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Region)) == 0


def test_importing_needs_a_login(client):
    assert_problem(client.post("/api/v1/regions/import", content=collection(small_features())), 401)
