"""Linked and union collections through a running hub, over real data.

The members are real sources behind real connectors:

- ``bag-delft``: BAG panden of Delft in a GeoPackage (``file`` connector), with the bare
  16-digit ``identificatie`` PDOK's BAG API serves. The shared kit has no 2D BAG extract of
  Delft, so the test builds it from the BAG registration attributes and footprints that the
  3D BAG carries for its 159 Delft buildings (``delft_3dbag.city.jsonl``).
- ``bag-doesburg``: the current versions of the panden in the official BAG extract of gemeente
  0221 Doesburg (LV XML), as a GeoPackage: a second municipality for the union.
- ``bag3d`` and ``bag3d-b``: the 3D BAG API emulator (``tests/fixtures/threedbag.py``) over the
  same Delft file, each behind a switch that adds latency or answers 503, with
  ``NL.IMBAG.Pand.``-prefixed ids.
- ``monumenten``: a PostGIS table made here from real Delft pand ids, some written bare, some
  prefixed, with made-up monument attributes.

Expected values are read from the data files independently, or asked of each member alone.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
import yaml

from hub.composite import linked
from tests.cityjson_reference import CURRENT_JSONL
from tests.fixtures.hub import hub_settings, require_shared, serve_hub, wait_until_served
from tests.fixtures.loopback import serve
from tests.fixtures.oidc import steward
from tests.fixtures.panden import (
    MONUMENTS,
    PAND_PREFIX,
    Delft,
    delft_panden,
    doesburg_panden,
    monument_rows,
    read_delft,
    write_monuments,
    write_panden,
)
from tests.fixtures.postgis import PostgisServer
from tests.fixtures.threedbag import ThreeDBagEmulator

RD = "http://www.opengis.net/def/crs/EPSG/0/28992"
PREFIX = PAND_PREFIX
TIMEOUT = 60.0


# -- data --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def delft() -> Delft:
    """The 159 Delft buildings of the 3D BAG file: ids, attributes and LoD 0 footprints (RD)."""
    require_shared()
    return read_delft()


@pytest.fixture(scope="module")
def delft_gpkg(delft: Delft, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Delft's BAG panden as PDOK serves them: bare ids, the BAG's own attributes, footprints."""
    return write_panden(tmp_path_factory.mktemp("delft") / "bag-delft.gpkg", delft_panden(delft))


@pytest.fixture(scope="module")
def doesburg_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Doesburg's two panden."""
    rows = doesburg_panden()
    assert len(rows) == 2
    return write_panden(tmp_path_factory.mktemp("doesburg") / "bag-doesburg.gpkg", rows)


@pytest.fixture(scope="module")
def monuments_dsn(postgis_server: PostgisServer, delft: Delft) -> str:
    """The monuments table in PostGIS."""
    postgis_server.create_database("composite_monuments")
    with postgis_server.connect("composite_monuments") as conn:
        conn.execute(
            "CREATE TABLE monumenten (monumentnummer integer PRIMARY KEY, pand_id text NOT NULL, "
            "naam text, categorie text, geom geometry(Point, 28992))"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO monumenten VALUES (%s, %s, %s, %s, ST_GeomFromWKB(%s, 28992))",
                [
                    (r["monumentnummer"], r["pand_id"], r["naam"], r["categorie"], shapely.to_wkb(r["point"]))
                    for r in monument_rows(delft)
                ],
            )
    return postgis_server.libpq_url("composite_monuments")


# -- upstreams that can be slowed down or broken ---------------------------------------------


@dataclass
class Switch:
    """What a switched upstream does to every request: wait, and perhaps answer an error."""

    delay: float = 0.0
    status: int | None = None

    def reset(self) -> None:
        """Back to a healthy, prompt upstream."""
        self.delay, self.status = 0.0, None


