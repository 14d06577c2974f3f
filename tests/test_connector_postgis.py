"""The PostGIS connector against a real PostgreSQL/PostGIS server holding the BAG addresses.

The shared GeoPackage's verblijfsobjecten are loaded into ``bag.verblijfsobjecten`` as
geometry(Point, 28992); every answer of the connector is compared with the same rows read
from the GeoPackage with sqlite3 and filtered, sorted and paged again in plain Python.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio
import shapely
from psycopg import sql
from pydantic import ValidationError
from pygeofilter import ast
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from pyproj import Transformer

from connectors._crs import transformer
from connectors.base import CRS84, ETRS89, RD_NEW, BBox, Feature, FeatureQuery, Interval, SortKey
from connectors.errors import (
    ConnectorConfigError,
    UnsupportedQuery,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from connectors.postgis import WEB_MERCATOR, PostgisConnector, PostgisSettings
from connectors.registry import connector_class
from tests.fixtures.postgis import PostgisServer, _free_port
from tests.shared_data import gpkg_rows, require_shared

# One event loop for the module: the connector's connection pool belongs to the loop it was
# opened on. (Every test is therefore async, even those that await nothing.)
pytestmark = pytest.mark.asyncio(loop_scope="module")

TABLE = "verblijfsobjecten"
WGS84 = "http://www.opengis.net/def/crs/EPSG/0/4326"
RD_TO_LONLAT = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True)

COLUMNS = """
    feature_id integer PRIMARY KEY,
    geom geometry(Point, 28992) NOT NULL,
    nummer_id text, straatnaam text, huisnummer integer, huisletter text, toevoeging text,
    woonplaats text, postcode text, type text, status text, datum_strt date, datum_eind date,
    document text, datum_doc date, rdf_seealso text,
    minx double precision, maxx double precision, miny double precision, maxy double precision
