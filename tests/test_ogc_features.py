"""OGC API Features through the hub, checked against the source files read independently."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pyogrio
import pytest
import shapely
from pygeofilter.backends.native.evaluate import NativeEvaluator
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from pyproj import Transformer

from tests.fixtures.conformance import COLLECTIONS, DEMO_DATA, hub_sources
from tests.fixtures.hub import hub_settings, require_shared, serve_hub, wait_until_served

RD = "http://www.opengis.net/def/crs/EPSG/0/28992"
ETRS89 = "http://www.opengis.net/def/crs/EPSG/0/4258"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
DEMO = DEMO_DATA / "laadpalen.geojson"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub serving the municipal GeoJSON, the BAG GeoPackage (RD) and the demo file."""
    data = require_shared()
    tmp = tmp_path_factory.mktemp("hub")
    sources = hub_sources(data)
    with serve_hub(hub_settings(tmp, sources)) as base_url:
        for cid in COLLECTIONS:
            wait_until_served(base_url, cid)
        yield f"{base_url}/ogc/v1"


@pytest.fixture(scope="module")
def afvalbakken() -> dict[str, Any]:
    """The source file, read independently of the hub; ``ID`` repeats, so features are
    identified by their 1-based position in the file, kept here as ``_fid``."""
    path = require_shared() / "municipal" / "amsterdam_afvalbakken_2013.geojson"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for position, feature in enumerate(data["features"], start=1):
        feature["_fid"] = str(position)
    return data


@pytest.fixture(scope="module")
def verblijfsobjecten() -> Any:
    """The GeoPackage layer (RD coordinates), read independently of the hub."""
    path = require_shared() / "bag" / "amsterdam_bag_adressen.gpkg"
    meta, fids, geometry, field_data = pyogrio.raw.read(path, layer="verblijfsobjecten", return_fids=True)
    return {
        "fids": [str(f) for f in fids],
        "points": shapely.from_wkb(geometry),
        "fields": dict(zip(meta["fields"], field_data, strict=True)),
    }