def switched(app: Any, switch: Switch) -> Any:
    """``app`` behind ``switch``: the 3D BAG API over a slow or failing network."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if switch.delay:
                await asyncio.sleep(switch.delay)
            if switch.status is not None:
                body = b'{"code": 503, "name": "Service Unavailable", "description": "maintenance"}'
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": switch.status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return wrapped


@dataclass(frozen=True)
class Upstream:
    """One emulated 3D BAG API, its switch and its request log."""

    url: str
    switch: Switch
    emulator: ThreeDBagEmulator


@pytest.fixture(scope="module")
def threedbag() -> Iterator[tuple[Upstream, Upstream]]:
    """Two emulated 3D BAG APIs over the Delft file, each with its own switch."""
    require_shared()
    with ExitStack() as stack:
        upstreams = []
        for _ in range(2):
            emulator, switch = ThreeDBagEmulator(CURRENT_JSONL), Switch()
            url = stack.enter_context(serve(switched(emulator.app(), switch)))
            upstreams.append(Upstream(url, switch, emulator))
        yield upstreams[0], upstreams[1]


# -- the hub -----------------------------------------------------------------------------------

OPEN = {"classification": "open"}


def gebouwen(source_id: str, on_member_error: str, *extra: dict[str, Any]) -> dict[str, Any]:
    """A linked collection: BAG panden + 3D BAG + monuments, on the pand id."""
    return {
        **OPEN,
        "id": source_id,
        "title": "Gebouwen Delft",
        "connector": "linked",
        "on_member_error": on_member_error,
        "members": [
            {"collection": "bag-delft", "name": "bag", "key": "identificatie"},
            {"collection": "bag3d", "key": "id"},
            {"collection": "monumenten", "name": "monument", "key": "pand_id"},
            *extra,
        ],
    }


@dataclass(frozen=True)
class Hub:
    """The running hub and its switched upstreams."""

    url: str
    bag3d: Upstream
    bag3d_b: Upstream

    def items(self, collection: str, **params: Any) -> httpx.Response:
        """``GET /collections/{collection}/items``."""
        return httpx.get(f"{self.url}/ogc/v1/collections/{collection}/items", params=params, timeout=TIMEOUT)

    def all_features(self, collection: str, **params: Any) -> list[dict[str, Any]]:
        """Every feature, read through by following ``next`` links."""
        page = self.items(collection, limit=1000, **params).json()
        features = list(page["features"])
        while (link := next((x for x in page["links"] if x["rel"] == "next"), None)) is not None:
            page = httpx.get(link["href"], timeout=TIMEOUT).json()
            features += page["features"]
        return features


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory,
    delft_gpkg: Path,
    doesburg_gpkg: Path,
    monuments_dsn: str,
    threedbag: tuple[Upstream, Upstream],
) -> Iterator[Hub]:
    """A hub serving the members and the linked and union collections over them."""
    first, second = threedbag
    sources = [
        {**OPEN, "id": "bag-delft", "title": "BAG panden Delft", "connector": "file",
         "path": str(delft_gpkg)},
        {**OPEN, "id": "bag-doesburg", "title": "BAG panden Doesburg", "connector": "file",
         "path": str(doesburg_gpkg)},
        {**OPEN, "id": "bag3d", "title": "3D BAG", "connector": "3dbag", "url": first.url, "timeout": 3},
        {**OPEN, "id": "bag3d-b", "title": "3D BAG (mirror)", "connector": "3dbag", "url": second.url,
         "timeout": 5},
        {**OPEN, "id": "monumenten", "title": "Monumenten Delft", "connector": "postgis",
         "dsn": monuments_dsn, "table": "monumenten"},
        gebouwen("gebouwen", "partial"),
        gebouwen("gebouwen-strikt", "error"),
        {**OPEN, "id": "gebouwen-dubbel", "title": "Gebouwen, twee 3D BAG's", "connector": "linked",
         "members": [{"collection": "bag-delft", "name": "bag", "key": "identificatie"},
                     {"collection": "bag3d", "name": "a", "key": "id"},
                     {"collection": "bag3d-b", "name": "b", "key": "identificatie",
                      "lookup": "bbox"}]},
        {**OPEN, "id": "panden", "title": "BAG panden van twee gemeenten", "connector": "union",
         "member_property": "gemeente",
         "members": [{"collection": "bag-delft", "name": "delft"},
                     {"collection": "bag-doesburg", "name": "doesburg"}]},
    ]  # fmt: skip
    settings = hub_settings(tmp_path_factory.mktemp("composite-hub"), sources)
    with serve_hub(settings) as base_url:
        for collection in ("gebouwen", "gebouwen-strikt", "gebouwen-dubbel", "panden"):
            wait_until_served(base_url, collection, timeout=60)
        yield Hub(base_url, first, second)


@pytest.fixture(autouse=True)
def healthy_upstreams(threedbag: tuple[Upstream, Upstream]) -> Iterator[None]:
    """Every test starts and ends with prompt, working 3D BAG APIs."""
    for upstream in threedbag:
        upstream.switch.reset()
    yield
    for upstream in threedbag:
        upstream.switch.reset()


def bag(feature: dict[str, Any]) -> str:
    """A joined feature's bare pand id."""
    return str(feature["properties"]["bag:identificatie"])


