"""A hub serving another hub's collections: two real hubs, the second serving the shared files.

Hub B serves the Amsterdam waste bins and announcements from files; hub A registers B as a
``hub`` source. Between them runs a recording proxy, so the tests see what A asked of B (what
was pushed down) and which Authorization header B received. Expected answers come from the
files themselves, or from B asked directly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from pygeofilter.parsers.cql2_text import parse
from pyproj import Transformer
from shapely.geometry import shape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import CRS84, RD_NEW, FeatureQuery, caller_credentials
from connectors.errors import UnsupportedQuery, UpstreamInvalidResponse
from connectors.hub import HubConnector, HubSettings
from connectors.ogcapi_features import OgcApiFeaturesConnector, OgcApiFeaturesSettings
from connectors.registry import connector_class
from hub.ogc.routes import CONFORMANCE
from tests.fixtures.hub import hub_settings, serve_hub, wait_until_served
from tests.fixtures.loopback import serve
from tests.fixtures.oidc import bearer, shared_issuer, steward
from tests.shared_data import SHARED, require_shared

AFVALBAKKEN = SHARED / "data" / "municipal" / "amsterdam_afvalbakken_2013.geojson"
BEKENDMAKINGEN = SHARED / "data" / "municipal" / "amsterdam_bekendmakingen_2013.geojson"


@dataclass
class Recorder:
    """What passed through the proxy: path, query parameters and Authorization of each request."""

    requests: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)

    def since(self, mark: int, path_part: str = "") -> list[tuple[str, dict[str, str], str | None]]:
        """The requests after ``mark`` whose path contains ``path_part``."""
        return [r for r in self.requests[mark:] if path_part in r[0]]


def recording_proxy(target: str, recorder: Recorder) -> Starlette:
    """A pass-through proxy to ``target`` that records every request it forwards."""

    async def forward(request: Request) -> Response:
        recorder.requests.append(
            (request.url.path, dict(request.query_params), request.headers.get("authorization"))
        )
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("accept", "authorization")}
        async with httpx.AsyncClient() as client:
            upstream = await client.get(
                target + request.url.path, params=request.query_params, headers=headers, timeout=60
            )
        passed = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() in ("content-type", "content-crs", "api-version")
        }
        return Response(upstream.content, status_code=upstream.status_code, headers=passed)

    return Starlette(routes=[Route("/{path:path}", forward)])


@dataclass(frozen=True)
class Peers:
    a: str
    """Hub A's base URL."""
    b: str
    """Hub B's base URL."""
    proxy: str
    """The proxy in front of B, which A uses."""
    recorder: Recorder


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    require_shared()
    sources_b = [
        {"id": "afvalbakken", "title": "Afvalbakken", "connector": "file", "classification": "open",
         "path": str(AFVALBAKKEN)},
        {"id": "bekendmakingen", "title": "Bekendmakingen", "connector": "file", "classification": "open",
         "path": str(BEKENDMAKINGEN), "time_field": "datum"},
    ]  # fmt: skip
    recorder = Recorder()
    with serve_hub(hub_settings(tmp_path_factory.mktemp("hub-b"), sources_b)) as b:
        wait_until_served(b, "afvalbakken")
        wait_until_served(b, "bekendmakingen")
        with serve(recording_proxy(b, recorder)) as proxy:
            source_a = {"id": "buren", "title": "Buurgemeente", "connector": "hub", "classification": "open",
                        "url": proxy, "timeout": 30}  # fmt: skip
            on_behalf = {"id": "namens", "title": "Buurgemeente namens de gebruiker", "connector": "hub",
                         "classification": "open", "url": proxy, "timeout": 30, "forward_token": True,
                         "collections": [{"upstream": "afvalbakken", "id": "namens-afvalbakken"}],
                         }  # fmt: skip
            settings_a = hub_settings(tmp_path_factory.mktemp("hub-a"), [source_a, on_behalf])
            with serve_hub(settings_a) as a:
                wait_until_served(a, "buren-afvalbakken")
                wait_until_served(a, "buren-bekendmakingen")
                wait_until_served(a, "namens-afvalbakken")
                yield Peers(a, b, proxy, recorder)


@cache
def _file(path: Path) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = json.loads(path.read_text())["features"]
    return features


def bin_key(feature: dict[str, Any]) -> tuple[Any, ...]:
    """A waste bin as comparable values (its ID alone repeats within the file)."""
    lon, lat = feature["geometry"]["coordinates"][:2]
    return (feature["properties"]["ID"], round(lon, 9), round(lat, 9))


