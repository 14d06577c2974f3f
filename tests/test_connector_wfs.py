"""The WFS 2.0 connector against a real MapServer serving the BGT and BRK data of the kit.

Expected answers come from an independent read of the GeoPackage MapServer serves (pyogrio,
with the GDAL it bundles, not MapServer's), by brute force over every feature. Servers that
misbehave are a real MapServer behind a proxy that changes one thing, or small loopback
servers that answer what broken upstreams answer.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyogrio
import pytest
import shapely
from pydantic import ValidationError
from pyproj import Transformer
from shapely.geometry import mapping, shape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import CRS84, ETRS89, RD_NEW, BBox, FeatureQuery
from connectors.errors import (
    ConnectorConfigError,
    UnsupportedQuery,
    UpstreamInvalidResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from connectors.registry import connector_class
from connectors.wfs import MAX_GET_URL, WfsConnector, WfsSettings
from hub.features.cql import compile_predicate, parse_filter, transform_literals
from tests.fixtures.hub import hub_settings, serve_hub, wait_until_served
from tests.fixtures.loopback import raw_tcp, refusing_port, serve
from tests.fixtures.mapserver import LAYERS, MapServerWfs, mapfile_text
from tests.fixtures.upstream import DATA_DIR, shared_data_or_skip

WGS84 = "http://www.opengis.net/def/crs/EPSG/0/4326"
RD_LAYERS = [layer.name for layer in LAYERS if layer.storage_epsg == 28992]


# -- the data, read independently of MapServer --------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """One feature of the GeoPackage: the id MapServer gives it, its geometry and attributes."""

    id: str
    geometry: shapely.Geometry
    properties: dict[str, Any]


@cache
def _reference(gpkg: str, layer: str) -> dict[str, Reference]:
    meta, _, geometries, columns = pyogrio.raw.read(gpkg, layer=layer, return_fids=True)
    names = [str(name) for name in meta["fields"]]
    id_field = next(item for item in LAYERS if item.name == layer).id_field
    found: dict[str, Reference] = {}
    for i, blob in enumerate(geometries):
        properties = {name: _plain(column[i]) for name, column in zip(names, columns, strict=True)}
        key = f"{layer}.{properties[id_field]}"  # MapServer writes <layer>.<gml_featureid>
        found[key] = Reference(key, shapely.from_wkb(blob), properties)
    return found


def reference(server: MapServerWfs, layer: str) -> dict[str, Reference]:
    return _reference(str(server.gpkg), layer)


def _plain(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def same_value(got: Any, expected: Any) -> bool:
    """Attribute equality across the two readers (dates as instants, floats exactly)."""
    if isinstance(expected, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", expected):
        return isinstance(got, str) and _instant(got) == _instant(expected)
    return bool(got == expected) and type(got) is type(expected)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=None)


def same_geometry(got: dict[str, Any], expected: shapely.Geometry, tolerance: float = 1e-6) -> bool:
    return bool(shapely.hausdorff_distance(shape(got), expected) <= tolerance)


def rd_to(crs: str) -> Transformer:
    """RD to ``crs`` in its authority axis order (latitude first for EPSG:4326 and 4258)."""
    target = {WGS84: "EPSG:4326", ETRS89: "EPSG:4258", CRS84: "OGC:CRS84"}[crs]
    return Transformer.from_crs("EPSG:28992", target, always_xy=False)


def to_crs84(geometry: shapely.Geometry) -> shapely.Geometry:
    move = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True)
    return shapely.transform(geometry, lambda xy: np.column_stack(move.transform(xy[:, 0], xy[:, 1])))


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make(url: str, http: httpx.AsyncClient, **settings: Any) -> WfsConnector:
    return WfsConnector(WfsSettings(url=url, **settings), source_id="wfs-test", http=http)


@pytest.fixture
def wfs(wfs_mapserver: MapServerWfs, http: httpx.AsyncClient) -> WfsConnector:
    return make(wfs_mapserver.url, http)


async def one_type(server: MapServerWfs, http: httpx.AsyncClient, layer: str) -> WfsConnector:
    """A connector that exposes (and so describes) one feature type only."""
    connector = make(server.url, http, type_names={layer: f"ms:{layer}"})
    await connector.describe()
    return connector


async def read_all(
    connector: WfsConnector, collection: str, limit: int, **query: Any
) -> list[dict[str, Any]]:
    """Every feature of a query, page by page, checking the paging metadata on the way."""
    features: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await connector.query(collection, FeatureQuery(limit=limit, offset=offset, **query))
        assert len(page.features) <= limit
        features.extend(page.features)
        offset += len(page.features)
        if not page.has_more:
            assert page.number_matched in (None, offset)
            return features
        assert len(page.features) == limit
        assert offset < 10_000, "paging does not end"


# -- describe ----------------------------------------------------------------------------------


def test_registry_knows_the_wfs_kind() -> None:
    assert connector_class("wfs") is WfsConnector


async def test_describe_finds_feature_types_fields_and_crs(
    wfs: WfsConnector, wfs_mapserver: MapServerWfs
) -> None:
    infos = {info.id: info for info in await wfs.describe()}
    assert set(infos) == set(RD_LAYERS)
    for layer in RD_LAYERS:
        info = infos[layer]
        expected = next(iter(reference(wfs_mapserver, layer).values())).properties
        assert [f.name for f in info.fields] == list(expected)
        assert info.storage_crs == RD_NEW
        # ETRS89 only if MapServer's own transformation into it is right (see below)
        assert {RD_NEW, WGS84, CRS84} <= set(info.crs) <= {RD_NEW, WGS84, ETRS89, CRS84}
        assert info.capabilities.filter and not info.capabilities.sort
        assert set(info.capabilities.crs) == set(info.crs)
        # the extent encloses every feature, though MapServer's own box does not quite
        assert info.extent_crs84 is not None
        minx, miny, maxx, maxy = info.extent_crs84
        geometries = [to_crs84(r.geometry) for r in reference(wfs_mapserver, layer).values()]
        bounds = shapely.total_bounds(geometries)
        assert minx <= bounds[0] and miny <= bounds[1] and maxx >= bounds[2] and maxy >= bounds[3]
        assert (maxx - minx) < 1.5 * (bounds[2] - bounds[0]) + 0.003
    types = {f.name: f.type for f in infos["perceel"].fields}
    assert types["kadastrale_grootte"] == "integer"
    assert types["perceelnummer_rotatie"] == "number"
    assert types["identificatie"] == "string"
    assert {f.name: f.type for f in infos["bgt_pand"].fields}["tijdstip_registratie"] == "date-time"
    assert {f.name: f.type for f in infos["bgt_label"].fields}["hoek"] == "number"


async def test_type_names_choose_and_rename_collections(
    wfs_mapserver: MapServerWfs, http: httpx.AsyncClient
) -> None:
    connector = make(wfs_mapserver.url, http, type_names={"percelen": "ms:perceel"})
    infos = await connector.describe()
    assert [info.id for info in infos] == ["percelen"]
    page = await connector.query("percelen", FeatureQuery(limit=100, crs=RD_NEW))
    assert {f["id"] for f in page.features} == set(reference(wfs_mapserver, "perceel"))

    missing = make(wfs_mapserver.url, http, type_names={"x": "ms:nope"})
    with pytest.raises(ConnectorConfigError, match="ms:nope"):
        await missing.describe()


async def test_a_type_whose_default_crs_is_wgs84(
    wfs_mapserver: MapServerWfs, http: httpx.AsyncClient
) -> None:
    connector = make(wfs_mapserver.url_wgs84, http)
    (info,) = await connector.describe()
    assert info.id == "bgt_pand_wgs84" and info.storage_crs == WGS84
    expected = {
        key.replace("bgt_pand.", "bgt_pand_wgs84."): ref
        for key, ref in reference(wfs_mapserver, "bgt_pand").items()
    }
    # The type's own CRS, as the server writes it: latitude first.
    page = await connector.query("bgt_pand_wgs84", FeatureQuery(limit=200, crs=WGS84))
    assert page.crs == WGS84 and len(page.features) == len(expected)
    to_wgs84 = rd_to(WGS84)
    for feature in page.features:
        lat, lon = (np.asarray(shapely.get_coordinates(shape(feature["geometry"])))).T
        rd = shapely.get_coordinates(expected[feature["id"]].geometry)
        want_lat, want_lon = to_wgs84.transform(rd[:, 0], rd[:, 1])
        assert np.all((lat > 52) & (lat < 53) & (lon > 4) & (lon < 5))
        assert metres_apart(lat, lon, want_lat, want_lon).max() < 0.01
    # A bbox in RD, which is not the type's CRS: pushed as an envelope, checked here.
    box = BBox(118000, 477000, 119000, 478500, RD_NEW)
    inside = await read_all(connector, "bgt_pand_wgs84", 5, bbox=box, crs=RD_NEW)
    wanted = {k for k, r in expected.items() if r.geometry.intersects(shapely.box(*box.as_tuple()))}
    assert 0 < len(wanted) < len(expected)
    assert {f["id"] for f in inside} == wanted


def metres_apart(lat: Any, lon: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Distances in metres between latitude/longitude positions (small distances)."""
    dy = (np.asarray(lat) - np.asarray(lat2)) * 111_320.0
    dx = (np.asarray(lon) - np.asarray(lon2)) * 111_320.0 * math.cos(math.radians(52.2))
    return np.hypot(dx, dy)


