"""The 3dbag connector against the emulated 3D BAG API, checked by reading the files apart.

Two releases are served (``tests/fixtures/threedbag.py``): the recent Delft extract with
``b3_mutatie_AHN3_AHN4``-style names and v2024.04.20 with lower-case AHN names. The reference
side reads the same CityJSONSeq files with the json module (``tests/cityjson_reference.py``)
and answers every query again by brute force; the emulator records each request, so the
tests also see what the connector sent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from pydantic import ValidationError
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from pyproj import Transformer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import connectors.threedbag as threedbag_module
from connectors._cityjson import canonical_attributes
from connectors.base import CITYJSON, CRS84, RD_NAP, RD_NEW, BBox, Feature, FeatureQuery, Interval, SortKey
from connectors.cityjson import CityJsonConnector, CityJsonSettings
from connectors.errors import (
    UnsupportedQuery,
    UpstreamInvalidResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from connectors.registry import connector_class
from connectors.threedbag import ThreeDBagConnector, ThreeDBagSettings
from tests.cityjson_reference import (
    CURRENT_JSONL,
    HEIGHTS,
    V20240420_JSONL,
    expected_properties,
    feature_validator,
    lod0_rings,
    read_sequence,
)
from tests.fixtures.hub import hub_settings, serve_hub, wait_until_served
from tests.fixtures.loopback import raw_tcp, refusing_port, serve
from tests.fixtures.threedbag import (  # noqa: F401 - threedbag_apis is a fixture
    ITEMS_PARAMETERS,
    RunningThreeDBag,
    ThreeDBagApis,
    threedbag_apis,
)

ITEMS = "/collections/pand/items"
RD_TO_LONLAT = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True)


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The shared client a connector receives."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture(params=["current", "v20240420"])
def api(request: pytest.FixtureRequest, threedbag_apis: ThreeDBagApis) -> RunningThreeDBag:  # noqa: F811
    """Each release's emulated API in turn, its request log cleared."""
    running: RunningThreeDBag = getattr(threedbag_apis, request.param)
    running.emulator.clear()
    return running


@pytest.fixture
def current(threedbag_apis: ThreeDBagApis) -> RunningThreeDBag:  # noqa: F811
    """The recent release's emulated API, its request log cleared."""
    threedbag_apis.current.emulator.clear()
    return threedbag_apis.current


def make(url: str, http: httpx.AsyncClient, **settings: Any) -> ThreeDBagConnector:
    """A connector for the API at ``url``."""
    return ThreeDBagConnector(ThreeDBagSettings(url=url, **settings), source_id="3dbag", http=http)


def reference(api: RunningThreeDBag) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and feature lines of the file an emulator serves, read with json."""
    return read_sequence(api.emulator.path)


def footprints(api: RunningThreeDBag) -> dict[str, shapely.Polygon]:
    """Every building's LoD 0 footprint, decoded independently."""
    header, lines = reference(api)
    result = {}
    for line in lines:
        rings = lod0_rings(line["CityObjects"], line["id"], line["vertices"], header["transform"])
        assert rings is not None
        result[line["id"]] = shapely.Polygon(rings[0], rings[1:])
    return result


async def walk(connector: ThreeDBagConnector, limit: int, **criteria: Any) -> list[Feature]:
    """Every matching feature, page by page, checking the paging as it goes."""
    features: list[Feature] = []
    offset = 0
    while True:
        page = await connector.query("pand", FeatureQuery(limit=limit, offset=offset, **criteria))
        assert len(page.features) <= limit
        assert page.crs == RD_NEW
        features.extend(page.features)
        offset += len(page.features)
        if page.has_more is False or (page.has_more is None and len(page.features) < limit):
            if page.number_matched is not None:
                assert page.number_matched == offset
            return features
        assert page.features, "a page said more follow but was empty"


def ids(features: list[Feature]) -> list[str]:
    return [str(f["id"]) for f in features]


# --- settings and registration -------------------------------------------------------------


def test_registry_knows_the_3dbag_kind() -> None:
    assert connector_class("3dbag") is ThreeDBagConnector


