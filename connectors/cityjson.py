"""Serve CityJSON files: documents (1.0 to 2.0) and CityJSONSeq, one feature per city object.

Each top-level CityObject becomes one feature with its children (a Building with its
BuildingParts), shaped as the ``3dbag`` connector shapes its features: the footprint in the
horizontal CRS of the file as geometry, the attributes under release-independent names as
properties, and the object's own CityJSONFeature (its objects, its vertices, the file's
transform) under the ``cityjson`` member, from which the hub writes CityJSON output.

The file is read once in ``open()``, off the event loop, and then served by the file
connector's machinery (``connectors.file``): an STRtree over the footprints for ``bbox``,
columns for equality and sorting, pygeofilter's evaluator for CQL2.

Files from older releases do not always match the version they declare; they are normalised
rather than refused: numeric ``lod`` becomes text, URN or ``EPSG:`` reference systems become
OGC URIs, members the version does not know are left out of the handed-over features, a
document older than 2.0 is upgraded with cjio, and vertices without a ``transform`` are
quantised to the millimetre.
"""

from __future__ import annotations

import _json
import asyncio
import copy
import json.encoder
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
from cjio import cityjson as cjio_cityjson
from cjio import errors as cjio_errors
from cjio import subset as cjio_subset
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

from connectors._cityjson import (
    Transform,
    family_ids,
    horizontal_uri,
    lod_text,
    main_object_id,
    reference_system_uri,
    to_geojson,
    top_level_ids,
)
from connectors.base import (
    CITYJSON,
    RD_NAP,
    CollectionInfo,
    ConnectorSettings,
    Feature,
    FeaturePage,
    FeatureQuery,
)
from connectors.errors import ConnectorConfigError, UpstreamUnavailable
from connectors.file import FileConnector, FileSettings, _build_layer, _infer_type, _Layer, _RawLayer

log = logging.getLogger(__name__)


def _restore_json_encoder() -> None:
    """Undo what importing ``cjio.cityjson`` does to the whole process's json module.

    It swaps in the pure-Python encoder and makes every float print with six decimals, which
    would reach every JSON document the hub writes (and slow them down). Nothing here uses
    cjio's own writing, so the standard encoder is put back.
    """
    module = vars(json.encoder)
    module["c_make_encoder"] = getattr(_json, "make_encoder", None)
    module.pop("float", None)


_restore_json_encoder()

SEQUENCE_SUFFIXES = frozenset({".jsonl", ".cityjsonl", ".cjseq"})
FEATURE_MEMBERS = frozenset({"type", "id", "CityObjects", "vertices", "appearance"})
"""What a CityJSONFeature may hold (besides ``+extension`` members)."""
QUANTUM_DIGITS = 3
"""Vertices without a transform are stored to the millimetre, as the 3D BAG stores them."""


class CityJsonSettings(FileSettings):
    """A CityJSON document (``.city.json``) or CityJSONSeq file (``.city.jsonl``).

    ``layer``, when given, must be the collection's name: the file name without
    ``.city.json(l)``. ``id_field`` and ``time_field`` name (canonical) attributes.
    """

    reference_system: str | None = None
    """The CRS of the vertices when the file names none, e.g. ``EPSG:7415``."""


# --- reading -----------------------------------------------------------------------------


def collection_name(path: Path) -> str:
    """The collection a CityJSON file becomes: its name without ``.city.json(l)``."""
    stem = path.stem
    return stem.removesuffix(".city") or stem


def _version(value: Any) -> str:
    """The declared version as ``X.Y`` (``1.0.3`` and the number ``1.1`` both count)."""
    if value is None:
        return ""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    parts = text.strip().split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else text.strip()