def get_all(url: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    """Every feature, following ``next`` links, and the first page's numberMatched."""
    features: list[dict[str, Any]] = []
    matched: int | None = None
    next_url: str | None = url
    query: dict[str, Any] | None = params
    while next_url:
        response = httpx.get(next_url, params=query, timeout=60)
        assert response.status_code == 200, response.text
        page = response.json()
        if query is not None:
            matched = page.get("numberMatched")
        features.extend(page["features"])
        next_url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        query = None
        if not page["features"]:
            break
    return features, matched


def a_items(peers: Peers, collection: str) -> str:
    return f"{peers.a}/ogc/v1/collections/buren-{collection}/items"


def b_items(peers: Peers, collection: str) -> str:
    return f"{peers.b}/ogc/v1/collections/{collection}/items"


# -- two hubs, end to end ----------------------------------------------------------------------


def test_registry_resolves_the_kind() -> None:
    assert connector_class("hub") is HubConnector


def test_counts_and_ids_are_the_peers(peers: Peers) -> None:
    through_a, matched_a = get_all(a_items(peers, "afvalbakken"), {"limit": 700})
    direct_b, matched_b = get_all(b_items(peers, "afvalbakken"), {"limit": 700})
    source = _file(AFVALBAKKEN)
    assert matched_a == matched_b == len(through_a) == len(source)
    assert [f["id"] for f in through_a] == [f["id"] for f in direct_b]
    assert sorted(map(bin_key, through_a)) == sorted(map(bin_key, source))
    assert through_a == direct_b


def test_a_filter_is_pushed_down_and_honoured(peers: Peers) -> None:
    expected = sorted(bin_key(f) for f in _file(AFVALBAKKEN) if f["properties"]["SOORT"] == "Afwijkend")
    mark = len(peers.recorder.requests)
    got, matched = get_all(a_items(peers, "afvalbakken"), {"filter": "SOORT = 'Afwijkend'", "limit": 50})
    assert sorted(map(bin_key, got)) == expected and matched == len(expected)
    asked = peers.recorder.since(mark, "/items")
    # every request to the peer carried the filter: nothing was read through to filter in A
    assert asked and all("Afwijkend" in params.get("filter", "") for _, params, _ in asked)


def test_a_spatial_filter_in_rd_is_pushed_down(peers: Peers) -> None:
    to_rd = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True)
    polygon = shapely.box(121_000, 486_500, 122_000, 487_500)
    expected = sorted(
        bin_key(f)
        for f in _file(AFVALBAKKEN)
        if polygon.intersects(shapely.Point(to_rd.transform(*f["geometry"]["coordinates"])))
    )
    mark = len(peers.recorder.requests)
    params = {"filter": f"S_INTERSECTS(geometry, {polygon.wkt})", "filter-crs": RD_NEW, "limit": 1000}
    got, _ = get_all(a_items(peers, "afvalbakken"), params)
    assert expected and sorted(map(bin_key, got)) == expected
    [(_, sent, _)] = peers.recorder.since(mark, "/items")
    assert sent["filter-crs"] == RD_NEW and "S_INTERSECTS" in sent["filter"]


def test_output_crs_is_produced_by_the_peer(peers: Peers) -> None:
    mark = len(peers.recorder.requests)
    response = httpx.get(a_items(peers, "afvalbakken"), params={"crs": RD_NEW, "limit": 30}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Crs"] == f"<{RD_NEW}>"
    [(_, sent, _)] = peers.recorder.since(mark, "/items")
    assert sent["crs"] == RD_NEW
    to_rd = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True)
    by_id = {
        f["id"]: f for f in httpx.get(b_items(peers, "afvalbakken"), params={"limit": 30}).json()["features"]
    }
    for feature in response.json()["features"]:
        lon, lat = by_id[feature["id"]]["geometry"]["coordinates"]
        assert feature["geometry"]["coordinates"] == pytest.approx(list(to_rd.transform(lon, lat)), abs=1e-3)