"""
NAMES = [
    "nummer_id", "straatnaam", "huisnummer", "huisletter", "toevoeging", "woonplaats",
    "postcode", "type", "status", "datum_strt", "datum_eind", "document", "datum_doc",
    "rdf_seealso", "minx", "maxx", "miny", "maxy",
]  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> list[dict[str, Any]]:
    """The verblijfsobjecten as sqlite3 reads them from the GeoPackage, by fid."""
    require_shared()
    return gpkg_rows(TABLE)


@pytest.fixture(scope="module")
def database(postgis_server: PostgisServer, reference: list[dict[str, Any]]) -> str:
    """A database with the verblijfsobjecten table, a slow view and two awkward tables."""
    url = postgis_server.create_database("connector_postgis")
    with postgis_server.connect("connector_postgis") as conn:
        conn.execute("CREATE SCHEMA bag")
        conn.execute(f"CREATE TABLE bag.{TABLE} ({COLUMNS})")  # fixed text, no user input
        placeholders = ", ".join(["%s"] * len(NAMES))
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO bag.{TABLE} VALUES (%s, ST_GeomFromWKB(%s, 28992), {placeholders})",
                [
                    (row["fid"], shapely.to_wkb(row["geometry"]), *(row["properties"][n] for n in NAMES))
                    for row in reference
                ],
            )
        conn.execute(f"CREATE INDEX ON bag.{TABLE} USING gist (geom)")
        conn.execute(f"ANALYZE bag.{TABLE}")
        # A view that takes two seconds whatever is asked of it.
        conn.execute(f"CREATE VIEW bag.slow AS SELECT v.* FROM bag.{TABLE} v, pg_sleep(2) AS s")
        conn.execute(
            "CREATE TABLE bag.two_geoms (id integer PRIMARY KEY, a geometry(Point, 28992), "
            "b geometry(Polygon, 28992), label text)"
        )
        conn.execute("CREATE TABLE bag.keyless (naam text, geom geometry(Point, 28992))")
    return url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The client connectors receive (the PostGIS connector never uses it)."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vbo(database: str, http: httpx.AsyncClient) -> AsyncIterator[PostgisConnector]:
    """The connector on ``bag.verblijfsobjecten`` with datum_strt as time column."""
    settings = PostgisSettings(dsn=database, table=f"bag.{TABLE}", time_column="datum_strt")
    connector = PostgisConnector(settings, source_id="bag", http=http)
    await connector.open()
    yield connector
    await connector.close()


def _expected_properties(row: dict[str, Any]) -> dict[str, Any]:
    """A reference row as the connector returns it: the key column is a property too."""
    return {"feature_id": row["fid"], **row["properties"]}


async def _all(connector: PostgisConnector, **criteria: Any) -> list[Feature]:
    """Every matching feature, page by page, checking the paging as it goes."""
    features: list[Feature] = []
    offset = 0
    while True:
        page = await connector.query(TABLE, FeatureQuery(limit=200, offset=offset, **criteria))
        features.extend(page.features)
        offset += len(page.features)
        assert page.number_matched is not None
        assert page.has_more == (offset < page.number_matched)
        if not page.has_more:
            assert offset == page.number_matched
            return features


def _ids(features: list[Feature]) -> list[Any]:
    return [f["id"] for f in features]


def _lonlat(reference: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    rd = np.array([(r["geometry"].x, r["geometry"].y) for r in reference])
    return RD_TO_LONLAT.transform(rd[:, 0], rd[:, 1])  # type: ignore[no-any-return]


# --- settings and configuration errors ---------------------------------------------------


async def test_registry_knows_the_postgis_kind() -> None:
    assert connector_class("postgis") is PostgisConnector


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://hub:geheim@db.example/bag",  # the password belongs in password_env
        "mysql://hub@db.example/bag",
        "not a url",
    ],
)
async def test_settings_refuse_bad_dsn(dsn: str) -> None:
    with pytest.raises(ValidationError):
        PostgisSettings(dsn=dsn, table="bag.verblijfsobjecten")


async def test_settings_refuse_a_table_name_with_three_parts() -> None:
    with pytest.raises(ValidationError):
        PostgisSettings(dsn="postgresql://hub@db/bag", table="a.b.c")


async def test_unreachable_server_is_unavailable(http: httpx.AsyncClient) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{_free_port()}/bag"
    connector = PostgisConnector(
        PostgisSettings(dsn=dsn, table="bag.verblijfsobjecten", timeout=3),
        source_id="gone",
        http=http,
    )
    with pytest.raises(UpstreamUnavailable) as caught:
        await connector.open()
    assert caught.value.source_id == "gone"


@pytest.mark.parametrize(
    ("table", "extra", "message"),
    [
        ("bag.bestaat_niet", {}, "no table"),
        ("bag.two_geoms", {}, "several geometry columns"),
        ("bag.two_geoms", {"geometry_column": "label"}, "not a registered geometry column"),
        ("bag.keyless", {}, "primary key"),
        ("bag.verblijfsobjecten", {"time_column": "straatnaam"}, "not a date or timestamp"),
        ("bag.verblijfsobjecten", {"id_column": "identificatie"}, "not a column"),
        ("bag.verblijfsobjecten", {"password_env": "HUB_TEST_UNSET_PASSWORD"}, "not set"),
    ],
)
async def test_unusable_settings_are_config_errors(
    database: str, http: httpx.AsyncClient, table: str, extra: dict[str, Any], message: str
) -> None:
    os.environ.pop("HUB_TEST_UNSET_PASSWORD", None)
    connector = PostgisConnector(
        PostgisSettings(dsn=database, table=table, **extra), source_id="s", http=http
    )
    with pytest.raises(ConnectorConfigError, match=message):
        await connector.open()


async def test_unknown_database_is_a_config_error(database: str, http: httpx.AsyncClient) -> None:
    dsn = database.rsplit("/", 1)[0] + "/bestaat_niet"
    connector = PostgisConnector(PostgisSettings(dsn=dsn, table="t"), source_id="s", http=http)
    with pytest.raises(ConnectorConfigError):
        await connector.open()


async def test_two_geometry_columns_with_one_chosen(database: str, http: httpx.AsyncClient) -> None:
    settings = PostgisSettings(dsn=database, table="bag.two_geoms", geometry_column="b")
    connector = PostgisConnector(settings, source_id="s", http=http)
    await connector.open()
    try:
        (info,) = await connector.describe()
        assert info.geometry_type == "Polygon"
        assert [f.name for f in info.fields] == ["id", "label"]
        assert info.extent_crs84 is None
    finally:
        await connector.close()


# --- describe and reading ---------------------------------------------------------------


async def test_describe(vbo: PostgisConnector, reference: list[dict[str, Any]]) -> None:
    (info,) = await vbo.describe()
    assert info.id == TABLE
    assert info.storage_crs == RD_NEW
    assert info.id_field == "feature_id"
    assert info.geometry_type == "Point"
    types = {f.name: f.type for f in info.fields}
    assert types == {
        "feature_id": "integer", "nummer_id": "string", "straatnaam": "string",
        "huisnummer": "integer", "huisletter": "string", "toevoeging": "string",
        "woonplaats": "string", "postcode": "string", "type": "string", "status": "string",
        "datum_strt": "date", "datum_eind": "date", "document": "string", "datum_doc": "date",
        "rdf_seealso": "string", "minx": "number", "maxx": "number", "miny": "number",
        "maxy": "number",
    }  # fmt: skip
    caps = info.capabilities
    assert (caps.filter, caps.sort, caps.datetime) == (True, True, True)
    # The table's own CRS first, then those PostGIS transforms into itself.
    assert caps.crs == (RD_NEW, CRS84, ETRS89, WGS84, WEB_MERCATOR)
    lons, lats = _lonlat(reference)
    minx, miny, maxx, maxy = info.extent_crs84 or (0, 0, 0, 0)
    # The extent is the densified RD envelope in CRS84: it holds every point, snugly.
    assert minx <= lons.min() and miny <= lats.min() and maxx >= lons.max() and maxy >= lats.max()
    assert (lons.min() - minx, lats.min() - miny, maxx - lons.max(), maxy - lats.max()) < (1e-4,) * 4
    days = sorted(r["properties"]["datum_strt"] for r in reference)
    assert info.temporal_extent == (f"{days[0]}T00:00:00Z", f"{days[-1]}T23:59:59.999999Z")


async def test_pages_return_every_row(vbo: PostgisConnector, reference: list[dict[str, Any]]) -> None:
    features = await _all(vbo, crs=RD_NEW)
    assert _ids(features) == [r["fid"] for r in reference]  # by key when nothing is sorted
    for got, row in zip(features, reference, strict=True):
        assert got["properties"] == _expected_properties(row)
        assert got["geometry"] == {"type": "Point", "coordinates": [row["geometry"].x, row["geometry"].y]}


@pytest.mark.parametrize("crs", [CRS84, ETRS89, WGS84, WEB_MERCATOR, RD_NEW])
async def test_output_crs_within_a_centimetre_of_pyproj(
    vbo: PostgisConnector, reference: list[dict[str, Any]], crs: str
) -> None:
    page = await vbo.query(TABLE, FeatureQuery(limit=5000, crs=crs))
    assert page.crs == crs
    assert _ids(page.features) == [r["fid"] for r in reference]
    coords = np.array([f["geometry"]["coordinates"] for f in page.features])
    # The hub's own transformation (pyproj, authority axis order) is the reference.
    rd = np.array([(r["geometry"].x, r["geometry"].y) for r in reference])
    expected_x, expected_y = transformer(RD_NEW, crs).transform(rd[:, 0], rd[:, 1])
    if crs in (ETRS89, WGS84):
        assert coords[:, 0].min() > 50 and coords[:, 1].max() < 10  # latitude first
    back = transformer(crs, RD_NEW)
    got_x, got_y = back.transform(coords[:, 0], coords[:, 1])
    want_x, want_y = back.transform(expected_x, expected_y)
    assert float(np.max(np.hypot(got_x - want_x, got_y - want_y))) < 0.01
    decimals = 3 if crs == WEB_MERCATOR else 9  # metres to the millimetre; RD as stored
    assert np.array_equal(np.round(coords, decimals), coords)


async def test_output_crs_not_written_by_the_database_stays_in_the_table_crs(
    vbo: PostgisConnector, reference: list[dict[str, Any]]
) -> None:
    page = await vbo.query(TABLE, FeatureQuery(limit=3, crs="http://www.opengis.net/def/crs/EPSG/0/3035"))
    assert page.crs == RD_NEW
    assert page.features[0]["geometry"]["coordinates"] == [
        reference[0]["geometry"].x,
        reference[0]["geometry"].y,
    ]


async def test_a_spatial_filter_keeps_the_page_in_the_table_crs(vbo: PostgisConnector) -> None:
    # The hub checks the features against the filter: in the CRS the database tested them in.
    spatial = parse_cql2_text(f"S_INTERSECTS(geom, BBOX({', '.join(map(str, AREA_CRS84.bounds))}))")
    page = await vbo.query(TABLE, FeatureQuery(limit=5, filter=spatial, crs=CRS84))
    assert page.crs == RD_NEW and page.features
    plain = parse_cql2_text("huisnummer < 10")
    page = await vbo.query(TABLE, FeatureQuery(limit=5, filter=plain, crs=CRS84))
    assert page.crs == CRS84 and page.features


async def test_get_feature(vbo: PostgisConnector, reference: list[dict[str, Any]]) -> None:
    row = reference[321]
    found = await vbo.get_feature(TABLE, str(row["fid"]), crs=RD_NEW)
    assert found is not None
    assert found["id"] == row["fid"]
    assert found["properties"] == _expected_properties(row)
    assert found["geometry"] == {"type": "Point", "coordinates": [row["geometry"].x, row["geometry"].y]}
    page = await vbo.query(TABLE, FeatureQuery(limit=1, offset=321, crs=WGS84))
    assert await vbo.get_feature(TABLE, str(row["fid"]), crs=WGS84) == page.features[0]
    for missing in ("1", "abc", "", "3072221.5"):
        assert await vbo.get_feature(TABLE, missing, crs=RD_NEW) is None
    with pytest.raises(UnsupportedQuery):
        await vbo.get_feature("other", "1", crs=RD_NEW)


async def test_without_count_the_next_page_is_still_known(vbo: PostgisConnector) -> None:
    page = await vbo.query(TABLE, FeatureQuery(limit=1000, count=False))
    assert (page.number_matched, page.has_more, len(page.features)) == (None, True, 1000)
    page = await vbo.query(TABLE, FeatureQuery(limit=1000, offset=1000, count=False))
    assert (page.number_matched, page.has_more, len(page.features)) == (None, False, 836)
    page = await vbo.query(TABLE, FeatureQuery(limit=10, offset=5000))
    assert (page.number_matched, page.has_more, page.features) == (1836, False, [])


# --- bbox, equality, datetime ------------------------------------------------------------


@pytest.mark.parametrize(
    "box",
    [
        (4.8885, 52.3875, 4.8915, 52.3895),
        (4.0, 52.3888, 5.8, 53.0),  # long edges: a parallel is a curve in RD
        (5.0, 52.0, 5.1, 52.1),  # nothing there
    ],
)
async def test_bbox_in_crs84_and_epsg4326(
    vbo: PostgisConnector, reference: list[dict[str, Any]], box: tuple[float, float, float, float]
) -> None:
    lons, lats = _lonlat(reference)
    inside = (lons >= box[0]) & (lons <= box[2]) & (lats >= box[1]) & (lats <= box[3])
    expected = [reference[i]["fid"] for i in np.flatnonzero(inside).tolist()]
    assert _ids(await _all(vbo, bbox=BBox(*box))) == expected
    minx, miny, maxx, maxy = box
    assert _ids(await _all(vbo, bbox=BBox(miny, minx, maxy, maxx, crs=WGS84))) == expected


async def test_bbox_in_rd(vbo: PostgisConnector, reference: list[dict[str, Any]]) -> None:
    box = (121000.0, 489000.0, 121200.0, 489200.0)
    expected = [
        r["fid"]
        for r in reference
        if box[0] <= r["geometry"].x <= box[2] and box[1] <= r["geometry"].y <= box[3]
    ]
    assert 10 < len(expected) < len(reference)
    assert _ids(await _all(vbo, bbox=BBox(*box, crs=RD_NEW))) == expected


async def test_property_equals(vbo: PostgisConnector, reference: list[dict[str, Any]]) -> None:
    cases = [
        {"straatnaam": "Zandhoek"},
        {"huisnummer": "1"},
        {"straatnaam": "Barentszplein", "huisnummer": "1"},
        {"minx": "121223.0"},
        {"minx": "121223"},
    ]
    for criteria in cases:
        expected = [
            r["fid"]
            for r in reference
            if all(_text_equals(k, _expected_properties(r)[k], v) for k, v in criteria.items())
        ]
        assert expected, criteria
        assert _ids(await _all(vbo, property_equals=criteria)) == expected
    assert await _all(vbo, property_equals={"huisnummer": "01"}) == []
    assert await _all(vbo, property_equals={"huisnummer": "een"}) == []
    assert await _all(vbo, property_equals={"onbekend": "x"}) == []


FLOAT_COLUMNS = frozenset({"minx", "maxx", "miny", "maxy"})


def _text_equals(name: str, value: Any, text: str) -> bool:
    """Query-string equality: floats by value (``1`` is ``1.0``), anything else as text."""
    if name in FLOAT_COLUMNS:
        return value == float(text)
    return str(value) == text


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2010, 1, 1, tzinfo=UTC), None),
        (None, datetime(1900, 1, 1, 12, tzinfo=UTC)),
        (datetime(2017, 2, 17, 23, tzinfo=UTC), datetime(2017, 3, 10, 1, tzinfo=UTC)),
    ],
)
async def test_datetime_interval(
    vbo: PostgisConnector,
    reference: list[dict[str, Any]],
    start: datetime | None,
    end: datetime | None,
) -> None:
    expected = []
    for row in reference:
        day = date.fromisoformat(row["properties"]["datum_strt"])
        # A date covers its whole day; it matches when that day meets the interval.
        if (start is None or day >= start.date()) and (end is None or day <= end.date()):
            expected.append(row["fid"])
    assert expected
    assert _ids(await _all(vbo, datetime=Interval(start, end))) == expected


# --- CQL2 ------------------------------------------------------------------------------

Check = Callable[[dict[str, Any], shapely.Geometry, float, float], bool]
"""A brute-force predicate: properties, RD geometry, and the point's lon/lat."""