# -- linked collections ------------------------------------------------------------------------


def test_joined_properties_equal_what_each_member_answers_alone(hub: Hub, delft: Delft) -> None:
    joined = hub.items("gebouwen", limit=40).json()
    assert joined["numberMatched"] == len(delft.ids)
    assert [bag(f) for f in joined["features"]] == delft.ids[:40]
    monuments = {
        f["properties"]["pand_id"].removeprefix(PREFIX): f["properties"]
        for f in hub.items("monumenten", limit=100).json()["features"]
    }
    # a member's properties are all present, null where its feature has none (or no feature matches)
    declared = httpx.get(f"{hub.url}/ogc/v1/collections/bag3d/queryables", timeout=TIMEOUT).json()[
        "properties"
    ]
    for feature in joined["features"]:
        pand = bag(feature)
        alone = httpx.get(
            f"{hub.url}/ogc/v1/collections/bag-delft/items/{feature['id']}", timeout=TIMEOUT
        ).json()
        assert feature["geometry"] == alone["geometry"]
        model = httpx.get(f"{hub.url}/ogc/v1/collections/bag3d/items/{PREFIX}{pand}", timeout=TIMEOUT).json()
        expected = {f"bag:{k}": v for k, v in alone["properties"].items()}
        expected |= {f"bag3d:{k}": None for k in declared if k != "geometry"}
        expected |= {f"bag3d:{k}": v for k, v in model["properties"].items()}
        monument = monuments.get(pand)
        expected |= {
            f"monument:{k}": (monument or {}).get(k)
            for k in ("monumentnummer", "pand_id", "naam", "categorie")
        }
        assert feature["properties"] == expected
    # the 3D BAG's own height, as the file has it
    first = joined["features"][0]
    assert first["properties"]["bag3d:h_dak_max"] == pytest.approx(
        delft.attributes[bag(first)]["b3_h_dak_max"]
    )


def test_ids_match_whether_written_bare_prefixed_or_as_numbers(hub: Hub, delft: Delft) -> None:
    joined = {bag(f): f for f in hub.all_features("gebouwen")}
    for number, (index, form, category) in enumerate(MONUMENTS, start=1):
        feature = joined[delft.ids[index]]
        assert feature["properties"]["monument:monumentnummer"] == 500000 + number, form
        assert feature["properties"]["monument:categorie"] == category
    # the primary's bare ids met the 3D BAG's prefixed ones
    assert all(f["properties"]["bag3d:identificatie"] == PREFIX + pand for pand, f in joined.items())
    # every other building has no monument, and says so with nulls
    plain = [f for pand, f in joined.items() if pand not in {delft.ids[i] for i, _, _ in MONUMENTS}]
    assert len(plain) == len(delft.ids) - len(MONUMENTS)
    assert all(f["properties"]["monument:naam"] is None for f in plain)


def test_members_are_asked_for_the_page_keys_only(hub: Hub, delft: Delft) -> None:
    hub.bag3d.emulator.clear()
    page = hub.items("gebouwen", limit=10, offset=20).json()
    assert [bag(f) for f in page["features"]] == delft.ids[20:30]
    sent = hub.bag3d.emulator.sent()
    # one item request per key (the API cannot filter), never a listing of the 3D BAG
    assert sorted(r.path.rsplit("/", 1)[1] for r in sent) == sorted(PREFIX + p for p in delft.ids[20:30])


def test_pages_follow_the_primary_in_a_stable_order(hub: Hub, delft: Delft) -> None:
    seen: list[str] = []
    page = hub.items("gebouwen", limit=50).json()
    while True:
        seen += [bag(f) for f in page["features"]]
        assert page["numberMatched"] == len(delft.ids)
        link = next((x for x in page["links"] if x["rel"] == "next"), None)
        if link is None:
            break
        page = httpx.get(link["href"], timeout=TIMEOUT).json()
    assert seen == delft.ids


def test_cql2_filter_on_a_secondary_member_property(hub: Hub, delft: Delft) -> None:
    high = [p for p in delft.ids if delft.attributes[p]["b3_h_dak_max"] > 20]
    assert 0 < len(high) < len(delft.ids)
    page = hub.items("gebouwen", limit=1000, filter='"bag3d:h_dak_max" > 20').json()
    assert [bag(f) for f in page["features"]] == high
    assert page["numberMatched"] == len(high)
    # CQL2 JSON, and paged
    cql_json = '{"op": ">", "args": [{"property": "bag3d:h_dak_max"}, 20]}'
    first = hub.items("gebouwen", limit=3, filter=cql_json, **{"filter-lang": "cql2-json"}).json()
    assert [bag(f) for f in first["features"]] == high[:3]
    second = hub.items("gebouwen", limit=3, offset=3, filter=cql_json, **{"filter-lang": "cql2-json"}).json()
    assert [bag(f) for f in second["features"]] == high[3:6]


