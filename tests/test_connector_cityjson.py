"""The cityjson connector on the shared 3D BAG files, checked by reading them apart.

The reference side reads the CityJSON documents and CityJSONSeq files with the json module
and decodes vertices by hand (``tests/cityjson_reference.py``); every query is answered again
by brute force. Files of older releases are made from the real ones in a temporary directory
(numeric ``lod``, URN reference systems, version 1.0 without ``transform``, foreign members),
and must give the same features as the originals.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from pydantic import ValidationError
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from pyproj import Transformer

from connectors.base import CITYJSON, CRS84, RD_NAP, RD_NEW, BBox, Feature, FeatureQuery, Interval, SortKey
from connectors.cityjson import CityJsonConnector, CityJsonSettings
from connectors.errors import ConnectorConfigError, UnsupportedQuery
from connectors.registry import connector_class
from tests.cityjson_reference import (
    B2_JSON,
    B2_JSONL,
    CURRENT_JSON,
    CURRENT_JSONL,
    HEIGHTS,
    V20240420_JSONL,
    decode,
    expected_properties,
    feature_validator,
    ground_footprint,
    lod0_rings,
    main_id,
    read_document,
    read_sequence,
    vertex_indices,
)
from tests.shared_data import require_shared

RD_TO_LONLAT = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True)
ALL_FILES = [CURRENT_JSONL, CURRENT_JSON, V20240420_JSONL, B2_JSONL, B2_JSON]


# --- the reference -------------------------------------------------------------------------


class Reference:
    """A file's buildings as read without the connector: ids, attributes, footprints."""

    def __init__(self, path: Path):
        self.path = path
        self.objects: dict[str, dict[str, Any]] = {}
        """Per building: the CityObjects, vertices and transform it is defined with."""
        if path.suffix == ".jsonl":
            header, lines = read_sequence(path)
            for line in lines:
                self.objects[main_id(line)] = {
                    "city_objects": line["CityObjects"], "vertices": line["vertices"],
                    "transform": header["transform"],
                }  # fmt: skip
        else:
            document = read_document(path)
            for object_id, city_object in document["CityObjects"].items():
                if not city_object.get("parents"):
                    self.objects[object_id] = {
                        "city_objects": document["CityObjects"], "vertices": document["vertices"],
                        "transform": document["transform"],
                    }  # fmt: skip

    @property
    def ids(self) -> list[str]:
        return list(self.objects)

    def properties(self, object_id: str) -> dict[str, Any]:
        return expected_properties(self.objects[object_id]["city_objects"][object_id].get("attributes", {}))

    def footprint(self, object_id: str) -> shapely.Geometry:
        entry = self.objects[object_id]
        rings = lod0_rings(entry["city_objects"], object_id, entry["vertices"], entry["transform"])
        if rings is not None:
            return shapely.Polygon(rings[0], rings[1:])
        lods = {
            g["lod"]
            for child in entry["city_objects"][object_id].get("children", [])
            for g in entry["city_objects"][child].get("geometry", [])
        }
        lod = "1.2" if "1.2" in lods else min(lods, key=float)
        return ground_footprint(entry["city_objects"], object_id, entry["vertices"], entry["transform"], lod)

    def family(self, object_id: str) -> set[str]:
        city_objects = self.objects[object_id]["city_objects"]
        return {object_id, *city_objects[object_id].get("children", [])}


@pytest.fixture(scope="module")
def references() -> dict[Path, Reference]:
    require_shared()
    return {path: Reference(path) for path in ALL_FILES}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def opened(path: Path, http: httpx.AsyncClient, **settings: Any) -> CityJsonConnector:
    connector = CityJsonConnector(CityJsonSettings(path=path, **settings), source_id="cj", http=http)
    await connector.open()
    return connector


def name_of(path: Path) -> str:
    return path.name.split(".")[0]


