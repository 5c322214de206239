"""The $filter parser and the other OData options, pure: text in, SQL and parameters out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from twin.sense.odata import (
    Field,
    ODataError,
    parse_expand,
    parse_filter,
    parse_options,
    parse_orderby,
)

FIELDS = {
    "result": Field("t.value", "float"),
    "id": Field("t.id", "int"),
    "name": Field("t.name", "text"),
    "phenomenonTime": Field("t.observed_at", "time"),
    "location": Field("t.geom", "geom"),
}


def test_comparisons_become_bound_parameters() -> None:
    sql, params = parse_filter("result gt 3.5", FIELDS)
    assert sql == "(t.value > %(f0)s)" and params == {"f0": 3.5}
    for op, symbol in (("eq", "="), ("ne", "<>"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        assert parse_filter(f"id {op} 7", FIELDS) == (f"(t.id {symbol} %(f0)s)", {"f0": 7})


def test_literal_on_the_left_flips_the_operator() -> None:
    assert parse_filter("3 lt result", FIELDS) == ("(t.value > %(f0)s)", {"f0": 3.0})


def test_strings_are_parameters_never_sql() -> None:
    sql, params = parse_filter("name eq 'O''Brien''; DROP TABLE x; --'", FIELDS)
    assert sql == "(t.name = %(f0)s)"
    assert params == {"f0": "O'Brien'; DROP TABLE x; --"}


def test_and_or_not_and_parentheses_keep_precedence() -> None:
    sql, params = parse_filter("result lt 1 or result gt 9 and not (name eq 'a')", FIELDS)
    assert sql == "((t.value < %(f0)s) OR ((t.value > %(f1)s) AND (NOT (t.name = %(f2)s))))"
    assert params == {"f0": 1.0, "f1": 9.0, "f2": "a"}
    sql, _ = parse_filter("(result lt 1 or result gt 9) and id eq 2", FIELDS)
    assert sql == "(((t.value < %(f0)s) OR (t.value > %(f1)s)) AND (t.id = %(f2)s))"


def test_time_ranges() -> None:
    sql, params = parse_filter(
        "phenomenonTime ge 2026-07-01T00:00:00Z and phenomenonTime lt 2026-07-01T01:00:00+08:00",
        FIELDS,
    )
    assert sql == "((t.observed_at >= %(f0)s) AND (t.observed_at < %(f1)s))"
    assert params["f0"] == datetime(2026, 7, 1, tzinfo=UTC)
    assert params["f1"] == datetime(2026, 6, 30, 17, tzinfo=UTC)
    sql, params = parse_filter(
        "during(phenomenonTime, 2026-07-01T00:00:00Z/2026-07-02T00:00:00Z)", FIELDS
    )
    assert sql == "(t.observed_at >= %(f0)s AND t.observed_at < %(f1)s)"
    assert params["f1"] - params["f0"] == datetime(2026, 7, 2, tzinfo=UTC) - datetime(
        2026, 7, 1, tzinfo=UTC
    )


def test_geo_intersects() -> None:
    wkt = "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))"
    sql, params = parse_filter(f"geo.intersects(location, geography'{wkt}')", FIELDS)
    assert sql == "ST_Intersects(t.geom, ST_GeomFromText(%(f0)s, 4326))"
    assert params == {"f0": wkt}


def test_null_comparison() -> None:
    assert parse_filter("name eq null", FIELDS) == ("(t.name IS NULL)", {})
    assert parse_filter("name ne null", FIELDS) == ("(t.name IS NOT NULL)", {})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("result", "expected a comparison"),
        ("result gt", "ended early"),
        ("result gt 1 and", "ended early"),
        ("(result gt 1", "expected ')'"),
        ("result gt 1)", "unexpected ')'"),
        ("colour eq 'red'", "unknown property 'colour'"),
        ("result eq 'x'", "a number is needed"),
        ("name eq 3", "a quoted string is needed"),
        ("id eq 1.5", "not an integer"),
        ("phenomenonTime gt 2026-07-01T00:00", "time zone"),
        ("phenomenonTime gt 'yesterday'", "a time"),
        ("result gt 1 # 2", "unexpected character '#'"),
        ("geo.intersects(result, geography'POINT(1 2)')", "first argument"),
        ("geo.intersects(location, 'POINT(1 2)')", "geography'WKT'"),
        ("geo.intersects(location, geography'POLYGON((0 0, 1')", "not valid WKT"),
        ("during(phenomenonTime, 2026-07-02T00:00:00Z/2026-07-01T00:00:00Z)", "ends before"),
        ("frobnicate(result)", "unknown function"),
        ("1 eq 2", "needs a property"),
        ("name gt null", "null can only"),
    ],
)
def test_malformed_filters_name_the_problem(text: str, words: str) -> None:
    with pytest.raises(ODataError) as info:
        parse_filter(text, FIELDS)
    assert info.value.option == "$filter"
    assert words in str(info.value)


def test_orderby() -> None:
    assert parse_orderby("result desc, id", FIELDS) == [
        ("t.value NULLS LAST", True),
        ("t.id NULLS LAST", False),
    ]
    assert parse_orderby("id", {"id": Field("t.id", "int", nullable=False)}) == [("t.id", False)]
    with pytest.raises(ODataError, match="cannot sort"):
        parse_orderby("location", FIELDS)
    with pytest.raises(ODataError, match="asc or desc"):
        parse_orderby("result sideways", FIELDS)


def test_expand_one_level_with_options() -> None:
    items = parse_expand("Datastream,Observations($top=3;$select=result;$orderby=result desc)")
    assert [e.name for e in items] == ["Datastream", "Observations"]
    assert items[1].options.top == 3
    assert items[1].options.select == "result"
    assert items[1].options.orderby == "result desc"
    with pytest.raises(ODataError, match="one level"):
        parse_expand("Datastreams($expand=Observations)")


def test_top_skip_count() -> None:
    opts = parse_options({"$top": "5", "$skip": "10", "$count": "true", "other": "x"})
    assert (opts.top, opts.skip, opts.count) == (5, 10, True)
    for raw, option in (
        ({"$top": "-1"}, "$top"),
        ({"$top": "100001"}, "$top"),
        ({"$skip": "x"}, "$skip"),
        ({"$count": "yes"}, "$count"),
        ({"$search": "x"}, "$search"),
    ):
        with pytest.raises(ODataError) as info:
            parse_options(raw)
        assert info.value.option == option
