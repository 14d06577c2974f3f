"""The file connector against the shared GeoJSON and GeoPackage, checked by reading them apart.

The reference side never goes through the connector's code paths: GeoJSON is read with the
json module, the GeoPackage with sqlite3 (its geometry blobs decoded by hand), and every
query is answered again by brute force in plain Python and shapely.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyogrio.raw
import pytest
import shapely
from pydantic import ValidationError
from pygeofilter import ast
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from pyproj import Transformer

from connectors.base import (
    CRS84,
    RD_NEW,
    BBox,
    Feature,
    FeatureQuery,
    Interval,
    SortKey,
)
from connectors.errors import ConnectorConfigError, UnsupportedQuery, UpstreamUnavailable
from connectors.file import FileConnector, FileSettings
from connectors.registry import connector_class
from tests.shared_data import AFVALBAKKEN, BAG_GPKG, gpkg_rows, needs_shared, require_shared

AFVAL = AFVALBAKKEN
BAG = BAG_GPKG
AFVAL_ID = "amsterdam_afvalbakken_2013"
WGS84 = "http://www.opengis.net/def/crs/EPSG/0/4326"
ETRS89 = "http://www.opengis.net/def/crs/EPSG/0/4258"

RD_TO_LONLAT = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True)
LONLAT_TO_RD = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True)


# --- reference data, read without the connector ------------------------------------------


def _afval_features() -> list[dict[str, Any]]:
    with AFVAL.open(encoding="utf-8") as handle:
        features: list[dict[str, Any]] = json.load(handle)["features"]
    return features


@pytest.fixture(scope="module")
def afval_reference() -> list[dict[str, Any]]:
    """The GeoJSON's features as json parses them."""
    require_shared()
    return _afval_features()


@pytest.fixture(scope="module")
def vbo_reference() -> list[dict[str, Any]]:
    """The verblijfsobjecten table as sqlite3 reads it."""
    require_shared()
    return gpkg_rows("verblijfsobjecten")


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.AsyncClient]:
    """The client every connector receives (the file connector never uses it)."""
    client = httpx.AsyncClient()
    yield client
    asyncio.run(client.aclose())


async def _opened(settings: FileSettings, http: httpx.AsyncClient) -> FileConnector:
    connector = FileConnector(settings, source_id="test", http=http)
    await connector.open()
    return connector


@pytest.fixture(scope="module")
def afval(http: httpx.AsyncClient) -> FileConnector:
    """The afvalbakken GeoJSON with CREATE_DAT as its time field (opened once per module:
    the connector holds no event-loop state)."""
    require_shared()
    return asyncio.run(_opened(FileSettings(path=AFVAL, time_field="CREATE_DAT"), http))


@pytest.fixture(scope="module")
def bag(http: httpx.AsyncClient) -> FileConnector:
    """The BAG GeoPackage with all of its feature tables."""
    require_shared()
    return asyncio.run(_opened(FileSettings(path=BAG), http))


async def _all(connector: FileConnector, collection: str, **criteria: Any) -> list[Feature]:
    """Every feature matching ``criteria``, page by page, checking the paging as it goes."""
    features: list[Feature] = []
    offset = 0
    while True:
        page = await connector.query(collection, FeatureQuery(limit=250, offset=offset, **criteria))
        features.extend(page.features)
        offset += len(page.features)
        assert page.number_matched is not None
        assert page.has_more == (offset < page.number_matched)
        if not page.has_more:
            assert offset == page.number_matched
            return features


def _positions(features: list[dict[str, Any]]) -> list[int]:
    """1-based file positions (the GeoJSON's ids) of reference features."""
    return [f["_position"] for f in features]


def _numbered(reference: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**f, "_position": i} for i, f in enumerate(reference, start=1)]


# --- settings and registration ----------------------------------------------------------


def test_registry_knows_the_file_kind() -> None:
    assert connector_class("file") is FileConnector


def test_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    settings = FileSettings.model_validate({"path": "data/x.geojson"}, context={"base_dir": tmp_path})
    assert settings.path == tmp_path / "data" / "x.geojson"
    absolute = FileSettings.model_validate({"path": "/srv/x.gpkg"}, context={"base_dir": tmp_path})
    assert absolute.path == Path("/srv/x.gpkg")
    assert FileSettings.model_validate({"path": "x.gpkg"}).path == Path("x.gpkg")