def test_an_rd_bbox_goes_to_the_peer_as_it_is(peers: Peers) -> None:
    to_rd = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True)
    box = (120_500.0, 486_000.0, 121_800.0, 487_200.0)
    expected = sorted(
        bin_key(f)
        for f in _file(AFVALBAKKEN)
        if shapely.box(*box).intersects(shapely.Point(to_rd.transform(*f["geometry"]["coordinates"])))
    )
    mark = len(peers.recorder.requests)
    got, matched = get_all(
        a_items(peers, "afvalbakken"), {"bbox": ",".join(map(str, box)), "bbox-crs": RD_NEW, "limit": 40}
    )
    assert expected and sorted(map(bin_key, got)) == expected and matched == len(expected)
    asked = peers.recorder.since(mark, "/items")
    assert all(p["bbox-crs"] == RD_NEW and p["bbox"] == ",".join(map(repr, box)) for _, p, _ in asked)


def test_datetime_and_sortby_are_pushed_down(peers: Peers) -> None:
    start, end = datetime(2013, 6, 1), datetime(2013, 6, 10, 23, 59, 59)
    expected = sorted(
        (
            f
            for f in _file(BEKENDMAKINGEN)
            if start <= datetime.fromisoformat(f["properties"]["datum"]) <= end
        ),
        key=lambda f: f["properties"]["datum"],
        reverse=True,
    )
    mark = len(peers.recorder.requests)
    got, matched = get_all(
        a_items(peers, "bekendmakingen"),
        {"datetime": "2013-06-01T00:00:00Z/2013-06-10T23:59:59Z", "sortby": "-datum", "limit": 25},
    )
    assert expected and matched == len(expected)
    assert [f["properties"]["datum"] for f in got] == [f["properties"]["datum"] for f in expected]
    assert sorted(f["properties"]["oid"] for f in got) == sorted(f["properties"]["oid"] for f in expected)
    asked = peers.recorder.since(mark, "/items")
    assert asked and all(p.get("sortby") == "-datum" and "datetime" in p for _, p, _ in asked)


def test_a_single_item_in_two_crss(peers: Peers) -> None:
    direct = httpx.get(f"{b_items(peers, 'afvalbakken')}/17", timeout=30).json()
    through = httpx.get(f"{a_items(peers, 'afvalbakken')}/17", timeout=30)
    assert through.status_code == 200
    assert {k: through.json()[k] for k in ("id", "geometry", "properties")} == {
        k: direct[k] for k in ("id", "geometry", "properties")
    }
    rd = httpx.get(f"{a_items(peers, 'afvalbakken')}/17", params={"crs": RD_NEW}, timeout=30)
    lon, lat = direct["geometry"]["coordinates"]
    x, y = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True).transform(lon, lat)
    assert shape(rd.json()["geometry"]).distance(shapely.Point(x, y)) < 1e-3
    assert httpx.get(f"{a_items(peers, 'afvalbakken')}/999999", timeout=30).status_code == 404


def test_the_hub_forwards_the_callers_token_only_for_sources_that_allow_it(peers: Peers) -> None:
    headers = bearer(sub="burger-1")  # hub A validates it before anything is forwarded
    for collection, expected in (
        ("namens-afvalbakken", headers["Authorization"]),
        ("buren-afvalbakken", None),
    ):
        mark = len(peers.recorder.requests)
        for path in ("items", "items/1"):
            response = httpx.get(
                f"{peers.a}/ogc/v1/collections/{collection}/{path}", headers=headers, timeout=30
            )
            assert response.status_code == 200, response.text
        forwarded = peers.recorder.since(mark, "/items")
        assert len(forwarded) == 2 and {auth for _, _, auth in forwarded} == {expected}, forwarded


def test_the_peer_shows_as_a_healthy_source(peers: Peers) -> None:
    health = steward().get(f"{peers.a}/api/v1/health", timeout=30).json()
    sources = {source["id"]: source for source in health["sources"]}
    assert set(sources) == {"buren", "namens"}
    buren = sources["buren"]
    assert buren["connector"] == "hub" and buren["state"] == "healthy"
    assert buren["collections"] == ["buren-afvalbakken", "buren-bekendmakingen"]


# -- the connector on its own ------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make(url: str, http: httpx.AsyncClient, **settings: Any) -> HubConnector:
    return HubConnector(HubSettings(url=url, **settings), source_id="buren", http=http)


