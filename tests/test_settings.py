import pytest
from pydantic import ValidationError

from twin.settings import Settings


def test_env_prefix_sets_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql://u@h:5/d")
    monkeypatch.setenv("TWIN_H3_RESOLUTIONS", "[9, 7, 8, 7]")
    monkeypatch.setenv("TWIN_SUPPRESSION_K", "5")
    s = Settings()
    assert s.database_url == "postgresql://u@h:5/d"
    assert s.h3_resolutions == [7, 8, 9]  # sorted, deduplicated
    assert s.finest_resolution == 9
    assert s.suppression_k == 5


def test_defaults_follow_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWIN_OPEN_SIMULATIONS", "TWIN_OPEN_OPERATIONS", "TWIN_PUBLIC_CLEARANCE"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert s.h3_resolutions == [7, 8, 9, 10]
    assert s.suppression_k == 10
    assert s.city_center == (120.16, 30.27)
    # Secure by default: nothing is opened to callers without a token.
    assert (s.open_simulations, s.open_operations, s.public_clearance) == (False, False, "general")


def test_public_clearance_is_never_core() -> None:
    with pytest.raises(ValidationError, match="public_clearance"):
        Settings(_env_file=None, public_clearance="core")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("center", "epsg"),
    [
        ((120.16, 30.27), "EPSG:32651"),
        ((-0.13, 51.5), "EPSG:32630"),
        ((151.2, -33.9), "EPSG:32756"),
    ],
)
def test_metric_crs_is_the_utm_zone_of_the_centre(center: tuple[float, float], epsg: str) -> None:
    # Zones from the UTM definition: zone = floor((lon + 180) / 6) + 1; 326xx north, 327xx south.
    assert Settings(city_center=center).metric_crs == epsg
    assert Settings(city_center=center, city_crs="EPSG:4547").metric_crs == "EPSG:4547"


def test_bad_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_H3_RESOLUTIONS", "[7, 16]")
    with pytest.raises(ValidationError, match="h3_resolutions"):
        Settings()
    monkeypatch.delenv("TWIN_H3_RESOLUTIONS")
    with pytest.raises(ValidationError, match="pool_min_size"):
        Settings(pool_min_size=5, pool_max_size=2)


def test_read_replica_urls_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TWIN_READ_DATABASE_URLS", " postgresql://u@h:5433/d, postgresql+psycopg://u@h:5434/d,"
    )
    s = Settings(_env_file=None)
    assert s.read_urls == ["postgresql://u@h:5433/d", "postgresql+psycopg://u@h:5434/d"]
    assert Settings(_env_file=None, read_database_urls="").read_urls == []  # the default
    with pytest.raises(ValidationError, match="read_database_urls: 'h:5433' is not"):
        Settings(_env_file=None, read_database_urls="postgresql://u@h/d,h:5433")