# -- paging ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("layer", "limit", "page_size"), [
    ("bgt_pand", 7, 1000), ("bgt_pand", 40, 9), ("bgt_label", 10, 1000), ("perceel", 4, 3),
])  # fmt: skip
async def test_paging_returns_exactly_the_features_of_the_source(
    wfs_mapserver: MapServerWfs, http: httpx.AsyncClient, layer: str, limit: int, page_size: int
) -> None:
    connector = make(wfs_mapserver.url, http, page_size=page_size)
    expected = reference(wfs_mapserver, layer)
    first = await connector.query(layer, FeatureQuery(limit=limit, crs=RD_NEW))
    assert first.number_matched == len(expected)  # from RESULTTYPE=hits: MapServer's pages say "unknown"
    assert first.crs == RD_NEW and first.has_more
    features = await read_all(connector, layer, limit, crs=RD_NEW)
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == set(expected)
    for feature in features:
        ref = expected[feature["id"]]
        assert set(feature["properties"]) == set(ref.properties)
        for name, value in ref.properties.items():
            assert same_value(feature["properties"][name], value), (feature["id"], name)
        assert same_geometry(feature["geometry"], ref.geometry)


async def test_offset_beyond_the_end_is_an_empty_last_page(
    wfs: WfsConnector, wfs_mapserver: MapServerWfs
) -> None:
    total = len(reference(wfs_mapserver, "perceel"))
    page = await wfs.query("perceel", FeatureQuery(limit=5, offset=total - 2, crs=RD_NEW))
    assert len(page.features) == 2 and page.has_more is False and page.number_matched == total
    page = await wfs.query("perceel", FeatureQuery(limit=5, offset=total + 3, crs=RD_NEW))
    assert page.features == [] and page.has_more is False


# -- bbox ----------------------------------------------------------------------------------------


def _boxes(
    server: MapServerWfs, layer: str, count: int, seed: int
) -> list[tuple[float, float, float, float]]:
    """Random RD boxes over the layer's extent, from a tenth to half of it across."""
    geometries = [r.geometry for r in reference(server, layer).values()]
    minx, miny, maxx, maxy = (float(n) for n in shapely.total_bounds(geometries))
    span_x, span_y = maxx - minx, maxy - miny
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(count):
        width, height = rng.uniform(0.1, 0.5) * span_x, rng.uniform(0.1, 0.5) * span_y
        x = rng.uniform(minx - 0.05 * span_x, maxx - width + 0.05 * span_x)
        y = rng.uniform(miny - 0.05 * span_y, maxy - height + 0.05 * span_y)
        boxes.append((float(x), float(y), float(x + width), float(y + height)))
    return boxes