async def everything(connector: CityJsonConnector, collection: str, **criteria: Any) -> list[Feature]:
    """Every matching feature, page by page, checking the paging as it goes."""
    features: list[Feature] = []
    offset = 0
    while True:
        page = await connector.query(collection, FeatureQuery(limit=7, offset=offset, **criteria))
        features.extend(page.features)
        offset += len(page.features)
        assert page.number_matched is not None
        assert page.has_more == (offset < page.number_matched)
        if not page.has_more:
            return features


def ids(features: list[Feature]) -> list[str]:
    return [str(f["id"]) for f in features]


# --- settings and registration -------------------------------------------------------------


def test_registry_knows_the_cityjson_kind() -> None:
    assert connector_class("cityjson") is CityJsonConnector


def test_settings(tmp_path: Path) -> None:
    settings = CityJsonSettings.model_validate({"path": "x.city.json"}, context={"base_dir": tmp_path})
    assert settings.path == tmp_path / "x.city.json"
    assert CityJsonSettings(path=Path("x.json"), reference_system="EPSG:7415").reference_system == "EPSG:7415"
    with pytest.raises(ValidationError):
        CityJsonSettings.model_validate({"path": "x.city.json", "crs": "EPSG:7415"})


# --- features ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
async def test_one_feature_per_top_level_object(
    path: Path, references: dict[Path, Reference], http: httpx.AsyncClient
) -> None:
    reference = references[path]
    connector = await opened(path, http)
    (info,) = await connector.describe()
    assert info.id == name_of(path)
    assert info.storage_crs == RD_NEW
    assert info.capabilities.filter and info.capabilities.sort
    page = await connector.query(info.id, FeatureQuery(limit=1000))
    assert ids(page.features) == reference.ids
    assert page.number_matched == len(reference.ids)
    for feature in page.features:
        assert feature["properties"] == reference.properties(str(feature["id"]))
        assert all(isinstance(feature["properties"][h], float) for h in HEIGHTS if h in feature["properties"])
        assert all(not name.startswith("b3_") for name in feature["properties"])


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
async def test_footprints_match_an_independent_decoding(
    path: Path, references: dict[Path, Reference], http: httpx.AsyncClient
) -> None:
    reference = references[path]
    connector = await opened(path, http)
    page = await connector.query(name_of(path), FeatureQuery(limit=1000))
    for feature in page.features:
        expected = reference.footprint(str(feature["id"]))
        got = shapely.geometry.shape(feature["geometry"])
        assert got.geom_type == "Polygon"
        assert got.symmetric_difference(expected).area < 1e-6
        if lod0_rings(**_entry(reference, str(feature["id"]))) is not None:
            # the LoD 0 surface is taken as it is, vertex for vertex
            got_xy = shapely.get_coordinates(got).ravel().tolist()
            assert got_xy == pytest.approx(shapely.get_coordinates(expected).ravel().tolist(), abs=1e-9)


def _entry(reference: Reference, object_id: str) -> dict[str, Any]:
    entry = reference.objects[object_id]
    return {
        "city_objects": entry["city_objects"], "object_id": object_id, "vertices": entry["vertices"],
        "transform": entry["transform"],
    }  # fmt: skip


