"""What is compared: the datasets, the queries sent to both sides, and the hub's sources."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyogrio.raw

from bench.load import REQUEST_TIMEOUT
from bench.servers import AFVALBAKKEN, BAG_GPKG, BAG_LAYER, PostgisTable
from tests.fixtures import upstream as upstream_fixture

SCENARIOS = ("federation", "file", "postgis")
"""federation: pygeoapi direct vs the hub's ogcapi-features source on it; file and postgis:
pygeoapi standalone vs the hub's own connector on the same data."""


@dataclass(frozen=True)
class Dataset:
    """A collection both sides serve, with a bbox and a feature id that exist in it."""

    key: str
    title: str
    bbox: tuple[float, float, float, float]
    """CRS84, around the middle of the data: a sixteenth of its extent."""
    item_id: str


@dataclass(frozen=True)
class Query:
    """One request, relative to a collection's URL."""

    name: str
    path: str


@dataclass(frozen=True)
class Target:
    """One side of a comparison: an OGC API root and the collection's id there."""

    label: str
    root: str
    collection: str
    pid: int | None = None
    """The server process answering, to count its CPU time."""

    def url(self, query: Query) -> str:
        """The full URL of ``query`` on this target."""
        return f"{self.root}/collections/{self.collection}{query.path}"


@dataclass(frozen=True)
class Comparison:
    """One dataset served by a baseline and by the hub, with the queries to send both."""

    scenario: str
    dataset: Dataset
    baseline: Target
    candidate: Target
    queries: tuple[Query, ...]


def _middle_box(bounds: list[float]) -> tuple[float, float, float, float]:
    """The box around the centre of ``bounds`` with a quarter of its width and height."""
    minx, miny, maxx, maxy = bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    dx, dy = (maxx - minx) / 8, (maxy - miny) / 8
    return (round(cx - dx, 6), round(cy - dy, 6), round(cx + dx, 6), round(cy + dy, 6))


def afvalbakken() -> Dataset:
    """The municipal GeoJSON (CRS84); its ``ID`` repeats, so the item is one whose ID does not."""
    features = json.loads(AFVALBAKKEN.read_text(encoding="utf-8"))["features"]
    ids = [f["properties"]["ID"] for f in features]
    counts = Counter(ids)
    middle = len(ids) // 2
    item = next(i for i in ids[middle:] + ids[:middle] if counts[i] == 1)
    bounds = upstream_fixture._geojson_bbox(AFVALBAKKEN)
    return Dataset("afvalbakken", "afvalbakken (GeoJSON, CRS84)", _middle_box(bounds), str(item))


