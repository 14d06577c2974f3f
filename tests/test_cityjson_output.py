"""CityJSON and CityJSONSeq output of 3D collections, through a running hub.

The hub serves the 3D BAG API emulator (``tests/fixtures/threedbag.py``) and the ``cityjson``
file connector over the shared 3D BAG files. Every output is checked with the conformance kit's
``cityjson-validate.sh`` (the official CityJSON 2.0 schemas, the vertex-index check and cjio),
and its vertices are compared with the source files as ``tests/cityjson_reference.py`` reads
them, apart from the connectors.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.base import CITYJSON, RD_NAP
from hub.errors import BadGateway
from hub.ogc.cityjson import ModelFormat, cityjson_document, cityjson_sequence, encode, moved_indices
from tests.cityjson_reference import (
    B2_JSON,
    CURRENT_JSONL,
    decode,
    main_id,
    read_document,
    read_sequence,
    vertex_indices,
)
from tests.fixtures.hub import hub_settings, require_shared, serve_hub, wait_until_served
from tests.fixtures.loopback import serve
from tests.fixtures.threedbag import (  # noqa: F401 - threedbag_apis is a fixture
    ThreeDBagApis,
    ThreeDBagEmulator,
    threedbag_apis,
)
from tests.shared_data import AFVALBAKKEN, SHARED

VALIDATE = SHARED / "conformance" / "cityjson-validate.sh"
CITYJSON_MEDIA = "application/city+json"
CITYJSONSEQ_MEDIA = "application/city+json-seq"
REFERENCE_SYSTEM = "https://www.opengis.net/def/crs/EPSG/0/7415"
MILLIMETRE = 0.001
THREE_D = ("bag3d", "delft", "b2")
"""The 3D collections: the emulated 3D BAG API, a CityJSONSeq file and a CityJSON document."""


# --- helpers -------------------------------------------------------------------------------


def validate(*paths: Path) -> None:
    """Run the conformance kit's CityJSON validator on the files; every one must pass."""
    result = subprocess.run(
        [str(VALIDATE), *map(str, paths)], capture_output=True, text=True, timeout=900, check=False
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    for path in paths:
        assert f"valid: {path} (" in result.stdout, report


def save(tmp_path: Path, name: str, response: httpx.Response) -> Path:
    """Write an answer where the validator expects it: ``.city.json`` or ``.city.jsonl``."""
    suffix = ".city.jsonl" if response.headers["content-type"].startswith(CITYJSONSEQ_MEDIA) else ".city.json"
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(response.content)
    return path


def lines_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON objects of a CityJSONSeq answer, one per line."""
    assert response.content.endswith(b"\n")
    return [json.loads(line) for line in response.text.splitlines()]


def top_level(city_objects: dict[str, Any]) -> list[str]:
    """The ids of the objects without parents, in document order."""
    return [i for i, o in city_objects.items() if not o.get("parents")]


def coordinates(
    city_object: dict[str, Any], vertices: list[list[int]], transform: dict[str, Any]
) -> list[np.ndarray]:
    """Per geometry of an object, the real coordinates of its boundaries in order."""
    return [
        np.array([decode(vertices[i], transform) for i in vertex_indices(g["boundaries"])])
        for g in city_object.get("geometry", [])
    ]


def source_objects(path: Path) -> dict[str, list[np.ndarray]]:
    """Every CityObject of a shared file with its geometries' real coordinates."""
    if path.suffix == ".jsonl":
        header, lines = read_sequence(path)
        return {
            object_id: coordinates(city_object, line["vertices"], header["transform"])
            for line in lines
            for object_id, city_object in line["CityObjects"].items()
        }
    document = read_document(path)
    return {
        object_id: coordinates(city_object, document["vertices"], document["transform"])
        for object_id, city_object in document["CityObjects"].items()
    }


def worst_deviation(
    objects: dict[str, Any], vertices: list[list[int]], transform: dict[str, Any], source: dict[str, Any]
) -> float:
    """The largest distance (per axis) between an output's vertices and the source's."""
    worst = 0.0
    for object_id, city_object in objects.items():
        ours, theirs = coordinates(city_object, vertices, transform), source[object_id]
        assert [a.shape for a in ours] == [b.shape for b in theirs], object_id
        for a, b in zip(ours, theirs, strict=True):
            worst = max(worst, float(np.abs(a - b).max()))
    return worst


def parse_links(response: httpx.Response) -> list[dict[str, str]]:
    """Every link of the response's ``Link`` header (RFC 8288), with its parameters."""
    found = []
    for match in re.finditer(r'<([^>]*)>((?:\s*;\s*[\w*-]+="[^"]*")*)', response.headers.get("link", "")):
        link = {"href": match.group(1)}
        link.update(re.findall(r'([\w*-]+)="([^"]*)"', match.group(2)))
        found.append(link)
    return found


def links(response: httpx.Response) -> dict[str, str]:
    """The href of each relation that occurs once (``self``, ``next``, ``prev``, ...)."""
    return {link["rel"]: link["href"] for link in parse_links(response) if link["rel"] != "alternate"}


# --- the hub -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, threedbag_apis: ThreeDBagApis) -> Iterator[str]:  # noqa: F811
    """A hub serving the three 3D collections and a 2D one; yields its collections URL."""
    require_shared()
    sources = [
        {"id": "bag3d", "title": "3D BAG", "connector": "3dbag", "classification": "open",
         "url": threedbag_apis.current.url},
        {"id": "delft", "title": "3D BAG Delft", "connector": "cityjson", "classification": "open",
         "path": str(CURRENT_JSONL)},
        {"id": "b2", "title": "Two buildings", "connector": "cityjson", "classification": "open",
         "path": str(B2_JSON)},
        {"id": "delft-protected", "title": "3D BAG Delft", "connector": "cityjson", "classification": "open",
         "path": str(CURRENT_JSONL),
         "protected_fields": {"documentnummer": {"classification": "confidential", "roles": ["steward"]}}},
        {"id": "bins", "title": "Afvalbakken", "connector": "file", "classification": "open",
         "path": str(AFVALBAKKEN)},
    ]  # fmt: skip
    with serve_hub(hub_settings(tmp_path_factory.mktemp("cityjson-output"), sources)) as base_url:
        for collection in (*THREE_D, "bins", "delft-protected"):
            wait_until_served(base_url, collection)
        yield f"{base_url}/ogc/v1/collections"


def get(url: str, **params: Any) -> httpx.Response:
    """GET with the test's usual timeout."""
    return httpx.get(url, params=params, timeout=60)


# --- documents and sequences -----------------------------------------------------------------


@pytest.mark.parametrize("collection", THREE_D)
def test_items_as_one_valid_cityjson_document(hub: str, collection: str, tmp_path: Path) -> None:
    geojson = get(f"{hub}/{collection}/items", limit=7).json()
    answer = get(f"{hub}/{collection}/items", f="cityjson", limit=7)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == CITYJSON_MEDIA
    assert answer.headers["content-crs"] == f"<{RD_NAP}>"
    document = answer.json()
    assert document["type"] == "CityJSON" and document["version"] == "2.0"
    assert document["metadata"]["referenceSystem"] == REFERENCE_SYSTEM
    assert set(document["transform"]) == {"scale", "translate"}
    ids = [f["id"] for f in geojson["features"]]
    # one top-level CityObject per feature of the page, in page order, with its children
    assert top_level(document["CityObjects"]) == ids
    assert answer.headers["ogc-numberreturned"] == str(len(ids))
    for object_id in ids:
        for child in document["CityObjects"][object_id].get("children", []):
            assert document["CityObjects"][child]["parents"] == [object_id]
    # the extent is that of the vertices, in real coordinates
    real = np.array([decode(v, document["transform"]) for v in document["vertices"]])
    extent = document["metadata"]["geographicalExtent"]
    assert np.allclose(extent, [*real.min(axis=0), *real.max(axis=0)], atol=MILLIMETRE)
    # every vertex belongs to a geometry: the page's vertices, not the source's
    used = {i for o in document["CityObjects"].values() for g in o.get("geometry", [])
            for i in vertex_indices(g["boundaries"])}  # fmt: skip
    assert used == set(range(len(document["vertices"])))
    validate(save(tmp_path, collection, answer))


@pytest.mark.parametrize("collection", THREE_D)
def test_items_as_valid_cityjsonseq(hub: str, collection: str, tmp_path: Path) -> None:
    geojson = get(f"{hub}/{collection}/items", limit=5, offset=1).json()
    answer = get(f"{hub}/{collection}/items", f="cityjsonseq", limit=5, offset=1)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == CITYJSONSEQ_MEDIA
    header, *features = lines_of(answer)
    assert header["type"] == "CityJSON" and header["CityObjects"] == {} and header["vertices"] == []
    assert header["metadata"]["referenceSystem"] == REFERENCE_SYSTEM and "transform" in header
    assert [f["type"] for f in features] == ["CityJSONFeature"] * len(features)
    assert [f["id"] for f in features] == [f["id"] for f in geojson["features"]]
    for feature in features:
        assert top_level(feature["CityObjects"]) == [feature["id"]]
    validate(save(tmp_path, collection, answer))


@pytest.mark.parametrize(
    ("collection", "source"), [("delft", CURRENT_JSONL), ("bag3d", CURRENT_JSONL), ("b2", B2_JSON)]
)
def test_vertices_are_the_sources_real_coordinates(hub: str, collection: str, source: Path) -> None:
    expected = source_objects(source)
    document = get(f"{hub}/{collection}/items", f="cityjson", limit=100).json()
    assert len(document["CityObjects"]) > 0
    assert (
        worst_deviation(document["CityObjects"], document["vertices"], document["transform"], expected)
        <= MILLIMETRE
    )
    header, *features = lines_of(get(f"{hub}/{collection}/items", f="cityjsonseq", limit=100))
    for feature in features:
        assert (
            worst_deviation(feature["CityObjects"], feature["vertices"], header["transform"], expected)
            <= MILLIMETRE
        )


def test_attributes_are_the_features_properties(hub: str) -> None:
    """What the feature service returned, not the source's raw attributes: a property left
    out of the feature (here by ``properties``) is not in the CityJSON either."""
    params = {"limit": 4, "properties": "identificatie,h_dak_max,h_maaiveld"}
    geojson = get(f"{hub}/delft/items", **params).json()
    expected = {f["id"]: f["properties"] for f in geojson["features"]}
    assert all(set(p) == {"identificatie", "h_dak_max", "h_maaiveld"} for p in expected.values())
    document = get(f"{hub}/delft/items", f="cityjson", **params).json()
    _, *features = lines_of(get(f"{hub}/delft/items", f="cityjsonseq", **params))
    for city_objects in (document["CityObjects"], *(f["CityObjects"] for f in features)):
        for object_id, city_object in city_objects.items():
            if object_id in expected:
                assert city_object["attributes"] == expected[object_id]
                assert "status" not in city_object["attributes"]
                assert "b3_h_dak_max" not in city_object["attributes"]
            else:
                assert "attributes" not in city_object  # children: nothing the hub does not govern
    # without ``properties``, every property is there, under the names GeoJSON uses
    full = get(f"{hub}/delft/items", limit=2).json()["features"]
    document = get(f"{hub}/delft/items", f="cityjson", limit=2).json()
    for feature in full:
        assert document["CityObjects"][feature["id"]]["attributes"] == feature["properties"]


def test_protected_properties_stay_out_of_cityjson(hub: str) -> None:
    """Access control removes a protected property from the features; the CityJSON written
    from them lacks it too, although the source's model holds it."""
    open_page = get(f"{hub}/delft/items", f="cityjson", limit=3).json()["CityObjects"]
    assert all("documentnummer" in open_page[i]["attributes"] for i in top_level(open_page))
    document = get(f"{hub}/delft-protected/items", f="cityjson", limit=3).json()
    _, *features = lines_of(get(f"{hub}/delft-protected/items", f="cityjsonseq", limit=3))
    feature_id = top_level(document["CityObjects"])[0]
    item = get(f"{hub}/delft-protected/items/{feature_id}", f="cityjson").json()
    for city_objects in (document["CityObjects"], item["CityObjects"], *(f["CityObjects"] for f in features)):
        tops = top_level(city_objects)
        assert tops and all(city_objects[i]["attributes"].get("identificatie") == i for i in tops)
        assert not [i for i in tops if "documentnummer" in city_objects[i]["attributes"]]
        assert b"documentnummer" not in json.dumps(city_objects).encode()


def test_skip_geometry_gives_objects_without_geometry(hub: str, tmp_path: Path) -> None:
    answer = get(f"{hub}/b2/items", f="cityjson", skipGeometry="true")
    document = answer.json()
    assert document["vertices"] == [] and len(document["CityObjects"]) == 4
    assert all("geometry" not in o for o in document["CityObjects"].values())
    validate(save(tmp_path, "no-geometry", answer))


# --- paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("collection", "fmt"), [("delft", "cityjson"), ("bag3d", "cityjsonseq")])
def test_paging_by_link_headers(hub: str, collection: str, fmt: str) -> None:
    _, lines = read_sequence(CURRENT_JSONL)
    url: str | None = f"{hub}/{collection}/items?f={fmt}&limit=60"
    seen: list[str] = []
    pages = 0
    while url is not None:
        answer = httpx.get(url, timeout=60)
        assert answer.status_code == 200, answer.text
        relations = links(answer)
        assert relations["self"].startswith(f"{hub}/{collection}/items?f={fmt}")
        assert answer.headers["ogc-numbermatched"] == str(len(lines))
        if fmt == "cityjson":
            ids = top_level(answer.json()["CityObjects"])
        else:
            ids = [line["id"] for line in lines_of(answer)[1:]]
        assert answer.headers["ogc-numberreturned"] == str(len(ids))
        assert ("prev" in relations) == (pages > 0)
        seen += ids
        pages += 1
        url = relations.get("next")
    assert pages == 3
    assert seen == [main_id(line) for line in lines]


def test_links_name_every_representation(hub: str) -> None:
    answer = get(f"{hub}/delft/items", f="cityjson", limit=10, offset=10, bbox="4.35,51.99,4.37,52.02")
    kinds = {(link["rel"], link["type"]) for link in parse_links(answer)}
    assert {
        ("self", CITYJSON_MEDIA), ("alternate", CITYJSONSEQ_MEDIA), ("alternate", "application/geo+json"),
        ("prev", CITYJSON_MEDIA), ("collection", "application/json"),
    } <= kinds  # fmt: skip
    prev = links(answer)["prev"]
    assert "offset=0" in prev and "bbox=4.35%2C51.99%2C4.37%2C52.02" in prev and "f=cityjson" in prev


# --- one feature --------------------------------------------------------------------------------


@pytest.mark.parametrize("collection", THREE_D)
def test_item_as_cityjson_and_cityjsonseq(hub: str, collection: str, tmp_path: Path) -> None:
    feature_id = get(f"{hub}/{collection}/items", limit=1).json()["features"][0]["id"]
    answer = get(f"{hub}/{collection}/items/{feature_id}", f="cityjson")
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert top_level(document["CityObjects"]) == [feature_id]
    assert len(document["CityObjects"]) == 2  # the building and its BuildingPart
    assert links(answer)["self"].endswith(f"/items/{feature_id}?f=cityjson")
    sequence = get(f"{hub}/{collection}/items/{feature_id}", f="cityjsonseq")
    header, feature = lines_of(sequence)
    assert feature["id"] == feature_id and header["transform"] == document["transform"]
    validate(save(tmp_path, f"{collection}-item", answer), save(tmp_path, f"{collection}-item", sequence))
    missing = get(f"{hub}/{collection}/items/NL.IMBAG.Pand.0503100000999999", f="cityjson")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


# --- what is refused, and negotiation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("bins/items", {"f": "cityjson"}),
        ("bins/items", {"f": "cityjsonseq"}),
        ("bins/items/1", {"f": "cityjson"}),
        ("delft/items", {"f": "cityjson", "crs": "EPSG:28992"}),
        ("delft/items", {"f": "cityjson", "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}),
        ("delft/items", {"f": "cityjsonseq", "crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}),
        ("delft/items/NL.IMBAG.Pand.0503100000018154", {"f": "cityjson", "crs": "EPSG:4258"}),
        ("delft/items", {"crs": "EPSG:7415"}),  # GeoJSON footprints are 2D
        ("delft/items", {"f": "cityjson", "crs": "EPSG:7415", "unknown": "1"}),
    ],
)
def test_refused_with_problem_details(hub: str, path: str, params: dict[str, str]) -> None:
    answer = get(f"{hub}/{path}", **params)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 400 and answer.json()["detail"]


def test_cityjson_is_in_epsg_7415_whichever_way_it_is_named(hub: str) -> None:
    for crs in ("EPSG:7415", "http://www.opengis.net/def/crs/EPSG/0/7415", REFERENCE_SYSTEM):
        answer = get(f"{hub}/delft/items", f="cityjson", crs=crs, limit=1)
        assert answer.status_code == 200 and answer.headers["content-crs"] == f"<{RD_NAP}>"


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (CITYJSON_MEDIA, CITYJSON_MEDIA),
        (CITYJSONSEQ_MEDIA, CITYJSONSEQ_MEDIA),
        (f"{CITYJSONSEQ_MEDIA}, {CITYJSON_MEDIA};q=0.5", CITYJSONSEQ_MEDIA),
        (f"{CITYJSON_MEDIA};q=0.2, application/geo+json", "application/geo+json"),
        ("application/geo+json", "application/geo+json"),
    ],
)
def test_accept_header_negotiates(hub: str, accept: str, media: str) -> None:
    for path in ("delft/items", "delft/items/NL.IMBAG.Pand.0503100000018154"):
        answer = httpx.get(f"{hub}/{path}", headers={"Accept": accept}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(media)


def test_accept_of_cityjson_on_a_2d_collection(hub: str) -> None:
    refused = httpx.get(f"{hub}/bins/items", headers={"Accept": CITYJSON_MEDIA}, timeout=60)
    assert refused.status_code == 406 and refused.headers["content-type"] == "application/problem+json"
    fallback = httpx.get(f"{hub}/bins/items", headers={"Accept": f"{CITYJSON_MEDIA}, */*;q=0.1"}, timeout=60)
    assert fallback.status_code == 200 and fallback.headers["content-type"] == "application/geo+json"


# --- what viewers see ----------------------------------------------------------------------------


def test_netherlands3d_loads_a_tile_in_one_get(hub: str, tmp_path: Path) -> None:
    """Netherlands3D loads whole CityJSON documents only: one GET for an RD tile gives every
    building in it as one document, with nothing left to page."""
    tile = {"bbox": "85000,446800,85300,447100", "bbox-crs": "EPSG:28992", "limit": 1000}
    footprints = get(f"{hub}/bag3d/items", **tile).json()
    assert 10 < len(footprints["features"]) < 159
    answer = get(f"{hub}/bag3d/items", f="cityjson", **tile)
    assert answer.status_code == 200
    assert "next" not in links(answer)
    document = answer.json()
    assert top_level(document["CityObjects"]) == [f["id"] for f in footprints["features"]]
    validate(save(tmp_path, "tile", answer))


def test_geojson_footprints_carry_heights(hub: str) -> None:
    """In 2D CRSs a 3D collection is its footprints, with the heights as properties."""
    for collection in THREE_D:
        page = get(f"{hub}/{collection}/items", crs="EPSG:28992", limit=5)
        assert page.headers["content-type"] == "application/geo+json"
        for feature in page.json()["features"]:
            geometry = feature["geometry"]
            assert geometry["type"] in ("Polygon", "MultiPolygon")
            ring = (
                geometry["coordinates"][0] if geometry["type"] == "Polygon" else geometry["coordinates"][0][0]
            )
            assert all(len(position) == 2 for position in ring)
            assert "cityjson" not in feature
            for height in ("h_maaiveld", "h_dak_min", "h_dak_50p", "h_dak_70p", "h_dak_max"):
                assert isinstance(feature["properties"][height], float), (collection, height)
            assert feature["properties"]["h_dak_max"] > feature["properties"]["h_maaiveld"]


def test_collections_advertise_the_3d_formats(hub: str) -> None:
    for collection in THREE_D:
        described = get(f"{hub}/{collection}", f="json").json()
        offered = {(link["type"], link["href"].rsplit("/", 1)[-1]) for link in described["links"]}
        assert {(CITYJSON_MEDIA, "items?f=cityjson"), (CITYJSONSEQ_MEDIA, "items?f=cityjsonseq")} <= offered
    described = get(f"{hub}/bins", f="json").json()
    assert not [link for link in described["links"] if "city+json" in link["type"]]
    document = get(f"{hub.removesuffix('/collections')}/openapi.json").json()
    paths = {path.rsplit("/collections/", 1)[-1]: ops["get"] for path, ops in document["paths"].items()}
    shared = document["components"]["parameters"]
    for path, operation in paths.items():
        if not path.startswith(("delft/items", "bins/items")):
            continue
        parameters = [
            shared[p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p for p in operation["parameters"]
        ]
        (f,) = [p for p in parameters if p["name"] == "f"]
        assert ("cityjson" in f["schema"]["enum"]) == path.startswith("delft"), path
        response = operation["responses"]["200"]["$ref"].rsplit("/", 1)[-1]
        content = document["components"]["responses"][response]["content"]
        assert (CITYJSON_MEDIA in content and CITYJSONSEQ_MEDIA in content) == path.startswith("delft")


# --- re-quantisation ---------------------------------------------------------------------------


class ShiftingThreeDBag(ThreeDBagEmulator):
    """The 3D BAG API answering every page with a transform of its own.

    Nothing in the API's contract makes the CityJSONSeq header of one answer the same as the
    next one's. Here the second page of ten is quantised at half a millimetre and every page's
    translation moves by a fraction of a millimetre, the vertices re-encoded to match, as a
    server that quantises each answer itself would do. Merging pages then needs re-quantising.
    """

    async def items(self, request: Request) -> Response:
        """``/collections/pand/items`` with a per-page header."""
        answer = await super().items(request)
        if answer.status_code != 200:
            return answer
        body = json.loads(bytes(answer.body))
        page = (int(request.query_params.get("offset", "1")) - 1) // 10
        transform = body["metadata"]["transform"]
        scale, translate = transform["scale"], transform["translate"]
        new_scale = [0.0005] * 3 if page % 3 == 1 else scale
        new_translate = [t + 0.0002 * (page % 3) for t in translate]
        for feature in body["features"]:
            feature["vertices"] = [
                [round((v[a] * scale[a] + translate[a] - new_translate[a]) / new_scale[a]) for a in range(3)]
                for v in feature["vertices"]
            ]
        body["metadata"] = {**body["metadata"], "transform": {"scale": new_scale, "translate": new_translate}}
        return JSONResponse(body, headers={"Content-Crs": answer.headers["content-crs"]})


def test_pages_with_different_transforms_are_requantised(tmp_path: Path) -> None:
    require_shared()
    emulator = ShiftingThreeDBag(CURRENT_JSONL)
    with serve(emulator.app()) as api_url:
        source = {"id": "shifting", "title": "3D BAG", "connector": "3dbag", "classification": "open",
                  "url": api_url, "page_size": 10}  # fmt: skip
        with serve_hub(hub_settings(tmp_path, [source])) as base_url:
            wait_until_served(base_url, "shifting")
            answer = get(f"{base_url}/ogc/v1/collections/shifting/items", f="cityjson", limit=30)
            sequence = get(f"{base_url}/ogc/v1/collections/shifting/items", f="cityjsonseq", limit=30)
    offsets = {dict(r.params).get("offset") for r in emulator.sent() if r.path.endswith("/items")}
    assert {"1", "11", "21"} <= offsets  # three API pages, three transforms
    document = answer.json()
    assert document["transform"]["scale"] == [0.0005] * 3  # the finest of the pages
    assert len(top_level(document["CityObjects"])) == 30
    expected = source_objects(CURRENT_JSONL)
    assert worst_deviation(
        document["CityObjects"], document["vertices"], document["transform"], expected
    ) <= (MILLIMETRE)
    header, *features = lines_of(sequence)
    assert header["transform"] == document["transform"] and len(features) == 30
    for feature in features:
        assert worst_deviation(
            feature["CityObjects"], feature["vertices"], header["transform"], expected
        ) <= (MILLIMETRE)
    validate(save(tmp_path, "requantised", answer), save(tmp_path, "requantised", sequence))


# --- the writer on its own ------------------------------------------------------------------------


def _hub_feature(object_id: str, properties: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": object_id, "geometry": None, "properties": properties, CITYJSON: model}


def test_writer_takes_attributes_from_properties_only() -> None:
    """A property the hub removed from a feature (as access control does) is not written, even
    though the model the source handed over still has it."""
    header, lines = read_sequence(CURRENT_JSONL)
    line = lines[0]
    model = {"transform": header["transform"], "crs": RD_NAP, "feature": line}
    raw = line["CityObjects"][line["id"]]["attributes"]
    assert "status" in raw and "b3_h_dak_max" in raw
    properties = {"identificatie": raw["identificatie"], "h_dak_max": raw["b3_h_dak_max"]}
    feature = _hub_feature(line["id"], properties, model)
    document = cityjson_document([feature], title="t")
    assert document["CityObjects"][line["id"]]["attributes"] == properties
    _, written = cityjson_sequence([feature], title="t")
    assert written["CityObjects"][line["id"]]["attributes"] == properties
    assert "attributes" in line["CityObjects"][line["id"]]  # the shared model is left as it was


def test_writer_merges_templates_and_appearances(tmp_path: Path) -> None:
    """Two sources' features, each with its own geometry templates and materials: indices of
    templates, template vertices and materials are moved into the merged lists."""

    def model(shift: int, colour: float) -> dict[str, Any]:
        templates = {
            "templates": [{"type": "MultiSurface", "lod": "2", "boundaries": [[[0, 1, 2]]]}],
            "vertices-templates": [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, float(shift)]],
        }
        tree = {
            "type": "SolitaryVegetationObject",
            "geometry": [
                {"type": "GeometryInstance", "template": 0, "boundaries": [0],
                 "transformationMatrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]},
                {"type": "MultiSurface", "lod": "1", "boundaries": [[[0, 1, 2]]],
                 "material": {"colour": {"values": [0]}}},
            ],
        }  # fmt: skip
        feature = {
            "type": "CityJSONFeature",
            "id": f"tree-{shift}",
            "CityObjects": {f"tree-{shift}": tree},
            "vertices": [[shift, 0, 0], [shift + 1000, 0, 0], [shift, 1000, 0]],
            "appearance": {"materials": [{"name": f"m{shift}", "diffuseColor": [colour, colour, colour]}]},
        }
        transform = {"scale": [0.001] * 3, "translate": [85000.0, 447000.0, 0.0]}
        return {"transform": transform, "crs": RD_NAP, "feature": feature, "geometry-templates": templates}

    features = [_hub_feature(f"tree-{s}", {"n": s}, model(s, c)) for s, c in ((0, 0.1), (5000, 0.9))]
    document = json.loads(encode(ModelFormat.CITYJSON, features, title="trees"))
    assert len(document["geometry-templates"]["templates"]) == 2
    assert len(document["geometry-templates"]["vertices-templates"]) == 6
    assert document["geometry-templates"]["templates"][1]["boundaries"] == [[[3, 4, 5]]]
    second = document["CityObjects"]["tree-5000"]["geometry"]
    assert second[0]["template"] == 1 and second[0]["boundaries"] == [3]
    assert second[1]["boundaries"] == [[[3, 4, 5]]] and second[1]["material"] == {"colour": {"values": [1]}}
    assert [m["name"] for m in document["appearance"]["materials"]] == ["m0", "m5000"]
    path = tmp_path / "trees.city.json"
    path.write_text(json.dumps(document))
    validate(path)


def test_vertex_indices_moved_on_the_json_text() -> None:
    """The page's index shifting, against plain recursion over every real 3D BAG geometry."""

    def moved(node: Any, offset: int) -> Any:
        return node + offset if isinstance(node, int) else [moved(child, offset) for child in node]

    _, lines = read_sequence(CURRENT_JSONL)
    boundaries = [
        g["boundaries"] for line in lines for o in line["CityObjects"].values() for g in o["geometry"]
    ]
    offsets = [(i * 7919) % 100_003 for i in range(len(boundaries))]  # 0 and 1- to 6-digit shifts
    pieces = moved_indices([json.dumps(b, separators=(",", ":")).encode() for b in boundaries], offsets)
    assert [json.loads(piece) for piece in pieces] == [
        moved(b, k) for b, k in zip(boundaries, offsets, strict=True)
    ]
    assert moved_indices([b"[[9,99],[]]", b"[]", b"[0]"], [1, 5, 0]) == [b"[[10,100],[]]", b"[]", b"[0]"]


def test_writer_refuses_a_feature_without_its_model() -> None:
    with pytest.raises(BadGateway):
        cityjson_document([{"type": "Feature", "id": "x", "geometry": None, "properties": {}}], title="t")