@pytest.mark.parametrize(("document", "sequence"), [(CURRENT_JSON, CURRENT_JSONL), (B2_JSON, B2_JSONL)])
async def test_document_and_sequence_give_the_same_features(
    document: Path, sequence: Path, http: httpx.AsyncClient
) -> None:
    require_shared()
    from_document = await (await opened(document, http)).query(name_of(document), FeatureQuery(limit=1000))
    from_sequence = await (await opened(sequence, http)).query(name_of(sequence), FeatureQuery(limit=1000))
    by_id = {f["id"]: f for f in from_sequence.features}
    assert set(by_id) == set(ids(from_document.features))
    for feature in from_document.features:
        twin = by_id[feature["id"]]
        assert feature["properties"] == twin["properties"]
        a, b = shapely.geometry.shape(feature["geometry"]), shapely.geometry.shape(twin["geometry"])
        assert a.symmetric_difference(b).area < 1e-6


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
async def test_handed_over_cityjson_is_a_valid_feature_of_its_own(
    path: Path, references: dict[Path, Reference], http: httpx.AsyncClient
) -> None:
    reference = references[path]
    validator = feature_validator()
    page = await (await opened(path, http)).query(name_of(path), FeatureQuery(limit=1000))
    known_by_source: dict[int, set[tuple[float, ...]]] = {}
    for position, feature in enumerate(page.features):
        member = feature[CITYJSON]
        cj = member["feature"]
        assert member["crs"] == RD_NAP
        assert cj["type"] == "CityJSONFeature" and cj["id"] == feature["id"]
        assert set(cj["CityObjects"]) == reference.family(cj["id"])
        indices = [i for o in cj["CityObjects"].values() for g in o.get("geometry", [])
                   for i in vertex_indices(g["boundaries"])]  # fmt: skip
        assert indices and max(indices) < len(cj["vertices"])
        assert all(isinstance(c, int) for v in cj["vertices"] for c in v)
        # every vertex the feature uses is a vertex of the file, in real coordinates
        entry = reference.objects[cj["id"]]
        if id(entry["vertices"]) not in known_by_source:
            known_by_source[id(entry["vertices"])] = {
                tuple(round(c, 3) for c in decode(v, entry["transform"])) for v in entry["vertices"]
            }
        known = known_by_source[id(entry["vertices"])]
        used = {tuple(round(c, 3) for c in decode(cj["vertices"][i], member["transform"])) for i in indices}
        assert used <= known
        if position in (0, len(page.features) // 2, len(page.features) - 1):  # the schema check is slow
            assert not list(validator.iter_errors(cj))


# --- queries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "crs"),
    [((85100.0, 446800.0, 85300.0, 447000.0), RD_NEW), ((4.3690, 52.0040, 4.3730, 52.0070), CRS84),
     ((0.0, 0.0, 10.0, 10.0), RD_NEW)],
)  # fmt: skip
async def test_bbox_matches_brute_force(
    box: tuple[float, float, float, float],
    crs: str,
    references: dict[Path, Reference],
    http: httpx.AsyncClient,
) -> None:
    reference = references[CURRENT_JSONL]
    expected = []
    for object_id in reference.ids:
        shape = reference.footprint(object_id)
        if crs == CRS84:
            xs, ys = RD_TO_LONLAT.transform(*shape.exterior.xy)
            shape = shapely.Polygon(list(zip(xs, ys, strict=True)))
        if shape.intersects(shapely.box(*box)):
            expected.append(object_id)
    connector = await opened(CURRENT_JSONL, http)
    got = await everything(connector, "delft_3dbag", bbox=BBox(*box, crs=crs))
    assert ids(got) == expected
    assert box[0] == 0.0 or expected


@pytest.mark.parametrize("path", [CURRENT_JSONL, V20240420_JSONL], ids=lambda p: p.name)
async def test_one_filter_works_on_both_releases(
    path: Path, references: dict[Path, Reference], http: httpx.AsyncClient
) -> None:
    reference = references[path]
    connector = await opened(path, http)
    props = {i: reference.properties(i) for i in reference.ids}
    area = shapely.box(84900.0, 446500.0, 85200.0, 446900.0)
    cases: list[tuple[str, Any]] = [
        ("h_dak_max > 12", lambda p, _: p["h_dak_max"] > 12),
        ("mutatie_ahn3_ahn4 = false AND puntdichtheid_ahn4 > 30",
         lambda p, _: p["mutatie_ahn3_ahn4"] is False and p["puntdichtheid_ahn4"] > 30),
        ("oorspronkelijkbouwjaar < 1900 OR dak_type = 'horizontal'",
         lambda p, _: p["oorspronkelijkbouwjaar"] < 1900 or p["dak_type"] == "horizontal"),
        ("begingeldigheid >= DATE('2015-01-01')",
         lambda p, _: date.fromisoformat(p["begingeldigheid"]) >= date(2015, 1, 1)),
        (f"S_INTERSECTS(geometry, {area.wkt})", lambda _, i: reference.footprint(i).intersects(area)),
    ]  # fmt: skip
    for text, test in cases:
        expression = parse_cql2_text(text)
        assert connector.supports_filter("delft", expression) is False  # not this collection
        assert connector.supports_filter(name_of(path), expression)
        got = await everything(connector, name_of(path), filter=expression, filter_crs=RD_NEW)
        assert ids(got) == [i for i in reference.ids if test(props[i], i)], text
    assert not connector.supports_filter(name_of(path), parse_cql2_text("b3_h_dak_max > 1"))


