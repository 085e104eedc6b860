"""The SensorThings API 1.1 over HTTP (/sensorthings/v1.1) on SQLite and PostgreSQL: every entity set created, read,
navigated, queried, updated and deleted; deep insert all or nothing; who may write; CreateObservations all or
nothing; one FeatureOfInterest under concurrent first Observations; no 5xx for any path, option or body."""

from __future__ import annotations

import base64
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from conftest import assert_problem, bearer, new_api_token, row_count, running_server, stored
from kotacerdas.accounts.models import AuditEntry
from kotacerdas.sensors import store
from kotacerdas.sensors.models import Datastream, FeatureOfInterest, HistoricalLocation, Location, Sensor, Thing

ROOT = "/sensorthings/v1.1"
INSIDE = (-3.06, 102.93)  # Muara Beliti area, inside Musi Rawas
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def point(lat: float = INSIDE[0], lon: float = INSIDE[1]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def gauge(name: str = "Pos duga air Musi", *, observation_type: str = "OM_Measurement") -> dict[str, Any]:
    """A river gauge with its Location and one Datastream (deep insert)."""
    return {
        "name": name,
        "description": "Pos duga air sungai",
        "properties": {"sungai": "Musi"},
        "Locations": [
            {"name": "Jembatan Musi", "description": "Tiang jembatan", "encodingType": "application/geo+json",
             "location": point()}
        ],
        "Datastreams": [
            {
                "name": "Tinggi muka air",
                "description": "Tinggi muka air sungai",
                "observationType": OM + observation_type,
                "unitOfMeasurement": {"name": "centimetre", "symbol": "cm", "definition": "ucum:cm"},
                "properties": {"levels": {"waspada": 250, "siaga": 300}},
                "Sensor": {"name": "Radar", "description": "Radar level", "encodingType": "text/html",
                           "metadata": "https://example.org/radar"},
                "ObservedProperty": {"name": "Tinggi muka air", "definition": "https://example.org/water-level",
                                     "description": "Tinggi air"},
            }
        ],
    }  # fmt: skip


def create(client, headers, path: str, body: Any) -> dict[str, Any]:
    response = client.post(ROOT + path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == response.json()["@iot.selfLink"]
    return response.json()


def observations(session) -> list:
    """What the app committed to the observation store."""
    session.rollback()
    return store.all_observations_for_tests(session)


def first_datastream(client, thing_id: int) -> int:
    return client.get(f"{ROOT}/Things({thing_id})/Datastreams").json()["value"][0]["@iot.id"]


# --- the service root and reads ---------------------------------------------------------------------------------


def test_service_root_lists_the_entity_sets_and_what_is_implemented(client):
    body = client.get(ROOT).json()
    names = [entry["name"] for entry in body["value"]]
    assert names == ["Things", "Locations", "HistoricalLocations", "Sensors", "ObservedProperties", "Datastreams",
                     "Observations", "FeaturesOfInterest"]  # fmt: skip
    assert body["value"][0]["url"].endswith("/sensorthings/v1.1/Things")
    conformance = body["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array" in conformance


def test_deep_insert_of_a_thing_then_navigation_and_self_links(client, tokens, session):
    thing = create(client, tokens("admin"), "/Things", gauge())
    assert thing["@iot.selfLink"] == f"http://testserver{ROOT}/Things({thing['@iot.id']})"
    assert thing["Datastreams@iot.navigationLink"].endswith(f"Things({thing['@iot.id']})/Datastreams")
    assert thing["properties"]["sungai"] == "Musi"
    # the kecamatan (and the desa, where boundaries are imported) comes from the Location; never the device key
    assert thing["properties"]["kotacerdas"]["kecamatan_code"].startswith("16.05.")
    assert "device_key" not in str(thing)
    tid = thing["@iot.id"]
    locations = client.get(f"{ROOT}/Things({tid})/Locations").json()["value"]
    assert locations[0]["location"] == point()
    history = client.get(f"{ROOT}/Things({tid})/HistoricalLocations?$expand=Locations").json()["value"]
    assert len(history) == 1 and history[0]["Locations"][0]["@iot.id"] == locations[0]["@iot.id"]
    datastream = client.get(f"{ROOT}/Things({tid})/Datastreams?$expand=Sensor,ObservedProperty").json()["value"][0]
    assert datastream["Sensor"]["name"] == "Radar"
    assert datastream["ObservedProperty"]["definition"] == "https://example.org/water-level"
    assert datastream["unitOfMeasurement"]["symbol"] == "cm"
    assert datastream["properties"]["levels"] == {"waspada": 250, "siaga": 300}
    ds = datastream["@iot.id"]
    assert client.get(f"{ROOT}/Datastreams({ds})/Thing").json()["@iot.id"] == tid
    assert client.get(f"{ROOT}/Datastreams({ds})/Thing/name").json() == {"name": "Pos duga air Musi"}
    raw = client.get(f"{ROOT}/Datastreams({ds})/Thing/name/$value")
    assert raw.text == "Pos duga air Musi" and raw.headers["content-type"].startswith("text/plain")
    assert client.get(f"{ROOT}/Things({tid})/Datastreams({ds})").json()["@iot.id"] == ds
    assert session.scalar(sa.select(Datastream.levels).where(Datastream.id == ds)) == {"waspada": 250, "siaga": 300}
    for path in (f"/Things({tid + 1000})", f"/Things({tid})/Datastreams({ds + 1000})", "/Nothing", "/Things(1)/bad"):
        assert_problem(client.get(ROOT + path), 404)


def test_every_entity_set_can_be_created_read_updated_and_deleted(client, tokens, session):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", {"name": "Lampu jalan", "description": "Lampu pintar"})
    location = create(client, admin, "/Locations", {
        "name": "Simpang", "description": "Simpang empat", "encodingType": "application/vnd.geo+json",
        "location": point(), "Things": [{"@iot.id": thing["@iot.id"]}]})  # fmt: skip
    sensor = create(client, admin, "/Sensors", {
        "name": "LDR", "description": "Light sensor", "encodingType": "application/pdf",
        "metadata": "x.pdf"})  # fmt: skip
    prop = create(client, admin, "/ObservedProperties", {
        "name": "Lampu menyala", "definition": "https://example.org/on", "description": "Menyala?"})  # fmt: skip
    datastream = create(client, admin, "/Datastreams", {
        "name": "Status", "description": "Menyala", "observationType": OM + "OM_TruthObservation",
        "unitOfMeasurement": {"name": None, "symbol": None, "definition": None},
        "Thing": {"@iot.id": thing["@iot.id"]}, "Sensor": {"@iot.id": sensor["@iot.id"]},
        "ObservedProperty": {"@iot.id": prop["@iot.id"]}})  # fmt: skip
    feature = create(client, admin, "/FeaturesOfInterest", {
        "name": "Simpang", "description": "Simpang empat", "encodingType": "application/geo+json",
        "feature": point(-3.07, 102.94)})  # fmt: skip
    observation = create(client, admin, "/Observations", {
        "phenomenonTime": "2026-11-01T18:00:00Z", "result": True,
        "Datastream": {"@iot.id": datastream["@iot.id"]},
        "FeatureOfInterest": {"@iot.id": feature["@iot.id"]}})  # fmt: skip
    assert observation["result"] is True and observation["phenomenonTime"] == "2026-11-01T18:00:00Z"
    historical = client.get(f"{ROOT}/Things({thing['@iot.id']})/HistoricalLocations").json()["value"]
    assert len(historical) == 1  # linking a Location moved the Thing
    made = {"Things": thing, "Locations": location, "Sensors": sensor, "ObservedProperties": prop,
            "Datastreams": datastream, "FeaturesOfInterest": feature, "Observations": observation,
            "HistoricalLocations": historical[0]}  # fmt: skip
    for name, entity in made.items():
        got = client.get(f"{ROOT}/{name}({entity['@iot.id']})")
        assert got.status_code == 200 and got.json()["@iot.id"] == entity["@iot.id"], name
    changes = {"Things": {"name": "Lampu jalan 2"}, "Locations": {"location": point(-3.08, 102.95)},
               "Sensors": {"description": "LDR v2"}, "ObservedProperties": {"name": "Nyala"},
               "Datastreams": {"description": "Status lampu"}, "FeaturesOfInterest": {"name": "Simpang 4"},
               "HistoricalLocations": {"time": "2026-10-01T00:00:00Z"}}  # fmt: skip
    for name, change in changes.items():
        response = client.patch(f"{ROOT}/{name}({made[name]['@iot.id']})", json=change, headers=admin)
        assert response.status_code == 200, response.text
        key, value = next(iter(change.items()))
        assert client.get(f"{ROOT}/{name}({made[name]['@iot.id']})").json()[key] == value
    response = client.patch(f"{ROOT}/Observations({observation['@iot.id']})", json={"result": False}, headers=admin)
    assert response.status_code == 200 and response.json()["result"] is False, response.text
    for name in ("Observations", "HistoricalLocations", "Datastreams", "FeaturesOfInterest", "Locations", "Sensors",
                 "ObservedProperties", "Things"):  # fmt: skip
        response = client.delete(f"{ROOT}/{name}({made[name]['@iot.id']})", headers=admin)
        assert response.status_code == 200, (name, response.text)
        assert_problem(client.get(f"{ROOT}/{name}({made[name]['@iot.id']})"), 404)


def test_deleting_a_thing_takes_its_datastreams_and_observations(client, tokens, session):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", gauge())
    ds = first_datastream(client, thing["@iot.id"])
    for value in (120, 130):
        create(client, admin, f"/Datastreams({ds})/Observations", {"result": value})
    assert row_count(session, Datastream) == 1
    assert client.delete(f"{ROOT}/Things({thing['@iot.id']})", headers=admin).status_code == 200
    assert row_count(session, Datastream) == 0
    assert row_count(session, HistoricalLocation) == 0
    assert row_count(session, Location) == 1  # a Location is not the Thing's to delete
    assert observations(session) == []
    assert client.get(f"{ROOT}/Observations").json()["value"] == []


# --- observations -----------------------------------------------------------------------------------------------


def test_observations_posted_on_the_datastream_path_are_typed_and_get_the_things_feature(client, tokens, session):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", gauge())
    ds = first_datastream(client, thing["@iot.id"])
    first = create(client, admin, f"/Datastreams({ds})/Observations",
                   {"phenomenonTime": "2026-11-01T06:00:00+07:00", "result": 251.5})  # fmt: skip
    assert first["phenomenonTime"] == "2026-10-31T23:00:00Z"
    second = create(client, admin, "/Observations", {"result": 252, "Datastream": {"@iot.id": ds}})
    assert second["result"] == 252 and isinstance(second["result"], int)
    features = [client.get(f"{ROOT}/Observations({o['@iot.id']})/FeatureOfInterest").json() for o in (first, second)]
    assert features[0]["@iot.id"] == features[1]["@iot.id"] and features[0]["feature"] == point()
    assert row_count(session, FeatureOfInterest) == 1
    for bad, word in (("tinggi", "number"), (True, "number"), ({"a": 1}, "number")):
        problem = assert_problem(client.post(f"{ROOT}/Datastreams({ds})/Observations", json={"result": bad},
                                             headers=admin), 400)  # fmt: skip
        assert word in problem["detail"]
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    assert_problem(client.post(f"{ROOT}/Datastreams({ds})/Observations", json={"result": 1, "phenomenonTime": future},
                               headers=admin), 400)  # fmt: skip
    assert_problem(client.post(f"{ROOT}/Datastreams({ds})/Observations", content=b'{"result": NaN}',
                               headers=admin), 400)  # fmt: skip
    assert_problem(client.post(f"{ROOT}/Observations", json={"result": 1, "Datastream": {"@iot.id": ds + 99}},
                               headers=admin), 400)  # fmt: skip
    assert len(observations(session)) == 2


def test_result_types_follow_the_observation_type(client, tokens):
    admin = tokens("admin")
    cases = {"OM_CountObservation": (3, 2.5), "OM_TruthObservation": (False, 0),
             "OM_CategoryObservation": ("hujan", 1), "OM_Observation": ({"a": [1, 2]}, None)}  # fmt: skip
    for kind, (good, bad) in cases.items():
        thing = create(client, admin, "/Things", gauge(kind, observation_type=kind))
        ds = first_datastream(client, thing["@iot.id"])
        stored_value = create(client, admin, f"/Datastreams({ds})/Observations", {"result": good})["result"]
        assert stored_value == good and type(stored_value) is type(good)
        if bad is not None:
            assert_problem(client.post(f"{ROOT}/Datastreams({ds})/Observations", json={"result": bad},
                                       headers=admin), 400)  # fmt: skip


def test_query_options_filter_order_page_count_select_expand(client, tokens):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", gauge())
    ds = first_datastream(client, thing["@iot.id"])
    rows = [[(T0 + timedelta(minutes=10 * i)).isoformat(), 200 + i] for i in range(25)]
    response = client.post(f"{ROOT}/CreateObservations", headers=admin, json=[
        {"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": rows}])  # fmt: skip
    assert response.status_code == 201 and len(response.json()) == 25
    base = f"{ROOT}/Datastreams({ds})/Observations"
    page = client.get(base, params={"$orderby": "phenomenonTime desc", "$top": "10", "$count": "true"}).json()
    assert page["@iot.count"] == 25
    assert [o["result"] for o in page["value"]] == list(range(224, 214, -1))
    assert "$skip=10" in page["@iot.nextLink"]
    seen = []
    link = f"{ROOT}/Observations?$top=7&$orderby=phenomenonTime"
    while link:
        body = client.get(link).json()
        seen += [o["result"] for o in body["value"]]
        link = body.get("@iot.nextLink")
    assert seen == list(range(200, 225))
    filtered = client.get(base, params={"$filter": "result ge 220 and phenomenonTime lt 2026-11-01T09:50:00Z"}).json()
    assert sorted(o["result"] for o in filtered["value"]) == [220, 221, 222]  # 223 is at 09:50
    assert client.get(base, params={"$filter": "Datastream/Thing/name eq 'Pos duga air Musi'", "$top": "1"}).json()[
        "value"]  # fmt: skip
    selected = client.get(base, params={"$select": "result", "$top": "1"}).json()["value"][0]
    assert selected == {"result": 200}
    latest_first = "Datastreams($select=name;$expand=Observations($orderby=phenomenonTime desc;$top=1))"
    expanded = client.get(f"{ROOT}/Things", params={"$expand": latest_first}).json()
    latest = expanded["value"][0]["Datastreams"][0]
    assert latest["name"] == "Tinggi muka air" and latest["Observations"][0]["result"] == 224
    assert client.get(f"{ROOT}/Things", params={"$filter": "properties/sungai eq 'Musi'"}).json()["value"]
    array = client.get(base, params={"$resultFormat": "dataArray", "$top": "3", "$orderby": "phenomenonTime"}).json()
    group = array["value"][0]
    assert group["components"] == ["id", "phenomenonTime", "resultTime", "result"]
    assert [row[3] for row in group["dataArray"]] == [200, 201, 202]
    for bad in ({"$filter": "result eq"}, {"$top": "-1"}, {"$orderby": "nothing"}, {"$expand": "Nope"}):
        assert_problem(client.get(base, params=bad), 400)


# --- CreateObservations ------------------------------------------------------------------------------------------


def test_create_observations_is_all_or_nothing(client, tokens, session):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", gauge())
    ds = first_datastream(client, thing["@iot.id"])
    good = {"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"],
            "dataArray": [["2026-11-01T06:00:00Z", 1.0], ["2026-11-01T06:10:00Z", 2]]}  # fmt: skip
    bad = {"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"],
           "dataArray": [["2026-11-01T06:20:00Z", 3], ["2026-11-01T06:30:00Z", "tinggi"]]}  # fmt: skip
    problem = assert_problem(client.post(f"{ROOT}/CreateObservations", json=[good, bad], headers=admin), 400)
    assert "CreateObservations[1].dataArray[1]" in problem["detail"]
    unknown = {**good, "Datastream": {"@iot.id": ds + 50}}
    assert "CreateObservations[1]" in assert_problem(
        client.post(f"{ROOT}/CreateObservations", json=[good, unknown], headers=admin), 400)["detail"]  # fmt: skip
    assert observations(session) == []
    huge = {**good, "dataArray": [["2026-11-01T06:00:00Z", 1]] * 10_001}
    assert_problem(client.post(f"{ROOT}/CreateObservations", json=[huge], headers=admin), 413)
    response = client.post(f"{ROOT}/CreateObservations", json=[good], headers=admin)
    assert response.status_code == 201
    assert [link.rsplit("(", 1)[0] for link in response.json()] == [f"http://testserver{ROOT}/Observations"] * 2
    assert len(observations(session)) == 2


def test_a_deep_insert_with_a_bad_inner_entity_stores_nothing(client, tokens, session):
    admin = tokens("admin")
    body = gauge()
    body["Datastreams"][0]["ObservedProperty"] = {"name": "x"}  # no definition
    problem = assert_problem(client.post(f"{ROOT}/Things", json=body, headers=admin), 400)
    assert "ObservedProperty.definition" in problem["detail"]
    body = gauge()
    body["Locations"][0]["location"] = {"type": "Point", "coordinates": [500, 0]}
    assert "location" in assert_problem(client.post(f"{ROOT}/Things", json=body, headers=admin), 400)["detail"]
    body = gauge()
    body["Datastreams"][0]["Observations"] = [{"result": 1}, {"result": "x"}]
    assert_problem(client.post(f"{ROOT}/Things", json=body, headers=admin), 400)
    for model in (Thing, Location, Sensor, Datastream):
        assert row_count(session, model) == 0
    for bad in (b"{", b"[]", b'{"name": 1, "description": ""}', b'{"name": "a"}'):
        assert_problem(client.post(f"{ROOT}/Things", content=bad, headers=admin), 400)


# --- who may write ----------------------------------------------------------------------------------------------


def test_writes_need_a_token_and_opd_staff_change_only_their_own_things(client, tokens, staff, session):
    anonymous = client.post(f"{ROOT}/Things", json={"name": "x", "description": "y"})
    assert_problem(anonymous, 401)
    assert anonymous.headers["www-authenticate"] == 'Basic realm="kotacerdas"'
    assert_problem(client.post(f"{ROOT}/Things", json={"name": "x", "description": "y"},
                               headers={"Authorization": "Bearer nope"}), 401)  # fmt: skip
    assert_problem(client.post(f"{ROOT}/Things", json={"name": "x", "description": "y"}, headers=tokens("pimpinan")),
                   403)  # fmt: skip
    pupr = create(client, tokens("pupr_staff"), "/Things", gauge("Pos PUPR"))
    assert pupr["properties"]["kotacerdas"]["agency_id"] == staff("pupr_staff").agency_id
    dlh = tokens("dlh_staff")
    assert_problem(client.patch(f"{ROOT}/Things({pupr['@iot.id']})", json={"name": "mine"}, headers=dlh), 403)
    assert_problem(client.delete(f"{ROOT}/Things({pupr['@iot.id']})", headers=dlh), 403)
    ds = first_datastream(client, pupr["@iot.id"])
    assert_problem(client.post(f"{ROOT}/Datastreams({ds})/Observations", json={"result": 1}, headers=dlh), 403)
    other = {
        "name": "x",
        "description": "y",
        "properties": {"kotacerdas": {"agency_id": staff("pupr_staff").agency_id}},
    }
    assert_problem(client.post(f"{ROOT}/Things", json=other, headers=dlh), 403)
    # Basic with username and token, as many SensorThings clients send
    plain = new_api_token(session, staff("pupr_staff"), name="basic")
    basic = {"Authorization": "Basic " + base64.b64encode(f"pupr.staff:{plain}".encode()).decode()}
    assert (
        client.patch(f"{ROOT}/Things({pupr['@iot.id']})", json={"name": "Pos PUPR 2"}, headers=basic).status_code == 200
    )
    wrong = {"Authorization": "Basic " + base64.b64encode(f"dlh.staff:{plain}".encode()).decode()}
    assert_problem(client.patch(f"{ROOT}/Things({pupr['@iot.id']})", json={"name": "z"}, headers=wrong), 401)
    assert client.get(f"{ROOT}/Things({pupr['@iot.id']})").json()["name"] == "Pos PUPR 2"


def test_a_device_key_posts_observations_of_its_own_thing_only(client, tokens, session):
    from kotacerdas.sensors import devices

    admin = tokens("admin")
    mine = create(client, admin, "/Things", gauge("Mine"))
    other = create(client, admin, "/Things", gauge("Other"))
    key = devices.issue_device_key(session, thing_id=mine["@iot.id"])
    session.commit()
    device = bearer(key.plain)
    ds_mine, ds_other = first_datastream(client, mine["@iot.id"]), first_datastream(client, other["@iot.id"])
    assert (
        client.post(f"{ROOT}/Datastreams({ds_mine})/Observations", json={"result": 5}, headers=device).status_code
        == 201
    )
    batch = [{"Datastream": {"@iot.id": ds_other}, "components": ["result"], "dataArray": [[1]]}]
    assert_problem(client.post(f"{ROOT}/CreateObservations", json=batch, headers=device), 403)
    assert_problem(client.patch(f"{ROOT}/Things({mine['@iot.id']})", json={"name": "x"}, headers=device), 403)
    assert key.secret not in client.get(f"{ROOT}/Things({mine['@iot.id']})").text


# --- concurrency ------------------------------------------------------------------------------------------------


def test_concurrent_first_observations_share_one_feature_of_interest(app, backend, tokens, session):
    if backend != "postgres":
        pytest.skip("SQLite writes one at a time; the race needs PostgreSQL")
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        admin = tokens("admin")
        things = [create(client, admin, "/Things", gauge(f"Pos {i}")) for i in range(4)]
        # the same place for every Thing: one feature
        datastreams = [first_datastream(client, t["@iot.id"]) for t in things]
    with running_server(app) as base:
        barrier = threading.Barrier(16)
        statuses: list[int] = []

        def post(ds: int) -> None:
            with httpx.Client(base_url=base, headers=admin, timeout=30) as http:
                barrier.wait()
                statuses.append(http.post(f"{ROOT}/Datastreams({ds})/Observations", json={"result": 1}).status_code)

        threads = [threading.Thread(target=post, args=(datastreams[i % 4],)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [201] * 16
    assert row_count(session, FeatureOfInterest) == 1
    assert len(observations(session)) == 16


# --- nothing answers 5xx ----------------------------------------------------------------------------------------

SEGMENTS = st.sampled_from(["Things", "Things(1)", "Datastreams(1)", "Observations", "Locations(2)", "name", "$value",
                            "Thing", "Observations(1)", "FeaturesOfInterest", "x", "(", "Things(99999999999999999999)",
                            "HistoricalLocations", "Sensors(1)", "CreateObservations", "result", "%00"])  # fmt: skip
OPTIONS = st.dictionaries(
    st.sampled_from(["$filter", "$orderby", "$top", "$skip", "$count", "$select", "$expand", "$resultFormat", "$x"]),
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(
            [
                "result gt 1",
                "phenomenonTime desc",
                "Datastreams",
                "true",
                "dataArray",
                "name,id",
                "Observations($top=1)",
            ]
        ),
    ),  # fmt: skip
    max_size=3,
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "description", "result", "Datastream", "@iot.id", "location", "Things", "type",
                         "coordinates", "components", "dataArray", "phenomenonTime", "observationType"]),
        children, max_size=5),
    max_leaves=12,
)  # fmt: skip