async def test_the_callers_token_is_forwarded_only_when_registered(
    peers: Peers, http: httpx.AsyncClient
) -> None:
    forwarding = make(peers.proxy, http, forward_token=True)
    mark = len(peers.recorder.requests)
    await forwarding.describe()
    assert {auth for _, _, auth in peers.recorder.since(mark)} == {None}  # a probe has no caller

    token = shared_issuer().mint(sub="burger-2")  # the peer validates what is forwarded
    mark = len(peers.recorder.requests)
    with caller_credentials(token):
        page = await forwarding.query("afvalbakken", FeatureQuery(limit=3, offset=3000))
        feature = await forwarding.get_feature("afvalbakken", "5", crs=CRS84)
    assert len(page.features) == 3 and feature is not None
    asked = peers.recorder.since(mark)
    assert len(asked) >= 2 and {auth for _, _, auth in asked} == {f"Bearer {token}"}

    mark = len(peers.recorder.requests)
    await forwarding.query("afvalbakken", FeatureQuery(limit=1))  # outside the caller's block
    assert {auth for _, _, auth in peers.recorder.since(mark)} == {None}

    keeping = make(peers.proxy, http)
    mark = len(peers.recorder.requests)
    with caller_credentials(token):
        await keeping.query("afvalbakken", FeatureQuery(limit=1))
    assert {auth for _, _, auth in peers.recorder.since(mark)} == {None}


async def test_describe_reads_the_peers_collections(peers: Peers, http: httpx.AsyncClient) -> None:
    infos = {info.id: info for info in await make(peers.proxy, http).describe()}
    assert set(infos) == {"afvalbakken", "bekendmakingen"}
    bins = infos["afvalbakken"]
    assert bins.capabilities.filter and bins.capabilities.sort
    assert {CRS84, RD_NEW} <= set(bins.capabilities.crs)
    assert {"ID", "SOORT"} <= {f.name for f in bins.fields}


async def test_something_else_is_not_a_hub(http: httpx.AsyncClient) -> None:
    async def landing(request: Request) -> Response:
        return JSONResponse({"links": []})

    with (
        serve(Starlette(routes=[Route("/ogc/v1", landing)])) as url,
        pytest.raises(UpstreamInvalidResponse, match="not a hub"),
    ):
        await make(url, http).describe()


def test_settings_take_the_peers_base_url_or_landing_page() -> None:
    assert HubSettings(url="https://hub.example.nl/").url == "https://hub.example.nl/ogc/v1"
    settings = HubSettings(url="https://hub.example.nl/ogc/v1")
    assert settings.url == "https://hub.example.nl/ogc/v1" and settings.root == "https://hub.example.nl"
    with pytest.raises(ValueError, match="forward_token"):
        HubSettings(
            url="https://hub.example.nl", forward_token=True, headers_env={"Authorization": "PEER_TOKEN"}
        )


async def test_a_filter_the_peer_refuses_stays_pushed_down(http: httpx.AsyncClient) -> None:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "sources": []})

    async def landing(request: Request) -> Response:
        return JSONResponse({"links": []})

    async def conformance(request: Request) -> Response:
        return JSONResponse({"conformsTo": CONFORMANCE})

    async def collections(request: Request) -> Response:
        return JSONResponse({"collections": [{"id": "x", "itemType": "feature", "crs": [CRS84]}]})

    async def queryables(request: Request) -> Response:
        return JSONResponse({"properties": {"naam": {"type": "string"}}})

    async def items(request: Request) -> Response:
        if "filter" in request.query_params:  # as a peer refuses a filter it cannot run now
            return JSONResponse({"status": 400, "detail": "too many features to filter"}, status_code=400)
        feature = {"type": "Feature", "id": 1, "geometry": None, "properties": {"naam": "a"}}
        return JSONResponse({"type": "FeatureCollection", "features": [feature], "links": []})

    routes = [
        Route("/api/v1/health", health),
        Route("/ogc/v1", landing),
        Route("/ogc/v1/conformance", conformance),
        Route("/ogc/v1/collections", collections),
        Route("/ogc/v1/collections/x/queryables", queryables),
        Route("/ogc/v1/collections/x/items", items),
    ]
    expression = parse("naam = 'a'")
    with serve(Starlette(routes=routes)) as url:
        peer = make(url, http)
        plain = OgcApiFeaturesConnector(
            OgcApiFeaturesSettings(url=f"{url}/ogc/v1"), source_id="plain", http=http
        )
        for connector in (peer, plain):
            await connector.describe()
            assert connector.supports_filter("x", expression)
            with pytest.raises(UnsupportedQuery, match="too many features"):
                await connector.query("x", FeatureQuery(limit=1, filter=expression))
    assert peer.supports_filter("x", expression)  # the peer is asked again next time
    assert not plain.supports_filter("x", expression)  # a plain server is not