async def test_property_equality_and_sorting(
    references: dict[Path, Reference], http: httpx.AsyncClient
) -> None:
    reference = references[CURRENT_JSONL]
    connector = await opened(CURRENT_JSONL, http)
    props = {i: reference.properties(i) for i in reference.ids}
    got = await everything(connector, "delft_3dbag", property_equals={"dak_type": "slanted"})
    assert ids(got) == [i for i in reference.ids if props[i]["dak_type"] == "slanted"]
    got = await everything(connector, "delft_3dbag", property_equals={"kas_warenhuis": "false"})
    assert ids(got) == [i for i in reference.ids if props[i]["kas_warenhuis"] is False]
    got = await everything(connector, "delft_3dbag", sortby=(SortKey("h_dak_max", ascending=False),))
    assert ids(got) == sorted(reference.ids, key=lambda i: -props[i]["h_dak_max"])
    got = await everything(
        connector, "delft_3dbag", sortby=(SortKey("oorspronkelijkbouwjaar"), SortKey("h_maaiveld"))
    )
    assert ids(got) == sorted(
        reference.ids, key=lambda i: (props[i]["oorspronkelijkbouwjaar"], props[i]["h_maaiveld"])
    )


async def test_time_field(references: dict[Path, Reference], http: httpx.AsyncClient) -> None:
    reference = references[CURRENT_JSONL]
    connector = await opened(CURRENT_JSONL, http, time_field="begingeldigheid")
    (info,) = await connector.describe()
    assert info.capabilities.datetime and info.temporal_extent is not None
    start, end = date(2010, 1, 1), date(2018, 12, 31)
    interval = Interval(datetime(2010, 1, 1, tzinfo=UTC), datetime(2018, 12, 31, 23, 59, tzinfo=UTC))
    got = await everything(connector, "delft_3dbag", datetime=interval)
    expected = [
        i for i in reference.ids
        if start <= date.fromisoformat(reference.properties(i)["begingeldigheid"]) <= end
    ]  # fmt: skip
    assert ids(got) == expected and expected


async def test_get_feature(references: dict[Path, Reference], http: httpx.AsyncClient) -> None:
    reference = references[CURRENT_JSON]
    connector = await opened(CURRENT_JSON, http)
    page = await connector.query("delft_3dbag", FeatureQuery(limit=1000))
    for listed in page.features[::20]:
        single = await connector.get_feature("delft_3dbag", str(listed["id"]), crs=RD_NEW)
        assert single == listed
        assert single is not None and single[CITYJSON] is listed[CITYJSON]
    assert await connector.get_feature("delft_3dbag", "NL.IMBAG.Pand.0503100000000000", crs=RD_NEW) is None
    part = next(i for i in reference.family(reference.ids[0]) if i != reference.ids[0])
    assert await connector.get_feature("delft_3dbag", part, crs=RD_NEW) is None  # parts are not features
    with pytest.raises(UnsupportedQuery):
        await connector.query("delft", FeatureQuery(limit=1))


async def test_the_hub_may_change_what_it_gets(http: httpx.AsyncClient) -> None:
    require_shared()
    connector = await opened(B2_JSONL, http)
    first = await connector.query("3dbag_b2", FeatureQuery(limit=1))
    first.features[0]["geometry"]["coordinates"][0][0][0] = 0.0
    first.features[0]["properties"]["status"] = "changed"
    again = await connector.query("3dbag_b2", FeatureQuery(limit=1))
    assert again.features[0]["geometry"]["coordinates"][0][0][0] != 0.0
    assert again.features[0]["properties"]["status"] != "changed"