def test_no_path_option_or_body_makes_a_server_error(client, tokens):
    admin = tokens("admin")
    create(client, admin, "/Things", gauge())
    ds = first_datastream(client, 1) if client.get(f"{ROOT}/Things(1)").status_code == 200 else None
    if ds is not None:
        create(client, admin, f"/Datastreams({ds})/Observations", {"result": 1})

    @hsettings(
        max_examples=int(os.environ.get("KOTACERDAS_FUZZ_EXAMPLES", "150")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(SEGMENTS, min_size=0, max_size=4), OPTIONS, st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
           JSON)  # fmt: skip
    def check(segments, options, method, body):
        path = ROOT + "/" + "/".join(segments)
        headers = admin if method != "GET" else {}
        response = client.request(method, path, params=options, json=body, headers=headers)
        assert response.status_code < 500, (method, path, options, body, response.text)

    check()


def test_create_observations_with_more_components(client, tokens, session):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", gauge())
    ds = first_datastream(client, thing["@iot.id"])
    feature = create(client, admin, "/FeaturesOfInterest", {
        "name": "Hulu", "description": "Hulu sungai", "encodingType": "application/geo+json",
        "feature": point(-3.0, 102.9)})  # fmt: skip
    group = {"Datastream": {"@iot.id": ds},
             "components": ["phenomenonTime", "resultTime", "result", "FeatureOfInterest/id", "parameters"],
             "dataArray": [["2026-11-01T06:00:00Z/2026-11-01T07:00:00Z", "2026-11-01T07:00:05Z", 12.5,
                            feature["@iot.id"], {"rain": "tipping bucket"}]]}  # fmt: skip
    response = client.post(f"{ROOT}/CreateObservations", json=[group], headers=admin)
    assert response.status_code == 201, response.text
    got = client.get(response.json()[0].removeprefix("http://testserver"), params={"$expand": "FeatureOfInterest"})
    body = got.json()
    assert body["phenomenonTime"] == "2026-11-01T06:00:00Z/2026-11-01T07:00:00Z"
    assert body["resultTime"] == "2026-11-01T07:00:05Z" and body["result"] == 12.5
    assert body["parameters"] == {"rain": "tipping bucket"}
    assert body["FeatureOfInterest"]["name"] == "Hulu"
    group["dataArray"][0][3] = feature["@iot.id"] + 100
    assert "FeatureOfInterest" in assert_problem(
        client.post(f"{ROOT}/CreateObservations", json=[group], headers=admin), 400)["detail"]  # fmt: skip
    assert len(observations(session)) == 1


def test_date_functions_of_observation_times(client, tokens):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", gauge())
    ds = first_datastream(client, thing["@iot.id"])
    for result, time in ((1, "2026-11-01T06:00:00Z"), (2, "2025-12-31T23:59:59.250Z"), (3, "2026-01-01T00:00:00Z")):
        create(client, admin, f"/Datastreams({ds})/Observations", {"result": result, "phenomenonTime": time})

    def results(expression: str) -> list:
        response = client.get(f"{ROOT}/Observations", params={"$filter": expression, "$orderby": "result"})
        assert response.status_code == 200, response.text
        return [o["result"] for o in response.json()["value"]]

    # The same answers on both databases (SQLite keeps these times as integer microseconds).
    assert results("year(phenomenonTime) eq 2026") == [1, 3]
    assert results("month(phenomenonTime) eq 12 and day(phenomenonTime) eq 31") == [2]
    assert results("hour(phenomenonTime) eq 6") == [1]
    assert results("second(phenomenonTime) eq 59 and fractionalseconds(phenomenonTime) gt 0.2") == [2]
    assert results("date(phenomenonTime) eq 2026-01-01") == [3]
    ordered = client.get(f"{ROOT}/Observations", params={"$orderby": "month(phenomenonTime) desc,result"}).json()
    assert [o["result"] for o in ordered["value"]] == [2, 1, 3]
    things = client.get(f"{ROOT}/Things", params={"$filter": "year(Datastreams/Observations/phenomenonTime) eq 2025"})
    assert [t["@iot.id"] for t in things.json()["value"]] == [thing["@iot.id"]]
    # Things' own times are ordinary datetimes on both databases
    assert client.get(f"{ROOT}/HistoricalLocations", params={"$filter": "year(time) ge 2026"}).json()["value"]


def test_post_on_a_navigation_path_links_to_the_parent_and_moves_the_thing(client, tokens, session):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", {"name": "Lampu", "description": "Lampu jalan"})
    tid = thing["@iot.id"]
    location = create(client, admin, f"/Things({tid})/Locations", {
        "name": "Simpang", "description": "Simpang", "encodingType": "application/geo+json",
        "location": point()})  # fmt: skip
    assert client.get(f"{ROOT}/Things({tid})/Locations").json()["value"][0]["@iot.id"] == location["@iot.id"]
    assert len(client.get(f"{ROOT}/Things({tid})/HistoricalLocations").json()["value"]) == 1
    assert client.get(f"{ROOT}/Things({tid})").json()["properties"]["kotacerdas"]["kecamatan_code"]
    assert_problem(client.post(f"{ROOT}/Things({tid})", json={"name": "x"}, headers=admin), 405)
    assert_problem(client.post(f"{ROOT}/Things({tid})/name", json={"name": "x"}, headers=admin), 405)
    entries = stored(session, sa.select(sa.func.count()).select_from(AuditEntry).where(
        AuditEntry.action.like("sensors.%")))  # fmt: skip
    assert entries == 2  # the Thing and the Location


def test_text_results_with_a_nul_are_refused(client, tokens, session):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", gauge("Cuaca", observation_type="OM_CategoryObservation"))
    ds = first_datastream(client, thing["@iot.id"])
    batch = [{"Datastream": {"@iot.id": ds}, "components": ["result"], "dataArray": [["hujan"], ["hu\x00jan"]]}]
    assert "dataArray[1]" in assert_problem(client.post(f"{ROOT}/CreateObservations", json=batch, headers=admin),
                                            400)["detail"]  # fmt: skip
    assert_problem(client.post(f"{ROOT}/Datastreams({ds})/Observations", json={"result": "a\x00"}, headers=admin), 400)
    assert_problem(client.post(f"{ROOT}/Things", json={"name": "a\x00", "description": ""}, headers=admin), 400)
    assert observations(session) == []


def test_patching_an_observation_checks_it_as_new_and_the_chart_and_current_value_follow(
    client, tokens, staff, session
):
    admin = tokens("admin")
    pupr = create(client, tokens("pupr_staff"), "/Things", gauge("Pos PUPR"))
    ds = first_datastream(client, pupr["@iot.id"])
    made = [
        create(client, admin, f"/Datastreams({ds})/Observations",
               {"phenomenonTime": (T0 + timedelta(minutes=m)).isoformat(), "result": value})
        for m, value in ((0, 100.0), (10, 120.0), (70, 130.0))
    ]  # fmt: skip
    first, newest = made[0]["@iot.id"], made[2]["@iot.id"]
    url = f"{ROOT}/Observations({first})"
    # Bad input: a 400 naming it, and nothing changed.
    ahead = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    bad = [({"result": "tinggi"}, "result"), ({"phenomenonTime": None}, "phenomenonTime"),
           ({"phenomenonTime": "kemarin"}, "phenomenonTime"), ({"Datastream": {"@iot.id": 10**9}}, "Datastream"),
           ({"warna": "merah"}, "warna"), ({"@iot.id": newest}, "@iot.id"),
           ({"phenomenonTime": ahead}, "future")]  # fmt: skip
    for body, named in bad:
        assert named in assert_problem(client.patch(url, json=body, headers=admin), 400)["detail"]
    assert client.get(url).json()["result"] == 100.0
    # Who may: not another OPD's staff, not a device key, not a visitor.
    assert_problem(client.patch(url, json={"result": 1.0}, headers=tokens("dlh_staff")), 403)
    assert_problem(client.patch(url, json={"result": 1.0}), 401)
    # The first reading moves to the next hour and becomes the newest: its old hour, its new hour and the current
    # value follow; the id stays.
    moved = T0 + timedelta(hours=1, minutes=30)
    response = client.patch(url, json={"phenomenonTime": moved.isoformat(), "result": 150}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["@iot.id"] == first and response.json()["phenomenonTime"] == "2026-11-01T07:30:00Z"
    assert response.json()["result"] == 150
    session.rollback()
    assert store.current_values(session, [ds])[ds].observation_id == first
    hours = store.hourly(session, datastream_id=ds, start=T0, end=T0 + timedelta(hours=2))
    assert [(h.hour, h.count, h.min, h.max) for h in hours] == [
        (T0, 1, 120.0, 120.0), (T0 + timedelta(hours=1), 2, 130.0, 150.0)
    ]  # fmt: skip
    listed = client.get(f"{ROOT}/Datastreams({ds})/Observations?$orderby=phenomenonTime desc&$top=1").json()
    assert listed["value"][0]["@iot.id"] == first
    # The owner's staff may change it too, and the change is audited with what it was.
    pupr_token = tokens("pupr_staff")
    assert client.patch(url, json={"resultQuality": "diperiksa"}, headers=pupr_token).status_code == 200
    assert client.get(url).json()["resultQuality"] == "diperiksa"
    session.rollback()
    entry = session.scalars(
        sa.select(AuditEntry).where(AuditEntry.action == "sensors.observation.update").order_by(AuditEntry.id)
    ).first()
    assert entry.entity_id == str(first)
    assert entry.before["result"] == 100.0 and entry.after["result"] == 150
    # Moving it back brings the previous newest back as the current value.
    assert client.patch(url, json={"phenomenonTime": T0.isoformat()}, headers=admin).status_code == 200
    session.rollback()
    assert store.current_values(session, [ds])[ds].observation_id == newest


def test_ref_answers_association_links_only(client, tokens):
    admin = tokens("admin")
    thing = create(client, admin, "/Things", gauge())
    ds = first_datastream(client, thing["@iot.id"])
    made = [create(client, admin, f"/Datastreams({ds})/Observations", {"result": value})["@iot.id"]
            for value in (120, 130, 140)]  # fmt: skip
    sensor = client.get(f"{ROOT}/Datastreams({ds})/Sensor/$ref")
    assert sensor.status_code == 200
    sensor_id = client.get(f"{ROOT}/Datastreams({ds})/Sensor").json()["@iot.id"]
    assert sensor.json() == {"@iot.selfLink": f"http://testserver{ROOT}/Sensors({sensor_id})"}
    page = client.get(f"{ROOT}/Datastreams({ds})/Observations/$ref?$top=2&$orderby=id&$count=true").json()
    assert page["@iot.count"] == 3
    assert [link["@iot.selfLink"] for link in page["value"]] == [
        f"http://testserver{ROOT}/Observations({i})" for i in made[:2]
    ]
    assert "/Observations/$ref?" in page["@iot.nextLink"]
    rest = client.get(page["@iot.nextLink"].replace("http://testserver", "")).json()
    assert rest["value"] == [{"@iot.selfLink": f"http://testserver{ROOT}/Observations({made[2]})"}]
    assert client.get(f"{ROOT}/Datastreams({ds})/Observations/$ref?$filter=result gt 125").json()["value"] == [
        {"@iot.selfLink": f"http://testserver{ROOT}/Observations({i})"} for i in made[1:]
    ]
    assert_problem(client.get(f"{ROOT}/Things({thing['@iot.id']})/Datastreams/$ref?$expand=Sensor"), 400)
    assert_problem(client.post(f"{ROOT}/Datastreams({ds})/Sensor/$ref", json={"@iot.id": 1}, headers=admin), 405)
    assert_problem(client.get(f"{ROOT}/Things({thing['@iot.id']})/name/$ref"), 404)
    assert_problem(client.get(f"{ROOT}/Things({thing['@iot.id']})/$ref/Datastreams"), 404)
