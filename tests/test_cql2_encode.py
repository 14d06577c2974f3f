"""Writing pygeofilter ASTs back as CQL2 text and JSON, for pushing filters to a source."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_text import parse

from connectors._cql2_encode import (
    ADVANCED,
    BASIC,
    BASIC_SPATIAL,
    BASIC_SPATIAL_PLUS,
    PROPERTY_PROPERTY,
    SPATIAL,
    Unencodable,
    cql2_classes,
    encode,
)


@pytest.mark.parametrize(
    ("text", "requires"),
    [
        ("height > 3 AND name = 'Dam'", {BASIC}),
        ("NOT (height <= 2.5) OR status <> 'x'", {BASIC}),
        ("built >= DATE('1900-01-01')", {BASIC}),
        ("seen < TIMESTAMP('2013-05-06T10:00:00Z')", {BASIC}),
        ("flag = TRUE", {BASIC}),
        ("name IS NULL", {BASIC}),
        ("name IS NOT NULL", {BASIC}),
        ("name IN ('a', 'b')", {BASIC, ADVANCED}),
        ("height NOT BETWEEN 1 AND 2", {BASIC, ADVANCED}),
        ("name NOT LIKE 'Da%'", {BASIC, ADVANCED}),
        ("height = width", {BASIC, PROPERTY_PROPERTY}),
        ('"two words" = 1', {BASIC}),
        ("S_INTERSECTS(geometry, POINT(4.9 52.37))", {BASIC, BASIC_SPATIAL}),
        ("S_INTERSECTS(geometry, BBOX(4.8, 52.3, 4.9, 52.4))", {BASIC, BASIC_SPATIAL}),
        ("S_INTERSECTS(geometry, POLYGON((0 0, 1 0, 1 1, 0 0)))", {BASIC, BASIC_SPATIAL_PLUS}),
        ("S_WITHIN(geometry, POLYGON((0 0, 1 0, 1 1, 0 0)))", {BASIC, SPATIAL}),
    ],
)
def test_text_round_trips_through_the_parser(text: str, requires: set[str]) -> None:
    expression = parse(text)
    encoded = encode(expression, "cql2-text")
    assert isinstance(encoded.value, str)
    assert parse(encoded.value) == expression
    assert encoded.requires == requires
    assert encoded.spatial_literals == text.startswith("S_")


def test_literal_on_the_left_is_mirrored() -> None:
    assert encode(parse("3 < height"), "cql2-text").value == "height > 3"


def test_json_follows_the_cql2_json_schema() -> None:
    expression = parse("height BETWEEN 1 AND 2 AND built > DATE('1900-01-01') AND name IS NOT NULL")
    assert encode(expression, "cql2-json").value == {
        "op": "and",
        "args": [
            {
                "op": "and",
                "args": [
                    {"op": "between", "args": [{"property": "height"}, 1, 2]},
                    {"op": ">", "args": [{"property": "built"}, {"date": "1900-01-01"}]},
                ],
            },
            {"op": "not", "args": [{"op": "isNull", "args": [{"property": "name"}]}]},
        ],
    }
    stamp = ast.Equal(ast.Attribute("seen"), datetime(2013, 5, 6, 12, tzinfo=UTC))
    encoded = encode(stamp, "cql2-json")
    assert json.loads(encoded.as_parameter()) == {
        "op": "=",
        "args": [{"property": "seen"}, {"timestamp": "2013-05-06T12:00:00Z"}],
    }


def test_like_pattern_is_written_with_cql2_wildcards() -> None:
    # pygeofilter's CQL2 text parser marks "." as the single-character wildcard; in CQL2 that
    # is "_", and a literal "_" or "%" must be escaped.
    like = ast.Like(ast.Attribute("code"), "A.B_%", False, "%", ".", "\\", False)
    assert encode(like, "cql2-text").value == "code LIKE 'A_B\\_%'"


@pytest.mark.parametrize(
    "expression",
    [
        parse("CASEI(name) = casei('dam')"),
        parse("height + 1 > 3"),
        ast.Equal(ast.Attribute("name"), "it's"),
        ast.Equal(ast.Attribute("height"), float("nan")),
        ast.Like(ast.Attribute("name"), "x%", True, "%", ".", "\\", False),
        ast.Equal(ast.Attribute('say "hi"'), 1),
        ast.TimeAfter(ast.Attribute("seen"), datetime(2020, 1, 1, tzinfo=UTC)),
        ast.Include(False),
        ast.Equal(ast.Attribute("when"), date(2020, 1, 1) - date(2019, 1, 1)),
        ast.GeometryIntersects(ast.Attribute("a"), ast.Attribute("b")),
        ast.GeometryIntersects(
            ast.Attribute("geometry"), values.Geometry({"type": "Point", "coordinates": []})
        ),
    ],
)
def test_what_cannot_be_written_faithfully_is_refused(expression: ast.Node) -> None:
    with pytest.raises(Unencodable):
        encode(expression, "cql2-text")


def test_quotes_are_fine_in_json() -> None:
    encoded = encode(ast.Equal(ast.Attribute("name"), "it's"), "cql2-json")
    assert encoded.value == {"op": "=", "args": [{"property": "name"}, "it's"]}


def test_conformance_class_names() -> None:
    assert cql2_classes(
        [
            "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
            "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
            "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-operators",
            "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
        ]
    ) == {"cql2-text", "basic-cql2", "basic-spatial-functions"}
