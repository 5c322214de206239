"""A real SensorThings client, unchanged: ``frost_sta_client`` against a real uvicorn server.

It creates a Thing with a Location, a Datastream (with its Sensor and ObservedProperty) and
Observations, then reads them back through its own query API; the rows are checked in SQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import frost_sta_client as fsc
import geojson
import httpx
import psycopg
import pytest
import uvicorn

from tests.services import free_port
from twin.api.app import create_app
from twin.db.migrate import upgrade
from twin.settings import Settings


@pytest.fixture(scope="module")
def server(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Settings]]:
    url = make_database("twin_frost")
    upgrade(url)
    port = free_port()
    settings = Settings(
        _env_file=None,
        database_url=url,
        data_dir=tmp_path_factory.mktemp("frost"),
        open_operations=True,
        public_clearance="important",
        port=port,
    )
    srv = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/sta/v1.1", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield f"{base}/sta/v1.1", settings
    srv.should_exit = True
    thread.join(10)


def test_frost_client_round_trip(server: tuple[str, Settings]) -> None:
    url, settings = server
    service = fsc.SensorThingsService(url)
    thing = fsc.Thing(
        name="pump station 7", description="a pump station", properties={"district": "west"}
    )
    thing.locations = fsc.model.ext.entity_list.EntityList(
        entity_class="frost_sta_client.model.location.Location",
        entities=[
            fsc.Location(
                name="pump 7",
                description="at the canal",
                encoding_type="application/geo+json",
                location=geojson.Point((120.11, 30.22)),
            )
        ],
    )
    service.create(thing)
    assert isinstance(thing.id, int)

    datastream = fsc.Datastream(
        name="pump 7 water level",
        description="level in the sump",
        observation_type="http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        unit_of_measurement=fsc.UnitOfMeasurement(
            name="metre", symbol="m", definition="http://unitsofmeasure.org/ucum.html#para-29"
        ),
        thing=thing,
        sensor=fsc.Sensor(
            name="radar gauge", description="radar", encoding_type="text/plain", metadata="RG-1"
        ),
        observed_property=fsc.ObservedProperty(
            name="water level",
            definition="http://example.org/level",
            description="water level above datum",
        ),
    )
    service.create(datastream)
    assert isinstance(datastream.id, int)

    values = [0.5, 0.75, 1.25]
    for i, v in enumerate(values):
        obs = fsc.Observation(
            result=v, phenomenon_time=f"2026-07-01T00:0{i}:00Z", datastream=datastream
        )
        service.create(obs)

    found = service.things().find(thing.id)
    assert found.name == "pump station 7"
    streams = service.datastreams().query().filter(f"Thing/id eq {thing.id}").list()
    assert [d.name for d in streams] == ["pump 7 water level"]
    assert streams.entities[0].unit_of_measurement.symbol == "m"
    observations = (
        service.observations()
        .query()
        .filter(f"Datastream/id eq {datastream.id}")
        .orderby("phenomenonTime", "asc")
        .list()
    )
    assert [o.result for o in observations] == values
    with psycopg.connect(settings.database_url or "") as c:
        rows = c.execute(
            "SELECT value FROM twin.observation WHERE sensor_id = %s ORDER BY observed_at",
            (datastream.id,),
        ).fetchall()
        geom = c.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM twin.sensor WHERE id = %s", (datastream.id,)
        ).fetchone()
    assert [r[0] for r in rows] == values
    assert geom == pytest.approx((120.11, 30.22))