@pytest.mark.parametrize("layer", ["bgt_pand", "bgt_label"])
async def test_bbox_in_rd_matches_brute_force(
    wfs: WfsConnector, wfs_mapserver: MapServerWfs, layer: str
) -> None:
    expected_all = reference(wfs_mapserver, layer)
    seen_partial = 0
    for box in _boxes(wfs_mapserver, layer, 5, seed=28992):
        polygon = shapely.box(*box)
        wanted = {k for k, r in expected_all.items() if polygon.intersects(r.geometry)}
        got = await read_all(wfs, layer, 6, bbox=BBox(*box, crs=RD_NEW), crs=RD_NEW)
        assert len({f["id"] for f in got}) == len(got)
        assert {f["id"] for f in got} == wanted, box
        seen_partial += 0 < len(wanted) < len(expected_all)
    assert seen_partial >= 3, "the boxes must cut through the data to test anything"


@pytest.mark.parametrize("layer", ["bgt_pand", "perceel"])
async def test_bbox_in_crs84_matches_brute_force(
    wfs: WfsConnector, wfs_mapserver: MapServerWfs, layer: str
) -> None:
    """A box in another CRS than the data's: the server gets an enclosing envelope, the exact
    test is done by the connector in the box's own CRS."""
    expected_all = {k: to_crs84(r.geometry) for k, r in reference(wfs_mapserver, layer).items()}
    seen_partial = 0
    for rd_box in _boxes(wfs_mapserver, layer, 4, seed=84):
        box = shapely.bounds(to_crs84(shapely.box(*rd_box)))
        polygon = shapely.box(*box)
        boundary = polygon.boundary
        # features within a centimetre of the edge may fall either way between two transformations
        unsure = {k for k, g in expected_all.items() if boundary.distance(g) < 1.5e-7}
        wanted = {k for k, g in expected_all.items() if polygon.intersects(g)}
        got = await read_all(wfs, layer, 8, bbox=BBox(*box, crs=CRS84), crs=CRS84)
        ids = {f["id"] for f in got}
        assert len(ids) == len(got)
        assert ids - unsure == wanted - unsure, box
        seen_partial += 0 < len(wanted) < len(expected_all)
    assert seen_partial >= 2


# -- CRS and axis order --------------------------------------------------------------------------


async def server_writes_within(server: MapServerWfs, layer: str, crs: str, metres: float) -> bool:
    """Whether MapServer itself writes the layer's first feature in ``crs`` within ``metres`` of
    pyproj's transformation of its RD coordinates (asked directly, not through the connector)."""
    coordinates = []
    async with httpx.AsyncClient() as client:
        for srs in ("urn:ogc:def:crs:EPSG::28992", "urn:ogc:def:crs:EPSG::" + crs.rsplit("/", 1)[1]):
            params = {"SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature",
                      "TYPENAMES": f"ms:{layer}", "COUNT": "1", "SRSNAME": srs}  # fmt: skip
            answer = await client.get(httpx.URL(server.url).copy_merge_params(params))
            text = re.search(r"<gml:pos(?:List)?[^>]*>([^<]+)<", answer.text)
            assert text is not None
            coordinates.append(np.array(text.group(1).split(), dtype=float).reshape(-1, 2))
    rd, other = coordinates
    lat, lon = rd_to(crs).transform(rd[:, 0], rd[:, 1])
    return bool(metres_apart(other[:, 0], other[:, 1], lat, lon).max() <= metres)


@pytest.mark.parametrize("crs", [WGS84, ETRS89, CRS84])
@pytest.mark.parametrize("layer", ["perceel", "bgt_label"])
async def test_srsname_coordinates_agree_with_rd_within_a_centimetre(
    wfs_mapserver: MapServerWfs, http: httpx.AsyncClient, crs: str, layer: str
) -> None:
    """Coordinates the server writes in another CRS (latitude first for EPSG:4326 and 4258,
    swapped for CRS84) agree with RD; a CRS the server gets wrong is left to the hub."""
    wfs = make(wfs_mapserver.url, http, type_names={layer: f"ms:{layer}"})
    infos = {info.id: info for info in await wfs.describe()}
    offered = infos[layer].capabilities.crs
    assert WGS84 in offered and CRS84 in offered
    server_crs = WGS84 if crs == CRS84 else crs
    assert (crs in offered) == await server_writes_within(wfs_mapserver, layer, server_crs, 0.5)
    rd = {f["id"]: f for f in (await wfs.query(layer, FeatureQuery(limit=200, crs=RD_NEW))).features}
    page = await wfs.query(layer, FeatureQuery(limit=200, crs=crs if crs in offered else RD_NEW))
    assert {f["id"] for f in page.features} == set(rd)
    if crs not in offered:
        assert page.crs == RD_NEW  # the hub transforms
        return
    assert page.crs == crs
    move = rd_to(crs)
    for feature in page.features:
        got = shapely.get_coordinates(shape(feature["geometry"]))
        source = shapely.get_coordinates(shape(rd[feature["id"]]["geometry"]))
        first, second = move.transform(source[:, 0], source[:, 1])
        assert got.shape == source.shape
        lat, lon = (got[:, 1], got[:, 0]) if crs == CRS84 else (got[:, 0], got[:, 1])
        assert np.all((lat > 50) & (lat < 54) & (lon > 3) & (lon < 8)), "axis order"
        want_lat, want_lon = (second, first) if crs == CRS84 else (first, second)
        assert metres_apart(lat, lon, want_lat, want_lon).max() < 0.01


# -- filters -------------------------------------------------------------------------------------


def brute_force(server: MapServerWfs, layer: str, text: str, filter_crs: str = RD_NEW) -> set[str]:
    """Ids of the reference features that match a CQL2 filter, evaluated by pygeofilter."""
    node = parse_filter(text, "cql2-text")
    if filter_crs != RD_NEW:
        node = transform_literals(node, filter_crs, RD_NEW)
    matches = compile_predicate(node)
    return {
        key
        for key, ref in reference(server, layer).items()
        if matches({"type": "Feature", "geometry": mapping(ref.geometry), "properties": ref.properties})
    }