def test_filters_mixing_members_and_on_the_monuments(hub: Hub, delft: Delft) -> None:
    rijks = [delft.ids[i] for i, _, category in sorted(MONUMENTS) if category == "rijksmonument"]
    page = hub.items("gebouwen", limit=100, filter="monument:categorie = 'rijksmonument'").json()
    assert [bag(f) for f in page["features"]] == rijks
    # a property of the primary and one of a secondary, and a property query parameter
    mixed = [
        p for p in delft.ids
        if delft.attributes[p]["oorspronkelijkbouwjaar"] < 1950 and delft.attributes[p]["b3_h_dak_max"] > 15
    ]  # fmt: skip
    page = hub.items("gebouwen", limit=1000, filter='bag:bouwjaar < 1950 AND "bag3d:h_dak_max" > 15').json()
    assert [bag(f) for f in page["features"]] == mixed
    page = hub.items("gebouwen", limit=1000, **{"monument:categorie": "gemeentelijk monument"}).json()
    assert {bag(f) for f in page["features"]} == {
        delft.ids[i] for i, _, c in MONUMENTS if c != "rijksmonument"
    }
    # a term true for buildings without a monument cannot narrow the primary, and still holds
    page = hub.items("gebouwen", limit=1000, filter="monument:naam IS NULL").json()
    assert len(page["features"]) == len(delft.ids) - len(MONUMENTS)


def test_sorting_on_a_secondary_member_property(hub: Hub, delft: Delft) -> None:
    tallest = sorted(delft.ids, key=lambda p: -delft.attributes[p]["b3_h_dak_max"])[:5]
    page = hub.items("gebouwen", limit=5, sortby="-bag3d:h_dak_max").json()
    assert [bag(f) for f in page["features"]] == tallest
    oldest = sorted(delft.ids, key=lambda p: delft.attributes[p]["oorspronkelijkbouwjaar"])[:5]
    page = hub.items("gebouwen", limit=5, sortby="bag:bouwjaar").json()
    assert [f["properties"]["bag:bouwjaar"] for f in page["features"]] == [
        delft.attributes[p]["oorspronkelijkbouwjaar"] for p in oldest
    ]


def test_crs_and_bbox_like_any_collection(hub: Hub, delft: Delft) -> None:
    response = hub.items("gebouwen", limit=5, crs="http://www.opengis.net/def/crs/EPSG/0/28992")
    assert response.headers["Content-Crs"] == f"<{RD}>"
    for feature in response.json()["features"]:
        footprint = shapely.geometry.shape(feature["geometry"])
        assert footprint.equals_exact(delft.footprints[bag(feature)], tolerance=0.001)
    # a bbox in RD around a few buildings
    target = delft.footprints[delft.ids[50]]
    minx, miny, maxx, maxy = target.buffer(5).bounds
    inside = [p for p in delft.ids if delft.footprints[p].intersects(shapely.box(minx, miny, maxx, maxy))]
    page = hub.items("gebouwen", limit=100, bbox=f"{minx},{miny},{maxx},{maxy}", **{"bbox-crs": RD}).json()
    assert sorted(bag(f) for f in page["features"]) == sorted(inside)


def test_queryables_and_schema_name_each_property_s_member(hub: Hub) -> None:
    queryables = httpx.get(f"{hub.url}/ogc/v1/collections/gebouwen/queryables", timeout=TIMEOUT).json()
    names = set(queryables["properties"])
    assert {"bag:identificatie", "bag:bouwjaar", "bag3d:h_dak_max", "monument:categorie"} <= names
    assert not {name for name in names if name != "geometry" and ":" not in name}
    assert queryables["properties"]["bag3d:h_dak_max"]["type"] == "number"
    html = hub.items("gebouwen", limit=2, f="html")
    assert html.status_code == 200 and "bag3d:h_dak_max" in html.text
    # and they select properties like any other names
    chosen = hub.items("gebouwen", limit=3, properties="bag:bouwjaar,bag3d:h_dak_max", skipGeometry="true")
    for feature in chosen.json()["features"]:
        assert (
            set(feature["properties"]) == {"bag:bouwjaar", "bag3d:h_dak_max"} and feature["geometry"] is None
        )
    unknown = hub.items("gebouwen", limit=3, filter="bag3d:nergens > 1")
    assert unknown.status_code == 400 and "bag3d:nergens" in unknown.json()["detail"]