def _normalise_lods(city_objects: Any, templates: Any) -> None:
    """Every ``lod`` as text (CityJSON 1.0 wrote numbers)."""
    if isinstance(city_objects, dict):
        for city_object in city_objects.values():
            for geometry in (city_object or {}).get("geometry") or []:
                if isinstance(geometry, dict) and "lod" in geometry:
                    geometry["lod"] = lod_text(geometry["lod"])
    if isinstance(templates, dict):
        for template in templates.get("templates") or []:
            if isinstance(template, dict) and "lod" in template:
                template["lod"] = lod_text(template["lod"])


def _reference_system(header: dict[str, Any], settings: CityJsonSettings, name: str) -> str:
    """The OGC URI of the vertices' CRS, as the file declares it or the settings say."""
    metadata = header.get("metadata")
    declared = metadata.get("referenceSystem") if isinstance(metadata, dict) else None
    if isinstance(declared, dict):  # CityJSON 0.x wrote {"epsg": 7415}
        declared = f"EPSG:{declared.get('epsg')}"
    value = declared if isinstance(declared, str) and declared.strip() else settings.reference_system
    if value is None:
        raise ConnectorConfigError(f"{name} names no referenceSystem; set reference_system")
    try:
        return reference_system_uri(value)
    except ValueError as exc:
        raise ConnectorConfigError(f"{name}: {exc}") from exc


def _quantise(vertices_lists: Iterable[list[Any]]) -> Transform:
    """Give real-coordinate vertices a transform, in place: integers of a millimetre."""
    lists = list(vertices_lists)
    lowest = [math.inf, math.inf, math.inf]
    for vertices in lists:
        for vertex in vertices:
            for axis in range(3):
                lowest[axis] = min(lowest[axis], float(vertex[axis]))
    translate = [0.0 if math.isinf(v) else math.floor(v) for v in lowest]
    scale = 10.0**-QUANTUM_DIGITS
    for vertices in lists:
        for i, vertex in enumerate(vertices):
            vertices[i] = [round((float(vertex[axis]) - translate[axis]) / scale) for axis in range(3)]
    return Transform((scale, scale, scale), (translate[0], translate[1], translate[2]))