AREA_RD = shapely.Polygon([(121000, 489000), (121250, 489050), (121200, 489250), (121020, 489200)])
AREA_CRS84 = shapely.box(4.8875, 52.3870, 4.8905, 52.3890)

TEXT_FILTERS: list[tuple[str, str, Check]] = [
    (
        "straatnaam LIKE 'Bar%' AND huisnummer > 5",
        CRS84,
        lambda p, g, lon, lat: p["straatnaam"].startswith("Bar") and p["huisnummer"] > 5,
    ),
    (
        "huisletter IS NULL AND toevoeging IS NOT NULL",
        CRS84,
        lambda p, g, lon, lat: p["huisletter"] is None and p["toevoeging"] is not None,
    ),
    (
        "huisnummer BETWEEN 10 AND 20 OR postcode = '1013NJ'",
        CRS84,
        lambda p, g, lon, lat: 10 <= p["huisnummer"] <= 20 or p["postcode"] == "1013NJ",
    ),
    (
        "postcode IN ('1013NJ', '1013KT')",
        CRS84,
        lambda p, g, lon, lat: p["postcode"] in ("1013NJ", "1013KT"),
    ),
    ("NOT (huisnummer < 100)", CRS84, lambda p, g, lon, lat: not p["huisnummer"] < 100),
    ("straatnaam > 'M'", CRS84, lambda p, g, lon, lat: p["straatnaam"] > "M"),
    (
        "huisletter <> 'A'",  # a null huisletter is not 'A'
        CRS84,
        lambda p, g, lon, lat: p["huisletter"] != "A",
    ),
    (
        "huisletter > 'A'",  # ... but has no order: no match
        CRS84,
        lambda p, g, lon, lat: p["huisletter"] is not None and p["huisletter"] > "A",
    ),
    (
        "CASEI(straatnaam) LIKE 'zand%'",
        CRS84,
        lambda p, g, lon, lat: p["straatnaam"].lower().startswith("zand"),
    ),
    ("huisnummer * 2 + 1 > 41", CRS84, lambda p, g, lon, lat: p["huisnummer"] * 2 + 1 > 41),
    ("huisnummer / 4 = 2.5", CRS84, lambda p, g, lon, lat: p["huisnummer"] / 4 == 2.5),
    (
        "datum_strt >= DATE('2010-01-01')",
        CRS84,
        lambda p, g, lon, lat: date.fromisoformat(p["datum_strt"]) >= date(2010, 1, 1),
    ),
    (
        f"S_INTERSECTS(geom, BBOX({', '.join(map(str, AREA_CRS84.bounds))}))",
        CRS84,
        lambda p, g, lon, lat: AREA_CRS84.intersects(shapely.Point(lon, lat)),
    ),
    (
        f"S_WITHIN(geometry, {AREA_RD.wkt}) AND huisnummer < 50",
        RD_NEW,
        lambda p, g, lon, lat: AREA_RD.contains(g) and p["huisnummer"] < 50,
    ),
    (
        f"S_DISJOINT(geom, {AREA_RD.wkt})",
        RD_NEW,
        lambda p, g, lon, lat: AREA_RD.disjoint(g),
    ),
]