# --- older and irregular files -------------------------------------------------------------


def _numeric_lods(city_objects: dict[str, Any]) -> None:
    for city_object in city_objects.values():
        for geometry in city_object.get("geometry", []):
            lod = geometry["lod"]
            geometry["lod"] = int(lod) if "." not in lod else float(lod)


async def _same_features(a: list[Feature], b: list[Feature], tolerance: float) -> None:
    assert ids(a) == ids(b)
    for x, y in zip(a, b, strict=True):
        assert x["properties"] == y["properties"]
        gx, gy = shapely.geometry.shape(x["geometry"]), shapely.geometry.shape(y["geometry"])
        assert shapely.hausdorff_distance(gx, gy) <= tolerance


async def test_a_1_1_document_with_numeric_lods_urn_crs_and_extra_members(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    require_shared()
    document = read_document(CURRENT_JSON)
    document["version"] = "1.1"
    _numeric_lods(document["CityObjects"])
    document["metadata"]["referenceSystem"] = "urn:ogc:def:crs:EPSG::7415"
    document["+generator"] = {"name": "an old exporter"}
    document["extraMember"] = [1, 2, 3]
    path = tmp_path / "old.city.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    original = await (await opened(CURRENT_JSON, http)).query("delft_3dbag", FeatureQuery(limit=1000))
    normalised = await (await opened(path, http)).query("old", FeatureQuery(limit=1000))
    await _same_features(original.features, normalised.features, 1e-9)
    validator = feature_validator()
    for feature in normalised.features[:3]:
        cj = feature[CITYJSON]["feature"]
        assert feature[CITYJSON]["crs"] == RD_NAP
        assert all(
            isinstance(g["lod"], str) for o in cj["CityObjects"].values() for g in o.get("geometry", [])
        )
        assert not list(validator.iter_errors(cj))


async def test_a_1_0_document_without_transform_is_upgraded(tmp_path: Path, http: httpx.AsyncClient) -> None:
    require_shared()
    document = read_document(B2_JSON)
    transform = document.pop("transform")
    document["vertices"] = [list(decode(v, transform)) for v in document["vertices"]]
    document["version"] = "1.0"
    _numeric_lods(document["CityObjects"])
    document["metadata"] = {"referenceSystem": "urn:ogc:def:crs:EPSG::7415", "datasetTitle": "3D BAG"}
    path = tmp_path / "v10.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    original = await (await opened(B2_JSON, http)).query("3dbag_b2", FeatureQuery(limit=10))
    upgraded = await (await opened(path, http)).query("v10", FeatureQuery(limit=10))
    await _same_features(original.features, upgraded.features, 1e-6)
    member = upgraded.features[0][CITYJSON]
    assert member["transform"]["scale"] == [0.001, 0.001, 0.001]
    assert not list(feature_validator().iter_errors(member["feature"]))
    # reading an old file through cjio leaves the process's json module as it was
    assert json.dumps(0.1234567891) == "0.1234567891"
    assert json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]


def _shifted(node: Any, shift: int) -> Any:
    """Vertex indices moved by ``shift``."""
    return node + shift if isinstance(node, int) else [_shifted(child, shift) for child in node]