PUSHED_FILTERS = [
    ("perceel", "kadastrale_grootte > 500"),
    ("perceel", "kadastrale_grootte BETWEEN 250 AND 600"),
    ("perceel", "perceelnummer_rotatie <> 0 AND sectie = 'B'"),
    ("perceel", "NOT (kadastrale_grootte < 300) OR perceelnummer IN (2298, 2625)"),
    ("perceel", "begin_geldigheid LIKE '2006%'"),
    ("perceel", "akr_gemeente = 'OTL02' AND (kadastrale_grootte <= 222 OR perceelnummer_rotatie > 1.05)"),
    ("bgt_pand", "identificatie_bag_pnd LIKE '03621000001%'"),
    (
        "bgt_pand",
        "S_INTERSECTS(geometry, POLYGON((118000 477000, 119500 477000, 118500 478800, 118000 477000)))",
    ),
    ("bgt_label", "hoek > 0 AND tekst LIKE '1%'"),
    ("bgt_label", "S_INTERSECTS(geometry, BBOX(118200, 477500, 119100, 478600)) AND NOT hoek < -45"),
]


@pytest.mark.parametrize(("layer", "text"), PUSHED_FILTERS)
async def test_fes_filter_pushed_down_equals_brute_force(
    wfs_mapserver: MapServerWfs, http: httpx.AsyncClient, layer: str, text: str
) -> None:
    wfs = await one_type(wfs_mapserver, http, layer)
    node = parse_filter(text, "cql2-text")
    assert wfs.supports_filter(layer, node)
    wanted = brute_force(wfs_mapserver, layer, text)
    assert 0 < len(wanted) < len(reference(wfs_mapserver, layer)), "the filter must select something"
    # The connector never evaluates a filter itself: what comes back is the server's doing.
    got = await read_all(wfs, layer, 4, filter=node, filter_crs=RD_NEW, crs=RD_NEW)
    assert {f["id"] for f in got} == wanted
    first = await wfs.query(layer, FeatureQuery(limit=2, filter=node, filter_crs=RD_NEW, crs=RD_NEW))
    assert first.number_matched == len(wanted)


async def test_spatial_filter_in_crs84_is_moved_to_the_data_crs(
    wfs_mapserver: MapServerWfs, http: httpx.AsyncClient
) -> None:
    text = "S_INTERSECTS(geometry, BBOX(4.835, 52.28, 4.86, 52.30))"
    wfs = await one_type(wfs_mapserver, http, "bgt_pand")
    node = parse_filter(text, "cql2-text")
    assert wfs.supports_filter("bgt_pand", node)
    expected = {k: to_crs84(r.geometry) for k, r in reference(wfs_mapserver, "bgt_pand").items()}
    box = shapely.box(4.835, 52.28, 4.86, 52.30)
    unsure = {k for k, g in expected.items() if box.boundary.distance(g) < 1.5e-7}
    wanted = {k for k, g in expected.items() if box.intersects(g)}
    assert 0 < len(wanted) < len(expected)
    got = await read_all(wfs, "bgt_pand", 10, filter=node, filter_crs=CRS84, crs=CRS84)
    assert {f["id"] for f in got} - unsure == wanted - unsure


async def test_a_filter_too_long_for_a_url_is_posted(
    wfs_mapserver: MapServerWfs, http: httpx.AsyncClient
) -> None:
    center = shapely.Point(118700, 477900)
    circle = center.buffer(700, quad_segs=200)  # 800 vertices: far beyond a URL's length
    text = f"S_INTERSECTS(geometry, {circle.wkt}) AND relatieve_hoogteligging = 0"
    wfs = await one_type(wfs_mapserver, http, "bgt_pand")
    node = parse_filter(text, "cql2-text")
    assert wfs.supports_filter("bgt_pand", node)
    assert len(circle.wkt) > MAX_GET_URL
    log_before = wfs_mapserver.log_path.read_text().count('"POST ')
    wanted = brute_force(wfs_mapserver, "bgt_pand", text)
    assert 0 < len(wanted) < len(reference(wfs_mapserver, "bgt_pand"))
    got = await read_all(wfs, "bgt_pand", 5, filter=node, filter_crs=RD_NEW, crs=RD_NEW)
    assert {f["id"] for f in got} == wanted
    assert wfs_mapserver.log_path.read_text().count('"POST ') > log_before


@pytest.mark.parametrize(("layer", "text"), [
    ("perceel", "perceelnummer = kadastrale_grootte"),        # property against property
    ("perceel", "sectie < 'C'"),                              # order of text
    ("perceel", "kadastrale_grootte = '585'"),                # text against a number
    ("perceel", "begin_geldigheid IS NULL"),                  # MapServer lists no PropertyIsNull
    ("perceel", "sectie = 'B' AND begin_geldigheid IS NULL"), # one part cannot: none is sent
    ("bgt_pand", "creation_date = DATE('2014-10-31')"),       # dates are compared by the hub
    ("bgt_pand", "no_such_property = 1"),
])  # fmt: skip
async def test_filters_the_server_cannot_evaluate_are_left_to_the_hub(
    wfs_mapserver: MapServerWfs, http: httpx.AsyncClient, layer: str, text: str
) -> None:
    wfs = await one_type(wfs_mapserver, http, layer)
    node = parse_filter(text, "cql2-text")
    assert not wfs.supports_filter(layer, node)
    with pytest.raises(UnsupportedQuery):
        await wfs.query(layer, FeatureQuery(limit=5, filter=node, filter_crs=RD_NEW))