def _brute(reference: list[dict[str, Any]], check: Check) -> list[int]:
    lons, lats = _lonlat(reference)
    return [
        r["fid"]
        for r, lon, lat in zip(reference, lons, lats, strict=True)
        if check(r["properties"], r["geometry"], lon, lat)
    ]


@pytest.mark.parametrize(("text", "crs", "check"), TEXT_FILTERS, ids=[t[0] for t in TEXT_FILTERS])
async def test_cql2_text_filter(
    vbo: PostgisConnector, reference: list[dict[str, Any]], text: str, crs: str, check: Check
) -> None:
    expression = parse_cql2_text(text)
    assert vbo.supports_filter(TABLE, expression)
    expected = _brute(reference, check)
    assert expected
    assert _ids(await _all(vbo, filter=expression, filter_crs=crs)) == expected


JSON_FILTERS: list[tuple[dict[str, Any], Check]] = [
    (
        {
            "op": "and",
            "args": [
                {"op": "like", "args": [{"property": "straatnaam"}, "Z%"]},
                {
                    "op": "s_intersects",
                    "args": [{"property": "geom"}, shapely.geometry.mapping(AREA_CRS84)],
                },
            ],
        },
        lambda p, g, lon, lat: (
            p["straatnaam"].startswith("Z") and AREA_CRS84.intersects(shapely.Point(lon, lat))
        ),
    ),
    (
        {"op": "in", "args": [{"property": "huisnummer"}, [1, 2, 3, 5, 8, 13]]},
        lambda p, g, lon, lat: p["huisnummer"] in (1, 2, 3, 5, 8, 13),
    ),
    (
        {
            "op": "or",
            "args": [
                {"op": "isNull", "args": [{"property": "toevoeging"}]},
                {"op": ">=", "args": [{"property": "huisnummer"}, 200]},
            ],
        },
        lambda p, g, lon, lat: p["toevoeging"] is None or p["huisnummer"] >= 200,
    ),
    (
        {"op": "not", "args": [{"op": "=", "args": [{"property": "huisletter"}, "B"]}]},
        lambda p, g, lon, lat: p["huisletter"] != "B",
    ),
]


