"""The production set-up: the catalogue in PostgreSQL/PostGIS and a municipal PostGIS table as a
source, through the hub's OGC API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely

from hub.settings import Settings
from tests.fixtures.hub import hub_settings, serve_hub, wait_until_served
from tests.fixtures.oidc import steward
from tests.fixtures.postgis import PostgisServer
from tests.shared_data import gpkg_rows, require_shared

RD = "http://www.opengis.net/def/crs/EPSG/0/28992"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    """The verblijfsobjecten of the BAG GeoPackage, read independently."""
    require_shared()
    return gpkg_rows("verblijfsobjecten")


@pytest.fixture(scope="module")
def municipal_database(postgis_server: PostgisServer, rows: list[dict[str, Any]]) -> str:
    """A municipal database with an address table in RD."""
    postgis_server.create_database("gemeente")
    with postgis_server.connect("gemeente") as conn:
        conn.execute(
            "CREATE TABLE adressen (fid integer PRIMARY KEY, geom geometry(Point, 28992), "
            "straatnaam text, huisnummer integer, postcode text)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO adressen VALUES (%s, ST_GeomFromWKB(%s, 28992), %s, %s, %s)",
                [
                    (
                        row["fid"],
                        shapely.to_wkb(row["geometry"]),
                        row["properties"]["straatnaam"],
                        row["properties"]["huisnummer"],
                        row["properties"]["postcode"],
                    )
                    for row in rows
                ],
            )
        conn.execute("CREATE INDEX ON adressen USING gist (geom)")
    return postgis_server.libpq_url("gemeente")


def _settings(tmp: Path, catalogue_url: str, sources: list[dict[str, Any]]) -> Settings:
    return hub_settings(tmp, sources, database_url=catalogue_url, catalogue_poll_interval=0.2)


@pytest.fixture(scope="module")
def hub(
    postgis_server: PostgisServer, municipal_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A hub whose catalogue lives in PostGIS, serving the municipal table."""
    catalogue = postgis_server.create_database("catalogus")
    source = {
        "id": "adressen",
        "title": "Adressen",
        "connector": "postgis",
        "classification": "open",
        "dsn": municipal_database,
        "table": "adressen",
    }
    with serve_hub(_settings(tmp_path_factory.mktemp("pg"), catalogue, [source])) as base_url:
        wait_until_served(base_url, "adressen")
        yield base_url


def test_every_row_is_served_once(hub: str, rows: list[dict[str, Any]]) -> None:
    ids: list[str] = []
    url: str | None = f"{hub}/ogc/v1/collections/adressen/items?limit=1000"
    while url:
        page = httpx.get(url, timeout=30).json()
        ids += [str(f["id"]) for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        if not page["features"]:
            break
    assert sorted(ids) == sorted(str(row["fid"]) for row in rows)


def test_filter_sort_and_rd_output_run_in_the_database(hub: str, rows: list[dict[str, Any]]) -> None:
    response = httpx.get(
        f"{hub}/ogc/v1/collections/adressen/items",
        params={
            "filter": "huisnummer BETWEEN 10 AND 20 AND straatnaam LIKE 'Van%'",
            "sortby": "-huisnummer",
            "limit": 1000,
            "crs": RD,
        },
        timeout=30,
    )
    assert response.status_code == 200 and response.headers["Content-Crs"] == f"<{RD}>"
    expected = [
        row
        for row in rows
        if 10 <= row["properties"]["huisnummer"] <= 20
        and str(row["properties"]["straatnaam"]).startswith("Van")
    ]
    features = response.json()["features"]
    assert expected and sorted(str(f["id"]) for f in features) == sorted(str(r["fid"]) for r in expected)
    numbers = [f["properties"]["huisnummer"] for f in features]
    assert numbers == sorted(numbers, reverse=True)
    by_id = {str(r["fid"]): r["geometry"] for r in expected}
    for feature in features:
        point = by_id[str(feature["id"])]
        assert feature["geometry"]["coordinates"] == pytest.approx([point.x, point.y], abs=0.01)


def test_registrations_persist_in_the_postgis_catalogue(
    postgis_server: PostgisServer, municipal_database: str, tmp_path: Path
) -> None:
    catalogue = postgis_server.create_database("catalogus_persist")
    registration = {
        "id": "adressen-kopie",
        "title": "Adressen",
        "connector": "postgis",
        "classification": "open",
        "dsn": municipal_database,
        "table": "adressen",
        "extent": [4.88, 52.38, 4.90, 52.40],
    }
    with serve_hub(_settings(tmp_path, catalogue, [])) as base_url:
        assert steward().post(f"{base_url}/api/v1/sources", json=registration, timeout=30).status_code == 201
    with serve_hub(_settings(tmp_path, catalogue, [])) as base_url:  # a restart
        wait_until_served(base_url, "adressen-kopie")  # collections are harvested by the probe
        assert (
            steward().get(f"{base_url}/api/v1/sources/adressen-kopie").json()["extent"]
            == registration["extent"]
        )
        served = httpx.get(
            f"{base_url}/ogc/v1/collections/adressen-kopie/items", params={"limit": 1}, timeout=30
        )
        assert served.status_code == 200 and served.json()["numberMatched"] == 1836