@pytest.mark.parametrize(("equals", "count"), [
    ({"sectie": "B"}, 11),
    ({"kadastrale_grootte": "264"}, 2),
    ({"kadastrale_grootte": "0264"}, 0),   # not the text of any integer
    ({"perceelnummer_rotatie": "1.1"}, 2),
    ({"kadastrale_grootte": "264", "perceelnummer_rotatie": "1.1"}, 1),
    ({"no_such_property": "x"}, 0),
])  # fmt: skip
async def test_property_equality(
    wfs: WfsConnector, wfs_mapserver: MapServerWfs, equals: dict[str, str], count: int
) -> None:
    wanted = {
        key
        for key, ref in reference(wfs_mapserver, "perceel").items()
        if all(str(ref.properties.get(name)) == value for name, value in equals.items())
    }
    assert len(wanted) == count
    got = await read_all(wfs, "perceel", 2, property_equals=equals, crs=RD_NEW)
    assert {f["id"] for f in got} == wanted


# -- single features -----------------------------------------------------------------------------


async def test_get_feature_by_id(wfs: WfsConnector, wfs_mapserver: MapServerWfs) -> None:
    expected = reference(wfs_mapserver, "perceel")
    for key, ref in list(expected.items())[:4]:
        feature = await wfs.get_feature("perceel", key, crs=RD_NEW)
        assert feature is not None and feature["id"] == key
        assert all(same_value(feature["properties"][n], v) for n, v in ref.properties.items())
        assert same_geometry(feature["geometry"], ref.geometry)
        in_crs84 = await wfs.get_feature("perceel", key, crs=CRS84)
        assert in_crs84 is not None
        lon, lat = shapely.get_coordinates(shape(in_crs84["geometry"]))[0]
        assert 5 < lon < 6 and 52 < lat < 53
    assert await wfs.get_feature("perceel", "perceel.1", crs=RD_NEW) is None
    assert await wfs.get_feature("perceel", "perceel.NL.IMKAD.KadastraalObject.1", crs=RD_NEW) is None
    assert await wfs.get_feature("perceel", "no such id, not even a gml:id", crs=RD_NEW) is None
    # an id of another feature type is not a feature of this collection
    other = next(iter(reference(wfs_mapserver, "bgt_label")))
    assert await wfs.get_feature("perceel", other, crs=RD_NEW) is None


# -- servers that misbehave ----------------------------------------------------------------------


def proxy(
    target: str,
    change: Callable[[dict[str, str]], None],
    rewrite: Callable[[bytes], bytes] | None = None,
) -> Starlette:
    """A loopback WFS forwarding to ``target`` after ``change`` edited the parameters, with
    ``rewrite`` editing the capabilities on the way back."""

    async def forward(request: Request) -> Response:
        params = dict(request.query_params)
        change(params)
        url = httpx.URL(target).copy_merge_params(params)
        async with httpx.AsyncClient() as client:
            upstream = await client.request(
                request.method, url, content=await request.body(),
                headers={"Content-Type": request.headers.get("content-type", "text/xml")},
            )  # fmt: skip
        content = upstream.content
        if rewrite is not None and params.get("REQUEST") == "GetCapabilities":
            content = rewrite(content)
        return Response(content, upstream.status_code, media_type=upstream.headers.get("content-type"))

    return Starlette(routes=[Route("/wfs", forward, methods=["GET", "POST"])])


@pytest.fixture
def no_bbox_server(wfs_mapserver: MapServerWfs) -> Iterator[str]:
    """MapServer behind a proxy that drops the BBOX parameter, as a careless server ignores it."""

    def drop_bbox(params: dict[str, str]) -> None:
        params.pop("BBOX", None)

    with serve(proxy(wfs_mapserver.url, drop_bbox)) as base:
        yield f"{base}/wfs"


async def test_a_server_that_ignores_bbox_is_caught(
    no_bbox_server: str, http: httpx.AsyncClient, wfs_mapserver: MapServerWfs
) -> None:
    connector = make(no_bbox_server, http)
    box = BBox(118000.0, 477000.0, 119000.0, 478500.0, crs=RD_NEW)
    polygon = shapely.box(*box.as_tuple())
    wanted = {k for k, r in reference(wfs_mapserver, "bgt_pand").items() if r.geometry.intersects(polygon)}
    assert 5 < len(wanted) < 99
    first = await connector.query("bgt_pand", FeatureQuery(limit=5, offset=3, bbox=box, crs=RD_NEW))
    assert {f["id"] for f in first.features} <= wanted and len(first.features) == 5
    got = await read_all(connector, "bgt_pand", 5, bbox=box, crs=RD_NEW)
    assert {f["id"] for f in got} == wanted


@pytest.fixture
def unpaged_server(wfs_mapserver: MapServerWfs) -> Iterator[str]:
    """MapServer behind a proxy whose capabilities say it cannot page."""

    def refuse_startindex(params: dict[str, str]) -> None:
        if "STARTINDEX" in params:
            raise AssertionError("the connector must not page a server that cannot")

    def no_paging(content: bytes) -> bytes:
        pattern = rb'(name="ImplementsResultPaging">\s*<ows:NoValues/>\s*<ows:DefaultValue>)TRUE'
        changed, count = re.subn(pattern, rb"\1FALSE", content)
        assert count == 1
        return changed

    with serve(proxy(wfs_mapserver.url, refuse_startindex, no_paging)) as base:
        yield f"{base}/wfs"


async def test_a_server_that_cannot_page_is_read_from_the_start(
    unpaged_server: str, http: httpx.AsyncClient, wfs_mapserver: MapServerWfs
) -> None:
    connector = make(unpaged_server, http)
    features = await read_all(connector, "perceel", 3, crs=RD_NEW)
    assert [f["id"] for f in features] == list(reference(wfs_mapserver, "perceel"))


async def test_refused_port_is_unavailable(http: httpx.AsyncClient) -> None:
    with refusing_port() as port:
        connector = make(f"http://127.0.0.1:{port}/wfs", http)
        with pytest.raises(UpstreamUnavailable):
            await connector.describe()


async def test_garbage_is_an_invalid_response(http: httpx.AsyncClient) -> None:
    garbage = b"\x00\x01garbage, not HTTP at all\r\n\r\n"
    with raw_tcp(garbage) as url, pytest.raises(UpstreamInvalidResponse):
        await make(f"{url}/wfs", http).describe()


