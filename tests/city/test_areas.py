"""One parsing of bboxes and cells for every route (OGC API Features' bbox rule), checked
against the standard's cases and h3's own validity."""

from __future__ import annotations

import h3
import pytest

from twin.city.areas import parse_bbox, parse_cell
from twin.errors import InvalidParameterError


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("1,2,3,4", (1.0, 2.0, 3.0, 4.0)),
        ("1,2,0,3,4,100", (1.0, 2.0, 3.0, 4.0)),  # 3D: heights dropped
        ("120.1,30.2,120.1,30.2", (120.1, 30.2, 120.1, 30.2)),  # one point: a valid box
        ("-180,-90,180,90", (-180.0, -90.0, 180.0, 90.0)),
    ],
)
def test_bboxes_the_standard_allows(text: str, box: tuple[float, ...]) -> None:
    assert parse_bbox(text) == box


@pytest.mark.parametrize("text", ["1,2,3", "3,2,1,4", "1,2,3,4,5", "a,b,c,d", "nan,0,1,1",
                                  "0,0,inf,1", "170,0,-170,1", "0,-91,1,1", ""])  # fmt: skip
def test_bad_bboxes_name_the_parameter(text: str) -> None:
    with pytest.raises(InvalidParameterError) as e:
        parse_bbox(text, "bbox")
    assert e.value.parameter == "bbox"


def test_cells() -> None:
    c = h3.latlng_to_cell(30.27, 120.16, 9)
    assert parse_cell(c.upper()) == int(c, 16) == h3.str_to_int(c)
    for bad in ("", "zz", "8928308280fffff0", "ffffffffffffffffff", "0"):
        with pytest.raises(InvalidParameterError, match="not an H3 cell id"):
            parse_cell(bad, "h3")