def test_settings() -> None:
    defaults = ThreeDBagSettings()
    assert defaults.url == "https://api.3dbag.nl"
    assert defaults.page_size == 100
    assert ThreeDBagSettings(url="http://example.org/api/").url == "http://example.org/api"
    for bad in ({"page_size": 0}, {"page_size": 101}, {"url": "ftp://x"}, {"pagesize": 10}):
        with pytest.raises(ValidationError):
            ThreeDBagSettings.model_validate(bad)


# --- describe ------------------------------------------------------------------------------


async def test_describe(api: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    (info,) = await make(api.url, http).describe()
    assert info.id == "pand"
    assert info.storage_crs == RD_NEW
    assert info.capabilities.filter is False
    assert info.capabilities.sort is False
    assert info.capabilities.datetime is False
    assert info.capabilities.crs == (RD_NEW,)
    assert info.id_field == "identificatie"
    minx, miny, maxx, maxy = info.extent_crs84 or (0, 0, 0, 0)
    assert minx < 4.36 < maxx and miny < 52.01 < maxy  # Delft
    assert minx > 3.0 and maxx < 7.6 and miny > 50.6 and maxy < 53.8  # the Netherlands
    types = {f.name: f.type for f in info.fields}
    assert all(types[h] == "number" for h in HEIGHTS)
    assert types["oorspronkelijkbouwjaar"] == "integer"
    assert types["begingeldigheid"] == "date"
    assert all(not n.startswith("b3_") and n == n.lower() for n in types)
    # every attribute either release has is a known field, under its canonical name
    _, lines = reference(api)
    for line in lines:
        assert set(expected_properties(line["CityObjects"][line["id"]]["attributes"])) <= set(types)
    assert api.emulator.sent()[0].params == [("crs", RD_NAP), ("offset", "1"), ("limit", "1")]


# --- features ------------------------------------------------------------------------------


async def test_every_building_in_file_order(api: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    _, lines = reference(api)
    page = await make(api.url, http).query("pand", FeatureQuery(limit=1000))
    assert ids(page.features) == [line["id"] for line in lines]
    assert page.number_matched == len(lines)
    assert page.has_more is False
    assert all(f["type"] == "Feature" for f in page.features)


async def test_attributes_under_canonical_names(api: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    _, lines = reference(api)
    page = await make(api.url, http).query("pand", FeatureQuery(limit=1000))
    for feature, line in zip(page.features, lines, strict=True):
        attributes = line["CityObjects"][line["id"]]["attributes"]
        assert feature["properties"] == expected_properties(attributes)
        for name in HEIGHTS:
            assert isinstance(feature["properties"][name], float)
        assert feature["properties"]["identificatie"] == feature["id"]


def test_two_spellings_of_one_attribute_become_one() -> None:
    """A value wins over a null, the prefixed (newer) spelling over the bare one, in any order."""
    assert canonical_attributes({"b3_mutatie_AHN3_AHN4": True, "mutatie_ahn3_ahn4": False}) == {
        "mutatie_ahn3_ahn4": True
    }
    assert canonical_attributes({"mutatie_ahn3_ahn4": False, "b3_mutatie_AHN3_AHN4": True}) == {
        "mutatie_ahn3_ahn4": True
    }
    assert canonical_attributes({"b3_h_dak_max": None, "h_dak_max": "12.5", "status": "x"}) == {
        "h_dak_max": 12.5,
        "status": "x",
    }
    assert canonical_attributes({"B3_Dak_Type": "slanted", "b3_h_maaiveld": 1}) == {
        "dak_type": "slanted",
        "h_maaiveld": 1.0,
    }


async def test_both_releases_share_one_set_of_names(
    threedbag_apis: ThreeDBagApis,  # noqa: F811
    http: httpx.AsyncClient,
) -> None:
    _, new_lines = read_sequence(CURRENT_JSONL)
    _, old_lines = read_sequence(V20240420_JSONL)
    new_raw = set(new_lines[0]["CityObjects"][new_lines[0]["id"]]["attributes"])
    old_raw = set(old_lines[0]["CityObjects"][old_lines[0]["id"]]["attributes"])
    # the releases really do spell these differently
    assert "b3_mutatie_AHN3_AHN4" in new_raw and "b3_mutatie_ahn3_ahn4" in old_raw
    assert "b3_mutatie_ahn3_ahn4" not in new_raw and "b3_puntdichtheid_AHN4" not in old_raw
    new = await make(threedbag_apis.current.url, http).query("pand", FeatureQuery(limit=1))
    old = await make(threedbag_apis.v20240420.url, http).query("pand", FeatureQuery(limit=1))
    shared = set(new.features[0]["properties"]) & set(old.features[0]["properties"])
    for name in (
        "mutatie_ahn3_ahn4", "puntdichtheid_ahn3", "puntdichtheid_ahn4", "nodata_fractie_ahn4",
        "nodata_radius_ahn3", "h_dak_max", "h_dak_min", "h_dak_50p", "h_dak_70p", "h_maaiveld",
        "dak_type", "pw_bron", "rmse_lod22", "volume_lod22", "opp_grond", "identificatie",
        "status", "oorspronkelijkbouwjaar", "begingeldigheid",
    ):  # fmt: skip
        assert name in shared
    assert len(shared) >= 40
    new_attributes = new_lines[0]["CityObjects"][new_lines[0]["id"]]["attributes"]
    old_attributes = old_lines[0]["CityObjects"][old_lines[0]["id"]]["attributes"]
    assert new.features[0]["properties"]["mutatie_ahn3_ahn4"] is new_attributes["b3_mutatie_AHN3_AHN4"]
    assert old.features[0]["properties"]["mutatie_ahn3_ahn4"] is old_attributes["b3_mutatie_ahn3_ahn4"]
    assert new.features[0]["properties"]["puntdichtheid_ahn4"] == new_attributes["b3_puntdichtheid_AHN4"]
    assert old.features[0]["properties"]["puntdichtheid_ahn4"] == old_attributes["b3_puntdichtheid_ahn4"]


async def test_footprints_are_the_decoded_lod0_surface(
    api: RunningThreeDBag, http: httpx.AsyncClient
) -> None:
    header, lines = reference(api)
    page = await make(api.url, http).query("pand", FeatureQuery(limit=1000))
    for feature, line in zip(page.features, lines, strict=True):
        expected = lod0_rings(line["CityObjects"], line["id"], line["vertices"], header["transform"])
        assert expected is not None
        assert feature["geometry"]["type"] == "Polygon"
        got = feature["geometry"]["coordinates"]
        assert len(got) == len(expected)
        for got_ring, ring in zip(got, expected, strict=True):
            assert len(got_ring) == len(ring)
            for (x, y), (ex, ey) in zip(got_ring, ring, strict=True):
                assert math.isclose(x, ex, abs_tol=1e-9) and math.isclose(y, ey, abs_tol=1e-9)


async def test_cityjson_handed_over_untouched(api: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    header, lines = reference(api)
    validator = feature_validator()
    page = await make(api.url, http).query("pand", FeatureQuery(limit=1000))
    for feature, line in zip(page.features, lines, strict=True):
        member = feature[CITYJSON]
        assert member["feature"] == line
        assert member["transform"] == header["transform"]
        assert member["crs"] == RD_NAP
    # the schema check is slow on large vertex arrays: a spread of features
    for feature in page.features[:: max(1, len(page.features) // 6)]:
        assert not list(validator.iter_errors(feature[CITYJSON]["feature"]))


# --- bbox ----------------------------------------------------------------------------------


def _boxes_rd() -> list[tuple[float, float, float, float]]:
    return [
        (85100.0, 446800.0, 85300.0, 447000.0),
        (84500.0, 446400.0, 85000.0, 446700.0),
        (85400.0, 447000.0, 85600.0, 447200.0),
        (0.0, 0.0, 10.0, 10.0),
    ]


async def test_bbox_in_rd_matches_brute_force(api: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    shapes = footprints(api)
    connector = make(api.url, http, page_size=7)
    for box in _boxes_rd():
        area = shapely.box(*box)
        expected = [i for i, shape in shapes.items() if shape.intersects(area)]
        got = await walk(connector, 5, bbox=BBox(*box, crs=RD_NEW))
        assert ids(got) == expected


async def test_bbox_in_crs84_matches_brute_force(current: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    shapes = footprints(current)
    box = (4.3690, 52.0040, 4.3730, 52.0070)
    expected = []
    for feature_id, shape in shapes.items():
        xs, ys = RD_TO_LONLAT.transform(*shape.exterior.xy)
        if shapely.Polygon(list(zip(xs, ys, strict=True))).intersects(shapely.box(*box)):
            expected.append(feature_id)
    assert 0 < len(expected) < len(shapes)
    got = await walk(make(current.url, http), 10, bbox=BBox(*box, crs=CRS84))
    assert ids(got) == expected
    sent = [r for r in current.emulator.sent() if "bbox" in dict(r.params)]
    assert sent and all(dict(r.params)["bbox-crs"] == RD_NAP for r in sent)


async def test_bbox_keeps_only_footprints_that_really_intersect(
    current: RunningThreeDBag, http: httpx.AsyncClient
) -> None:
    """A box in a corner of a building's bounding box but outside every footprint: the API
    offers candidates, the connector keeps none."""
    shapes = footprints(current)
    union = shapely.union_all(list(shapes.values()))
    box = None
    for shape in shapes.values():
        empty = shapely.envelope(shape).difference(union)
        if empty.area > 4:
            point = shapely.point_on_surface(empty.buffer(-0.6) if not empty.buffer(-0.6).is_empty else empty)
            box = (point.x - 0.5, point.y - 0.5, point.x + 0.5, point.y + 0.5)
            if not shapely.box(*box).intersects(union):
                break
    assert box is not None
    emulated = [i for i, b in enumerate(current.emulator.boxes) if b[0] <= box[2] and b[2] >= box[0]
                and b[1] <= box[3] and b[3] >= box[1]]  # fmt: skip
    assert emulated, "the emulator should offer candidates for this box"
    page = await make(current.url, http).query("pand", FeatureQuery(limit=10, bbox=BBox(*box, crs=RD_NEW)))
    assert page.features == []
    assert page.number_matched == 0
    assert page.has_more is False


# --- paging --------------------------------------------------------------------------------


@pytest.mark.parametrize("with_bbox", [False, True])
async def test_paging_without_gaps_or_overlaps(
    api: RunningThreeDBag, http: httpx.AsyncClient, with_bbox: bool
) -> None:
    shapes = footprints(api)
    criteria: dict[str, Any] = {}
    expected = list(shapes)
    if with_bbox:
        minx, miny, maxx, maxy = shapely.total_bounds(list(shapes.values()))
        box = (minx, miny, (minx + maxx) / 2 + 100, maxy)
        criteria["bbox"] = BBox(*box, crs=RD_NEW)
        expected = [i for i, s in shapes.items() if s.intersects(shapely.box(*box))]
    got = await walk(make(api.url, http, page_size=5), 3, **criteria)
    assert ids(got) == expected
    assert len(set(ids(got))) == len(got)
    offsets = [int(dict(r.params)["offset"]) for r in api.emulator.sent()]
    assert min(offsets) == 1
    assert all(1 <= int(dict(r.params)["limit"]) <= 5 for r in api.emulator.sent())


async def test_hub_offset_is_one_less_than_the_api_offset(
    current: RunningThreeDBag, http: httpx.AsyncClient
) -> None:
    _, lines = reference(current)
    connector = make(current.url, http)
    for offset in (0, 1, 17, 150, 158):
        current.emulator.clear()
        page = await connector.query("pand", FeatureQuery(limit=4, offset=offset))
        assert ids(page.features) == [line["id"] for line in lines[offset : offset + 4]]
        assert page.number_matched == len(lines)
        assert page.has_more is (offset + 4 < len(lines))
        (request,) = current.emulator.sent()
        assert dict(request.params)["offset"] == str(offset + 1)
    beyond = await connector.query("pand", FeatureQuery(limit=4, offset=500))
    assert beyond.features == [] and beyond.has_more is False


async def test_a_large_page_is_split_into_api_pages(
    current: RunningThreeDBag, http: httpx.AsyncClient
) -> None:
    _, lines = reference(current)
    page = await make(current.url, http, page_size=40).query("pand", FeatureQuery(limit=150, offset=5))
    assert ids(page.features) == [line["id"] for line in lines[5:155]]
    sent = [(int(dict(r.params)["offset"]), int(dict(r.params)["limit"])) for r in current.emulator.sent()]
    assert sent[0] == (6, 40)
    assert sorted(sent) == [(6, 40), (46, 40), (86, 40), (126, 30)]


async def test_bbox_pages_resume_where_the_last_ended(
    current: RunningThreeDBag, http: httpx.AsyncClient
) -> None:
    connector = make(current.url, http, page_size=10)
    box = BBox(84900.0, 446500.0, 85600.0, 447200.0, crs=RD_NEW)
    first = await connector.query("pand", FeatureQuery(limit=10, bbox=box))
    assert len(first.features) == 10
    current.emulator.clear()
    second = await connector.query("pand", FeatureQuery(limit=10, offset=10, bbox=box))
    assert set(ids(second.features)).isdisjoint(ids(first.features))
    # the second page starts where the first stopped, not at the first candidate again
    assert int(dict(current.emulator.sent()[0].params)["offset"]) > 1


async def test_the_pages_expected_matches_fill_are_asked_for_at_once(
    current: RunningThreeDBag, http: httpx.AsyncClient
) -> None:
    """A caller that expects 100 matches in a box (a linked collection's page) gets the pages
    they fill, and the one their neighbours probably need, in one concurrent wave: one round
    trip to the API instead of two, and not a feature more or less."""
    shapes = footprints(current)
    box = BBox(*shapely.total_bounds(list(shapes.values())), crs=RD_NEW)
    connector = make(current.url, http)
    current.emulator.delay = 0.2
    try:
        alone = await connector.query("pand", FeatureQuery(limit=1000, bbox=box))
        first_alone = current.emulator.peak
        current.emulator.clear()
        expecting = await connector.query("pand", FeatureQuery(limit=1000, bbox=box, expected=100))
        sent = current.emulator.sent()
    finally:
        current.emulator.delay = 0.0
    assert ids(expecting.features) == ids(alone.features) == list(shapes)
    assert expecting.number_matched == alone.number_matched == len(shapes)
    assert first_alone == 1  # without the expectation, the first page alone tells the count
    offsets = sorted(int(dict(r.params)["offset"]) for r in sent)
    assert offsets == [1, 101] and current.emulator.peak == 2


async def test_skipped_geometry_is_not_decoded_but_the_bbox_still_exact(
    current: RunningThreeDBag, http: httpx.AsyncClient
) -> None:
    connector = make(current.url, http, page_size=7)
    for box in _boxes_rd():
        full = await walk(connector, 5, bbox=BBox(*box, crs=RD_NEW))
        bare = await walk(connector, 5, bbox=BBox(*box, crs=RD_NEW), skip_geometry=True)
        assert ids(bare) == ids(full)
        assert all(f["geometry"] is None for f in bare)
        assert [f["properties"] for f in bare] == [f["properties"] for f in full]
    page = await connector.query("pand", FeatureQuery(limit=5, skip_geometry=True))
    assert len(page.features) == 5 and all(f["geometry"] is None for f in page.features)


async def test_a_walk_too_long_is_refused(
    current: RunningThreeDBag, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(threedbag_module, "MAX_WALK", 20)
    box = BBox(84900.0, 446500.0, 85600.0, 447200.0, crs=RD_NEW)
    with pytest.raises(UnsupportedQuery):
        await make(current.url, http, page_size=10).query("pand", FeatureQuery(limit=5, offset=60, bbox=box))


# --- properties and the item endpoint ------------------------------------------------------


async def test_property_equality_matches_brute_force(api: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    _, lines = reference(api)
    connector = make(api.url, http, page_size=10)
    attributes = {
        line["id"]: expected_properties(line["CityObjects"][line["id"]]["attributes"]) for line in lines
    }
    cases = [("status", "Pand in gebruik"), ("dak_type", "slanted"), ("oorspronkelijkbouwjaar", "1928"),
             ("kas_warenhuis", "false"), ("dak_type", "none")]  # fmt: skip
    for name, value in cases:
        expected = [i for i, props in attributes.items() if _text(props.get(name)) == value]
        got = await walk(connector, 6, property_equals={name: value})
        assert ids(got) == expected, (name, value)


def _text(value: Any) -> str | None:
    """A value as a query string writes it (JSON's true/false for booleans)."""
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


async def test_identificatie_uses_the_item_endpoint(
    current: RunningThreeDBag, http: httpx.AsyncClient
) -> None:
    _, lines = reference(current)
    wanted = lines[42]["id"]
    connector = make(current.url, http)
    page = await connector.query("pand", FeatureQuery(limit=10, property_equals={"identificatie": wanted}))
    assert ids(page.features) == [wanted]
    assert page.number_matched == 1 and page.has_more is False
    assert [r.path for r in current.emulator.sent()] == [f"{ITEMS}/{wanted}"]
    skipped = await connector.query(
        "pand", FeatureQuery(limit=10, offset=1, property_equals={"identificatie": wanted})
    )
    assert skipped.features == [] and skipped.number_matched == 1
    elsewhere = BBox(0.0, 0.0, 10.0, 10.0, crs=RD_NEW)
    outside = await connector.query(
        "pand", FeatureQuery(limit=10, bbox=elsewhere, property_equals={"identificatie": wanted})
    )
    assert outside.features == [] and outside.number_matched == 0
    current.emulator.clear()
    nonsense = await connector.query("pand", FeatureQuery(limit=10, property_equals={"identificatie": "x"}))
    assert nonsense.features == [] and current.emulator.sent() == []


async def test_item_endpoint(api: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    connector = make(api.url, http)
    page = await connector.query("pand", FeatureQuery(limit=1000))
    for listed in page.features[:: max(1, len(page.features) // 12)]:
        api.emulator.clear()
        single = await connector.get_feature("pand", str(listed["id"]), crs=CRS84)
        assert single == listed
        (request,) = api.emulator.sent()
        assert request.path == f"{ITEMS}/{listed['id']}" and request.params == [("crs", RD_NAP)]
    assert await connector.get_feature("pand", "NL.IMBAG.Pand.0503100000000000", crs=RD_NEW) is None
    api.emulator.clear()
    first = str(page.features[0]["id"])
    for malformed in (
        "../collections",
        "NL.IMBAG.Pand.123",
        f"{first}-0",
        "0503100000025473",
        f"{first}?f=x",
    ):
        assert await connector.get_feature("pand", malformed, crs=RD_NEW) is None
    assert api.emulator.sent() == []


# --- what is sent, and what the emulator refuses ----------------------------------------------


async def test_only_contract_parameters_are_ever_sent(api: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    connector = make(api.url, http, page_size=3)
    shapes = footprints(api)
    minx, miny, maxx, maxy = shapely.total_bounds(list(shapes.values()))
    box = BBox(minx, miny, (minx + maxx) / 2, maxy, crs=RD_NEW)
    await connector.describe()
    await walk(connector, 4)
    await walk(connector, 4, bbox=box)
    await walk(connector, 4, bbox=box, property_equals={"status": "Pand in gebruik"})
    await connector.query("pand", FeatureQuery(limit=2, bbox=BBox(4.35, 52.0, 4.37, 52.02, crs=CRS84)))
    await connector.query(
        "pand", FeatureQuery(limit=2, property_equals={"identificatie": next(iter(shapes))})
    )
    await connector.get_feature("pand", next(iter(shapes)), crs=CRS84)
    sent = api.emulator.sent()
    assert len(sent) > 10
    for request in sent:
        keys = [k for k, _ in request.params]
        assert len(keys) == len(set(keys))
        allowed = ITEMS_PARAMETERS if request.path == ITEMS else {"crs"}
        assert set(keys) <= allowed, request
        assert request.status == 200, request


@pytest.mark.parametrize(
    "query",
    ["f=json", "limit=0", "limit=101", "limit=ten", "offset=0", "offset=-3",
     f"crs={CRS84}", f"bbox-crs={RD_NEW}", "bbox=1,2,3", "bbox=a,b,c,d", "filter=status='x'",
     "properties=status", "sortby=h_dak_max"],
)  # fmt: skip
def test_emulator_refuses_what_the_api_refuses(current: RunningThreeDBag, query: str) -> None:
    response = httpx.get(f"{current.url}{ITEMS}?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == 400


def test_emulator_item_contract(current: RunningThreeDBag) -> None:
    _, lines = reference(current)
    building = lines[0]["id"]
    ok = httpx.get(f"{current.url}{ITEMS}/{building}", params={"crs": RD_NAP})
    assert ok.status_code == 200
    assert set(ok.json()) == {"id", "metadata", "feature", "links"}
    part = httpx.get(f"{current.url}{ITEMS}/{building}-0")
    assert part.status_code == 200 and part.json()["id"] == building
    assert httpx.get(f"{current.url}{ITEMS}/{building}", params={"limit": "1"}).status_code == 400
    assert httpx.get(f"{current.url}{ITEMS}/NL.IMBAG.Pand.0503100000000000").status_code == 404
    full = httpx.get(f"{current.url}{ITEMS}", params={"offset": len(lines) - 1, "limit": 1}).json()
    # as the live API does, the last page but one links no next page: page by numberMatched
    assert full["numberReturned"] == 1 and "next" not in {link["rel"] for link in full["links"]}


# --- errors --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[str]:
    """An API answering each kind of wrong thing under its own path prefix."""

    def page(metadata: Any, features: list[Any]) -> dict[str, Any]:
        return {"type": "FeatureCollection", "numberMatched": len(features), "metadata": metadata,
                "features": features, "links": []}  # fmt: skip

    header, lines = read_sequence(CURRENT_JSONL)
    broken_line = {**lines[0], "vertices": lines[0]["vertices"][:3]}

    async def handler(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind == "slow":
            await asyncio.sleep(3)
        if kind == "error500":
            return JSONResponse({"code": 500, "name": "Internal Server Error"}, status_code=500)
        if kind == "refused":
            return JSONResponse({"code": 400, "name": "Bad Request", "description": "no"}, status_code=400)
        if kind == "forbidden":
            return JSONResponse({"code": 403}, status_code=403)
        if kind == "notjson":
            return Response("<html>maintenance</html>", media_type="text/html")
        if kind == "nometadata":
            return JSONResponse(page(None, lines[:1]))
        if kind == "badtransform":
            return JSONResponse(page({**header, "transform": {"scale": [1, 1]}}, lines[:1]))
        if kind == "badvertices":
            return JSONResponse(page(header, [broken_line]))
        if kind == "notcollection":
            return JSONResponse({"type": "Feature"})
        if kind == "failslater":
            if int(request.query_params.get("offset", "1")) > 1:
                return JSONResponse({"code": 502, "name": "Bad Gateway"}, status_code=502)
            served = page(header, lines[: int(request.query_params.get("limit", "10"))])
            return JSONResponse({**served, "numberMatched": 1000})
        if kind == "othercrs":
            other = {**header, "metadata": {**header["metadata"], "referenceSystem": CRS84}}
            return JSONResponse(page(other, lines[:1]))
        return JSONResponse(page(header, lines[:1]))

    routes = [
        Route("/{kind}/collections/pand/items", handler),
        Route("/{kind}/collections/pand/items/{id}", handler),
    ]
    with serve(Starlette(routes=routes)) as url:
        yield url


async def test_unreachable_api_is_unavailable(http: httpx.AsyncClient) -> None:
    with refusing_port() as port:
        connector = make(f"http://127.0.0.1:{port}", http)
        with pytest.raises(UpstreamUnavailable):
            await connector.describe()
        with pytest.raises(UpstreamUnavailable):
            await connector.get_feature("pand", "NL.IMBAG.Pand.0503100000025473", crs=RD_NEW)


async def test_slow_api_times_out(misbehaving: str, http: httpx.AsyncClient) -> None:
    with pytest.raises(UpstreamTimeout):
        await make(f"{misbehaving}/slow", http, timeout=0.3).query("pand", FeatureQuery(limit=1))


@pytest.mark.parametrize(("kind", "error"), [
    ("error500", UpstreamUnavailable), ("forbidden", UpstreamUnavailable),
    ("refused", UpstreamInvalidResponse), ("notjson", UpstreamInvalidResponse),
    ("nometadata", UpstreamInvalidResponse), ("badtransform", UpstreamInvalidResponse),
    ("badvertices", UpstreamInvalidResponse), ("notcollection", UpstreamInvalidResponse),
    ("othercrs", UpstreamInvalidResponse),
])  # fmt: skip
async def test_wrong_answers_are_mapped(
    misbehaving: str, http: httpx.AsyncClient, kind: str, error: type
) -> None:
    connector = make(f"{misbehaving}/{kind}", http)
    with pytest.raises(error) as caught:
        await connector.query("pand", FeatureQuery(limit=1))
    assert caught.value.source_id == "3dbag"
    ok = make(f"{misbehaving}/fine", http)
    assert len((await ok.query("pand", FeatureQuery(limit=1))).features) == 1


async def test_a_failing_page_among_concurrent_ones(misbehaving: str, http: httpx.AsyncClient) -> None:
    connector = make(f"{misbehaving}/failslater", http, page_size=50)
    first = await connector.query("pand", FeatureQuery(limit=50))
    assert len(first.features) == 50 and first.number_matched == 1000
    with pytest.raises(UpstreamUnavailable, match="502"):
        await connector.query("pand", FeatureQuery(limit=200))


async def test_non_http_answer_is_invalid(http: httpx.AsyncClient) -> None:
    with raw_tcp(b"\x00\x01not HTTP\r\n\r\n") as url, pytest.raises(UpstreamInvalidResponse):
        await make(url, http, timeout=2).query("pand", FeatureQuery(limit=1))


async def test_what_the_api_cannot_do_is_refused(current: RunningThreeDBag, http: httpx.AsyncClient) -> None:
    connector = make(current.url, http)
    for query in (
        FeatureQuery(limit=1, filter=parse_cql2_text("h_dak_max > 10")),
        FeatureQuery(limit=1, sortby=(SortKey("h_dak_max"),)),
        FeatureQuery(limit=1, datetime=Interval(None, None)),
    ):
        with pytest.raises(UnsupportedQuery):
            await connector.query("pand", query)
    with pytest.raises(UnsupportedQuery):
        await connector.query("gebouwen", FeatureQuery(limit=1))
    with pytest.raises(UnsupportedQuery):
        await connector.get_feature("gebouwen", "NL.IMBAG.Pand.0503100000025473", crs=RD_NEW)
    assert not connector.supports_filter("pand", parse_cql2_text("h_dak_max > 10"))
    assert current.emulator.sent() == []


# --- the same buildings from the API and from the file ---------------------------------------


async def test_api_and_file_give_the_same_features(
    current: RunningThreeDBag, http: httpx.AsyncClient
) -> None:
    from_api = await make(current.url, http).query("pand", FeatureQuery(limit=1000))
    file_connector = CityJsonConnector(CityJsonSettings(path=CURRENT_JSONL), source_id="file", http=http)
    await file_connector.open()
    from_file = await file_connector.query("delft_3dbag", FeatureQuery(limit=1000))
    assert from_api.features == from_file.features


# --- through the hub -----------------------------------------------------------------------


def test_the_hub_serves_the_api_and_the_file(
    threedbag_apis: ThreeDBagApis,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Registered as sources, both connectors answer OGC API requests; what the API cannot do
    (CQL2) the hub does, and the answers agree with brute force."""
    header, lines = read_sequence(CURRENT_JSONL)
    sources = [
        {"id": "bag3d", "title": "3D BAG", "connector": "3dbag", "classification": "open",
         "url": threedbag_apis.current.url},
        {"id": "delft", "title": "Delft", "connector": "cityjson", "classification": "open",
         "path": str(CURRENT_JSONL)},
    ]  # fmt: skip
    box = (4.3690, 52.0040, 4.3730, 52.0070)
    in_box = []
    for line in lines:
        rings = lod0_rings(line["CityObjects"], line["id"], line["vertices"], header["transform"])
        assert rings is not None
        xs, ys = RD_TO_LONLAT.transform([p[0] for p in rings[0]], [p[1] for p in rings[0]])
        if shapely.Polygon(list(zip(xs, ys, strict=True))).intersects(shapely.box(*box)):
            in_box.append(line["id"])
    tall = [
        line["id"] for line in lines if line["CityObjects"][line["id"]]["attributes"]["b3_h_dak_max"] > 20
    ]
    with serve_hub(hub_settings(tmp_path, sources)) as base:
        for collection in ("bag3d", "delft"):
            wait_until_served(base, collection)
            items = f"{base}/ogc/v1/collections/{collection}/items"
            got = httpx.get(
                items, params={"f": "json", "limit": 1000, "bbox": ",".join(map(str, box))}, timeout=30
            )
            assert got.status_code == 200, got.text
            assert [f["id"] for f in got.json()["features"]] == in_box
            filtered = httpx.get(
                items, params={"f": "json", "limit": 1000, "filter": "h_dak_max > 20"}, timeout=30
            )
            assert filtered.status_code == 200, filtered.text
            assert [f["id"] for f in filtered.json()["features"]] == tall
            one = httpx.get(f"{items}/{lines[3]['id']}", params={"f": "json"}, timeout=30)
            assert one.status_code == 200 and one.json()["properties"]["identificatie"] == lines[3]["id"]
            assert httpx.get(f"{items}/NL.IMBAG.Pand.0503100000000000", timeout=30).status_code == 404
