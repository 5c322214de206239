"""People ingest: the allow-list, address matching with reasons, and lon/lat location."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import psycopg
import pytest

from tests.ingest.conftest import state
from twin.ingest.people import ingest_people
from twin.ingest.report import IngestError
from twin.settings import Settings


def _addresses(settings: Settings, n: int) -> list[tuple[str, int, int]]:
    with psycopg.connect(settings.database_url) as c:
        return c.execute(
            "SELECT text, building_id, cell FROM twin.address ORDER BY id LIMIT %s", (n,)
        ).fetchall()


def test_people_by_address_in_any_typed_form(city: Settings, tmp_path: Path) -> None:
    addrs = _addresses(city, 3)
    typed = [addrs[0][0], addrs[1][0].replace("号", "號"), " ".join(addrs[2][0])]
    path = tmp_path / "p.csv"
    pd.DataFrame({"age_band": ["25-44", "75+", "0-14"], "resident_type": ["registered"] * 3,
                  "address": typed}).to_csv(path, index=False)  # fmt: skip
    with psycopg.connect(city.database_url) as c:
        before = c.execute("SELECT count(*) FROM twin.person").fetchone()
    report = ingest_people(path, city)
    assert report.loaded == 3
    with psycopg.connect(city.database_url) as c:
        rows = c.execute(
            "SELECT home_building_id, home_cell FROM twin.person ORDER BY id DESC LIMIT 3"
        ).fetchall()[::-1]
        after = c.execute("SELECT count(*) FROM twin.person").fetchone()
        audit = c.execute(
            "SELECT count(*) FROM twin.audit_log WHERE resource = 'person'"
        ).fetchone()
    assert [(b, cell) for _, b, cell in addrs] == rows
    assert after is not None and before is not None and after[0] == before[0] + 3
    assert audit == (1,)


def test_people_with_other_personal_columns_are_refused_unread(
    city: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "p.csv"
    pd.DataFrame({"name": ["张三"], "id_number": ["110101199003077777"], "phone": ["13800000000"],
                  "age_band": ["25-44"], "resident_type": ["registered"], "address": ["x"]}).to_csv(path, index=False)  # fmt: skip
    before = state(city.database_url or "")
    with pytest.raises(IngestError, match="columns not allowed for people: name, id_number, phone"):
        ingest_people(path, city)
    assert state(city.database_url or "") == before


def test_unmatched_addresses_are_reported_with_reasons(city: Settings, tmp_path: Path) -> None:
    good = _addresses(city, 1)[0][0]
    path = tmp_path / "p.csv"
    pd.DataFrame({"age_band": ["25-44"] * 3, "resident_type": ["migrant"] * 3,
                  "address": [good, "火星市不存在路1号", ""]}).to_csv(path, index=False)  # fmt: skip
    before = state(city.database_url or "")
    with pytest.raises(
        IngestError, match=r"home not found .*no such address in the address base: row 2"
    ):
        ingest_people(path, city)
    assert state(city.database_url or "") == before
    report = ingest_people(path, city, skip_unmatched=True)
    assert report.loaded == 1
    assert report.rejected == {"empty address": [3], "no such address in the address base": [2]}


def test_people_by_lon_lat_and_bad_values(city: Settings, tmp_path: Path) -> None:
    with psycopg.connect(city.database_url) as c:
        bid, lon, lat = c.execute(
            "SELECT id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM twin.building"
            " WHERE use = 'residential' ORDER BY id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
    path = tmp_path / "p.csv"
    pd.DataFrame(
        {"age_band": ["45-59"], "resident_type": ["registered"], "lon": [lon], "lat": [lat]}
    ).to_csv(path, index=False)
    ingest_people(path, city)
    with psycopg.connect(city.database_url) as c:
        assert c.execute(
            "SELECT home_building_id FROM twin.person ORDER BY id DESC LIMIT 1"
        ).fetchone() == (bid,)
    bad = tmp_path / "b.csv"
    pd.DataFrame(
        {
            "age_band": ["25-44", "old"],
            "resident_type": ["registered"] * 2,
            "lon": [lon] * 2,
            "lat": [lat] * 2,
        }
    ).to_csv(bad, index=False)
    with pytest.raises(IngestError, match="field 'age_band', row 2: must be one of"):
        ingest_people(bad, city)