def test_the_catalogues_list_linked_and_union_collections(hub: Hub) -> None:
    catalog = httpx.get(f"{hub.url}/api/v1/catalog", headers={"Accept": "text/turtle"}, timeout=TIMEOUT)
    assert catalog.status_code == 200
    assert "/ogc/v1/collections/gebouwen" in catalog.text and "/ogc/v1/collections/panden" in catalog.text
    records = httpx.get(
        f"{hub.url}/records/v1/collections/catalogue/items", params={"limit": 100}, timeout=TIMEOUT
    )
    assert records.status_code == 200
    titles = {f["properties"].get("title") for f in records.json()["features"]}
    assert {"Gebouwen Delft", "BAG panden van twee gemeenten"} <= titles


def test_item_by_id_is_joined(hub: Hub, delft: Delft) -> None:
    first = hub.items("gebouwen", limit=1).json()["features"][0]
    item = httpx.get(f"{hub.url}/ogc/v1/collections/gebouwen/items/{first['id']}", timeout=TIMEOUT).json()
    assert item["properties"] == first["properties"]
    missing = httpx.get(f"{hub.url}/ogc/v1/collections/gebouwen/items/999999", timeout=TIMEOUT)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )


# -- failing members -------------------------------------------------------------------------


def test_a_failing_member_gives_a_partial_result_with_a_visible_warning(hub: Hub, delft: Delft) -> None:
    hub.bag3d.switch.status = 503
    response = hub.items("gebouwen", limit=5)
    assert response.status_code == 200
    warnings = response.headers.get_list("Warning")
    assert len(warnings) == 1 and warnings[0].startswith('199 urban-twin-hub "partial result: member bag3d')
    document = response.json()
    assert [w["member"] for w in document["warnings"]] == ["bag3d"]
    assert document["warnings"][0]["status"] == 502
    for feature in document["features"]:
        assert feature["properties"]["bag3d:h_dak_max"] is None
        assert (
            feature["properties"]["bag:bouwjaar"] == delft.attributes[bag(feature)]["oorspronkelijkbouwjaar"]
        )
    # the HTML view carries the header too
    assert hub.items("gebouwen", limit=2, f="html").headers.get("Warning")
    # a member that does not answer in time (its timeout is 3 s) is reported as such
    hub.bag3d.switch.status, hub.bag3d.switch.delay = None, 5.0
    slow = hub.items("gebouwen", limit=2).json()
    assert slow["warnings"][0]["status"] == 504
    hub.bag3d.switch.delay = 0.0
    healthy = hub.items("gebouwen", limit=2)
    assert "Warning" not in healthy.headers and "warnings" not in healthy.json()


def test_a_failing_member_in_error_mode_answers_502_naming_it(hub: Hub) -> None:
    hub.bag3d.switch.status = 503
    response = hub.items("gebouwen-strikt", limit=5)
    assert response.status_code == 502
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "member bag3d (bag3d)" in problem["detail"] and problem["source"] == "bag3d"
    hub.bag3d.switch.status, hub.bag3d.switch.delay = None, 5.0
    timeout = hub.items("gebouwen-strikt", limit=2)
    assert timeout.status_code == 504 and "member bag3d" in timeout.json()["detail"]


def test_members_are_queried_concurrently(hub: Hub) -> None:
    delay = 1.0
    hub.bag3d.switch.delay = hub.bag3d_b.switch.delay = delay
    started = time.perf_counter()
    assert hub.items("bag3d", limit=5).status_code == 200
    alone = time.perf_counter() - started
    started = time.perf_counter()
    response = hub.items("gebouwen-dubbel", limit=5)
    joined = time.perf_counter() - started
    assert response.status_code == 200 and "warnings" not in response.json()
    features = response.json()["features"]
    assert all(f["properties"]["a:h_dak_max"] == f["properties"]["b:h_dak_max"] is not None for f in features)
    # two slow members, five keys each: one after the other would take 2 s at least, key by
    # key 10 s; concurrently about as long as the slowest member alone
    assert alone >= delay and joined >= delay
    assert joined < 1.6 * delay, f"joined {joined:.2f} s, the slowest member alone {alone:.2f} s"


