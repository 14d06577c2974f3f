"""3D sources behind the OGC API: GeoJSON carries the footprint, never the handed-over model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.hub import hub_settings, require_shared, serve_hub, wait_until_served


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub serving the Delft 3D BAG CityJSONSeq file."""
    data = require_shared()
    source = {
        "id": "delft",
        "title": "3D BAG Delft",
        "connector": "cityjson",
        "classification": "open",
        "path": str(data / "3dbag" / "delft_3dbag.city.jsonl"),
    }
    with serve_hub(hub_settings(tmp_path_factory.mktemp("3d"), [source])) as base_url:
        wait_until_served(base_url, "delft")
        yield f"{base_url}/ogc/v1/collections/delft"


def test_geojson_items_are_footprints_without_the_3d_model(hub: str) -> None:
    lines = (require_shared() / "3dbag" / "delft_3dbag.city.jsonl").read_text().splitlines()
    expected_ids = {json.loads(line)["id"] for line in lines[1:]}
    for params in ({"limit": 1000}, {"limit": 1000, "f": "json"}):
        page = httpx.get(f"{hub}/items", params=params, timeout=30).json()
        assert {f["id"] for f in page["features"]} == expected_ids
        for feature in page["features"]:
            assert "cityjson" not in feature
            assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
            lon, lat = feature["geometry"]["coordinates"][0][0][:2]
            assert 4.3 < lon < 4.4 and 51.9 < lat < 52.1  # Delft, in CRS84
    one = sorted(expected_ids)[0]
    item = httpx.get(f"{hub}/items/{one}", timeout=30).json()
    assert item["id"] == one and "cityjson" not in item
    html = httpx.get(f"{hub}/items", params={"f": "html", "limit": 5}, timeout=30)
    assert html.status_code == 200 and "CityObjects" not in html.text