@pytest.mark.parametrize(("document", "check"), JSON_FILTERS)
async def test_cql2_json_filter(
    vbo: PostgisConnector, reference: list[dict[str, Any]], document: dict[str, Any], check: Check
) -> None:
    expression = parse_cql2_json(json.loads(json.dumps(document)))
    assert vbo.supports_filter(TABLE, expression)
    expected = _brute(reference, check)
    assert expected
    assert _ids(await _all(vbo, filter=expression)) == expected


async def test_division_by_zero_matches_nothing(vbo: PostgisConnector) -> None:
    expression = parse_cql2_text("huisnummer / 0 > 1 OR huisnummer / (huisnummer - huisnummer) < 1")
    assert vbo.supports_filter(TABLE, expression)
    assert await _all(vbo, filter=expression) == []


@pytest.mark.parametrize(
    "text",
    [
        "ACCENTI(straatnaam) = 'x'",  # needs the unaccent extension
        "straatnaam > 5",  # text against a number: refused, not guessed
        "huisnummer = '5'",
        "datum_strt > TIMESTAMP('2010-01-01T00:00:00Z')",
        "datum_strt T_AFTER DATE('2010-01-01')",
        "onbekend = 1",
        "eval('1') = 1",
    ],
)
async def test_untranslatable_filters_are_not_claimed(vbo: PostgisConnector, text: str) -> None:
    expression = parse_cql2_text(text)
    assert not vbo.supports_filter(TABLE, expression)


