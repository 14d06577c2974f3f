"""The hub in front of a real pygeoapi upstream: results are right even where the upstream is not.

pygeoapi 0.24's GeoJSON provider advertises CQL2 and ``datetime`` but ignores both; the hub must
catch that and filter itself. The verblijfsobjecten layer comes through pygeoapi's OGR provider
in RD.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import shapely
from pyproj import Transformer

from tests.fixtures.hub import SHARED_DATA, hub_settings, serve_hub, wait_until_served
from tests.fixtures.upstream import PygeoapiUpstream

RD = "http://www.opengis.net/def/crs/EPSG/0/28992"


@pytest.fixture(scope="module")
def hub(upstream_pygeoapi: PygeoapiUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub whose only source is the pygeoapi upstream."""
    source = {
        "id": "amsterdam",
        "title": "Amsterdam (pygeoapi)",
        "connector": "ogcapi-features",
        "classification": "open",
        "url": upstream_pygeoapi.base_url,
        "timeout": 30,
    }
    with serve_hub(hub_settings(tmp_path_factory.mktemp("federation"), [source])) as base_url:
        for cid in ("amsterdam-afvalbakken", "amsterdam-bekendmakingen", "amsterdam-verblijfsobjecten"):
            wait_until_served(base_url, cid)
        yield f"{base_url}/ogc/v1/collections"


def _load(name: str) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = json.loads((SHARED_DATA / "municipal" / name).read_text())["features"]
    return features


def get_all(url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every feature, following ``next`` links."""
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
        if not page["features"]:
            break
    return features


def test_paging_through_the_upstream_returns_every_feature_once(hub: str) -> None:
    source = _load("amsterdam_afvalbakken_2013.geojson")
    features = get_all(f"{hub}/amsterdam-afvalbakken/items", {"limit": 500})
    # the upstream uses ID as feature id, which repeats in this file: compare whole features
    def key(feature: dict[str, Any]) -> str:
        return json.dumps([feature["properties"], feature["geometry"]["coordinates"]], sort_keys=True)

    assert len(features) == len(source)
    assert sorted(map(key, features)) == sorted(map(key, source))


def test_a_filter_the_upstream_ignores_is_applied_by_the_hub(hub: str) -> None:
    source = _load("amsterdam_afvalbakken_2013.geojson")
    expected = sorted(f["properties"]["ID"] for f in source if f["properties"]["SOORT"] == "Afwijkend")
    for _ in range(2):  # once while the upstream is still trusted, once after it was caught
        got = get_all(f"{hub}/amsterdam-afvalbakken/items", {"filter": "SOORT = 'Afwijkend'", "limit": 100})
        assert sorted(f["properties"]["ID"] for f in got) == expected


def test_a_datetime_the_upstream_ignores_is_applied_by_the_hub(hub: str) -> None:
    source = _load("amsterdam_bekendmakingen_2013.geojson")
    start, end = datetime(2013, 6, 1), datetime(2013, 6, 10, 23, 59, 59)
    expected = sorted(
        f["properties"]["oid"]
        for f in source
        if start <= datetime.fromisoformat(f["properties"]["datum"]) <= end
    )
    for _ in range(2):
        got = get_all(
            f"{hub}/amsterdam-bekendmakingen/items",
            {"datetime": "2013-06-01T00:00:00Z/2013-06-10T23:59:59Z", "limit": 100},
        )
        assert expected and sorted(f["properties"]["oid"] for f in got) == expected


def test_rd_upstream_served_in_crs84_and_rd(hub: str) -> None:
    import pyogrio

    _, fids, geometry, _ = pyogrio.raw.read(
        SHARED_DATA / "bag" / "amsterdam_bag_adressen.gpkg", layer="verblijfsobjecten", return_fids=True
    )
    points = dict(zip((str(f) for f in fids), shapely.from_wkb(geometry), strict=True))
    to_crs84 = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True)
    crs84 = httpx.get(f"{hub}/amsterdam-verblijfsobjecten/items", params={"limit": 25}, timeout=30).json()
    rd = httpx.get(f"{hub}/amsterdam-verblijfsobjecten/items", params={"limit": 25, "crs": RD}, timeout=30)
    assert rd.headers["Content-Crs"] == f"<{RD}>"
    for a, b in zip(crs84["features"], rd.json()["features"], strict=True):
        point = points[str(a["id"])]
        assert a["geometry"]["coordinates"] == pytest.approx(
            list(to_crs84.transform(point.x, point.y)), abs=1e-7
        )
        assert b["geometry"]["coordinates"] == pytest.approx([point.x, point.y], abs=0.01)


def test_bbox_through_the_upstream_matches_brute_force(hub: str) -> None:
    source = _load("amsterdam_afvalbakken_2013.geojson")
    box = (4.89, 52.37, 4.91, 52.38)
    expected = sorted(
        f["properties"]["ID"]
        for f in source
        if shapely.box(*box).intersects(shapely.geometry.shape(f["geometry"]))
    )
    got = get_all(f"{hub}/amsterdam-afvalbakken/items", {"bbox": ",".join(map(str, box)), "limit": 100})
    assert expected and sorted(f["properties"]["ID"] for f in got) == expected