def test_settings_refuse_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        FileSettings.model_validate({"path": "x.gpkg", "tabel": "x"})


async def test_missing_file_is_a_config_error(tmp_path: Path, http: httpx.AsyncClient) -> None:
    connector = FileConnector(FileSettings(path=tmp_path / "absent.geojson"), source_id="s", http=http)
    with pytest.raises(ConnectorConfigError, match="not found") as caught:
        await connector.open()
    assert caught.value.source_id == "s"


async def test_invalid_geojson_is_a_config_error(tmp_path: Path, http: httpx.AsyncClient) -> None:
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    connector = FileConnector(FileSettings(path=path), source_id="s", http=http)
    with pytest.raises(ConnectorConfigError):
        await connector.open()


async def test_query_before_open_is_unavailable(tmp_path: Path, http: httpx.AsyncClient) -> None:
    connector = FileConnector(FileSettings(path=tmp_path / "x.geojson"), source_id="s", http=http)
    with pytest.raises(UpstreamUnavailable):
        await connector.query("x", FeatureQuery(limit=1))


@needs_shared
async def test_unknown_layer_and_fields_are_config_errors(http: httpx.AsyncClient) -> None:
    for settings in (
        FileSettings(path=BAG, layer="panden"),
        FileSettings(path=BAG, id_field="identificatie"),
        FileSettings(path=AFVAL, time_field="datum"),
        FileSettings(path=AFVAL, layer="other"),
    ):
        connector = FileConnector(settings, source_id="s", http=http)
        with pytest.raises(ConnectorConfigError):
            await connector.open()


# --- describe ---------------------------------------------------------------------------


async def test_describe_geojson(afval: FileConnector, afval_reference: list[dict[str, Any]]) -> None:
    (info,) = await afval.describe()
    assert info.id == AFVAL_ID
    assert [(f.name, f.type) for f in info.fields] == [
        ("ID", "integer"),
        ("SOORT", "string"),
        ("OPMERKING", "string"),
        ("CREATE_DAT", "string"),
        ("FOTONUMMER", "string"),
    ]
    assert info.storage_crs == CRS84
    assert info.geometry_type == "Point"
    assert info.time_field == "CREATE_DAT"
    caps = info.capabilities
    assert (caps.filter, caps.sort, caps.datetime, caps.crs) == (True, True, True, (CRS84,))
    coords = np.array([f["geometry"]["coordinates"] for f in afval_reference])
    assert info.extent_crs84 == pytest.approx(
        (coords[:, 0].min(), coords[:, 1].min(), coords[:, 0].max(), coords[:, 1].max()), abs=1e-12
    )
    days = sorted(
        date.fromisoformat(f["properties"]["CREATE_DAT"].replace("/", "-"))
        for f in afval_reference
        if f["properties"]["CREATE_DAT"]
    )
    assert info.temporal_extent == (
        f"{days[0].isoformat()}T00:00:00Z",
        f"{days[-1].isoformat()}T23:59:59.999999Z",
    )


