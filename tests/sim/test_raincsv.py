"""Rain tables with the headers people use: every accepted form gives the same storm, totals
are kept exactly (the integral equals the table's depth), and a table with no matching
column names the headers that are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.sim.raincsv import normalise, read_rain_csv

# One storm, 30 min: 12 mm/h for 10 min, 36 mm/h for 10 min, 6 mm/h for 10 min = 9 mm.
FORMS = {
    "twin": "time_s,intensity_mm_h\n0,12\n600,36\n1200,6\n1800,0\n",
    "minutes": "Time (min),Rain (mm/h)\n0,12\n10,36\n20,6\n30,0\n",
    "mm_min": "minutes,intensity [mm/min]\n0,0.2\n10,0.6\n20,0.1\n30,0\n",
    "depth": "time_min,depth_mm\n0,2\n10,6\n20,1\n",
    "stamps": "timestamp,precipitation (mm)\n2026-07-01T08:00:00,2\n2026-07-01T08:10:00,6\n"
    "2026-07-01T08:20:00,1\n",
    "bom": "\ufefftime_h,mm/h\n0,12\n0.16666666666666666,36\n0.3333333333333333,6\n0.5,0\n",
}


@pytest.mark.parametrize("name", sorted(FORMS))
def test_every_form_is_the_same_storm(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_text(FORMS[name], encoding="utf-8")
    s = read_rain_csv(path)
    assert s.integral(0, 7200) * 1000 == pytest.approx(9.0, rel=1e-12)  # mm, by hand above
    assert s.integral(600, 1200) * 1000 == pytest.approx(6.0, rel=1e-9)
    assert s.at(900) * 3_600_000 == pytest.approx(36.0, rel=1e-9)  # mm/h
    assert s.at(1900) == 0.0


def test_numeric_times_keep_their_origin(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_text("time_min,intensity_mm_h\n30,60\n60,0\n")
    s = read_rain_csv(path)
    assert s.integral(0, 1800) == 0 and s.integral(0, 7200) * 1000 == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "when,how_much\n0,1\n",
            r"no time column among 'when', 'how_much'; accepted headers: time",
        ),
        ("time_s,intensity\n0,1\n", r"no value column .*mm/h"),
        ("time,mm/h\n0,1\n600,0\n", r"line 2: 'time' is '0', not an ISO date-time.*time_s"),
        ("time_s,mm/h\n0,1\n0,0\n", r"line 3: times must increase"),
        ("time_s,mm/h\n0,-1\n", r"line 2: negative 'mm/h'"),
        ("time_s,depth_mm\n0,1\n", r"at least two rows"),
        ("time_s,mm/h\n0,x\n", r"line 2: 'mm/h' is not a number"),
    ],
)
def test_bad_tables_name_the_problem(text: str, match: str, tmp_path: Path) -> None:
    path = tmp_path / "rain.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_rain_csv(path)


def test_headers_normalise() -> None:
    assert normalise(" Rain (mm/h) ") == "rain_mm_h"
    assert normalise("time [min]") == "time_min"
    assert normalise("Precipitation (mm)") == "precipitation_mm"