async def test_untranslatable_filter_in_query_is_refused(vbo: PostgisConnector) -> None:
    with pytest.raises(UnsupportedQuery):
        await vbo.query(TABLE, FeatureQuery(limit=1, filter=parse_cql2_text("straatnaam > 5")))


async def test_filter_values_are_parameters(vbo: PostgisConnector, reference: list[dict[str, Any]]) -> None:
    hostile = "x'; DROP TABLE bag.verblijfsobjecten; --"
    expression = ast.Or(
        ast.Equal(ast.Attribute("straatnaam"), hostile),
        ast.Like(ast.Attribute("postcode"), hostile + "%", False, "%", ".", "\\", False),
    )
    assert await _all(vbo, filter=expression) == []
    assert await _all(vbo, property_equals={"straatnaam": hostile}) == []
    page = await vbo.query(TABLE, FeatureQuery(limit=1))
    assert page.number_matched == len(reference)


# --- sorting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        [("straatnaam", True), ("huisnummer", False)],
        [("huisletter", False)],
        [("datum_strt", True), ("toevoeging", True)],
    ],
)
async def test_sortby_with_paging(
    vbo: PostgisConnector, reference: list[dict[str, Any]], keys: list[tuple[str, bool]]
) -> None:
    rows = list(reference)  # by fid: the connector breaks ties on the key
    for name, ascending in reversed(keys):
        present = [r for r in rows if r["properties"][name] is not None]
        absent = [r for r in rows if r["properties"][name] is None]
        present.sort(key=lambda r, n=name: r["properties"][n], reverse=not ascending)
        rows = present + absent  # nulls last in either direction
    sortby = tuple(SortKey(name, ascending) for name, ascending in keys)
    got = _ids(await _all(vbo, sortby=sortby))
    assert len(set(got)) == len(got) == len(reference)
    assert got == [r["fid"] for r in rows]


# --- property values of every column type --------------------------------------------

TYPED_COLUMNS = """
    id integer PRIMARY KEY, geom geometry(Point, 28992),
    t text, vc varchar(10), ch char(4), b boolean, i2 smallint, i8 bigint,
    f8 double precision, f4 real, n numeric(12, 2), nn numeric,
    d date, ts timestamp, tstz timestamptz, u uuid, j json, jb jsonb, ta text[], ia integer[]
"""
TYPED_ROWS: list[tuple[str, dict[str, Any]]] = [
    (
        "1, E'tekst \"met\" \\\\ en \u00fc\\t', 'kort', 'ab', true, -3, 9007199254740993, 2, 0.1, 12.5, "
        "'NaN', '2024-02-29', '2024-02-29 13:14:15', '2024-02-29 13:14:15+01', "
        "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"a\": 1, \"b\": [1.5, \"x\", null]}', "
        "'{\"z\": 1, \"a\": {\"b\": 2.0}}', '{a,NULL,\"b c\"}', '{{1,2},{3,4}}'",
        {
            "t": 'tekst "met" \\ en \u00fc\t', "vc": "kort", "ch": "ab  ", "b": True, "i2": -3,
            "i8": 9007199254740993, "f8": 2.0, "f4": 0.1, "n": 12.5, "nn": None, "d": "2024-02-29",
            "ts": "2024-02-29T13:14:15", "tstz": "2024-02-29T12:14:15Z",
            "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": {"a": 1, "b": [1.5, "x", None]},
            "jb": {"a": {"b": 2.0}, "z": 1}, "ta": ["a", None, "b c"], "ia": [[1, 2], [3, 4]],
        },
    ),
    (
        "2, '', NULL, NULL, false, 0, 0, 'NaN', 3, 2, 123456789012345678901234567890.125, '0999-01-01', "
        "'2024-02-29 13:14:15.1', '2024-02-29 23:59:59.999999+00', NULL, '7', '\"x\"', '{}', '{}'",
        {
            "t": "", "vc": None, "ch": None, "b": False, "i2": 0, "i8": 0, "f8": None, "f4": 3.0,
            "n": 2.0, "nn": 1.2345678901234568e29, "d": "0999-01-01",
            "ts": "2024-02-29T13:14:15.100000", "tstz": "2024-02-29T23:59:59.999999Z", "u": None,
            "j": 7, "jb": "x", "ta": [], "ia": [],
        },
    ),
    *(
        (
            f"{3 + i}, NULL, NULL, NULL, NULL, NULL, NULL, {f8}, {f4}, NULL, NULL, NULL, NULL, NULL, "
            "NULL, NULL, NULL, NULL, NULL",
            {
                **dict.fromkeys(["t", "vc", "ch", "b", "i2", "i8"]), "f8": f8_value, "f4": f4_value,
                **dict.fromkeys(["n", "nn", "d", "ts", "tstz", "u", "j", "jb", "ta", "ia"]),
            },
        )
        for i, (f8, f8_value, f4, f4_value) in enumerate(
            [
                ("'Infinity'", None, "'NaN'", None),
                ("'-Infinity'", None, "1e10", 1e10),
                ("1e20", 1e20, "'-Infinity'", None),
                ("123456789012345", 123456789012345.0, "-2.5", -2.5),
                ("1e15", 1e15, "NULL", None),
                ("-0.0", -0.0, "0", 0.0),
                ("5e-324", 5e-324, "NULL", None),
                ("NULL", None, "NULL", None),
            ]
        )
    ),
]  # fmt: skip

