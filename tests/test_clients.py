"""Real clients read the hub: GDAL's OAPIF driver and OWSLib, as users have them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely

from tests.fixtures.hub import SHARED, hub_process, hub_settings, require_shared, wait_until_served

CLIENT_CHECKS = SHARED / "conformance" / "ogcapi-clients.sh"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub over the municipal GeoJSON (CRS84) and the BAG GeoPackage (RD)."""
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
            "title": "BAG adressen",
            "connector": "file",
            "classification": "open",
            "path": str(data / "bag" / "amsterdam_bag_adressen.gpkg"),
        },
    ]
    with hub_process(hub_settings(tmp_path_factory.mktemp("clients"), sources)) as base_url:
        wait_until_served(base_url, "afvalbakken")
        wait_until_served(base_url, "bag-verblijfsobjecten")
        yield f"{base_url}/ogc/v1"


def test_gdal_reads_every_feature_with_the_source_coordinates(hub: str) -> None:
    source = json.loads((SHARED / "data" / "municipal" / "amsterdam_afvalbakken_2013.geojson").read_text())
    meta, _, geometry, fields = pyogrio.raw.read(f"OAPIF:{hub}", layer="afvalbakken")
    assert len(geometry) == len(source["features"]) == 3049
    got = np.array(sorted(shapely.get_coordinates(shapely.from_wkb(geometry)).tolist()))
    expected = np.array(sorted(f["geometry"]["coordinates"] for f in source["features"]))
    assert np.abs(got - expected).max() < 1e-7
    soort = dict(zip(meta["fields"], fields, strict=True))["SOORT"]
    assert sorted(map(str, soort)) == sorted(str(f["properties"]["SOORT"]) for f in source["features"])


def test_gdal_reads_rd_data_in_rd_when_asked(hub: str) -> None:
    path = SHARED / "data" / "bag" / "amsterdam_bag_adressen.gpkg"
    _, _, original, _ = pyogrio.raw.read(path, layer="verblijfsobjecten")
    _, _, served, _ = pyogrio.raw.read(
        f"OAPIF:{hub}", layer="bag-verblijfsobjecten", CRS="EPSG:28992"
    )
    got = np.array(sorted(shapely.get_coordinates(shapely.from_wkb(served)).tolist()))
    expected = np.array(sorted(shapely.get_coordinates(shapely.from_wkb(original)).tolist()))
    assert got.shape == expected.shape == (1836, 2)
    assert np.abs(got - expected).max() < 0.01


def test_conformance_kit_client_checks_pass(hub: str) -> None:
    if not CLIENT_CHECKS.is_file():
        pytest.skip(f"needs the conformance kit at {CLIENT_CHECKS}, which is absent")
    result = subprocess.run(
        ["bash", str(CLIENT_CHECKS), "features", hub],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHON": "python3"},
        cwd=Path(__file__).resolve().parents[1],
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-4000:]
    assert "FAIL" not in result.stdout and " 0 failed" in result.stdout, result.stdout[-4000:]
