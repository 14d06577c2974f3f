"""The hub's own GeoJSON writer answers as pygeoapi does, bar two deliberate corrections."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.fixtures.hub import hub_settings, require_shared, serve_hub, wait_until_served

RD = "http://www.opengis.net/def/crs/EPSG/0/28992"


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The same sources behind a hub with the native writer and one that leaves it to pygeoapi."""
    data = require_shared()
    sources = [
        {
            "id": "afvalbakken",
            "title": "Afvalbakken",
            "connector": "file",
            "classification": "open",
            "path": str(data / "municipal" / "amsterdam_afvalbakken_2013.geojson"),
        },
        {
            "id": "bag",
            "title": "BAG",
            "connector": "file",
            "classification": "open",
            "path": str(data / "bag" / "amsterdam_bag_adressen.gpkg"),
            "collections": [{"upstream": "verblijfsobjecten", "id": "verblijfsobjecten"}],
        },
    ]
    with ExitStack() as stack:
        urls = []
        for native in (True, False):
            settings = hub_settings(
                tmp_path_factory.mktemp("native" if native else "pygeoapi"),
                sources,
                server={"native_geojson": native},
            )
            base_url = stack.enter_context(serve_hub(settings))
            wait_until_served(base_url, "verblijfsobjecten")
            urls.append(f"{base_url}/ogc/v1")
        yield urls[0], urls[1]


def _comparable(document: dict[str, Any], base_url: str) -> dict[str, Any]:
    links = {
        (link["rel"], link["type"], link["href"].replace(base_url, "BASE"))
        for link in document.get("links", [])
        if link["rel"] not in ("self", "alternate")  # pygeoapi drops offset from these
    }
    return {
        **{k: v for k, v in document.items() if k not in ("links", "timeStamp")},
        "links": links,
    }


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("collections/afvalbakken/items", {}),
        ("collections/afvalbakken/items", {"limit": 100, "offset": 200}),
        (
            "collections/afvalbakken/items",
            {"limit": 50, "bbox": "4.88,52.36,4.90,52.37", "SOORT": "Afwijkend"},
        ),
        ("collections/afvalbakken/items", {"filter": "ID < 40", "sortby": "-ID", "properties": "ID,SOORT"}),
        ("collections/verblijfsobjecten/items", {"limit": 7, "crs": RD, "skipGeometry": "false"}),
        ("collections/verblijfsobjecten/items", {"limit": 5, "skipGeometry": "true"}),
        ("collections/verblijfsobjecten/items/3072221", {}),
        ("collections/verblijfsobjecten/items/3072221", {"crs": RD}),
    ],
)
def test_native_and_pygeoapi_documents_agree(
    hubs: tuple[str, str], path: str, params: dict[str, Any]
) -> None:
    native_url, pygeoapi_url = hubs
    native = httpx.get(f"{native_url}/{path}", params=params, timeout=30)
    classic = httpx.get(f"{pygeoapi_url}/{path}", params=params, timeout=30)
    assert native.status_code == classic.status_code == 200
    assert native.headers["Content-Crs"] == classic.headers["Content-Crs"]
    assert native.headers["content-type"] == "application/geo+json"
    assert _comparable(native.json(), native_url) == _comparable(classic.json(), pygeoapi_url)


def test_native_self_link_keeps_the_offset_and_no_next_after_the_last_page(hubs: tuple[str, str]) -> None:
    native_url, _ = hubs
    last = httpx.get(
        f"{native_url}/collections/afvalbakken/items", params={"limit": 49, "offset": 3000}
    ).json()
    assert last["numberReturned"] == 49 and last["numberMatched"] == 3049
    rels = {link["rel"]: link["href"] for link in last["links"]}
    assert "offset=3000" in rels["self"] and "next" not in rels


def test_browsers_and_json_ld_still_get_pygeoapi(hubs: tuple[str, str]) -> None:
    native_url, _ = hubs
    html = httpx.get(f"{native_url}/collections/afvalbakken/items", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html")
    jsonld = httpx.get(f"{native_url}/collections/afvalbakken/items", params={"f": "jsonld", "limit": 2})
    assert jsonld.status_code == 200 and "@context" in jsonld.json()