async def test_an_irregular_sequence_is_normalised(tmp_path: Path, http: httpx.AsyncClient) -> None:
    require_shared()
    header, lines = read_sequence(V20240420_JSONL)
    header["metadata"]["referenceSystem"] = "urn:ogc:def:crs:EPSG::7415"
    header["version"] = 1.1
    irregular = []
    for line in copy.deepcopy(lines):
        del line["id"]
        line["metadata"] = {"note": "not a CityJSONFeature member"}
        _numeric_lods(line["CityObjects"])
        irregular.append(line)
    # one line holding two buildings, as some writers do
    irregular = irregular[2:]
    merged = copy.deepcopy(lines[0])
    extra = copy.deepcopy(lines[1])
    shift = len(merged["vertices"])
    for city_object in extra["CityObjects"].values():
        for geometry in city_object.get("geometry", []):
            geometry["boundaries"] = _shifted(geometry["boundaries"], shift)
    merged["CityObjects"].update(extra["CityObjects"])
    merged["vertices"] += extra["vertices"]
    del merged["id"]
    path = tmp_path / "irregular.city.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [header, *irregular, merged]) + "\n", encoding="utf-8")
    original = await (await opened(V20240420_JSONL, http)).query(
        "delft_subset_v20240420", FeatureQuery(limit=100)
    )
    normalised = await (await opened(path, http)).query("irregular", FeatureQuery(limit=100))
    assert ids(normalised.features) == [*ids(original.features[2:]), *ids(original.features[:2])]
    await _same_features(original.features[2:], normalised.features[:-2], 1e-9)
    await _same_features(original.features[:2], normalised.features[-2:], 1e-9)
    validator = feature_validator()
    for feature in (normalised.features[0], normalised.features[-1]):
        cj = feature[CITYJSON]["feature"]
        assert "metadata" not in cj and cj["id"] == feature["id"]
        assert not list(validator.iter_errors(cj))


async def test_a_file_without_reference_system(tmp_path: Path, http: httpx.AsyncClient) -> None:
    require_shared()
    document = read_document(B2_JSON)
    del document["metadata"]["referenceSystem"]
    path = tmp_path / "nocrs.city.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match="reference_system"):
        await opened(path, http)
    connector = await opened(path, http, reference_system="EPSG:7415")
    (info,) = await connector.describe()
    assert info.storage_crs == RD_NEW


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"type": "FeatureCollection", "features": []}', "not a CityJSON"),
        ("{not json", "not JSON"),
        ('{"type": "CityJSON", "version": "3.0", "CityObjects": {}, "vertices": [],'
         ' "metadata": {"referenceSystem": "EPSG:7415"}}', "version 3.0"),
        ('{"type": "CityJSON", "version": "2.0", "transform": {"scale": [1, 1, 1], "translate": [0, 0, 0]},'
         ' "metadata": {"referenceSystem": "EPSG:7415"}, "vertices": [[0, 0, 0]], "CityObjects":'
         ' {"a": {"type": "Building", "geometry": [{"type": "MultiSurface", "lod": "0",'
         ' "boundaries": [[[0, 1, 2]]]}]}}}', "cannot read"),
        ('{"type": "CityJSON", "version": "2.0", "vertices": [], "CityObjects": {},'
         ' "metadata": {"referenceSystem": "urn:ogc:def:crs:NOPE::1"}}', "unknown reference system"),
    ],
)  # fmt: skip
async def test_unusable_documents_are_config_errors(
    tmp_path: Path, http: httpx.AsyncClient, content: str, message: str
) -> None:
    path = tmp_path / "bad.city.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match=message) as caught:
        await opened(path, http)
    assert caught.value.source_id == "cj"


async def test_unusable_sequences_and_settings_are_config_errors(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    require_shared()
    with pytest.raises(ConnectorConfigError, match="not found"):
        await opened(tmp_path / "missing.city.jsonl", http)
    header, lines = read_sequence(B2_JSONL)
    path = tmp_path / "broken.city.jsonl"
    path.write_text(f"{json.dumps(header)}\n{json.dumps(lines[0])}\n{{oops\n", encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match="line 3"):
        await opened(path, http)
    path.write_text(f"{json.dumps(lines[0])}\n", encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match="header"):
        await opened(path, http)
    with pytest.raises(ConnectorConfigError, match="one collection"):
        await opened(B2_JSONL, http, layer="gebouwen")
    assert (await opened(B2_JSONL, http, layer="3dbag_b2")).settings.layer == "3dbag_b2"


async def test_opening_does_not_block_the_loop(http: httpx.AsyncClient) -> None:
    require_shared()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    await opened(CURRENT_JSON, http)
    ticker.cancel()
    assert ticks > 3