def test_a_member_looked_up_by_bbox_gets_one_query_for_the_page(hub: Hub, delft: Delft) -> None:
    hub.bag3d_b.emulator.clear()
    page = hub.items("gebouwen-dubbel", limit=25, offset=40).json()
    assert [bag(f) for f in page["features"]] == delft.ids[40:65]
    # the same values as asked key by key of the other 3D BAG
    assert all(f["properties"]["b:h_dak_max"] == f["properties"]["a:h_dak_max"] for f in page["features"])
    assert all(f["properties"]["b:identificatie"] == PREFIX + bag(f) for f in page["features"])
    sent = hub.bag3d_b.emulator.sent()
    assert sent and all(r.path == "/collections/pand/items" for r in sent)
    assert all(dict(r.params).get("bbox") for r in sent)
    # in RD around the page's buildings
    minx, miny, maxx, maxy = (float(v) for v in dict(sent[0].params)["bbox"].split(","))
    union = shapely.union_all([delft.footprints[bag(f)] for f in page["features"]])
    assert shapely.box(minx, miny, maxx, maxy).buffer(0.01).covers(union)


def test_keys_asked_one_by_one_are_asked_all_at_once(hub: Hub, delft: Delft) -> None:
    """The 3D BAG API has no id filter: a page's buildings are asked for one request each, all in
    flight together (up to the collection's ``concurrency``), not one after the other."""
    emulator = hub.bag3d.emulator
    emulator.clear()
    emulator.delay = 0.2
    try:
        page = hub.items("gebouwen", limit=12, offset=30).json()
        sent = emulator.sent()
        peak = emulator.peak
    finally:
        emulator.delay = 0.0
    assert [bag(f) for f in page["features"]] == delft.ids[30:42] and "warnings" not in page
    assert all(f["properties"]["bag3d:h_dak_max"] is not None for f in page["features"])
    items = {r.path.rsplit("/", 1)[1] for r in sent if r.path.startswith("/collections/pand/items/")}
    assert items == {PREFIX + bag(f) for f in page["features"]}
    assert peak == len(sent) == 12


def test_more_keys_than_one_round_of_requests_are_read_from_the_box_first(hub: Hub, delft: Delft) -> None:
    """``gebouwen`` asks its 3D BAG member key by key (``concurrency`` 32): a page of 100 is read
    from the box round it instead, and the answer is what a request per building gives."""
    emulator = hub.bag3d.emulator
    emulator.clear()
    page = hub.items("gebouwen", limit=100, offset=50).json()
    sent = emulator.sent()
    assert [bag(f) for f in page["features"]] == delft.ids[50:150] and "warnings" not in page
    assert not [r for r in sent if r.path.startswith("/collections/pand/items/")]
    assert sent and all(dict(r.params).get("bbox") for r in sent)
    for feature in page["features"]:
        assert feature["properties"]["bag3d:h_dak_max"] == pytest.approx(
            delft.attributes[bag(feature)]["b3_h_dak_max"]
        )