def get_all(url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Follow ``next`` links from the first page to the last."""
    features: list[dict[str, Any]] = []
    next_url: str | None = url
    query: dict[str, Any] | None = params
    while next_url:
        response = httpx.get(next_url, params=query, timeout=30)
        assert response.status_code == 200, response.text
        page = response.json()
        features.extend(page["features"])
        next_url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        query = None
        if not page["features"]:
            break
    return features


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem response with ``status`` and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_every_feature_is_served_once_with_its_attributes(hub: str, afvalbakken: dict[str, Any]) -> None:
    features = get_all(f"{hub}/collections/afvalbakken/items", {"limit": 1000})
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids)) == len(afvalbakken["features"]) == 3049
    source = {f["_fid"]: f for f in afvalbakken["features"]}
    assert set(map(str, ids)) == set(source)
    for feature in features[::97]:
        original = source[str(feature["id"])]
        assert feature["properties"] == original["properties"]
        assert feature["geometry"]["coordinates"] == pytest.approx(original["geometry"]["coordinates"])


def test_number_matched_and_paging_links(hub: str) -> None:
    response = httpx.get(f"{hub}/collections/afvalbakken/items", params={"limit": 100, "offset": 200})
    page = response.json()
    assert page["numberMatched"] == 3049 and page["numberReturned"] == 100
    rels = {link["rel"] for link in page["links"]}
    assert {"next", "prev", "self"} <= rels
    assert response.headers["Content-Crs"] == f"<{CRS84}>"
    assert response.headers["API-Version"]


def test_bbox_in_crs84_matches_brute_force(hub: str, afvalbakken: dict[str, Any]) -> None:
    box = (4.88, 52.36, 4.90, 52.37)
    expected = {
        f["_fid"]
        for f in afvalbakken["features"]
        if shapely.intersects(shapely.box(*box), shapely.geometry.shape(f["geometry"]))
    }
    got = get_all(f"{hub}/collections/afvalbakken/items", {"bbox": ",".join(map(str, box)), "limit": 1000})
    assert expected and {str(f["id"]) for f in got} == expected


def test_bbox_in_rd_on_rd_data_matches_brute_force(hub: str, verblijfsobjecten: Any) -> None:
    box = (120900.0, 488900.0, 121100.0, 489100.0)
    inside = shapely.intersects(shapely.box(*box), verblijfsobjecten["points"])
    expected = {fid for fid, hit in zip(verblijfsobjecten["fids"], inside, strict=True) if hit}
    got = get_all(
        f"{hub}/collections/verblijfsobjecten/items",
        {"bbox": ",".join(map(str, box)), "bbox-crs": RD, "limit": 1000, "crs": RD},
    )
    assert expected and {str(f["id"]) for f in got} == expected


def test_output_in_rd_is_within_a_centimetre(hub: str, afvalbakken: dict[str, Any]) -> None:
    response = httpx.get(f"{hub}/collections/afvalbakken/items", params={"limit": 50, "crs": RD})
    assert response.headers["Content-Crs"] == f"<{RD}>"
    to_rd = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True)
    source = {f["_fid"]: f["geometry"]["coordinates"] for f in afvalbakken["features"]}
    for feature in response.json()["features"]:
        lon, lat = source[str(feature["id"])]
        x, y = to_rd.transform(lon, lat)
        assert (
            np.hypot(feature["geometry"]["coordinates"][0] - x, feature["geometry"]["coordinates"][1] - y)
            < 0.01
        )


def test_rd_data_served_in_crs84_and_etrs89_axis_order(hub: str, verblijfsobjecten: Any) -> None:
    to_crs84 = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True)
    points = dict(zip(verblijfsobjecten["fids"], verblijfsobjecten["points"], strict=True))
    crs84 = httpx.get(f"{hub}/collections/verblijfsobjecten/items", params={"limit": 20}).json()
    etrs = httpx.get(f"{hub}/collections/verblijfsobjecten/items", params={"limit": 20, "crs": ETRS89}).json()
    for a, b in zip(crs84["features"], etrs["features"], strict=True):
        point = points[str(a["id"])]
        lon, lat = to_crs84.transform(point.x, point.y)
        # 1e-7 degree is about a centimetre
        assert a["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-7)
        assert b["geometry"]["coordinates"] == pytest.approx([lat, lon], abs=1e-6)  # EPSG:4258 is lat/lon


def _expected(features: list[dict[str, Any]], cql: str) -> set[str]:
    predicate = NativeEvaluator(attribute_map={"*": "properties.*"}, use_getattr=False).evaluate(
        parse_cql2_text(cql)
    )
    matched = set()
    for feature in features:
        try:
            if predicate(feature):
                matched.add(feature["_fid"])
        except TypeError:  # a comparison with a null value does not match
            pass
    return matched


@pytest.mark.parametrize(
    "cql",
    [
        "SOORT = 'Afwijkend'",
        "SOORT <> 'Afwijkend' AND ID > 500",
        "SOORT IN ('Afwijkend', 'Constructo 100-liter, RVS uitvoering') OR OPMERKING IS NOT NULL",
        "SOORT LIKE 'Bammens%' AND NOT (ID BETWEEN 100 AND 900)",
        "SOORT IS NULL",
    ],
)
def test_cql2_text_filter_matches_brute_force(hub: str, afvalbakken: dict[str, Any], cql: str) -> None:
    expected = _expected(afvalbakken["features"], cql)
    got = get_all(f"{hub}/collections/afvalbakken/items", {"filter": cql, "limit": 1000})
    assert {str(f["id"]) for f in got} == expected


def test_cql2_json_on_get_and_spatial_filter(hub: str, afvalbakken: dict[str, Any]) -> None:
    cql_json = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "SOORT"}, "Afwijkend"]},
            {
                "op": "s_intersects",
                "args": [
                    {"property": "geometry"},
                    {
                        "type": "Polygon",
                        "coordinates": [
                            [[4.88, 52.36], [4.9, 52.36], [4.9, 52.37], [4.88, 52.37], [4.88, 52.36]]
                        ],
                    },
                ],
            },
        ],
    }
    box = shapely.box(4.88, 52.36, 4.9, 52.37)
    expected = {
        f["_fid"]
        for f in afvalbakken["features"]
        if f["properties"]["SOORT"] == "Afwijkend" and box.intersects(shapely.geometry.shape(f["geometry"]))
    }
    got = get_all(
        f"{hub}/collections/afvalbakken/items",
        {"filter": json.dumps(cql_json), "filter-lang": "cql2-json", "limit": 1000},
    )
    assert expected and {str(f["id"]) for f in got} == expected


def test_filters_on_rd_data_with_crs84_literals(hub: str, verblijfsobjecten: Any) -> None:
    box84 = (4.8870, 52.3870, 4.8900, 52.3890)
    to_rd = Transformer.from_crs("OGC:CRS84", "EPSG:28992", always_xy=True)
    ring = shapely.segmentize(shapely.box(*box84), 0.0001)
    box_rd = shapely.transform(ring, lambda xy: np.column_stack(to_rd.transform(xy[:, 0], xy[:, 1])))
    inside = shapely.intersects(box_rd, verblijfsobjecten["points"])
    huisnummers = verblijfsobjecten["fields"]["huisnummer"]
    expected = {
        fid
        for fid, hit, number in zip(verblijfsobjecten["fids"], inside, huisnummers, strict=True)
        if hit and number < 20
    }
    cql = f"S_INTERSECTS(geom, BBOX({box84[0]}, {box84[1]}, {box84[2]}, {box84[3]})) AND huisnummer < 20"
    got = get_all(f"{hub}/collections/verblijfsobjecten/items", {"filter": cql, "limit": 1000})
    assert expected and {str(f["id"]) for f in got} == expected
    in_rd = get_all(
        f"{hub}/collections/verblijfsobjecten/items",
        {"filter": "huisnummer = 1 AND straatnaam LIKE 'Van%'", "limit": 1000},
    )
    names = verblijfsobjecten["fields"]["straatnaam"]
    assert {str(f["id"]) for f in in_rd} == {
        fid
        for fid, number, name in zip(verblijfsobjecten["fids"], huisnummers, names, strict=True)
        if number == 1 and str(name).startswith("Van")
    }


def test_cql2_json_bbox_literal(hub: str, afvalbakken: dict[str, Any]) -> None:
    box = (4.88, 52.36, 4.90, 52.37)
    cql_json = {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": list(box)}]}
    expected = {
        f["_fid"]
        for f in afvalbakken["features"]
        if shapely.box(*box).intersects(shapely.geometry.shape(f["geometry"]))
    }
    got = get_all(
        f"{hub}/collections/afvalbakken/items",
        {"filter": json.dumps(cql_json), "filter-lang": "cql2-json", "limit": 1000},
    )
    assert expected and {str(f["id"]) for f in got} == expected


def test_sort_properties_and_skip_geometry(hub: str, afvalbakken: dict[str, Any]) -> None:
    page = httpx.get(
        f"{hub}/collections/afvalbakken/items",
        params={"sortby": "-ID,SOORT", "limit": 5, "properties": "ID", "skipGeometry": "true"},
    ).json()
    values = [f["properties"]["ID"] for f in page["features"]]
    highest = sorted((f["properties"]["ID"] for f in afvalbakken["features"]), reverse=True)[:5]
    assert values == highest
    assert all(set(f["properties"]) == {"ID"} and f["geometry"] is None for f in page["features"])


def test_datetime_selects_by_the_time_field(hub: str) -> None:
    demo = json.loads(DEMO.read_text(encoding="utf-8"))
    expected = {
        f["id"]
        for f in demo["features"]
        if "2019-01-01" <= f["properties"]["in_gebruik_sinds"] <= "2021-12-31"
    }
    got = get_all(f"{hub}/collections/laadpalen/items", {"datetime": "2019-01-01/2021-12-31", "limit": 100})
    assert expected and {f["id"] for f in got} == expected


def test_property_equality_filter(hub: str, afvalbakken: dict[str, Any]) -> None:
    expected = {f["_fid"] for f in afvalbakken["features"] if f["properties"]["SOORT"] == "Afwijkend"}
    got = get_all(f"{hub}/collections/afvalbakken/items", {"SOORT": "Afwijkend", "limit": 1000})
    assert {str(f["id"]) for f in got} == expected


def test_single_item_and_missing_item(hub: str, verblijfsobjecten: Any) -> None:
    fid = verblijfsobjecten["fids"][10]
    response = httpx.get(f"{hub}/collections/verblijfsobjecten/items/{fid}", params={"crs": RD})
    assert response.status_code == 200 and response.headers["Content-Crs"] == f"<{RD}>"
    point = verblijfsobjecten["points"][10]
    assert response.json()["geometry"]["coordinates"] == pytest.approx([point.x, point.y], abs=0.01)
    problem(httpx.get(f"{hub}/collections/verblijfsobjecten/items/does-not-exist"), 404)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"colour": "red"}, "unknown query parameter"),
        ({"crs": "http://www.opengis.net/def/crs/EPSG/0/2000"}, "not offered"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox-crs": RD}, "bbox-crs given without bbox"),
        ({"filter": "SOORT = "}, "not valid"),
        ({"filter": "KLEUR = 'rood'"}, "unknown propert"),
        ({"sortby": "KLEUR"}, "sortby"),
        ({"properties": "KLEUR"}, "propert"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"datetime": "2020-01-01"}, "temporal"),
        ({"filter-lang": "cql2-json", "filter": "{not json"}, "not valid"),
        ({"filter": "eval('1+1') = 2"}, "not supported"),
        ({"filter": "SOORT = open('/etc/passwd')"}, "not supported"),
    ],
)
def test_bad_parameters_are_refused_with_problem_details(
    hub: str, params: dict[str, str], fragment: str
) -> None:
    body = problem(httpx.get(f"{hub}/collections/afvalbakken/items", params=params), 400)
    assert fragment in body["detail"]


def test_discovery_documents(hub: str) -> None:
    landing = httpx.get(hub)
    assert landing.status_code == 200 and landing.headers["API-Version"]
    conformance = httpx.get(f"{hub}/conformance").json()["conformsTo"]
    assert any("ogcapi-features-2" in c for c in conformance)
    assert any("filter" in c for c in conformance)
    collections = {c["id"]: c for c in httpx.get(f"{hub}/collections").json()["collections"]}
    assert {"afvalbakken", "verblijfsobjecten", "laadpalen"} <= set(collections)
    assert RD in collections["afvalbakken"]["crs"] and ETRS89 in collections["afvalbakken"]["crs"]
    queryables = httpx.get(f"{hub}/collections/afvalbakken/queryables").json()
    assert {"SOORT", "OPMERKING"} <= set(queryables["properties"])
    html = httpx.get(f"{hub}/collections/afvalbakken/items", params={"f": "html", "limit": 5})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    problem(httpx.get(f"{hub}/collections/nothing/items"), 404)
    problem(httpx.get(f"{hub}/collections/"), 404)  # no trailing-slash redirects
