"""Pure checks of the generator (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.city.address import normalize as normalize_address
from twin.city.synth.buildings import typology
from twin.city.synth.city import generate_city
from twin.city.synth.layout import LAND_USE_MAJOR
from twin.city.synth.people import M2_PER_PERSON_BAND


def test_address_normalisation_folds_width_and_space() -> None:
    assert normalize_address("临江市 江北区　人民路１２８号") == normalize_address(
        "临江市江北区人民路128号"
    )
    assert normalize_address("ＡＢＣ Road 5") == "abcroad5号"  # noqa: RUF001


def test_every_land_use_has_a_decision() -> None:
    for major in LAND_USE_MAJOR:
        t = typology(f"{major}1", "residential")
        assert (t is None) == (major in "GE")


def test_unknown_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size must be one of"):
        generate_city("huge", 1)


def test_tiny_city_is_deterministic_and_consistent() -> None:
    a = generate_city("tiny", 3)
    b = generate_city("tiny", 3)
    assert a.counts() == b.counts()
    assert np.array_equal(a.buildings.cell, b.buildings.cell)
    pa = next(a.people())
    pb = next(b.people())
    assert pa.equals(pb)
    # Residents only in residential buildings, within the floor-area band.
    res = (a.buildings.use == "residential").to_numpy()
    assert (a.residents[~res] == 0).all()
    m2 = a.buildings.floor_area_m2.to_numpy()[a.residents > 0] / a.residents[a.residents > 0]
    assert m2.min() >= M2_PER_PERSON_BAND[0] and m2.max() <= M2_PER_PERSON_BAND[1]
    # People's cells are their buildings' cells.
    cell_of = dict(zip(a.buildings.id, a.buildings.cell, strict=True))
    assert all(
        cell_of[h] == c for h, c in zip(pa.home_building_id[:500], pa.home_cell[:500], strict=True)
    )
