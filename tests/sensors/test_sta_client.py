"""A real SensorThings client from PyPI (frost-sta-client, Fraunhofer IOSB's Python client for FROST-Server), used
unchanged against the app under a real uvicorn: it creates a Thing with its Location and Datastream, posts
Observations, queries them back with a filter, an order and an expansion, updates and deletes, with HTTP Basic
(username and API token), as it authenticates."""

from __future__ import annotations

import frost_sta_client as fsc
import geojson
import pytest
import requests

from conftest import new_api_token, running_server

from .test_sensorthings import OM, observations

ROOT = "/sensorthings/v1.1"


def test_frost_client_creates_queries_updates_and_deletes(app, staff, session):  # noqa: F811
    user = staff("pupr_staff")
    token = new_api_token(session, user, name="frost")
    with running_server(app) as base:
        service = fsc.SensorThingsService(
            f"{base}{ROOT}", auth_handler=fsc.service.auth_handler.AuthHandler(username=user.username, password=token)
        )
        location = fsc.Location(
            name="Jembatan Kelingi",
            description="Pos duga air Kelingi",
            encoding_type="application/geo+json",
            location=geojson.Point((102.93, -3.06)),
        )
        thing = fsc.Thing(name="Pos Kelingi", description="Pos duga air", properties={"sungai": "Kelingi"})
        thing.locations = [location]
        service.create(thing)
        assert isinstance(thing.id, int)

        sensor = fsc.Sensor(name="Radar", description="Radar level", encoding_type="text/html", metadata="https://x")
        observed = fsc.ObservedProperty(name="Tinggi muka air", definition="https://example.org/wl", description="TMA")
        datastream = fsc.Datastream(
            name="TMA Kelingi",
            description="Tinggi muka air",
            observation_type=OM + "OM_Measurement",
            unit_of_measurement=fsc.UnitOfMeasurement(name="centimetre", symbol="cm", definition="ucum:cm"),
            thing=thing,
            sensor=sensor,
            observed_property=observed,
        )
        service.create(datastream)
        for i, value in enumerate([180.0, 240.5, 310.0]):
            service.create(
                fsc.Observation(result=value, phenomenon_time=f"2026-11-01T0{6 + i}:00:00Z", datastream=datastream)
            )

        found = service.observations().query().filter("result gt 200").orderby("phenomenonTime", "ASC").list()
        assert [o.result for o in found] == [240.5, 310.0]
        things = service.things().query().expand("Datastreams($expand=Observations),Locations").list()
        fetched = next(t for t in things if t.id == thing.id)
        assert fetched.datastreams.entities[0].name == "TMA Kelingi"
        assert len(fetched.datastreams.entities[0].observations.entities) == 3
        assert fetched.locations.entities[0].name == "Jembatan Kelingi"
        # the Observations got the Thing's Location as their FeatureOfInterest
        features = service.features_of_interest().query().list()
        assert len(features.entities) == 1

        again = service.things().find(thing.id)
        again.name = "Pos Kelingi Hilir"
        service.update(again)  # a PUT of the whole entity, as this client sends it
        assert service.things().find(thing.id).name == "Pos Kelingi Hilir"
        stream = service.datastreams().find(datastream.id)
        stream.description = "TMA Kelingi (cm)"
        service.update(stream)
        assert service.datastreams().find(datastream.id).description == "TMA Kelingi (cm)"
        reading = service.observations().query().filter("result eq 310.0").list().entities[0]
        reading.result = 301.5  # a reading corrected by hand
        service.update(reading)
        corrected = service.observations().find(reading.id)
        assert (corrected.result, corrected.phenomenon_time) == (301.5, "2026-11-01T08:00:00Z")

        service.delete(again)
        with pytest.raises(requests.exceptions.HTTPError) as missing:
            service.things().find(thing.id)
        assert missing.value.response.status_code == 404
    assert observations(session) == []  # the Observations went with the Thing's Datastream


def test_frost_client_without_credentials_is_refused(app, seeded):  # noqa: F811
    with running_server(app) as base:
        service = fsc.SensorThingsService(f"{base}{ROOT}")
        with pytest.raises(requests.exceptions.HTTPError) as refused:
            service.create(fsc.Thing(name="x", description="y"))
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"] == 'Basic realm="kotacerdas"'
