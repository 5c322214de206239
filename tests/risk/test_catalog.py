"""The layer catalog and rule files: every shipped file loads; broken files name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.alerts.rules import RuleError, load_rules, parse_duration, read_rule
from twin.risk.catalog import FAMILIES, CatalogError, load_catalog, read_layer
from twin.settings import project_root

GOOD = """
id = "{id}"
title = "Test"
title_zh = "测试"
family = "public_safety"
[source]
sql = "SELECT cell, n FROM twin.cell_stats WHERE res = %(res)s"
[[inputs]]
name = "n"
normalise = "linear"
min = 0
max = 10
weight = 1
[levels]
yellow = 20
orange = 40
red = 60
"""


def test_the_shipped_catalog_loads_and_covers_the_four_families() -> None:
    catalog = load_catalog(project_root() / "layers", resolutions=[7, 8, 9, 10])
    assert catalog.errors == ()
    assert len(catalog.layers) >= 10
    assert {lyr.family for lyr in catalog.layers} == set(FAMILIES)
    onemap = catalog.get("onemap")
    assert onemap is not None
    # Only public layers make up the public one map.
    assert "elderly_alone" not in {i.name for i in onemap.inputs}
    assert all(catalog.get(i.name).classification == "general" for i in onemap.inputs)  # type: ignore[union-attr]


def test_the_shipped_rules_load() -> None:
    rules, errors = load_rules(project_root() / "rules")
    assert errors == []
    ids = {r.indicator for r in rules}
    assert {"flood_depth_m", "rain_mm_h", "risk_level", "delay_index"} <= ids


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace('family = "public_safety"', 'family = "weather"'), "family"),
        (lambda t: t.replace("max = 10", "max = -1"), "inputs[0].max"),
        (lambda t: t.replace("red = 60", "red = 30"), "levels"),
        (lambda t: t.replace("%(res)s", "%(city)s"), "source.sql"),
        (
            lambda t: t.replace("SELECT cell", "DELETE FROM twin.cell_stats; SELECT cell"),
            "source.sql",
        ),
        (lambda t: t.replace('normalise = "linear"', 'normalise = "cubic"'), "inputs[0].normalise"),
        (lambda t: t.replace('title = "Test"\n', ""), "title"),
        (lambda t: t + "\n[style]\ncolors = { red = 'crimson' }\n", "style.colors.red"),
        (lambda t: t.replace("yellow = 20", "yellow = = 20"), "toml"),
        (lambda t: 'visible_to = "analyst"\n' + t, "visible_to"),  # old name: not published
        (lambda t: 'colour = "red"\n' + t, "colour"),
    ],
)
def test_a_broken_layer_names_file_and_field(tmp_path: Path, edit, field: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "broken.toml"
    path.write_text(edit(GOOD.format(id="broken")))
    with pytest.raises(CatalogError) as err:
        read_layer(path)
    assert err.value.field == field
    assert str(path) in str(err.value)


def test_id_must_match_the_file_and_broken_files_do_not_hide_good_ones(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(GOOD.format(id="good"))
    (tmp_path / "other.toml").write_text(GOOD.format(id="not_other"))
    catalog = load_catalog(tmp_path)
    assert [lyr.id for lyr in catalog.layers] == ["good"]
    assert [e.field for e in catalog.errors] == ["id"]


def test_a_new_file_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    (tmp_path / "first.toml").write_text(GOOD.format(id="first"))
    assert [lyr.id for lyr in load_catalog(tmp_path).layers] == ["first"]
    (tmp_path / "second.toml").write_text(GOOD.format(id="second"))
    assert [lyr.id for lyr in load_catalog(tmp_path).layers] == ["first", "second"]


RULE = """
id = "{id}"
title = "Rain"
indicator = "rain_mm_h"
threshold = 50
area_level = "community"
level = "orange"
sensitivity = 2
cooldown = "2h"
escalate_after = 3
[params]
max_age = "30min"
"""


def test_rule_fields_and_durations(tmp_path: Path) -> None:
    path = tmp_path / "rain.toml"
    path.write_text(RULE.format(id="rain"))
    rule = read_rule(path)
    assert rule.cooldown == parse_duration("2h")
    assert rule.params["max_age"] == "1800 seconds"
    assert rule.holds(50) and not rule.holds(49.9)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace('"rain_mm_h"', '"wind"'), "indicator"),
        (lambda t: t.replace('"community"', '"block"'), "area_level"),
        (lambda t: t.replace("sensitivity = 2", "sensitivity = 0"), "sensitivity"),
        (lambda t: t.replace('"2h"', '"two hours"'), "cooldown"),
        (lambda t: t.replace("max_age", "layer"), "params.layer"),
        (lambda t: t.replace("threshold = 50", 'threshold = "red"'), "threshold"),
    ],
)
def test_a_broken_rule_names_file_and_field(tmp_path: Path, edit, field: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rain.toml"
    path.write_text(edit(RULE.format(id="rain")))
    with pytest.raises(RuleError) as err:
        read_rule(path)
    assert err.value.field == field
