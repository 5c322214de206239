"""The rain field from gauges against inverse-distance weights worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from twin.sim.rainfield import GaugeReading, NoGaugesError, idw, rain_field

# A 10 x 10 grid of 10 m cells, west edge x = 0, north edge y = 100: centres at x = 5 .. 95
# (column c: 5 + 10 c) and y = 95 .. 5 (row r: 95 - 10 r).
TRANSFORM = (10.0, 0.0, 0.0, 0.0, -10.0, 100.0)
SHAPE = (10, 10)
NOW = datetime(2026, 7, 20, 8, 0, tzinfo=UTC)


def gauge(name: str, x: float, y: float, value: float, unit: str = "mm/h", age_min: float = 1):
    return GaugeReading(name, x, y, value, unit, NOW - timedelta(minutes=age_min))  # type: ignore[arg-type]


# Three gauges on cell centres: A at cell (0, 0), B at (0, 9), C at (4, 3).
A = gauge("A", 5.0, 95.0, 10.0)
B = gauge("B", 95.0, 95.0, 40.0)
C = gauge("C", 35.0, 55.0, 20.0)


def field(readings, **kw):
    return rain_field(readings, transform=TRANSFORM, shape=SHAPE, window_s=300, as_of=NOW, **kw)


def test_three_gauges_match_the_hand_computed_weights() -> None:
    f = field([A, B, C])
    assert f.used == ("A", "B", "C") and f.stale == () and f.power == 2.0
    # Cell (0, 4), centre (45, 95): squared distances A 40² = 1600, B 50² = 2500,
    # C 10² + 40² = 1700.
    expected = (10 / 1600 + 40 / 2500 + 20 / 1700) / (1 / 1600 + 1 / 2500 + 1 / 1700)
    assert f.intensity_mm_h[0, 4] == pytest.approx(expected, rel=1e-13)
    assert expected == pytest.approx(21.0848, abs=1e-4)
    # Cell (9, 9), centre (95, 5): A 90² + 90² = 16200, B 90² = 8100, C 60² + 50² = 6100.
    expected = (10 / 16200 + 40 / 8100 + 20 / 6100) / (1 / 16200 + 1 / 8100 + 1 / 6100)
    assert f.intensity_mm_h[9, 9] == pytest.approx(expected, rel=1e-13)
    # Exact at the gauges.
    assert f.intensity_mm_h[0, 0] == 10.0
    assert f.intensity_mm_h[0, 9] == 40.0
    assert f.intensity_mm_h[4, 3] == 20.0
    # Never outside the readings' range.
    assert f.intensity_mm_h.min() >= 10.0 and f.intensity_mm_h.max() <= 40.0


def test_power_one_weights_by_distance() -> None:
    f = field([A, B, C], power=1.0)
    # Cell (0, 4) again: distances 40, 50, sqrt(1700) = 41.231...
    d_c = 1700**0.5
    expected = (10 / 40 + 40 / 50 + 20 / d_c) / (1 / 40 + 1 / 50 + 1 / d_c)
    assert f.intensity_mm_h[0, 4] == pytest.approx(expected, rel=1e-13)


def test_a_depth_over_the_window_is_an_intensity() -> None:
    # 2 mm in 5 minutes is 24 mm/h; midway between it and a 12 mm/h gauge: their mean.
    f = field([gauge("D", 5.0, 95.0, 2.0, "mm"), gauge("E", 25.0, 95.0, 12.0)])
    assert f.intensity_mm_h[0, 0] == pytest.approx(24.0, rel=1e-15)
    assert f.intensity_mm_h[0, 1] == pytest.approx(18.0, rel=1e-15)


def test_stale_gauges_are_dropped_and_listed() -> None:
    old_b = gauge("B", 95.0, 95.0, 40.0, age_min=20)
    f = field([A, old_b, C], max_age_s=900)
    assert f.used == ("A", "C") and f.stale == ("B",)
    expected = (10 / 1600 + 20 / 1700) / (1 / 1600 + 1 / 1700)
    assert f.intensity_mm_h[0, 4] == pytest.approx(expected, rel=1e-13)
    # The same gauge with a longer allowed age is used again.
    assert field([A, old_b, C], max_age_s=1800).used == ("A", "B", "C")


def test_one_gauge_rains_its_reading_everywhere() -> None:
    f = field([C])
    assert np.all(f.intensity_mm_h == 20.0)


def test_no_fresh_gauge_is_an_error_or_a_zero_field_when_asked() -> None:
    with pytest.raises(NoGaugesError, match="no rain gauge reported in the last 900 s"):
        field([])
    with pytest.raises(NoGaugesError, match="1 stale"):
        field([gauge("A", 5, 95, 10, age_min=60)])
    f = field([gauge("A", 5, 95, 10, age_min=60)], if_none="zero")
    assert f.used == () and f.stale == ("A",)
    assert f.intensity_mm_h.shape == SHAPE and not f.intensity_mm_h.any()


@pytest.mark.parametrize(
    ("reading", "message"),
    [
        (gauge("X", 5, 95, -1.0), "value -1.0 must be a number >= 0"),
        (gauge("X", 5, 95, float("nan")), "must be a number >= 0"),
        (gauge("X", 5, 95, 1.0, "in/h"), "neither mm/h nor mm"),
    ],
)
def test_bad_readings_name_the_gauge(reading: GaugeReading, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        field([reading])


def test_gauges_sharing_a_point_give_their_mean_there() -> None:
    out = idw([0.0, 3.0], [0.0, 4.0], [0.0, 0.0], [0.0, 0.0], [10.0, 30.0])
    assert out.tolist() == [20.0, 20.0]
    with pytest.raises(ValueError, match="power"):
        idw([0.0], [0.0], [1.0], [1.0], [1.0], power=0)