def verblijfsobjecten() -> Dataset:
    """The BAG GeoPackage layer (RD); the item is the feature in the middle of the layer."""
    _, fids, _, _ = pyogrio.raw.read(BAG_GPKG, layer=BAG_LAYER, return_fids=True, read_geometry=False)
    bounds = upstream_fixture._gpkg_bbox_crs84(BAG_GPKG, BAG_LAYER)
    return Dataset(
        "verblijfsobjecten", "BAG verblijfsobjecten (RD)", _middle_box(bounds), str(fids[len(fids) // 2])
    )


def queries(dataset: Dataset) -> tuple[Query, ...]:
    """Pages of 10, 100 and 1000, every feature in the middle box, and one feature by id."""
    bbox = ",".join(str(v) for v in dataset.bbox)
    return (
        Query("limit=10", "/items?f=json&limit=10"),
        Query("limit=100", "/items?f=json&limit=100"),
        Query("limit=1000", "/items?f=json&limit=1000"),
        Query("bbox", f"/items?f=json&limit=1000&bbox={bbox}"),
        Query("item", f"/items/{dataset.item_id}?f=json"),
    )


# Hub collection ids per scenario and dataset; the pygeoapi ids are the test upstream's.
HUB_COLLECTIONS = {
    ("federation", "afvalbakken"): "fed-afvalbakken",
    ("federation", "verblijfsobjecten"): "fed-verblijfsobjecten",
    ("file", "verblijfsobjecten"): "file-verblijfsobjecten",
    ("postgis", "verblijfsobjecten"): "pg-verblijfsobjecten",
}
PYGEOAPI_COLLECTIONS = {
    ("federation", "afvalbakken"): "afvalbakken",
    ("federation", "verblijfsobjecten"): "verblijfsobjecten",
    ("file", "verblijfsobjecten"): "verblijfsobjecten",
    ("postgis", "verblijfsobjecten"): "verblijfsobjecten-pg",
}
CANDIDATE_LABELS = {
    "federation": "hub (ogcapi-features)",
    "file": "hub (file)",
    "postgis": "hub (postgis)",
}
BASELINE_LABELS = {
    "federation": "pygeoapi direct",
    "file": "pygeoapi (OGR)",
    "postgis": "pygeoapi (PostgreSQL)",
}


def hub_sources(
    scenarios: tuple[str, ...], pygeoapi_url: str, table: PostgisTable | None
) -> list[dict[str, Any]]:
    """The hub's source registrations for the chosen scenarios."""
    # The clients wait up to 60 s; the hub's default source timeout (10 s) would turn the
    # slowest upstream pages under 8 concurrent clients into 504s that direct clients never see.
    common = {"classification": "open", "owner": "benchmark", "timeout": REQUEST_TIMEOUT}
    sources: list[dict[str, Any]] = []
    if "federation" in scenarios:
        sources.append(
            {
                **common,
                "id": "upstream",
                "title": "pygeoapi upstream",
                "connector": "ogcapi-features",
                "classification": "open",
                "url": pygeoapi_url,
                "collections": [
                    {"upstream": "afvalbakken", "id": HUB_COLLECTIONS["federation", "afvalbakken"]},
                    {
                        "upstream": "verblijfsobjecten",
                        "id": HUB_COLLECTIONS["federation", "verblijfsobjecten"],
                    },
                ],
            }
        )
    if "file" in scenarios:
        sources.append(
            {
                **common,
                "id": "bag-file",
                "title": "BAG verblijfsobjecten (GeoPackage)",
                "connector": "file",
                "classification": "open",
                "path": str(BAG_GPKG),
                "layer": BAG_LAYER,
                "collections": [{"upstream": BAG_LAYER, "id": HUB_COLLECTIONS["file", "verblijfsobjecten"]}],
            }
        )
    if "postgis" in scenarios:
        if table is None:
            raise ValueError("the postgis scenario needs the loaded table")
        sources.append(
            {
                **common,
                "id": "bag-postgis",
                "title": "BAG verblijfsobjecten (PostGIS)",
                "connector": "postgis",
                "classification": "open",
                "dsn": table.libpq_url,
                "table": table.table,
                "collections": [
                    {"upstream": table.table, "id": HUB_COLLECTIONS["postgis", "verblijfsobjecten"]}
                ],
            }
        )
    return sources


def comparisons(scenarios: tuple[str, ...], pygeoapi: Target, hub: Target) -> list[Comparison]:
    """Every (scenario, dataset) pair to measure, in a fixed order."""
    datasets = {"verblijfsobjecten": verblijfsobjecten()}
    if "federation" in scenarios:
        datasets["afvalbakken"] = afvalbakken()
    result = []
    for scenario in SCENARIOS:
        if scenario not in scenarios:
            continue
        for (name, key), hub_collection in HUB_COLLECTIONS.items():
            if name != scenario:
                continue
            dataset = datasets[key]
            result.append(
                Comparison(
                    scenario,
                    dataset,
                    Target(
                        BASELINE_LABELS[scenario],
                        pygeoapi.root,
                        PYGEOAPI_COLLECTIONS[scenario, key],
                        pygeoapi.pid,
                    ),
                    Target(CANDIDATE_LABELS[scenario], hub.root, hub_collection, hub.pid),
                    queries(dataset),
                )
            )
    return result