@needs_shared
async def test_describe_geopackage(bag: FileConnector) -> None:
    infos = {info.id: info for info in await bag.describe()}
    assert sorted(infos) == ["ligplaatsen", "standplaatsen", "verblijfsobjecten"]
    vbo = infos["verblijfsobjecten"]
    assert vbo.storage_crs == RD_NEW
    assert vbo.capabilities.crs == (RD_NEW,)
    assert vbo.capabilities.datetime is False
    types = {f.name: f.type for f in vbo.fields}
    assert types["huisnummer"] == "integer"
    assert types["minx"] == "number"
    assert types["straatnaam"] == "string"
    assert types["datum_strt"] == "date"  # ISO dates stored as text
    for name, expected in (("verblijfsobjecten", 1836), ("ligplaatsen", 67), ("standplaatsen", 1)):
        page = await bag.query(name, FeatureQuery(limit=1))
        assert page.number_matched == expected
    # The single standplaats: its CRS84 extent is its own point, transformed within 1 cm.
    (stand,) = gpkg_rows("standplaatsen")
    lon, lat = RD_TO_LONLAT.transform(stand["geometry"].x, stand["geometry"].y)
    minx, miny, maxx, maxy = infos["standplaatsen"].extent_crs84 or (0, 0, 0, 0)
    assert (minx, miny) == (maxx, maxy)
    assert _metres(minx, miny, lon, lat) < 0.01


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Distance between two nearby lon/lat positions, in metres (via RD)."""
    x1, y1 = LONLAT_TO_RD.transform(lon1, lat1)
    x2, y2 = LONLAT_TO_RD.transform(lon2, lat2)
    return float(np.hypot(x1 - x2, y1 - y2))


# --- reading everything -----------------------------------------------------------------


async def test_geojson_pages_cover_the_file_in_order(
    afval: FileConnector, afval_reference: list[dict[str, Any]]
) -> None:
    features = await _all(afval, AFVAL_ID)
    assert len(features) == len(afval_reference) == 3049
    # Without ids in the file, a feature's id is its 1-based position.
    assert [f["id"] for f in features] == list(range(1, 3050))
    for got, expected in zip(features, afval_reference, strict=True):
        assert got["properties"] == expected["properties"]
        assert got["geometry"] == expected["geometry"]


async def test_geopackage_matches_sqlite(bag: FileConnector, vbo_reference: list[dict[str, Any]]) -> None:
    features = await _all(bag, "verblijfsobjecten")
    assert [f["id"] for f in features] == [r["fid"] for r in vbo_reference]
    for got, expected in zip(features, vbo_reference, strict=True):
        assert got["properties"] == expected["properties"]
        assert got["geometry"]["type"] == "Point"
        # RD coordinates come out exactly as stored (and the table repeats them as minx/miny).
        assert got["geometry"]["coordinates"] == [expected["geometry"].x, expected["geometry"].y]
        assert got["geometry"]["coordinates"] == [
            expected["properties"]["minx"],
            expected["properties"]["miny"],
        ]


async def test_get_feature(afval: FileConnector, afval_reference: list[dict[str, Any]]) -> None:
    found = await afval.get_feature(AFVAL_ID, "17", crs=CRS84)
    assert found is not None
    assert found["id"] == 17
    assert found["properties"] == afval_reference[16]["properties"]
    for missing in ("0", "3050", "abc", ""):
        assert await afval.get_feature(AFVAL_ID, missing, crs=CRS84) is None
    with pytest.raises(UnsupportedQuery):
        await afval.get_feature("nope", "1", crs=CRS84)


async def test_get_feature_by_fid_and_by_id_field(
    vbo_reference: list[dict[str, Any]], http: httpx.AsyncClient
) -> None:
    by_fid = await _opened(FileSettings(path=BAG, layer="verblijfsobjecten"), http)
    row = vbo_reference[100]
    found = await by_fid.get_feature("verblijfsobjecten", str(row["fid"]), crs=RD_NEW)
    assert found is not None and found["properties"] == row["properties"]

    settings = FileSettings(path=BAG, layer="verblijfsobjecten", id_field="nummer_id")
    by_field = await _opened(settings, http)
    assert [info.id for info in await by_field.describe()] == ["verblijfsobjecten"]
    nummer = row["properties"]["nummer_id"]
    found = await by_field.get_feature("verblijfsobjecten", nummer, crs=RD_NEW)
    assert found is not None and found["id"] == nummer
    assert found["properties"] == row["properties"]


async def test_duplicate_id_field_values_return_the_first(
    afval_reference: list[dict[str, Any]], http: httpx.AsyncClient
) -> None:
    connector = await _opened(FileSettings(path=AFVAL, id_field="ID"), http)
    ids = [f["properties"]["ID"] for f in afval_reference]
    duplicated = next(i for i in ids if ids.count(i) > 1)
    found = await connector.get_feature(AFVAL_ID, str(duplicated), crs=CRS84)
    assert found is not None
    assert found["properties"] == afval_reference[ids.index(duplicated)]["properties"]


async def test_returned_features_are_copies(afval: FileConnector) -> None:
    first = await afval.query(AFVAL_ID, FeatureQuery(limit=1))
    feature = first.features[0]
    original = json.loads(json.dumps(feature))
    feature["properties"]["SOORT"] = "changed"
    feature["geometry"]["coordinates"][0] = 0.0
    again = await afval.query(AFVAL_ID, FeatureQuery(limit=1))
    assert again.features[0] == original


# --- bbox -------------------------------------------------------------------------------


def _lonlat_points(reference: list[dict[str, Any]]) -> list[tuple[float, float]]:
    return [tuple(f["geometry"]["coordinates"][:2]) for f in reference]


BOXES_CRS84 = [
    (4.88, 52.36, 4.90, 52.37),
    (4.8935, 52.3655, 4.8985, 52.3711),
    (4.886, 52.386, 4.889, 52.389),
    (4.0, 51.0, 4.1, 51.1),  # nothing there
]


@pytest.mark.parametrize("box", BOXES_CRS84)
async def test_bbox_crs84_on_geojson(
    afval: FileConnector, afval_reference: list[dict[str, Any]], box: tuple[float, ...]
) -> None:
    polygon = shapely.box(*box)
    expected = [
        i
        for i, (x, y) in enumerate(_lonlat_points(afval_reference), start=1)
        if polygon.intersects(shapely.Point(x, y))
    ]
    got = await _all(afval, AFVAL_ID, bbox=BBox(*box))
    assert [f["id"] for f in got] == expected
    # EPSG:4326 takes the same box with latitude first.
    minx, miny, maxx, maxy = box
    swapped = await _all(afval, AFVAL_ID, bbox=BBox(miny, minx, maxy, maxx, crs=WGS84))
    assert [f["id"] for f in swapped] == expected


async def test_bbox_rd_on_geojson(afval: FileConnector, afval_reference: list[dict[str, Any]]) -> None:
    box = (120500.0, 486500.0, 121500.0, 487500.0)
    xs, ys = LONLAT_TO_RD.transform(*np.array(_lonlat_points(afval_reference)).T)
    inside = (xs >= box[0]) & (xs <= box[2]) & (ys >= box[1]) & (ys <= box[3])
    expected = [i + 1 for i in np.flatnonzero(inside).tolist()]
    assert 20 < len(expected) < 3000
    got = await _all(afval, AFVAL_ID, bbox=BBox(*box, crs=RD_NEW))
    assert [f["id"] for f in got] == expected


async def test_bbox_crs84_on_rd_geopackage(bag: FileConnector, vbo_reference: list[dict[str, Any]]) -> None:
    box = (4.8885, 52.3875, 4.8915, 52.3895)
    rd = np.array([(r["geometry"].x, r["geometry"].y) for r in vbo_reference])
    lons, lats = RD_TO_LONLAT.transform(rd[:, 0], rd[:, 1])
    inside = (lons >= box[0]) & (lons <= box[2]) & (lats >= box[1]) & (lats <= box[3])
    expected = [vbo_reference[i]["fid"] for i in np.flatnonzero(inside).tolist()]
    assert 20 < len(expected) < len(vbo_reference)
    got = await _all(bag, "verblijfsobjecten", bbox=BBox(*box))
    assert [f["id"] for f in got] == expected
    minx, miny, maxx, maxy = box
    lat_first = await _all(bag, "verblijfsobjecten", bbox=BBox(miny, minx, maxy, maxx, crs=ETRS89))
    assert [f["id"] for f in lat_first] == expected


async def test_long_bbox_edges_follow_their_curve(
    bag: FileConnector, vbo_reference: list[dict[str, Any]]
) -> None:
    # A parallel is a curve in RD: over 1.8 degrees a straight chord between the corners
    # lies ~100 m off it, across the whole of this data set.
    box = (4.0, 52.3888, 5.8, 53.0)
    rd = np.array([(r["geometry"].x, r["geometry"].y) for r in vbo_reference])
    lons, lats = RD_TO_LONLAT.transform(rd[:, 0], rd[:, 1])
    inside = (lons >= box[0]) & (lons <= box[2]) & (lats >= box[1]) & (lats <= box[3])
    expected = [vbo_reference[i]["fid"] for i in np.flatnonzero(inside).tolist()]
    assert 100 < len(expected) < len(vbo_reference) - 100
    got = await _all(bag, "verblijfsobjecten", bbox=BBox(*box))
    assert [f["id"] for f in got] == expected


# --- property equality and datetime -----------------------------------------------------


async def test_property_equals(afval: FileConnector, afval_reference: list[dict[str, Any]]) -> None:
    numbered = _numbered(afval_reference)
    soort = "Constructo 100-liter, RVS uitvoering"
    expected = [f for f in numbered if f["properties"]["SOORT"] == soort]
    got = await _all(afval, AFVAL_ID, property_equals={"SOORT": soort})
    assert [f["id"] for f in got] == _positions(expected)
    # Numbers compare as their text.
    expected = [f for f in numbered if str(f["properties"]["ID"]) == "225"]
    got = await _all(afval, AFVAL_ID, property_equals={"ID": "225"})
    assert [f["id"] for f in got] == _positions(expected) != []
    both = await _all(afval, AFVAL_ID, property_equals={"ID": "225", "SOORT": soort})
    assert [f["id"] for f in both] == [f["_position"] for f in expected if f["properties"]["SOORT"] == soort]
    assert await _all(afval, AFVAL_ID, property_equals={"ID": "0225"}) == []
    assert await _all(afval, AFVAL_ID, property_equals={"GEEN": "x"}) == []


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value.replace("/", "-")) if value else None


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2013, 1, 8, tzinfo=UTC), datetime(2013, 1, 8, 23, 59, 59, tzinfo=UTC)),
        (datetime(2013, 1, 8, 12, tzinfo=UTC), datetime(2013, 1, 10, 6, tzinfo=UTC)),
        (datetime(2013, 1, 20, tzinfo=UTC), None),
        (None, datetime(2013, 1, 7, 0, 0, tzinfo=UTC)),
    ],
)
async def test_datetime_interval(
    afval: FileConnector,
    afval_reference: list[dict[str, Any]],
    start: datetime | None,
    end: datetime | None,
) -> None:
    expected = []
    for position, feature in enumerate(afval_reference, start=1):
        day = _day(feature["properties"]["CREATE_DAT"])
        if day is None:
            continue
        # A date covers its whole day; it matches when that day meets the interval.
        if start is not None and day < start.date():
            continue
        if end is not None and day > end.date():
            continue
        expected.append(position)
    got = await _all(afval, AFVAL_ID, datetime=Interval(start, end))
    assert [f["id"] for f in got] == expected
    assert expected


async def test_datetime_without_time_field_is_refused(bag: FileConnector) -> None:
    with pytest.raises(UnsupportedQuery):
        await bag.query("verblijfsobjecten", FeatureQuery(limit=1, datetime=Interval(None, None)))


# --- CQL2 ------------------------------------------------------------------------------

Check = Callable[[dict[str, Any], shapely.Geometry], bool]


def _lt(value: Any, bound: Any) -> bool:
    return value is not None and value < bound


AREA = shapely.Polygon([(4.885, 52.360), (4.900, 52.362), (4.896, 52.372), (4.884, 52.370)])

TEXT_FILTERS: list[tuple[str, Check]] = [
    (
        "SOORT LIKE 'Constructo%' AND ID > 1000",
        lambda p, g: (p["SOORT"] or "").startswith("Constructo") and p["ID"] > 1000,
    ),
    ("OPMERKING IS NOT NULL", lambda p, g: p["OPMERKING"] is not None),
    (
        "ID BETWEEN 100 AND 200 OR FOTONUMMER = 'G04'",
        lambda p, g: 100 <= p["ID"] <= 200 or p["FOTONUMMER"] == "G04",
    ),
    ("ID IN (225, 226, 1373)", lambda p, g: p["ID"] in (225, 226, 1373)),
    ("NOT (ID < 3000)", lambda p, g: not p["ID"] < 3000),
    ("SOORT > 'C'", lambda p, g: p["SOORT"] is not None and p["SOORT"] > "C"),
    ("CASEI(SOORT) LIKE 'bammens%'", lambda p, g: (p["SOORT"] or "").lower().startswith("bammens")),
    (
        "S_INTERSECTS(geometry, BBOX(4.88, 52.36, 4.90, 52.37))",
        lambda p, g: shapely.box(4.88, 52.36, 4.90, 52.37).intersects(g),
    ),
    (f"S_WITHIN(geometry, {AREA.wkt}) AND ID < 2000", lambda p, g: AREA.contains(g) and p["ID"] < 2000),
    ("FOTONUMMER <> 'G04'", lambda p, g: p["FOTONUMMER"] != "G04"),
]


@pytest.mark.parametrize(("text", "check"), TEXT_FILTERS, ids=[t for t, _ in TEXT_FILTERS])
async def test_cql2_text_filter(
    afval: FileConnector, afval_reference: list[dict[str, Any]], text: str, check: Check
) -> None:
    expression = parse_cql2_text(text)
    assert afval.supports_filter(AFVAL_ID, expression)
    expected = [
        i
        for i, f in enumerate(afval_reference, start=1)
        if check(f["properties"], shapely.geometry.shape(f["geometry"]))
    ]
    got = await _all(afval, AFVAL_ID, filter=expression)
    assert [f["id"] for f in got] == expected


JSON_FILTERS: list[tuple[dict[str, Any], Check]] = [
    (
        {
            "op": "and",
            "args": [
                {"op": "like", "args": [{"property": "SOORT"}, "Bammens%"]},
                {
                    "op": "s_intersects",
                    "args": [{"property": "geometry"}, shapely.geometry.mapping(AREA)],
                },
            ],
        },
        lambda p, g: (p["SOORT"] or "").startswith("Bammens") and AREA.intersects(g),
    ),
    (
        {"op": "in", "args": [{"property": "FOTONUMMER"}, ["G04", "WR4", "m 023"]]},
        lambda p, g: p["FOTONUMMER"] in ("G04", "WR4", "m 023"),
    ),
    (
        {
            "op": "or",
            "args": [
                {"op": "isNull", "args": [{"property": "CREATE_DAT"}]},
                {"op": ">=", "args": [{"property": "ID"}, 3500]},
            ],
        },
        lambda p, g: p["CREATE_DAT"] is None or p["ID"] >= 3500,
    ),
    (
        {
            "op": "not",
            "args": [{"op": "=", "args": [{"property": "SOORT"}, "Constructo 100-liter, RVS uitvoering"]}],
        },
        lambda p, g: p["SOORT"] != "Constructo 100-liter, RVS uitvoering",
    ),
]


@pytest.mark.parametrize(("document", "check"), JSON_FILTERS)
async def test_cql2_json_filter(
    afval: FileConnector,
    afval_reference: list[dict[str, Any]],
    document: dict[str, Any],
    check: Check,
) -> None:
    expression = parse_cql2_json(json.loads(json.dumps(document)))
    assert afval.supports_filter(AFVAL_ID, expression)
    expected = [
        i
        for i, f in enumerate(afval_reference, start=1)
        if check(f["properties"], shapely.geometry.shape(f["geometry"]))
    ]
    assert expected
    got = await _all(afval, AFVAL_ID, filter=expression)
    assert [f["id"] for f in got] == expected


async def test_filter_literals_in_another_crs(
    afval: FileConnector,
    bag: FileConnector,
    afval_reference: list[dict[str, Any]],
    vbo_reference: list[dict[str, Any]],
) -> None:
    # An RD polygon against CRS84 data ...
    rd_area = shapely.box(120800, 486800, 121400, 487600)
    xs, ys = LONLAT_TO_RD.transform(*np.array(_lonlat_points(afval_reference)).T)
    expected = [
        i + 1 for i, (x, y) in enumerate(zip(xs, ys, strict=True)) if rd_area.intersects(shapely.Point(x, y))
    ]
    assert expected
    expression = parse_cql2_text(f"S_INTERSECTS(geometry, {rd_area.wkt})")
    got = await _all(afval, AFVAL_ID, filter=expression, filter_crs=RD_NEW)
    assert [f["id"] for f in got] == expected
    # ... and a CRS84 polygon against RD data.
    area = shapely.box(4.8875, 52.3870, 4.8905, 52.3890)
    rd = np.array([(r["geometry"].x, r["geometry"].y) for r in vbo_reference])
    lons, lats = RD_TO_LONLAT.transform(rd[:, 0], rd[:, 1])
    expected = [
        r["fid"]
        for r, lon, lat in zip(vbo_reference, lons, lats, strict=True)
        if area.intersects(shapely.Point(lon, lat)) and r["properties"]["huisnummer"] > 10
    ]
    assert expected
    expression = parse_cql2_text(f"S_INTERSECTS(geom, {area.wkt}) AND huisnummer > 10")
    got = await _all(bag, "verblijfsobjecten", filter=expression, filter_crs=CRS84)
    assert [f["id"] for f in got] == expected


async def test_date_fields_compare_as_dates(bag: FileConnector, vbo_reference: list[dict[str, Any]]) -> None:
    expected = [
        r["fid"]
        for r in vbo_reference
        if date.fromisoformat(r["properties"]["datum_strt"]) >= date(2010, 1, 1)
    ]
    assert 0 < len(expected) < len(vbo_reference)
    expression = parse_cql2_text("datum_strt >= DATE('2010-01-01')")
    got = await _all(bag, "verblijfsobjecten", filter=expression)
    assert [f["id"] for f in got] == expected


async def test_division_by_zero_matches_nothing(afval: FileConnector) -> None:
    expression = parse_cql2_text("ID / 0 > 1 OR ID / (ID - ID) < 1")
    assert afval.supports_filter(AFVAL_ID, expression)
    assert await _all(afval, AFVAL_ID, filter=expression) == []


def test_supports_filter(afval: FileConnector) -> None:
    assert afval.supports_filter(AFVAL_ID, parse_cql2_text("ID > 5 AND S_INTERSECTS(geom, POINT(4.9 52.37))"))
    assert not afval.supports_filter(AFVAL_ID, parse_cql2_text("unknown_field = 1"))
    assert not afval.supports_filter("other", parse_cql2_text("ID = 1"))
    # Only the CQL2 functions the connector defines: never a Python builtin by another name.
    assert not afval.supports_filter(AFVAL_ID, parse_cql2_text("len(SOORT) = 3"))
    assert not afval.supports_filter(AFVAL_ID, parse_cql2_text("eval('1+1') = 2"))


async def test_unsupported_function_is_refused_in_query(afval: FileConnector) -> None:
    with pytest.raises(UnsupportedQuery):
        await afval.query(AFVAL_ID, FeatureQuery(limit=1, filter=parse_cql2_text("len(SOORT) = 3")))


# --- sorting ----------------------------------------------------------------------------


def _sorted_positions(reference: list[dict[str, Any]], keys: list[tuple[str, bool]]) -> list[int]:
    """Brute-force multi-key sort, nulls last in either direction, ties in file order."""
    rows = list(enumerate(reference, start=1))
    for name, ascending in reversed(keys):
        present = [r for r in rows if r[1]["properties"][name] is not None]
        absent = [r for r in rows if r[1]["properties"][name] is None]
        # Python keeps ties in their earlier order even with reverse=True: file order.
        present.sort(key=lambda r, n=name: r[1]["properties"][n], reverse=not ascending)
        rows = present + absent
    return [position for position, _ in rows]


@pytest.mark.parametrize(
    "keys",
    [
        [("SOORT", True), ("ID", False)],
        [("OPMERKING", False)],
        [("CREATE_DAT", True), ("FOTONUMMER", True)],
    ],
)
async def test_sortby_with_paging(
    afval: FileConnector, afval_reference: list[dict[str, Any]], keys: list[tuple[str, bool]]
) -> None:
    sortby = tuple(SortKey(name, ascending) for name, ascending in keys)
    got = await _all(afval, AFVAL_ID, sortby=sortby)
    ids = [f["id"] for f in got]
    assert len(set(ids)) == len(ids) == len(afval_reference)
    assert ids == _sorted_positions(afval_reference, keys)


# --- edge cases in small files ----------------------------------------------------------


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


async def test_feature_ids_null_geometry_and_legacy_crs(tmp_path: Path, http: httpx.AsyncClient) -> None:
    point = {"type": "Point", "coordinates": [121000, 487000]}
    other = {"type": "Point", "coordinates": [122000, 488000]}
    document = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::28992"}},
        "features": [
            {"type": "Feature", "id": "a-1", "geometry": point, "properties": {"n": 1, "ok": True}},
            {"type": "Feature", "id": "a-2", "geometry": None, "properties": {"n": 2.5, "ok": False}},
            {"type": "Feature", "geometry": other, "properties": {"n": None}},
        ],
    }
    connector = await _opened(FileSettings(path=_write(tmp_path / "small.geojson", document)), http)
    (info,) = await connector.describe()
    assert info.storage_crs == RD_NEW
    assert {f.name: f.type for f in info.fields} == {"n": "number", "ok": "boolean"}
    page = await connector.query("small", FeatureQuery(limit=10))
    assert [f["id"] for f in page.features] == ["a-1", "a-2", 3]
    assert page.crs == RD_NEW
    hits = await connector.query(
        "small", FeatureQuery(limit=10, bbox=BBox(120000, 486000, 121500, 487500, crs=RD_NEW))
    )
    assert [f["id"] for f in hits.features] == ["a-1"]
    everywhere = await connector.query(
        "small", FeatureQuery(limit=10, bbox=BBox(0, 300000, 280000, 625000, crs=RD_NEW))
    )
    assert [f["id"] for f in everywhere.features] == ["a-1", 3]  # not the feature without geometry
    no_geometry = await connector.get_feature("small", "a-2", crs=RD_NEW)
    assert no_geometry is not None and no_geometry["geometry"] is None
    flagged = await connector.query("small", FeatureQuery(limit=10, property_equals={"ok": "true"}))
    assert [f["id"] for f in flagged.features] == ["a-1"]
    spatial = parse_cql2_text(
        "S_INTERSECTS(geometry, POLYGON((0 0, 300000 0, 300000 600000, 0 600000, 0 0)))"
    )
    assert isinstance(spatial, ast.Node)
    matched = await connector.query("small", FeatureQuery(limit=10, filter=spatial, filter_crs=RD_NEW))
    assert [f["id"] for f in matched.features] == ["a-1", 3]


@pytest.mark.parametrize(("epsg", "reported", "lat_first"), [(4326, CRS84, False), (4258, ETRS89, True)])
async def test_geographic_geopackage_axis_order(
    tmp_path: Path, http: httpx.AsyncClient, epsg: int, reported: str, lat_first: bool
) -> None:
    path = tmp_path / f"points_{epsg}.gpkg"
    points = [shapely.Point(4.90, 52.37), shapely.Point(4.95, 52.30)]
    pyogrio.raw.write(
        path,
        shapely.to_wkb(points),
        [np.array(["a", "b"], dtype=object)],
        fields=["name"],
        layer="points",
        driver="GPKG",
        crs=f"EPSG:{epsg}",
        geometry_type="Point",
    )
    connector = await _opened(FileSettings(path=path), http)
    (info,) = await connector.describe()
    assert info.storage_crs == reported
    page = await connector.query("points", FeatureQuery(limit=5))
    first = page.features[0]["geometry"]["coordinates"]
    # Features come out in the reported CRS's own axis order.
    assert first == ([52.37, 4.90] if lat_first else [4.90, 52.37])
    hits = await connector.query("points", FeatureQuery(limit=5, bbox=BBox(4.85, 52.35, 4.92, 52.40)))
    assert [f["properties"]["name"] for f in hits.features] == ["a"]
    assert info.extent_crs84 == pytest.approx((4.90, 52.30, 4.95, 52.37))


# --- speed ------------------------------------------------------------------------------


async def test_a_page_of_a_3000_feature_file_is_fast(afval: FileConnector) -> None:
    queries = {
        "page": FeatureQuery(limit=100, offset=1500),
        "bbox": FeatureQuery(limit=100, bbox=BBox(4.88, 52.36, 4.90, 52.37)),
        "bbox-rd": FeatureQuery(limit=100, bbox=BBox(120500, 486500, 121500, 487500, crs=RD_NEW)),
        "sorted": FeatureQuery(limit=100, sortby=(SortKey("SOORT"), SortKey("ID", False))),
        "equals": FeatureQuery(limit=100, property_equals={"SOORT": "Constructo 100-liter, RVS uitvoering"}),
    }  # fmt: skip
    for name, query in queries.items():
        await afval.query(AFVAL_ID, query)  # first use builds lazy columns
        timings = []
        for _ in range(200):
            started = time.perf_counter()
            page = await afval.query(AFVAL_ID, query)
            timings.append(time.perf_counter() - started)
        assert len(page.features) == 100
        median_ms = statistics.median(timings) * 1000
        assert median_ms < 2.0, f"{name}: {median_ms:.2f} ms per 100-feature page"
