"""The SensorThings connector against the SensorThings API emulator, and the emulator itself.

Expected answers are computed from what the emulator holds (its store), read directly and not
through HTTP or the connector's own mapping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import shape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import CRS84, RD_NEW, BBox, FeatureQuery, Interval
from connectors.errors import (
    ConnectorConfigError,
    UnsupportedQuery,
    UpstreamInvalidResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from connectors.registry import connector_class
from connectors.sensorthings import SensorThingsConnector, SensorThingsSettings
from tests.fixtures.hub import hub_settings, serve_hub, wait_until_served
from tests.fixtures.loopback import refusing_port, serve
from tests.fixtures.sensorthings import (
    SensorStore,
    SensorThingsEmulator,
    serve_sensorthings,
    waste_bin_store,
)
from tests.shared_data import AFVALBAKKEN, require_shared

GEOJSON = ("application/geo+json", "application/vnd.geo+json")
DAY_TWO = Interval(datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC))


# -- what the emulator holds, read directly ----------------------------------------------------


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def reference(
    store: SensorStore, interval: Interval | None = None, *, by_property: bool = False
) -> dict[int, dict[str, Any]]:
    """Every Thing as the feature it should become, by id, in id order."""
    things = store.entities["Things"]
    out: dict[int, dict[str, Any]] = {}
    for thing_id in sorted(things):
        thing = things[thing_id]
        locations = [
            store.entities["Locations"][i] for i in store.navigate("Things", thing_id, "Locations")[1]
        ]
        geometries = [loc["location"] for loc in locations if loc["encodingType"] in GEOJSON]
        geometry: dict[str, Any] | None = None
        if len(geometries) == 1:
            geometry = geometries[0]
        elif geometries:
            geometry = {"type": "GeometryCollection", "geometries": geometries}
        properties: dict[str, Any] = {
            **thing["properties"],
            "name": thing["name"],
            "description": thing["description"],
        }
        latest: datetime | None = None
        for ds_id in store.navigate("Things", thing_id, "Datastreams")[1]:
            datastream = store.entities["Datastreams"][ds_id]
            key = datastream["name"]
            if by_property:
                observed = store.navigate("Datastreams", ds_id, "ObservedProperty")[1][0]
                key = store.entities["ObservedProperties"][observed]["name"]
            readings = [
                (_time(o["phenomenonTime"]), o["result"])
                for o in (
                    store.entities["Observations"][i]
                    for i in store.navigate("Datastreams", ds_id, "Observations")[1]
                )
            ]
            if interval is not None:
                readings = [
                    (t, r)
                    for t, r in readings
                    if (interval.start is None or t >= interval.start)
                    and (interval.end is None or t <= interval.end)
                ]
            moment, result = max(readings) if readings else (None, None)
            properties[key] = result
            properties[f"{key}_time"] = moment
            properties[f"{key}_unit"] = datastream["unitOfMeasurement"]["symbol"]
            if moment is not None and (latest is None or moment > latest):
                latest = moment
        if interval is not None and latest is None:
            continue
        properties["phenomenonTime"] = latest
        out[thing_id] = {"type": "Feature", "id": thing_id, "geometry": geometry, "properties": properties}
    return out


def normalised(feature: dict[str, Any]) -> dict[str, Any]:
    """A connector feature with its time properties as datetimes, to compare with the reference."""
    properties = {
        k: _time(v) if (k.endswith("_time") or k == "phenomenonTime") and isinstance(v, str) else v
        for k, v in feature["properties"].items()
    }
    return {**feature, "properties": properties}


def located_points(store: SensorStore) -> dict[int, tuple[float, float]]:
    """The lon/lat of every Thing with a GeoJSON point Location."""
    return {
        thing_id: tuple(feature["geometry"]["coordinates"])
        for thing_id, feature in reference(store).items()
        if feature["geometry"] is not None
    }


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store() -> SensorStore:
    require_shared()
    return waste_bin_store(AFVALBAKKEN)


@pytest.fixture(scope="module")
def emulator(store: SensorStore) -> SensorThingsEmulator:
    return SensorThingsEmulator(store)


@pytest.fixture(scope="module")
def root(emulator: SensorThingsEmulator) -> Iterator[str]:
    with serve_sensorthings(emulator) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make(url: str, http: httpx.AsyncClient, **settings: Any) -> SensorThingsConnector:
    return SensorThingsConnector(SensorThingsSettings(url=url, **settings), source_id="sensoren", http=http)


@pytest.fixture
async def connector(root: str, http: httpx.AsyncClient) -> SensorThingsConnector:
    described = make(root, http)
    await described.describe()
    return described


async def read_all(
    connector: SensorThingsConnector, limit: int, **query: Any
) -> tuple[list[dict[str, Any]], list[int | None]]:
    """Every page of a query, and the numberMatched each page gave."""
    features: list[dict[str, Any]] = []
    counts: list[int | None] = []
    offset = 0
    while True:
        page = await connector.query("things", FeatureQuery(limit=limit, offset=offset, **query))
        assert page.crs == CRS84
        features.extend(page.features)
        counts.append(page.number_matched)
        offset += len(page.features)
        if not page.has_more:
            return features, counts
        assert page.features, "a page said more follows but was empty"


# -- the connector -----------------------------------------------------------------------------


def test_registry_resolves_the_kind() -> None:
    assert connector_class("sensorthings") is SensorThingsConnector


async def test_describe_learns_fields_extents_and_capabilities(
    root: str, store: SensorStore, http: httpx.AsyncClient
) -> None:
    [info] = await make(root, http).describe()
    fields = {f.name: f for f in info.fields}
    assert {"afvalbak_id", "soort", "plaatsingsdatum", "name", "description", "phenomenonTime"} <= set(fields)
    assert fields["vulgraad"].type == "number" and fields["vulgraad"].title == "vulgraad (%)"
    assert fields["temperatuur_time"].type == "date-time" and fields["temperatuur_unit"].type == "string"
    assert fields["afvalbak_id"].type == "integer"
    assert info.time_field == "phenomenonTime" and info.geometry_type == "Point"
    assert info.capabilities.datetime and not info.capabilities.filter and info.capabilities.crs == (CRS84,)
    points = list(located_points(store).values())
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert info.extent_crs84 == (min(xs), min(ys), max(xs), max(ys))
    times = [_time(o["phenomenonTime"]) for o in store.entities["Observations"].values()]
    assert info.temporal_extent is not None
    assert (_time(info.temporal_extent[0] or ""), _time(info.temporal_extent[1] or "")) == (
        min(times),
        max(times),
    )


async def test_describe_gives_no_extent_when_it_reads_only_part(root: str, http: httpx.AsyncClient) -> None:
    [info] = await make(root, http, describe_limit=30, page_size=20).describe()
    assert info.extent_crs84 is None and info.temporal_extent is None
    assert "vulgraad" in {f.name for f in info.fields}


async def test_pages_hold_every_thing_once_with_its_latest_readings(
    connector: SensorThingsConnector, store: SensorStore, emulator: SensorThingsEmulator
) -> None:
    expected = reference(store)
    before = len(emulator.requests)
    features, counts = await read_all(connector, 7)
    assert [f["id"] for f in features] == list(expected)
    assert [normalised(f) for f in features] == list(expected.values())
    assert set(counts) == {len(expected)}
    # one request per page: Locations and latest Observations come expanded, never per Thing
    requests = emulator.requests[before:]
    assert len(requests) == len(counts)
    assert all("Observations($orderby=phenomenonTime desc;$top=1)" in p["$expand"] for _, p, _ in requests)


async def test_things_without_readings_or_location_are_listed_with_nulls(
    connector: SensorThingsConnector,
) -> None:
    silent = await connector.get_feature("things", "7", crs=CRS84)  # every 7th fill-level sensor is new
    assert silent is not None and silent["properties"]["vulgraad"] is None
    assert silent["properties"]["vulgraad_time"] is None and silent["properties"]["vulgraad_unit"] == "%"
    unplaced = await connector.get_feature("things", "25", crs=CRS84)
    assert unplaced is not None and unplaced["geometry"] is None


async def test_a_capped_page_size_is_read_through_next_links(
    store: SensorStore, http: httpx.AsyncClient
) -> None:
    capped = SensorThingsEmulator(store, max_top=10)
    expected = list(reference(store).values())
    with serve_sensorthings(capped) as url:
        connector = make(url, http)
        page = await connector.query("things", FeatureQuery(limit=25, offset=40))
    assert [normalised(f) for f in page.features] == expected[40:65]
    assert page.number_matched == len(expected) and page.has_more
    assert len(capped.requests) == 3  # 10 + 10 + 5, following @iot.nextLink
    assert capped.requests[1][1]["$skip"] == "50"


async def test_datetime_shows_the_latest_reading_within_and_leaves_out_silent_things(
    connector: SensorThingsConnector, store: SensorStore
) -> None:
    expected = reference(store, DAY_TWO)
    assert 0 < len(expected) < len(store.entities["Things"])
    features, counts = await read_all(connector, 10, datetime=DAY_TWO)
    assert [normalised(f) for f in features] == list(expected.values())
    assert counts[-1] == len(expected)
    assert all(DAY_TWO.start <= _time(f["properties"]["phenomenonTime"]) <= DAY_TWO.end for f in features)


async def test_datetime_pages_resume_where_the_previous_page_ended(
    root: str, store: SensorStore, emulator: SensorThingsEmulator, http: httpx.AsyncClient
) -> None:
    connector = make(root, http, page_size=20)
    expected = list(reference(store, DAY_TWO).values())
    first = await connector.query("things", FeatureQuery(limit=60, datetime=DAY_TWO))
    before = len(emulator.requests)
    second = await connector.query("things", FeatureQuery(limit=60, offset=60, datetime=DAY_TWO))
    assert [normalised(f) for f in first.features + second.features] == expected[:120]
    assert int(emulator.requests[before][1].get("$skip", "0")) > 0


async def test_open_ended_and_instant_datetimes(connector: SensorThingsConnector, store: SensorStore) -> None:
    late = Interval(datetime(2024, 3, 6, 12, tzinfo=UTC), None)
    features, _ = await read_all(connector, 50, datetime=late)
    assert [normalised(f) for f in features] == list(reference(store, late).values())
    moment = _time(store.entities["Observations"][1]["phenomenonTime"])
    instant = Interval(moment, moment)
    features, _ = await read_all(connector, 50, datetime=instant)
    expected = reference(store, instant)
    assert expected and [normalised(f) for f in features] == list(expected.values())


def _box_ids(store: SensorStore, box: tuple[float, float, float, float], crs: str = CRS84) -> list[int]:
    polygon = shapely.box(*box)
    to_box = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True) if crs == RD_NEW else None
    hits = []
    for thing_id, (lon, lat) in located_points(store).items():
        x, y = to_box.transform(lon, lat) if to_box else (lon, lat)
        if polygon.intersects(shapely.Point(x, y)):
            hits.append(thing_id)
    return hits


async def test_crs84_bbox_is_pushed_down_with_server_counts(
    connector: SensorThingsConnector, store: SensorStore, emulator: SensorThingsEmulator
) -> None:
    box = (4.88, 52.36, 4.91, 52.375)
    expected = _box_ids(store, box)
    before = len(emulator.requests)
    page = await connector.query("things", FeatureQuery(limit=5, offset=2, bbox=BBox(*box)))
    assert [f["id"] for f in page.features] == expected[2:7]
    assert page.number_matched == len(expected)  # @iot.count of the exact server query
    sent = emulator.requests[before][1]
    assert sent["$filter"] == (
        "st_intersects(Locations/location, "
        "geography'POLYGON ((4.91 52.36, 4.91 52.375, 4.88 52.375, 4.88 52.36, 4.91 52.36))')"
    )
    assert sent["$skip"] == "2" and sent["$count"] == "true"


async def test_rd_bbox_is_exact_at_its_edges(connector: SensorThingsConnector, store: SensorStore) -> None:
    to_rd = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True)
    points = sorted(to_rd.transform(lon, lat) for lon, lat in located_points(store).values())
    # a box whose west edge passes exactly through one Thing and just east of another
    x_edge = points[len(points) // 2][0]
    box = (x_edge, 480_000.0, x_edge + 1500.0, 490_000.0)
    expected = _box_ids(store, box, RD_NEW)
    assert expected
    features, counts = await read_all(connector, 4, bbox=BBox(*box, crs=RD_NEW))
    assert [f["id"] for f in features] == expected
    assert counts[-1] == len(expected)


async def test_a_server_answering_bbox_from_a_coarse_index_is_caught(
    store: SensorStore, http: httpx.AsyncClient
) -> None:
    sloppy = SensorThingsEmulator(store, sloppy_spatial=0.003)
    box = (4.88, 52.36, 4.91, 52.375)
    expected = _box_ids(store, box)
    with serve_sensorthings(sloppy) as url:
        connector = make(url, http)
        for _ in range(2):  # once found out, once distrusted from the start
            features, counts = await read_all(connector, 6, bbox=BBox(*box))
            assert [f["id"] for f in features] == expected
            assert counts[-1] == len(expected)


async def test_bbox_and_datetime_together(connector: SensorThingsConnector, store: SensorStore) -> None:
    box = (4.85, 52.35, 4.93, 52.39)
    in_box = set(_box_ids(store, box))
    expected = [f for i, f in reference(store, DAY_TWO).items() if i in in_box]
    features, _ = await read_all(connector, 8, bbox=BBox(*box), datetime=DAY_TWO)
    assert expected and [normalised(f) for f in features] == expected


async def test_property_equality_on_thing_and_reading_properties(
    connector: SensorThingsConnector, store: SensorStore, emulator: SensorThingsEmulator
) -> None:
    everything = reference(store)
    kind = "Constructo 100-liter, RVS uitvoering"
    features, counts = await read_all(connector, 5, property_equals={"soort": kind})
    assert [f["id"] for f in features] == [
        i for i, f in everything.items() if f["properties"]["soort"] == kind
    ]
    assert counts[-1] == len(features)
    name = everything[3]["properties"]["name"]
    before = len(emulator.requests)
    page = await connector.query("things", FeatureQuery(limit=10, property_equals={"name": name}))
    assert [f["id"] for f in page.features] == [
        i for i, f in everything.items() if f["properties"]["name"] == name
    ]
    assert emulator.requests[before][1]["$filter"] == f"name eq '{name}'"
    level = everything[1]["properties"]["vulgraad"]
    assert isinstance(level, float) and level.is_integer()
    same = [i for i, f in everything.items() if f["properties"]["vulgraad"] == level]
    page = await connector.query(
        "things", FeatureQuery(limit=100, property_equals={"vulgraad": str(int(level))})
    )
    assert [f["id"] for f in page.features] == same


async def test_steward_filter_selects_things_for_queries_and_ids(
    root: str, store: SensorStore, http: httpx.AsyncClient
) -> None:
    connector = make(root, http, filter="properties/soort eq 'Afwijkend'", collection="afwijkend")
    [info] = await connector.describe()
    assert info.id == "afwijkend"
    expected = [i for i, f in reference(store).items() if f["properties"]["soort"] == "Afwijkend"]
    page = await connector.query("afwijkend", FeatureQuery(limit=100))
    assert expected and [f["id"] for f in page.features] == expected
    assert page.number_matched == len(expected)
    outside = next(i for i in store.entities["Things"] if i not in expected)
    assert await connector.get_feature("afwijkend", str(outside), crs=CRS84) is None
    assert await connector.get_feature("afwijkend", str(expected[0]), crs=CRS84) is not None


async def test_get_feature_by_id_and_in_rd(connector: SensorThingsConnector, store: SensorStore) -> None:
    expected = reference(store)[12]
    feature = await connector.get_feature("things", "12", crs=CRS84)
    assert feature is not None and normalised(feature) == expected
    rd = await connector.get_feature("things", "12", crs=RD_NEW)
    assert rd is not None
    lon, lat = expected["geometry"]["coordinates"]
    x, y = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True).transform(lon, lat)
    assert rd["geometry"]["coordinates"] == pytest.approx([x, y], abs=1e-6)


async def test_get_feature_of_an_absent_or_impossible_id(
    connector: SensorThingsConnector, emulator: SensorThingsEmulator
) -> None:
    assert await connector.get_feature("things", "99999", crs=CRS84) is None
    before = len(emulator.requests)
    for impossible in ("abc", "012", "-3", "1 or 1"):
        assert await connector.get_feature("things", impossible, crs=CRS84) is None
    assert len(emulator.requests) == before  # ids are numbers here: not asked at all


async def test_readings_named_after_the_observed_property(
    root: str, store: SensorStore, http: httpx.AsyncClient
) -> None:
    connector = make(root, http, property_names="observed-property")
    [info] = await connector.describe()
    assert {"Vulgraad", "Temperatuur_time"} <= {f.name for f in info.fields}
    page = await connector.query("things", FeatureQuery(limit=20, datetime=DAY_TWO))
    expected = list(reference(store, DAY_TWO, by_property=True).values())[:20]
    assert [normalised(f) for f in page.features] == expected


async def test_several_geojson_locations_become_a_geometry_collection(http: httpx.AsyncClient) -> None:
    small = SensorStore()
    thing = small.add(
        "Things", {"name": "Mobiele sensor", "description": "op twee plekken", "properties": None}
    )
    for lon in (4.90, 4.95):
        location = small.add(
            "Locations",
            {"name": "plek", "description": "", "encodingType": "application/geo+json",
             "location": {"type": "Point", "coordinates": [lon, 52.37]}},
        )  # fmt: skip
        small.link("Things", thing, "Locations", location)
    with serve_sensorthings(SensorThingsEmulator(small)) as url:
        connector = make(url, http)
        [info] = await connector.describe()
        assert info.geometry_type == "GeometryCollection"
        east = await connector.query("things", FeatureQuery(limit=5, bbox=BBox(4.94, 52.36, 4.96, 52.38)))
        nowhere = await connector.query("things", FeatureQuery(limit=5, bbox=BBox(4.92, 52.36, 4.93, 52.38)))
    [feature] = east.features
    assert [g["coordinates"] for g in feature["geometry"]["geometries"]] == [[4.90, 52.37], [4.95, 52.37]]
    assert feature["properties"] == {
        "name": "Mobiele sensor",
        "description": "op twee plekken",
        "phenomenonTime": None,
    }
    assert nowhere.features == [] and nowhere.number_matched == 0


async def test_cql2_filter_and_sorting_are_left_to_the_hub(connector: SensorThingsConnector) -> None:
    from pygeofilter.parsers.cql2_text import parse

    assert not connector.supports_filter("things", parse("vulgraad > 50"))
    with pytest.raises(UnsupportedQuery):
        await connector.query("things", FeatureQuery(limit=1, filter=parse("vulgraad > 50")))


# -- configuration and failures ----------------------------------------------------------------


def test_settings_refuse_a_url_with_a_query_and_an_empty_filter() -> None:
    with pytest.raises(ValueError, match="service root"):
        SensorThingsSettings(url="https://example.org/v1.1?x=1")
    with pytest.raises(ValueError, match="filter"):
        SensorThingsSettings(url="https://example.org/v1.1", filter="  ")


async def test_a_filter_the_server_refuses_is_a_configuration_error(
    root: str, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ConnectorConfigError, match="configured filter"):
        await make(root, http, filter="substringof('Afval', name)").describe()


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[str]:
    """A server that fails in the ways real services do, one way per path."""

    async def slow(request: Request) -> Response:
        await asyncio.sleep(2)
        return JSONResponse({"value": []})

    async def broken(request: Request) -> Response:
        return JSONResponse({"code": 500, "type": "error", "message": "database down"}, status_code=500)

    async def garbage(request: Request) -> Response:
        return Response("<html>proxy error</html>", media_type="text/html")

    async def not_things(request: Request) -> Response:
        return JSONResponse({"value": [{"name": "no id"}]})

    async def root_without_things(request: Request) -> Response:
        return JSONResponse({"value": [{"name": "Datastreams", "url": "x"}]})

    async def refusing(request: Request) -> Response:
        return JSONResponse({"code": 400, "type": "error", "message": "Query is not valid"}, status_code=400)

    async def auth(request: Request) -> Response:
        return JSONResponse({"message": "no"}, status_code=401)

    app = Starlette(
        routes=[
            Route("/slow/v1.1/Things", slow),
            Route("/broken/v1.1/Things", broken),
            Route("/garbage/v1.1/Things", garbage),
            Route("/notthings/v1.1/Things", not_things),
            Route("/nothings/v1.1", root_without_things),
            Route("/refusing/v1.1/Things", refusing),
            Route("/auth/v1.1/Things", auth),
        ]
    )
    with serve(app) as url:
        yield url


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("broken", UpstreamUnavailable),
        ("garbage", UpstreamInvalidResponse),
        ("notthings", UpstreamInvalidResponse),
        ("refusing", UnsupportedQuery),
        ("auth", UpstreamUnavailable),
    ],
)
async def test_upstream_failures_are_mapped(
    misbehaving: str, http: httpx.AsyncClient, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await make(f"{misbehaving}/{path}/v1.1", http).query("things", FeatureQuery(limit=1))


async def test_slow_server_times_out(misbehaving: str, http: httpx.AsyncClient) -> None:
    with pytest.raises(UpstreamTimeout):
        await make(f"{misbehaving}/slow/v1.1", http, timeout=0.3).query("things", FeatureQuery(limit=1))


async def test_a_root_without_things_is_not_a_sensorthings_service(
    misbehaving: str, http: httpx.AsyncClient
) -> None:
    with pytest.raises(UpstreamInvalidResponse, match="no Things"):
        await make(f"{misbehaving}/nothings/v1.1", http).describe()


async def test_refused_connection_is_unavailable(http: httpx.AsyncClient) -> None:
    with refusing_port() as port, pytest.raises(UpstreamUnavailable):
        await make(f"http://127.0.0.1:{port}/v1.1", http).describe()


# -- the emulator keeps to the contract --------------------------------------------------------


def test_emulator_pages_with_next_links_and_counts(root: str, store: SensorStore) -> None:
    seen: list[int] = []
    url: str | None = f"{root}/Things?$top=40&$count=true"
    while url:
        body = httpx.get(url).json()
        assert body["@iot.count"] == len(store.entities["Things"])
        seen.extend(thing["@iot.id"] for thing in body["value"])
        url = body.get("@iot.nextLink")
    assert seen == sorted(store.entities["Things"])
    thing = httpx.get(f"{root}/Things(3)").json()
    assert thing["@iot.selfLink"] == f"{root}/Things(3)"
    linked = httpx.get(thing["Datastreams@iot.navigationLink"]).json()["value"]
    assert [d["@iot.id"] for d in linked] == store.navigate("Things", 3, "Datastreams")[1]


def test_emulator_expands_per_parent_and_links_the_rest(root: str, store: SensorStore) -> None:
    params = {"$expand": "Observations($orderby=phenomenonTime desc;$top=2)", "$top": "3"}
    for datastream in httpx.get(f"{root}/Datastreams", params=params).json()["value"]:
        ids = store.navigate("Datastreams", datastream["@iot.id"], "Observations")[1]
        times = sorted((store.entities["Observations"][i]["phenomenonTime"] for i in ids), reverse=True)
        assert [o["phenomenonTime"] for o in datastream["Observations"]] == times[:2]
        if len(ids) > 2:
            rest = httpx.get(datastream["Observations@iot.nextLink"]).json()["value"]
            assert [o["phenomenonTime"] for o in rest] == times[2:4]  # the next link keeps $top


@pytest.mark.parametrize(
    "params",
    [
        {"$select": "name"},
        {"$filter": "substringof('x', name)"},
        {"$filter": "id add 1 eq 2"},
        {"$filter": "nosuchproperty eq 1"},
        {"$filter": "name eq 'unterminated"},
        {"$expand": "Datastreams($select=name)"},
        {"$top": "-1"},
    ],
)
def test_emulator_refuses_what_it_does_not_implement(root: str, params: dict[str, str]) -> None:
    response = httpx.get(f"{root}/Things", params=params)
    assert response.status_code == 400
    assert response.json()["type"] == "error"


def test_emulator_filters_through_relations_with_any_semantics(root: str, store: SensorStore) -> None:
    condition = "Datastreams/Observations/result ge 99 and properties/afvalbak_id gt 100"
    body = httpx.get(f"{root}/Things", params={"$filter": condition, "$top": "1000"}).json()
    expected = [
        i
        for i, thing in sorted(store.entities["Things"].items())
        if thing["properties"]["afvalbak_id"] > 100
        and any(
            store.entities["Observations"][o]["result"] >= 99
            for d in store.navigate("Things", i, "Datastreams")[1]
            for o in store.navigate("Datastreams", d, "Observations")[1]
        )
    ]
    assert expected and [t["@iot.id"] for t in body["value"]] == expected


# -- through the hub ---------------------------------------------------------------------------


def test_hub_serves_sensor_things_with_datetime(root: str, store: SensorStore, tmp_path: Any) -> None:
    source = {"id": "afvalbak-sensoren", "title": "Afvalbaksensoren", "connector": "sensorthings",
              "classification": "open", "url": root, "page_size": 50}  # fmt: skip
    with serve_hub(hub_settings(tmp_path, [source])) as base_url:
        wait_until_served(base_url, "afvalbak-sensoren")
        items = f"{base_url}/ogc/v1/collections/afvalbak-sensoren/items"
        expected = reference(store, DAY_TWO)
        got: list[dict[str, Any]] = []
        url: str | None = items
        params: dict[str, Any] | None = {"datetime": "2024-03-02T00:00:00Z/2024-03-03T00:00:00Z", "limit": 40}
        while url:
            response = httpx.get(url, params=params, timeout=30)
            assert response.status_code == 200, response.text
            page = response.json()
            got.extend(page["features"])
            url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
            params = None
        assert [normalised(f) for f in got] == list(expected.values())
        one = httpx.get(f"{items}/12", timeout=30).json()
        assert normalised(one)["properties"] == reference(store)[12]["properties"]
        assert shape(one["geometry"]).equals(shape(reference(store)[12]["geometry"]))