def _split(source: dict[str, Any], object_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One top-level object with its descendants as a CityJSONFeature with its own vertices.

    ``source`` is a document (or a CityJSONSeq line with the header's templates); cjio's subset
    functions renumber vertices, templates, materials and textures.
    """
    city_objects = source["CityObjects"]
    part: dict[str, Any] = {
        "CityObjects": {i: copy.deepcopy(city_objects[i]) for i in family_ids(city_objects, object_id)}
    }
    cjio_subset.process_geometry(source, part)
    cjio_subset.process_templates(source, part)
    if "appearance" in source:
        part["appearance"] = {}
        cjio_subset.process_appearance(source, part)
    feature: dict[str, Any] = {
        "type": "CityJSONFeature",
        "id": object_id,
        "CityObjects": part["CityObjects"],
        "vertices": part["vertices"],
    }
    if part.get("appearance"):
        feature["appearance"] = part["appearance"]
    return feature, part.get("geometry-templates")


def _clean_feature(feature: dict[str, Any]) -> dict[str, Any]:
    """A CityJSONSeq line as a CityJSONFeature: ``type`` and ``id`` set, foreign members dropped."""
    feature["type"] = "CityJSONFeature"
    feature["id"] = main_object_id(feature)
    for member in [m for m in feature if m not in FEATURE_MEMBERS and not m.startswith("+")]:
        del feature[member]
    return feature


def _read_json(path: Path) -> Any:
    with path.open("rb") as handle:
        return orjson.loads(handle.read())


def _read_document(
    path: Path, settings: CityJsonSettings
) -> tuple[Transform, str, dict[str, Any] | None, Iterator[tuple[dict[str, Any], dict[str, Any] | None]]]:
    """A CityJSON document: its transform, CRS, templates, and its features one by one."""
    document = _read_json(path)
    if not isinstance(document, dict) or document.get("type") != "CityJSON":
        raise ConnectorConfigError(f"{path.name} is not a CityJSON document")
    if not isinstance(document.get("CityObjects"), dict) or not isinstance(document.get("vertices"), list):
        raise ConnectorConfigError(f"{path.name} has no CityObjects or vertices")
    crs = _reference_system(document, settings, path.name)
    metadata = document.get("metadata")
    if isinstance(metadata, dict):
        # Kept apart (normalised above): cjio's upgrade parses URN reference systems only.
        metadata.pop("referenceSystem", None)
    version = _version(document.get("version")) or ("2.0" if "transform" in document else "1.0")
    if version not in cjio_cityjson.CITYJSON_VERSIONS_SUPPORTED:
        raise ConnectorConfigError(f"{path.name}: CityJSON version {version} is not supported")
    document["version"] = version
    _normalise_lods(document["CityObjects"], document.get("geometry-templates"))
    model = cjio_cityjson.CityJSON(j=document)
    if version != "2.0":
        model.upgrade_version("2.0", QUANTUM_DIGITS)
    if "transform" not in model.j:
        model.compress(QUANTUM_DIGITS)
    document = model.j
    transform = Transform.parse(document["transform"])
    templates = document.get("geometry-templates")

    def features() -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        for object_id in top_level_ids(document["CityObjects"]):
            yield _split(document, object_id)

    return transform, crs, templates if isinstance(templates, dict) else None, features()


def _read_sequence(
    path: Path, settings: CityJsonSettings
) -> tuple[Transform, str, dict[str, Any] | None, Iterator[tuple[dict[str, Any], dict[str, Any] | None]]]:
    """A CityJSONSeq file: the header's transform, CRS and templates, and its features."""
    with path.open("rb") as handle:
        lines = [(n, line) for n, line in enumerate(handle, start=1) if line.strip()]
    if not lines:
        raise ConnectorConfigError(f"{path.name} is empty")
    parsed: list[Any] = []
    for number, line in lines:
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise ConnectorConfigError(f"{path.name}, line {number}: not JSON ({exc})") from exc
    header, members = parsed[0], parsed[1:]
    if not isinstance(header, dict) or header.get("type") != "CityJSON":
        raise ConnectorConfigError(f"{path.name} does not start with a CityJSON header line")
    crs = _reference_system(header, settings, path.name)
    templates = header.get("geometry-templates")
    templates = templates if isinstance(templates, dict) else None
    for (number, _), member in zip(lines[1:], members, strict=True):
        if not isinstance(member, dict) or not isinstance(member.get("CityObjects"), dict):
            raise ConnectorConfigError(f"{path.name}, line {number}: not a CityJSONFeature")
        if not isinstance(member.get("vertices"), list):
            raise ConnectorConfigError(f"{path.name}, line {number}: a CityJSONFeature without vertices")
        _normalise_lods(member["CityObjects"], None)
    _normalise_lods(None, templates)
    if "transform" in header:
        try:
            transform = Transform.parse(header["transform"])
        except ValueError as exc:
            raise ConnectorConfigError(f"{path.name}: {exc}") from exc
    else:
        transform = _quantise(member["vertices"] for member in members)

    def features() -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        for member in members:
            tops = top_level_ids(member["CityObjects"])
            if len(tops) <= 1:
                yield _clean_feature(member), templates
                continue
            # A line holding several top-level objects (not what the spec allows): one each.
            source = {**member}
            if templates:
                source["geometry-templates"] = templates
            for object_id in tops:
                feature, own_templates = _split(source, object_id)
                yield feature, own_templates

    return transform, crs, templates, features()


def _load(settings: CityJsonSettings) -> tuple[dict[str, _Layer], dict[str, dict[str, Any]]]:
    """Read, normalise and index a CityJSON file (blocking: run it in a thread)."""
    path = settings.path
    if not path.is_file():
        raise ConnectorConfigError(f"file not found: {path}")
    name = collection_name(path)
    if settings.layer not in (None, name):
        raise ConnectorConfigError(f"layer {settings.layer!r}: a CityJSON file has one collection, {name!r}")
    reader = _read_sequence if path.suffix.lower() in SEQUENCE_SUFFIXES else _read_document
    try:
        transform, crs, _, members = reader(path, settings)
        storage = horizontal_uri(crs)
        ids: list[Any] = []
        properties: list[dict[str, Any]] = []
        geometries: list[BaseGeometry | None] = []
        geojson: list[dict[str, Any] | None] = []
        handed: dict[str, dict[str, Any]] = {}
        for feature_json, templates in members:
            feature, shape = to_geojson(feature_json, transform, crs=crs, templates=templates)
            if feature["id"] in handed:
                log.warning("%s: city object %s appears twice; the first is served", path.name, feature["id"])
                continue
            handed[feature["id"]] = feature[CITYJSON]
            ids.append(feature["id"])
            properties.append(feature["properties"])
            geometries.append(shape)
            geojson.append(feature["geometry"])
    except ConnectorConfigError:
        raise
    except orjson.JSONDecodeError as exc:
        raise ConnectorConfigError(f"cannot read {path.name}: not JSON ({exc})") from exc
    except (
        OSError, ValueError, IndexError, KeyError, TypeError, AttributeError, GEOSException,
        cjio_errors.CJInvalidOperation, cjio_errors.CJInvalidVersion,
    ) as exc:  # fmt: skip
        # A malformed file is the steward's to fix; say which and why, never crash the hub.
        raise ConnectorConfigError(f"cannot read {path.name}: {type(exc).__name__}: {exc}") from exc
    names: dict[str, None] = {}
    for props in properties:
        names.update(dict.fromkeys(props))
    field_types = {n: _infer_type(p.get(n) for p in properties) for n in names}
    raw = _RawLayer(name, storage, ids, properties, geometries, geojson, field_types, "geometry")
    return {name: _build_layer(raw, settings, name)}, {name: handed}


# --- the connector -----------------------------------------------------------------------


class CityJsonConnector(FileConnector):
    """A CityJSON file held in memory, queried like any file; CityJSON handed over per feature."""

    kind: ClassVar[str] = "cityjson"
    settings_model: ClassVar[type[ConnectorSettings]] = CityJsonSettings

    settings: CityJsonSettings

    def __init__(self, settings: ConnectorSettings, *, source_id: str, http: httpx.AsyncClient):
        super().__init__(settings, source_id=source_id, http=http)
        self._handed: dict[str, dict[str, dict[str, Any]]] = {}

    async def open(self) -> None:
        """Read, normalise and index the file once, off the event loop."""
        try:
            self._layers, self._handed = await asyncio.to_thread(_load, self.settings)
        except ConnectorConfigError as exc:
            exc.source_id = self.source_id
            raise

    async def close(self) -> None:
        """Drop the in-memory copy."""
        await super().close()
        self._handed = {}

    async def describe(self) -> list[CollectionInfo]:
        """The file's collection; 3D output is offered when its models are in EPSG:7415."""
        infos = await super().describe()
        for info in infos:
            members = self._handed.get(info.id, {}).values()
            # CityJSON output is written in EPSG:7415 only; a file in another CRS still serves
            # its footprints.
            info.cityjson = bool(members) and all(member["crs"] == RD_NAP for member in members)
        return infos

    async def query(self, collection: str, query: FeatureQuery) -> FeaturePage:
        """One page of matching city objects, footprints in the file's horizontal CRS."""
        page = await super().query(collection, query)
        for feature in page.features:
            self._attach(collection, feature)
        return page

    async def get_feature(self, collection: str, feature_id: str, *, crs: str) -> Feature | None:
        """One city object by id, with its CityJSON."""
        feature = await super().get_feature(collection, feature_id, crs=crs)
        if feature is not None:
            self._attach(collection, feature)
        return feature

    def _attach(self, collection: str, feature: Feature) -> None:
        member = self._handed.get(collection, {}).get(str(feature["id"]))
        if member is None:
            raise UpstreamUnavailable("the CityJSON of a feature went missing", source_id=self.source_id)
        feature[CITYJSON] = member