def answering(body: bytes, status: int = 200, media_type: str = "text/xml", delay: float = 0.0) -> Starlette:
    async def answer(request: Request) -> Response:
        if delay:
            await asyncio.sleep(delay)
        return Response(body, status, media_type=media_type)

    return Starlette(routes=[Route("/wfs", answer)])


EXCEPTION_REPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" version="2.0.0">
  <ows:Exception exceptionCode="OperationProcessingFailed">
    <ows:ExceptionText>database down</ows:ExceptionText>
  </ows:Exception>
</ows:ExceptionReport>"""

ENTITY_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<wfs:WFS_Capabilities xmlns:wfs="http://www.opengis.net/wfs/2.0"
  version="2.0.0">&lol2;</wfs:WFS_Capabilities>"""


@pytest.mark.parametrize(("app", "error", "message"), [
    (answering(b"hello, not XML", media_type="text/plain"), UpstreamInvalidResponse, "not XML"),
    (answering(b"<html><body>Hello</body></html>", media_type="text/html"), UpstreamInvalidResponse, "html"),
    (answering(b"<html>busy</html>", status=503, media_type="text/html"), UpstreamUnavailable, "503"),
    (answering(EXCEPTION_REPORT, status=500), UpstreamUnavailable, "database down"),
    (answering(EXCEPTION_REPORT, status=200), UpstreamUnavailable, "database down"),
    (answering(ENTITY_BOMB), UpstreamInvalidResponse, "DTD"),
    (answering(b"<wfs:WFS_Capabilities xmlns:wfs='http://www.opengis.net/wfs/2.0' version='1.1.0'/>"),
     UpstreamInvalidResponse, "1.1.0"),
    (answering(b"", status=401), UpstreamUnavailable, "credentials"),
])  # fmt: skip
async def test_broken_upstreams(
    http: httpx.AsyncClient, app: Starlette, error: type[Exception], message: str
) -> None:
    with serve(app) as base, pytest.raises(error, match=message):
        await make(f"{base}/wfs", http).describe()


async def test_a_slow_server_times_out(http: httpx.AsyncClient) -> None:
    with serve(answering(b"<x/>", delay=3.0)) as base, pytest.raises(UpstreamTimeout):
        await make(f"{base}/wfs", http, timeout=0.5).describe()