def test_keys_the_box_read_did_not_reach_are_asked_for_apart(
    hub: Hub, delft: Delft, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A box read stops after a few times the page's worth of features (a box round scattered
    buildings may hold a great many others); the keys it did not reach are asked for one by one."""
    monkeypatch.setattr(linked, "BOX_PROBE_FACTOR", 1)  # the box's first 100 buildings at most
    emulator = hub.bag3d.emulator
    emulator.clear()
    page = hub.items("gebouwen", limit=100, offset=20).json()
    sent = emulator.sent()
    assert [bag(f) for f in page["features"]] == delft.ids[20:120] and "warnings" not in page
    boxes = [r for r in sent if r.path == "/collections/pand/items"]
    items = [r for r in sent if r.path.startswith("/collections/pand/items/")]
    # the box's first buildings hold some of the page's, not all: those are asked for apart
    assert boxes and 0 < len(items) < 100
    for feature in page["features"]:
        assert feature["properties"]["bag3d:h_dak_max"] == pytest.approx(
            delft.attributes[bag(feature)]["b3_h_dak_max"]
        )


def test_a_page_of_100_looked_up_by_bbox_asks_its_pages_at_once(hub: Hub, delft: Delft) -> None:
    """The box round 100 buildings holds more than the API's page of 100: the member's pages are
    asked for together, one round trip, not one after the other."""
    emulator = hub.bag3d_b.emulator
    emulator.clear()
    emulator.delay = 0.2
    try:
        page = hub.items("gebouwen-dubbel", limit=100).json()
        sent = emulator.sent()
        peak = emulator.peak
    finally:
        emulator.delay = 0.0
    assert [bag(f) for f in page["features"]] == delft.ids[:100] and "warnings" not in page
    assert all(f["properties"]["b:h_dak_max"] == f["properties"]["a:h_dak_max"] for f in page["features"])
    assert len(sent) >= 2 and all(dict(r.params).get("bbox") for r in sent)
    assert peak == len(sent)


# -- union collections -----------------------------------------------------------------------


def test_union_of_two_municipalities(hub: Hub, delft: Delft) -> None:
    doesburg = doesburg_panden()
    features = hub.all_features("panden")
    assert len(features) == len(delft.ids) + len(doesburg)
    assert [f["properties"]["identificatie"] for f in features] == delft.ids + [
        r["identificatie"] for r in doesburg
    ]
    assert {f["properties"]["gemeente"] for f in features[: len(delft.ids)]} == {"delft"}
    assert {f["properties"]["gemeente"] for f in features[len(delft.ids) :]} == {"doesburg"}
    assert len({f["id"] for f in features}) == len(features)
    assert all(f["id"].startswith(f["properties"]["gemeente"] + ":") for f in features)
    # a page across the members' boundary
    page = hub.items("panden", limit=5, offset=len(delft.ids) - 3).json()
    assert [f["properties"]["gemeente"] for f in page["features"]] == ["delft"] * 3 + ["doesburg"] * 2
    assert page["numberMatched"] == len(delft.ids) + 2
    assert not any(link["rel"] == "next" for link in page["links"])
    # the member property selects members; other properties go to every member
    only = hub.items("panden", limit=100, gemeente="doesburg").json()
    assert [f["properties"]["identificatie"] for f in only["features"]] == [
        r["identificatie"] for r in doesburg
    ]
    old = hub.items("panden", limit=1000, filter="bouwjaar < 1600").json()
    assert [f["properties"]["gemeente"] for f in old["features"]] == ["doesburg"]
    # sorted across members
    newest = hub.items("panden", limit=3, sortby="-bouwjaar").json()["features"]
    years = sorted([*(delft.attributes[p]["oorspronkelijkbouwjaar"] for p in delft.ids),
                    *(r["bouwjaar"] for r in doesburg)], reverse=True)  # fmt: skip
    assert [f["properties"]["bouwjaar"] for f in newest] == years[:3]
    # one feature by its union id, in RD
    wanted = features[-1]
    item = httpx.get(
        f"{hub.url}/ogc/v1/collections/panden/items/{wanted['id']}", params={"crs": RD}, timeout=TIMEOUT
    )
    assert item.status_code == 200 and item.json()["properties"] == wanted["properties"]
    assert shapely.geometry.shape(item.json()["geometry"]).equals_exact(doesburg[-1]["geometry"], 0.001)
    filtered = hub.items("panden", limit=10, filter="gemeente = 'doesburg' AND bouwjaar > 1900").json()
    assert [f["properties"]["bouwjaar"] for f in filtered["features"]] == [1992]


# -- registration and withdrawal ---------------------------------------------------------------


def test_members_must_exist_and_may_not_include_the_collection_itself(hub: Hub) -> None:
    api = f"{hub.url}/api/v1/sources"
    unknown = gebouwen("gebouwen-x", "partial", {"collection": "nergens", "key": "id"})
    response = steward().post(api, json=unknown)
    assert response.status_code == 422 and "nergens" in response.json()["detail"]
    itself = {**gebouwen("kringloop", "partial"), "connector": "union", "members": [
        {"collection": "bag-delft"}, {"collection": "panden"}]}  # fmt: skip
    assert steward().post(api, json=itself).status_code == 201
    try:
        cycle = {**itself, "members": [{"collection": "bag-delft"}, {"collection": "kringloop"}]}
        response = steward().put(f"{api}/kringloop", json=cycle)
        assert response.status_code == 422 and "cycle" in response.json()["detail"]
    finally:
        assert steward().delete(f"{api}/kringloop").status_code == 204


def test_an_open_collection_cannot_expose_a_restricted_member(hub: Hub, monuments_dsn: str) -> None:
    api = f"{hub.url}/api/v1/sources"
    restricted = {"id": "monumenten-intern", "title": "Monumenten (intern)", "connector": "postgis",
                  "classification": "internal", "dsn": monuments_dsn, "table": "monumenten"}  # fmt: skip
    assert steward().post(api, json=restricted).status_code == 201
    try:
        linked = gebouwen("gebouwen-lek", "partial", {"collection": "monumenten-intern", "name": "intern",
                                                      "key": "pand_id"})  # fmt: skip
        response = steward().post(api, json=linked)
        assert response.status_code == 422 and "more strictly" in response.json()["detail"]
    finally:
        steward().delete(f"{api}/monumenten-intern")


def test_a_withdrawn_member_makes_the_collection_unservable_with_its_reason(
    hub: Hub, delft_gpkg: Path
) -> None:
    api = f"{hub.url}/api/v1/sources"
    member = {**OPEN, "id": "bag-kopie", "title": "BAG kopie", "connector": "file", "path": str(delft_gpkg)}
    linked = {**OPEN, "id": "gebouwen-kopie", "title": "Gebouwen (kopie)", "connector": "linked",
              "members": [{"collection": "bag-delft", "name": "bag", "key": "identificatie"},
                          {"collection": "bag-kopie", "name": "kopie", "key": "identificatie"}]}  # fmt: skip
    primary_first = {**linked, "id": "kopie-eerst", "members": list(reversed(linked["members"]))}
    assert steward().post(api, json=member).status_code == 201
    try:
        assert steward().post(api, json=linked).status_code == 201
        assert steward().post(api, json=primary_first).status_code == 201
        assert hub.items("gebouwen-kopie", limit=1).json()["features"][0]["properties"]["kopie:bouwjaar"]
        assert steward().delete(f"{api}/bag-kopie").status_code == 204
        # a withdrawn secondary member is a failing member: partial, with the reason
        response = hub.items("gebouwen-kopie", limit=1)
        assert response.status_code == 200
        assert "no collection 'bag-kopie' is served" in response.json()["warnings"][0]["detail"]
        # without its primary a linked collection cannot answer at all
        response = hub.items("kopie-eerst", limit=1)
        assert response.status_code == 502 and "bag-kopie" in response.json()["detail"]
        health = {s["id"]: s for s in steward().get(f"{hub.url}/api/v1/health").json()["sources"]}
        assert health["kopie-eerst"]["state"] == "unhealthy"
        assert "bag-kopie" in health["kopie-eerst"]["error"]
    finally:
        for source_id in ("gebouwen-kopie", "kopie-eerst", "bag-kopie"):
            steward().delete(f"{api}/{source_id}")


def test_the_command_line_registers_a_linked_collection_against_the_other_sources(
    tmp_path: Path, delft: Delft, delft_gpkg: Path
) -> None:
    settings = hub_settings(tmp_path, [])
    assert settings.config_file is not None
    monuments = write_monuments(tmp_path / "monumenten.geojson", delft)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hub.cli", *args, "--config", str(settings.config_file)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    members = [
        {**OPEN, "id": "bag-delft", "title": "BAG", "connector": "file", "path": str(delft_gpkg)},
        {**OPEN, "id": "monumenten", "title": "Monumenten", "connector": "file", "path": str(monuments)},
    ]
    linked = {**OPEN, "id": "gebouwen", "title": "Gebouwen", "connector": "linked",
              "members": [{"collection": "bag-delft", "name": "bag", "key": "identificatie"},
                          {"collection": "monumenten", "name": "monument", "key": "pand_id"}]}  # fmt: skip
    (tmp_path / "members.yml").write_text(yaml.safe_dump(members), encoding="utf-8")
    (tmp_path / "gebouwen.yml").write_text(yaml.safe_dump(linked), encoding="utf-8")
    added = cli("sources", "add", str(tmp_path / "members.yml"))
    assert added.returncode == 0, added.stderr
    # probed in a process of its own, against the registered members it serves first
    added = cli("sources", "add", str(tmp_path / "gebouwen.yml"))
    assert added.returncode == 0, added.stderr
    assert "registered gebouwen (healthy)" in added.stdout
    checked = cli("sources", "check", "gebouwen")
    assert checked.returncode == 0, checked.stdout
    assert '"collections": [\n    "gebouwen"\n  ]' in checked.stdout
    nowhere = {**linked, "id": "nergens", "members": [*linked["members"], {"collection": "x", "key": "id"}]}
    (tmp_path / "nergens.yml").write_text(yaml.safe_dump(nowhere), encoding="utf-8")
    refused = cli("sources", "add", str(tmp_path / "nergens.yml"))
    assert refused.returncode == 1 and "no collection 'x' is served" in refused.stderr