PYTHON_COLUMNS = """
    id numeric PRIMARY KEY, geom geometry(Point, 28992), ti time, tz timetz, iv interval,
    by bytea, fa double precision[], ip inet, t text, f8 double precision
"""
PYTHON_ROWS: list[tuple[str, Any, dict[str, Any]]] = [
    (
        "7, '12:34:56.5', '12:00:00+02', '1 day 02:00:00', '\\x0102ff', '{1.5,NaN,2}', "
        "'192.168.0.1/24', 'x', 2",
        7.0,
        {
            "id": 7.0, "ti": "12:34:56.500000", "tz": "12:00:00+02:00", "iv": "1 day, 2:00:00",
            "by": "AQL/", "fa": [1.5, None, 2.0], "ip": "192.168.0.1/24", "t": "x", "f8": 2.0,
        },
    ),
    (
        "8.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'NaN'",
        8.5,
        {
            "id": 8.5, "ti": None, "tz": None, "iv": None, "by": None, "fa": None, "ip": None,
            "t": None, "f8": None,
        },
    ),
]  # fmt: skip


def _typed(value: Any) -> Any:
    """A JSON value with the Python type of every scalar, so that 2 and 2.0 differ."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


@pytest.fixture(scope="module")
def typed_tables(postgis_server: PostgisServer, database: str) -> str:
    """``bag.typen`` (values the database writes as JSON) and ``bag.typen_python`` (values
    converted in Python), each row with the properties the connector returns for it."""
    with postgis_server.connect("connector_postgis") as conn:
        conn.execute(f"CREATE TABLE bag.typen ({TYPED_COLUMNS})")
        conn.execute(f"CREATE TABLE bag.typen_python ({PYTHON_COLUMNS})")
        point = "ST_SetSRID(ST_Point(121000, 487000), 28992)"
        for values, _ in TYPED_ROWS:
            key, rest = values.split(", ", 1)
            conn.execute(f"INSERT INTO bag.typen VALUES ({key}, {point}, {rest})")  # the literals above
        for values, _, _ in PYTHON_ROWS:
            key, rest = values.split(", ", 1)
            conn.execute(f"INSERT INTO bag.typen_python VALUES ({key}, {point}, {rest})")
    return database


@pytest.mark.parametrize("crs", [RD_NEW, CRS84])
async def test_property_values_keep_their_json_types(
    typed_tables: str, http: httpx.AsyncClient, crs: str
) -> None:
    connector = PostgisConnector(
        PostgisSettings(dsn=typed_tables, table="bag.typen"), source_id="t", http=http
    )
    await connector.open()
    try:
        page = await connector.query("typen", FeatureQuery(limit=100, crs=crs))
        assert page.number_matched == len(TYPED_ROWS)
        for feature, (_, expected) in zip(page.features, TYPED_ROWS, strict=True):
            assert isinstance(feature["id"], int)
            properties = {"id": feature["id"], **expected}
            assert list(feature["properties"]) == list(properties)  # in the table's column order
            assert _typed(feature["properties"]) == _typed(properties)
            assert await connector.get_feature("typen", str(feature["id"]), crs=crs) == feature
    finally:
        await connector.close()


async def test_property_values_converted_in_python(typed_tables: str, http: httpx.AsyncClient) -> None:
    settings = PostgisSettings(dsn=typed_tables, table="bag.typen_python")
    connector = PostgisConnector(settings, source_id="t", http=http)
    await connector.open()
    try:
        page = await connector.query("typen_python", FeatureQuery(limit=100, crs=CRS84))
        assert page.number_matched == len(PYTHON_ROWS)
        for feature, (_, key, expected) in zip(page.features, PYTHON_ROWS, strict=True):
            assert _typed(feature["id"]) == _typed(key)
            assert list(feature["properties"]) == list(expected)
            assert _typed(feature["properties"]) == _typed(expected)
            assert feature["geometry"]["coordinates"] == pytest.approx([4.883, 52.36], abs=0.01)
        assert (await connector.query("typen_python", FeatureQuery(limit=1, offset=5))).features == []
        empty = await connector.query("typen_python", FeatureQuery(limit=1, offset=5, count=False))
        assert (empty.features, empty.has_more) == ([], False)
        found = await connector.get_feature("typen_python", "8.5", crs=CRS84)
        assert found is not None and found["id"] == 8.5
        assert await connector.get_feature("typen_python", "9", crs=CRS84) is None
    finally:
        await connector.close()


async def test_column_names_that_collide_with_the_query_s_own(
    postgis_server: PostgisServer, database: str, http: httpx.AsyncClient
) -> None:
    with postgis_server.connect("connector_postgis") as conn:
        conn.execute(
            "CREATE TABLE bag.namen (id integer PRIMARY KEY, geom geometry(Point, 28992), properties text, "
            '_properties text, page integer, "Hoofd Letter" text, "aan""hal" text, "pct%" text)'
        )
        conn.execute(
            "INSERT INTO bag.namen VALUES (1, ST_SetSRID(ST_Point(121000, 487000), 28992), "
            "'p', '_p', 3, 'H', 'a', '%s')"
        )
    connector = PostgisConnector(PostgisSettings(dsn=database, table="bag.namen"), source_id="n", http=http)
    await connector.open()
    try:
        expected = {
            "id": 1, "properties": "p", "_properties": "_p", "page": 3, "Hoofd Letter": "H",
            'aan"hal': "a", "pct%": "%s",
        }  # fmt: skip
        for crs in (RD_NEW, CRS84):
            page = await connector.query("namen", FeatureQuery(limit=10, crs=crs, sortby=(SortKey("page"),)))
            assert [f["properties"] for f in page.features] == [expected]
            found = await connector.get_feature("namen", "1", crs=crs)
            assert found is not None and found["properties"] == expected
        expression = parse_cql2_text("\"pct%\" = '%s' AND page = 3")
        assert connector.supports_filter("namen", expression)
        assert len((await connector.query("namen", FeatureQuery(limit=1, filter=expression))).features) == 1
    finally:
        await connector.close()


# --- reads without explicit transactions --------------------------------------------------


async def test_reads_run_outside_explicit_transactions(
    postgis_server: PostgisServer, http: httpx.AsyncClient
) -> None:
    """The statements the server receives for reads, as its statement log shows them: a read
    needs no BEGIN/ROLLBACK round trips around it."""
    name = "connector_postgis_statements"
    url = postgis_server.create_database(name)
    with postgis_server.connect(name) as conn:
        conn.execute("CREATE TABLE punten (id integer PRIMARY KEY, geom geometry(Point, 28992), naam text)")
        conn.execute("INSERT INTO punten VALUES (1, ST_SetSRID(ST_Point(121000, 487000), 28992), 'een')")
        # Sessions opened from now on log every statement they run.
        conn.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(name)))
    connector = PostgisConnector(PostgisSettings(dsn=url, table="punten"), source_id="log", http=http)
    await connector.open()  # (SQLAlchemy reads the server's settings once, in a transaction)
    logged_from = postgis_server.logfile.stat().st_size
    try:
        await connector.describe()
        for crs in (CRS84, RD_NEW):
            assert (await connector.query("punten", FeatureQuery(limit=5, crs=crs))).number_matched == 1
            assert (await connector.query("punten", FeatureQuery(limit=5, offset=3))).number_matched == 1
            assert await connector.get_feature("punten", "1", crs=crs) is not None
    finally:
        await connector.close()
    with postgis_server.logfile.open(errors="replace") as log:
        log.seek(logged_from)
        statements = [line for line in log if "statement: " in line or "execute " in line]
    assert len(statements) >= 7  # the log did record them
    transaction = re.compile(
        r"(statement|execute [^:]*): *(BEGIN|START|COMMIT|ROLLBACK|END)\b", re.IGNORECASE
    )
    assert [line for line in statements if transaction.search(line)] == []


# --- failures at request time ------------------------------------------------------------


async def test_statement_timeout_is_an_upstream_timeout(database: str, http: httpx.AsyncClient) -> None:
    settings = PostgisSettings(dsn=database, table="bag.slow", id_column="feature_id", timeout=0.5)
    connector = PostgisConnector(settings, source_id="slow", http=http)
    await connector.open()
    try:
        started = datetime.now(UTC)
        with pytest.raises(UpstreamTimeout) as caught:
            await connector.query("slow", FeatureQuery(limit=5))
        assert (datetime.now(UTC) - started).total_seconds() < 1.5
        assert caught.value.source_id == "slow"
    finally:
        await connector.close()


async def test_lost_connections_are_unavailable_then_recovered(
    database: str, http: httpx.AsyncClient, postgis_server: PostgisServer
) -> None:
    settings = PostgisSettings(dsn=database, table=f"bag.{TABLE}", pool_size=1)
    connector = PostgisConnector(settings, source_id="dropped", http=http)
    await connector.open()
    try:
        assert (await connector.query(TABLE, FeatureQuery(limit=1))).number_matched == 1836
        with postgis_server.connect("connector_postgis") as conn:
            ended = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'urban-twin-hub/dropped'"
            ).fetchone()
        assert ended == (1,)
        with pytest.raises(UpstreamUnavailable):
            await connector.query(TABLE, FeatureQuery(limit=1))
        # The broken connection was discarded: the next request gets a new one.
        assert (await connector.query(TABLE, FeatureQuery(limit=1))).number_matched == 1836
    finally:
        await connector.close()


async def test_query_before_open_is_unavailable(http: httpx.AsyncClient) -> None:
    settings = PostgisSettings(dsn="postgresql://postgres@127.0.0.1/x", table="t")
    connector = PostgisConnector(settings, source_id="s", http=http)
    with pytest.raises(UpstreamUnavailable):
        await connector.query("t", FeatureQuery(limit=1))