@pytest.fixture
def changing_mapfile(wfs_mapserver: MapServerWfs, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An endpoint whose mapfile a test rewrites, as a source's configuration changes."""
    mapfile = wfs_mapserver.gpkg.parent / f"changing-{tmp_path.name}.map"
    mapfile.write_text(mapfile_text(wfs_mapserver.gpkg, 28992))
    endpoint = wfs_mapserver.url.split("?", 1)[0]
    try:
        yield f"{endpoint}?map={mapfile}", mapfile
    finally:
        mapfile.unlink(missing_ok=True)


async def test_exception_reports_of_a_real_server(
    changing_mapfile: tuple[str, Path], http: httpx.AsyncClient
) -> None:
    url, mapfile = changing_mapfile
    connector = make(url, http)
    await connector.describe()
    node = parse_filter("kadastrale_grootte > 500", "cql2-text")
    assert connector.supports_filter("perceel", node)
    assert len((await connector.query("perceel", FeatureQuery(limit=20, filter=node))).features) == 3

    # The attribute is no longer published: MapServer refuses the filter (InvalidParameterValue).
    text = mapfile.read_text()
    hidden = text.replace(
        '"gml_include_items" "all"',
        '"gml_include_items" "all"\n      "gml_exclude_items" "kadastrale_grootte"',
    )
    mapfile.write_text(hidden)
    with pytest.raises(UnsupportedQuery, match="kadastrale_grootte"):
        await connector.query("perceel", FeatureQuery(limit=20, filter=node))

    # The feature type is gone: the source changed, which is not the query's fault.
    without = re.sub(r'\n  LAYER\n    NAME "perceel".*?\n  END(?=\n)', "", text, flags=re.S)
    assert 'NAME "perceel"' not in without
    mapfile.write_text(without)
    with pytest.raises(UpstreamInvalidResponse, match=r"(?i)typename"):
        await connector.query("perceel", FeatureQuery(limit=20))


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    {"url": "ftp://example.org/wfs"},
    {"url": "https://example.org/wfs?REQUEST=GetFeature"},
    {"url": "https://example.org/wfs", "version": "1.1.0"},
    {"url": "https://example.org/wfs", "params_env": {"typeNames": "X"}},
    {"url": "https://example.org/wfs", "headers_env": {"Bad Header": "X"}},
    {"url": "https://example.org/wfs", "username_env": "WFS_USER"},
    {"url": "https://example.org/wfs", "type_names": {"a/b": "ms:x"}},
    {"url": "https://example.org/wfs", "password": "inline secrets are refused"},
])  # fmt: skip
def test_settings_are_checked(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WfsSettings(**settings)


async def test_missing_secret_is_a_configuration_error(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WFS_TEST_KEY", raising=False)
    connector = make("https://example.org/wfs", http, params_env={"apikey": "WFS_TEST_KEY"})
    with pytest.raises(ConnectorConfigError, match="WFS_TEST_KEY"):
        await connector.open()


async def test_secrets_travel_as_configured(
    wfs_mapserver: MapServerWfs, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str | None, str | None, str | None]] = []

    async def record(request: Request) -> Response:
        seen.append(
            (
                request.query_params.get("apikey"),
                request.headers.get("x-token"),
                request.headers.get("authorization"),
            )
        )
        return Response(b"<x/>", 503, media_type="text/xml")

    monkeypatch.setenv("WFS_TEST_KEY", "k3y")
    monkeypatch.setenv("WFS_TEST_TOKEN", "t0ken")
    monkeypatch.setenv("WFS_TEST_USER", "steward")
    monkeypatch.setenv("WFS_TEST_PASSWORD", "pa55")
    with serve(Starlette(routes=[Route("/wfs", record)])) as base:
        connector = make(
            f"{base}/wfs", http, params_env={"apikey": "WFS_TEST_KEY"},
            headers_env={"X-Token": "WFS_TEST_TOKEN"}, username_env="WFS_TEST_USER",
            password_env="WFS_TEST_PASSWORD",
        )  # fmt: skip
        with pytest.raises(UpstreamUnavailable):
            await connector.describe()
    assert seen == [("k3y", "t0ken", "Basic c3Rld2FyZDpwYTU1")]


# -- through the hub -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_over_wfs(wfs_mapserver: MapServerWfs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub whose only source is the MapServer WFS."""
    source = {
        "id": "kadaster",
        "title": "BGT and BRK (MapServer WFS)",
        "connector": "wfs",
        "classification": "open",
        "url": wfs_mapserver.url,
        "timeout": 30,
    }
    with serve_hub(hub_settings(tmp_path_factory.mktemp("hub-wfs"), [source])) as base_url:
        wait_until_served(base_url, "kadaster-perceel")
        yield f"{base_url}/ogc/v1/collections"


def hub_items(url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every feature of an items query, following ``next`` links."""
    features: list[dict[str, Any]] = []
    next_url: str | None = url
    query: dict[str, Any] | None = params
    while next_url:
        response = httpx.get(next_url, params=query, timeout=60)
        assert response.status_code == 200, response.text
        page = response.json()
        features.extend(page["features"])
        next_url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        query = None
    return features


@pytest.mark.parametrize("crs", [CRS84, ETRS89])
def test_hub_serves_the_wfs_in_the_crs_asked(
    hub_over_wfs: str, wfs_mapserver: MapServerWfs, crs: str
) -> None:
    """Whether the server writes the CRS (CRS84, from its EPSG:4326) or the hub transforms from
    RD (ETRS89, which this MapServer gets wrong), positions agree with RD within a centimetre."""
    expected = reference(wfs_mapserver, "perceel")
    params = {"limit": 4} if crs == CRS84 else {"limit": 4, "crs": crs}
    features = hub_items(f"{hub_over_wfs}/kadaster-perceel/items", params)
    assert sorted(f["id"] for f in features) == sorted(expected)
    move = rd_to(crs)
    for feature in features:
        got = shapely.get_coordinates(shape(feature["geometry"]))
        rd = shapely.get_coordinates(expected[feature["id"]].geometry)
        first, second = move.transform(rd[:, 0], rd[:, 1])
        lat, lon = (got[:, 1], got[:, 0]) if crs == CRS84 else (got[:, 0], got[:, 1])
        want_lat, want_lon = (second, first) if crs == CRS84 else (first, second)
        assert metres_apart(lat, lon, want_lat, want_lon).max() < 0.01


def test_hub_pushes_filter_and_bbox_to_the_wfs(hub_over_wfs: str, wfs_mapserver: MapServerWfs) -> None:
    text = "kadastrale_grootte > 250 AND kadastrale_grootte < 1000"
    wanted = brute_force(wfs_mapserver, "perceel", text)
    got = hub_items(f"{hub_over_wfs}/kadaster-perceel/items", {"filter": text, "limit": 2})
    assert {f["id"] for f in got} == wanted and 0 < len(wanted) < 11

    box = (118000.0, 477000.0, 119000.0, 478500.0)
    polygon = shapely.box(*box)
    inside = {k for k, r in reference(wfs_mapserver, "bgt_pand").items() if r.geometry.intersects(polygon)}
    got = hub_items(
        f"{hub_over_wfs}/kadaster-bgt-pand/items",
        {"bbox": ",".join(map(str, box)), "bbox-crs": RD_NEW, "crs": RD_NEW, "limit": 7},
    )
    assert {f["id"] for f in got} == inside and 0 < len(inside) < 99
    one = httpx.get(f"{hub_over_wfs}/kadaster-bgt-pand/items/{sorted(inside)[0]}", params={"crs": RD_NEW})
    assert one.status_code == 200 and one.json()["id"] == sorted(inside)[0]


# -- documents from other servers ----------------------------------------------------------------

PDOK_CAPABILITIES = DATA_DIR / "wfs" / "pdok_kadastralekaart_v4_wfs200_capabilities.xml"

EMPTY_COLLECTION = b"""<?xml version="1.0" encoding="UTF-8"?>
<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" numberMatched="0" numberReturned="0"/>"""

NOT_SUPPORTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" version="2.0.0">
  <ows:Exception exceptionCode="OperationNotSupported" locator="request"/>
</ows:ExceptionReport>"""


def emulator(documents: dict[str, bytes]) -> Starlette:
    """A WFS answering each REQUEST with a fixed document (400 with an exception otherwise)."""

    async def answer(request: Request) -> Response:
        params = {k.upper(): v for k, v in request.query_params.items()}
        document = documents.get(params.get("REQUEST", ""))
        if document is None:
            return Response(NOT_SUPPORTED, 400, media_type="text/xml")
        return Response(document, media_type="text/xml")

    return Starlette(routes=[Route("/wfs", answer)])


async def test_pdok_capabilities_are_understood(http: httpx.AsyncClient) -> None:
    """PDOK's own capabilities document (kadastrale kaart v4), served as it is: its type, CRSs,
    extent and filter capabilities; a server that cannot describe its type still serves."""
    shared_data_or_skip()
    documents = {"GetCapabilities": PDOK_CAPABILITIES.read_bytes(), "GetFeature": EMPTY_COLLECTION}
    with serve(emulator(documents)) as base:
        (info,) = await make(f"{base}/wfs", http).describe()
    assert info.id == "kadastralegrens"
    assert info.storage_crs == RD_NEW
    epsg = "http://www.opengis.net/def/crs/EPSG/0/"
    assert {f"{epsg}{code}" for code in (25831, 3857, 4258, 4326)} | {CRS84} <= set(info.crs)
    assert info.crs[0] == RD_NEW
    assert info.extent_crs84 is not None
    minx, miny, maxx, maxy = info.extent_crs84
    assert minx <= 2.52712538742158 and miny <= 50.2128625669452
    assert maxx >= 7.37402550506231 and maxy >= 55.7211602557705
    assert info.capabilities.filter and info.fields == []


GML31_LEGACY_AXES = b"""<?xml version="1.0" encoding="UTF-8"?>
<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:gml="http://www.opengis.net/gml"
    xmlns:t="urn:test" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xlink="http://www.w3.org/1999/xlink"
    numberMatched="2" numberReturned="2">
  <wfs:member>
    <t:gebouw gml:id="gebouw.1">
      <t:naam>Waag</t:naam>
      <t:hoogte>12.5</t:hoogte>
      <t:verdiepingen>3</t:verdiepingen>
      <t:monument>true</t:monument>
      <t:bron xlink:href="https://example.org/waag"/>
      <t:label>a</t:label>
      <t:label>b</t:label>
      <t:sloop xsi:nil="true"/>
      <t:vorm>
        <gml:MultiSurface srsName="EPSG:4326">
          <gml:surfaceMembers>
            <gml:Polygon><gml:exterior><gml:LinearRing>
              <gml:posList>4.9 52.37 4.91 52.37 4.91 52.38 4.9 52.37</gml:posList>
            </gml:LinearRing></gml:exterior></gml:Polygon>
            <gml:Surface><gml:patches><gml:PolygonPatch><gml:exterior><gml:LinearRing>
              <gml:pos>4.92 52.37</gml:pos><gml:pos>4.93 52.37</gml:pos><gml:pos>4.93 52.38</gml:pos>
              <gml:pos>4.92 52.37</gml:pos>
            </gml:LinearRing></gml:exterior></gml:PolygonPatch></gml:patches></gml:Surface>
          </gml:surfaceMembers>
        </gml:MultiSurface>
      </t:vorm>
    </t:gebouw>
  </wfs:member>
  <wfs:member>
    <t:gebouw gml:id="gebouw.2">
      <t:naam>Brug</t:naam>
      <t:vorm>
        <gml:Curve srsName="EPSG:4326"><gml:segments>
          <gml:LineStringSegment>
            <gml:posList srsDimension="3">4.9 52.3 1 4.95 52.3 2</gml:posList>
          </gml:LineStringSegment>
          <gml:LineStringSegment>
            <gml:posList srsDimension="3">4.95 52.3 2 4.96 52.31 3</gml:posList>
          </gml:LineStringSegment>
        </gml:segments></gml:Curve>
      </t:vorm>
    </t:gebouw>
  </wfs:member>
</wfs:FeatureCollection>"""

TEST_CAPABILITIES = b"""<?xml version="1.0" encoding="UTF-8"?>
<wfs:WFS_Capabilities xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:ows="http://www.opengis.net/ows/1.1"
    xmlns:t="urn:test" version="2.0.0">
  <wfs:FeatureTypeList><wfs:FeatureType>
    <wfs:Name>t:gebouw</wfs:Name><wfs:Title>Gebouwen</wfs:Title>
    <wfs:DefaultCRS>urn:ogc:def:crs:EPSG::4326</wfs:DefaultCRS>
  </wfs:FeatureType></wfs:FeatureTypeList>
</wfs:WFS_Capabilities>"""

TEST_SCHEMA = b"""<?xml version="1.0" encoding="UTF-8"?>
<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:gml="http://www.opengis.net/gml"
    xmlns:t="urn:test" targetNamespace="urn:test">
  <xsd:element name="gebouw" type="t:gebouwType" substitutionGroup="gml:_Feature"/>
  <xsd:complexType name="gebouwType"><xsd:complexContent><xsd:extension base="gml:AbstractFeatureType">
    <xsd:sequence>
      <xsd:element name="naam" type="xsd:string"/>
      <xsd:element name="hoogte" type="xsd:double"/>
      <xsd:element name="verdiepingen" type="xsd:int"/>
      <xsd:element name="monument" type="xsd:boolean"/>
      <xsd:element name="bron" type="xsd:anyURI"/>
      <xsd:element name="label" type="xsd:string" maxOccurs="unbounded"/>
      <xsd:element name="sloop" type="xsd:date" nillable="true"/>
      <xsd:element name="vorm" type="gml:GeometryPropertyType"/>
    </xsd:sequence>
  </xsd:extension></xsd:complexContent></xsd:complexType>
</xsd:schema>"""


async def test_gml_of_other_servers(http: httpx.AsyncClient) -> None:
    """GML 3.1, the legacy ``EPSG:4326`` (longitude first), surfaces, curves, 3D positions,
    nil and repeated properties, links: read as GeoJSON in EPSG:4326's latitude-first order."""
    documents = {
        "GetCapabilities": TEST_CAPABILITIES,
        "DescribeFeatureType": TEST_SCHEMA,
        "GetFeature": GML31_LEGACY_AXES,
    }
    with serve(emulator(documents)) as base:
        connector = make(f"{base}/wfs", http)
        (info,) = await connector.describe()
        page = await connector.query("gebouw", FeatureQuery(limit=10, crs=WGS84))
    assert {f.name: f.type for f in info.fields} == {
        "naam": "string", "hoogte": "number", "verdiepingen": "integer", "monument": "boolean",
        "bron": "string", "label": "array", "sloop": "date",
    }  # fmt: skip
    assert info.crs == [WGS84, CRS84] and info.capabilities.filter is False
    assert page.crs == WGS84 and page.number_matched == 2 and page.has_more is False
    waag, brug = page.features
    assert waag["id"] == "gebouw.1"
    assert waag["properties"] == {
        "naam": "Waag", "hoogte": 12.5, "verdiepingen": 3, "monument": True,
        "bron": "https://example.org/waag", "label": ["a", "b"], "sloop": None,
    }  # fmt: skip
    assert waag["geometry"]["type"] == "MultiPolygon"
    assert waag["geometry"]["coordinates"][0][0][:2] == [[52.37, 4.9], [52.37, 4.91]]
    assert waag["geometry"]["coordinates"][1][0][0] == [52.37, 4.92]
    assert brug["geometry"] == {
        "type": "LineString",
        "coordinates": [[52.3, 4.9, 1.0], [52.3, 4.95, 2.0], [52.31, 4.96, 3.0]],
    }
    assert brug["properties"]["hoogte"] is None  # left out by the server: null
