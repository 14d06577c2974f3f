"""CityJSON and CityJSONSeq output of 3D collections, written from the models connectors hand over.

A 3D connector hands each feature's model to the hub under the ``cityjson`` member (see
``connectors.base.CITYJSON``): a CityJSONFeature with integer vertices and the transform that
decodes them, in EPSG:7415. From a page of such features this module writes

- ``f=cityjson`` (``application/city+json``): one complete CityJSON 2.0 document, because
  viewers such as Netherlands3D load whole documents only. The features' vertices are brought
  onto one common ``transform`` and into one ``vertices`` list, the geometries re-indexed;
  geometry templates and appearances are merged the same way;
- ``f=cityjsonseq`` (``application/city+json-seq``): CityJSONSeq, the ``CityJSON`` header with
  the common ``transform`` on the first line, then one ``CityJSONFeature`` per line, each with
  its own vertices.

What a CityObject says about its building comes from the hub feature, not from the source's
model: the top-level object's ``attributes`` are the feature's ``properties`` as the feature
service returned them (projected by ``properties``, with what the caller may not see already
removed), under the same names as in GeoJSON. Whatever else a model carries that the hub does
not govern is left out: the attributes of child objects (BuildingParts, empty in the 3D BAG),
addresses, and members of extensions.

Paging: neither format has room for OGC API links (CityJSON allows no foreign root members),
so they travel as HTTP ``Link`` headers (RFC 8288: ``self``, ``alternate``, ``next``,
``prev``, ``collection``), with the counts in ``OGC-NumberMatched`` and ``OGC-NumberReturned``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Any
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from connectors._cityjson import Transform, decode_vertices
from connectors.base import CITYJSON, RD_NAP, Feature
from hub.api.negotiation import negotiate
from hub.errors import BadGateway, BadRequest, NotAcceptable
from hub.features.service import ItemsResult

CITYJSON_MEDIA = "application/city+json"
CITYJSONSEQ_MEDIA = "application/city+json-seq"
GEOJSON_MEDIA = "application/geo+json"
CITYJSON_VERSION = "2.0"
REFERENCE_SYSTEM = "https://www.opengis.net/def/crs/EPSG/0/7415"
"""EPSG:7415 (RD New + NAP height) as CityJSON 2.0 writes a ``referenceSystem``."""

EMPTY_TRANSFORM = Transform((0.001, 0.001, 0.001), (0.0, 0.0, 0.0))
"""The transform of a document without vertices (CityJSON 2.0 requires one)."""

_CITY_OBJECT_LINKS = ("parents", "children")
_OTHER_FORMATS = (
    ("json", GEOJSON_MEDIA, "This document as GeoJSON (footprints)"),
    ("html", "text/html", "This document as HTML"),
)


class ModelFormat(StrEnum):
    """The 3D output formats, by their ``f`` value."""

    CITYJSON = "cityjson"
    CITYJSONSEQ = "cityjsonseq"

    @property
    def media_type(self) -> str:
        """The format's media type."""
        return CITYJSON_MEDIA if self is ModelFormat.CITYJSON else CITYJSONSEQ_MEDIA

    @property
    def label(self) -> str:
        """How links name the format."""
        return "CityJSON" if self is ModelFormat.CITYJSON else "CityJSONSeq"


_BY_MEDIA = {fmt.media_type: fmt for fmt in ModelFormat}
_TWO_D_MEDIA = (GEOJSON_MEDIA, "application/json", "text/html", "application/ld+json")


def model_format(request: Request, *, three_d: bool) -> ModelFormat | None:
    """The 3D format an items or item request asks for: by ``f``, else by ``Accept``.

    ``f=cityjson`` or ``f=cityjsonseq`` on a collection without 3D models is a 400. ``Accept``
    is consulted only when it names a CityJSON media type (other requests keep their usual
    negotiation); when nothing it accepts can be served, the answer is 406.
    """
    f = request.query_params.get("f")
    if f is not None:
        try:
            fmt = ModelFormat(f)
        except ValueError:
            return None
        if not three_d:
            raise BadRequest(
                f"f={f} is served for 3D collections only; this collection has no 3D models "
                "(ask for f=json: GeoJSON)"
            )
        return fmt
    accept = request.headers.get("accept")
    if accept is None or "city+json" not in accept.lower():
        return None
    offered = (CITYJSON_MEDIA, CITYJSONSEQ_MEDIA, *_TWO_D_MEDIA) if three_d else _TWO_D_MEDIA
    chosen = negotiate(accept, offered)
    if chosen is None:
        raise NotAcceptable(
            "this collection has no 3D models to serve as CityJSON; it is served as GeoJSON "
            f"({GEOJSON_MEDIA}) and HTML"
        )
    return _BY_MEDIA.get(chosen)


# --- the models of a page ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Model:
    """One hub feature's 3D model, checked: its main object, vertices and what decodes them."""

    object_id: str
    attributes: Mapping[str, Any]
    transform: Transform
    city_objects: Mapping[str, Any]
    vertices: npt.NDArray[np.int64]
    templates: Mapping[str, Any] | None
    appearance: Mapping[str, Any] | None


def _model(feature: Feature) -> _Model:
    """The model a connector handed over with ``feature``; 502 when it is missing or malformed."""
    member = feature.get(CITYJSON)
    label = f"feature {feature.get('id')!r}"
    if not isinstance(member, Mapping) or not isinstance(member.get("feature"), Mapping):
        raise BadGateway(f"the source handed over no 3D model for {label}")
    if member.get("crs") != RD_NAP:
        raise BadGateway(f"the 3D model of {label} is not in EPSG:7415")
    city_json = member["feature"]
    city_objects = city_json.get("CityObjects")
    object_id = city_json.get("id", feature.get("id"))
    if not isinstance(city_objects, Mapping) or object_id not in city_objects:
        raise BadGateway(f"the 3D model of {label} has no CityObject {object_id!r}")
    try:
        transform = Transform.parse(member.get("transform"))
        vertices = np.asarray(city_json.get("vertices"))
        if vertices.size == 0:
            vertices = np.zeros((0, 3), dtype=np.int64)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.dtype.kind not in "iu":
            raise ValueError("vertices must be integer triples")
    except ValueError as exc:
        raise BadGateway(f"the 3D model of {label} is malformed: {exc}") from exc
    if not all(s > 0 for s in transform.scale):
        raise BadGateway(f"the 3D model of {label} has a transform with a scale that is not positive")
    templates = member.get("geometry-templates")
    appearance = city_json.get("appearance")
    return _Model(
        object_id=str(object_id),
        attributes=feature.get("properties") or {},
        transform=transform,
        city_objects=city_objects,
        vertices=vertices.astype(np.int64, copy=False),
        templates=templates if isinstance(templates, Mapping) else None,
        appearance=appearance if isinstance(appearance, Mapping) else None,
    )


def common_transform(
    transforms: Iterable[Transform], vertices: Iterable[npt.NDArray[np.float64]]
) -> Transform:
    """One transform for vertices quantised with ``transforms``: theirs when they all share it.

    Otherwise the finest scale of each axis (so no vertex loses precision beyond half of it)
    and a translation at the whole metre below the lowest real coordinate.
    """
    distinct = set(transforms)
    if len(distinct) == 1:
        return distinct.pop()
    if not distinct:
        return EMPTY_TRANSFORM
    scale = tuple(min(t.scale[axis] for t in distinct) for axis in range(3))
    arrays = [v for v in vertices if len(v)]
    lowest = np.min(np.vstack(arrays), axis=0) if arrays else np.zeros(3)
    translate = tuple(float(math.floor(value)) for value in lowest.tolist())
    return Transform((scale[0], scale[1], scale[2]), (translate[0], translate[1], translate[2]))


def _real(model: _Model) -> npt.NDArray[np.float64]:
    return decode_vertices(model.vertices.tolist(), model.transform)


def _quantise(
    model: _Model, target: Transform, real: npt.NDArray[np.float64] | None
) -> npt.NDArray[np.int64]:
    """The model's vertices as integers of ``target``."""
    if model.transform == target:
        return model.vertices
    coordinates = _real(model) if real is None else real
    quantised: npt.NDArray[np.int64] = np.rint(
        (coordinates - np.asarray(target.translate)) / np.asarray(target.scale)
    ).astype(np.int64)
    return quantised


def _page_transform(models: Sequence[_Model]) -> tuple[Transform, list[npt.NDArray[np.int64]]]:
    """The page's common transform, and each model's vertices as its integers."""
    transforms = [model.transform for model in models]
    if len(set(transforms)) <= 1:
        target = transforms[0] if transforms else EMPTY_TRANSFORM
        return target, [model.vertices for model in models]
    reals = [_real(model) for model in models]
    target = common_transform(transforms, reals)
    return target, [_quantise(model, target, real) for model, real in zip(models, reals, strict=True)]


def _extent(vertices: npt.NDArray[np.int64], transform: Transform) -> list[float] | None:
    """``geographicalExtent`` (minx, miny, minz, maxx, maxy, maxz) of integer vertices."""
    if not len(vertices):
        return None
    scale, translate = np.asarray(transform.scale), np.asarray(transform.translate)
    low = vertices.min(axis=0) * scale + translate
    high = vertices.max(axis=0) * scale + translate
    digits = [min(12, max(3, math.ceil(-math.log10(s)) + 1)) for s in transform.scale]
    return [round(float(v), digits[i % 3]) for i, v in enumerate([*low.tolist(), *high.tolist()])]


# --- rewriting CityObjects ---------------------------------------------------------------


_POWERS_OF_TEN = 10 ** np.arange(1, 19, dtype=np.int64)

Moves = list[tuple[dict[str, Any], int]]
"""Written geometries whose ``boundaries`` still need their vertex indices moved, and by how much."""


def moved_indices(pieces: Sequence[bytes], offsets: Sequence[int]) -> list[bytes]:
    """Each JSON text of ``pieces`` (nested arrays of non-negative integers) with every integer
    increased by the piece's offset.

    Merging a page means moving the vertex indices of every model after the first: tens of
    thousands of rings. Done on the JSON text, in a few array operations for the whole page, it
    allocates no Python lists; rebuilding the nested lists would allocate so many that the
    garbage collector's full collections (which walk every object the in-memory sources hold)
    would pause the whole process for a tenth of a second now and then.
    """
    text = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    piece_ends = np.cumsum([len(piece) for piece in pieces], dtype=np.int64)
    is_digit = (text >= 0x30) & (text <= 0x39)
    edges = np.diff(is_digit.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(starts):
        return list(pieces)
    lengths = ends - starts
    runs = np.arange(len(starts))
    # the numbers: each digit times its power of ten, summed per run
    digit_at = np.flatnonzero(is_digit)
    run_of_digit = np.repeat(runs, lengths)
    weights = np.int64(10) ** (ends[run_of_digit] - 1 - digit_at)
    first_digits = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    values = np.add.reduceat((text[digit_at] - 0x30).astype(np.int64) * weights, first_digits)
    moved = values + np.asarray(offsets, dtype=np.int64)[np.searchsorted(piece_ends, starts, side="right")]
    new_lengths = np.searchsorted(_POWERS_OF_TEN, moved, side="right") + 1
    # every byte moves by the growth of the numbers that end before it
    bump = np.zeros(len(text) + 1, dtype=np.int64)
    bump[ends] = new_lengths - lengths
    shift = np.cumsum(bump)
    out = np.empty(len(text) + int(shift[-1]), dtype=np.uint8)
    other = np.flatnonzero(~is_digit)
    out[other + shift[other]] = text[other]
    run_of_new = np.repeat(runs, new_lengths)
    position = (
        np.arange(int(new_lengths.sum())) - np.concatenate(([0], np.cumsum(new_lengths)[:-1]))[run_of_new]
    )
    exponent = new_lengths[run_of_new] - 1 - position
    digits = (moved[run_of_new] // np.int64(10) ** exponent) % 10 + 0x30
    out[starts[run_of_new] + shift[starts][run_of_new] + position] = digits
    cuts = [0, *(piece_ends + shift[piece_ends]).tolist()]
    data = out.tobytes()
    return [data[a:b] for a, b in pairwise(cuts)]


def _apply_moves(moves: Moves) -> None:
    """Move the vertex indices of every geometry noted in ``moves``, all at once."""
    if not moves:
        return
    pieces = moved_indices(
        [orjson.dumps(out["boundaries"]) for out, _ in moves], [offset for _, offset in moves]
    )
    for (out, _), piece in zip(moves, pieces, strict=True):
        out["boundaries"] = orjson.Fragment(piece)
    moves.clear()


def _shift(node: Any, offset: int) -> Any:
    """Nested material indices (or nulls) moved by ``offset``."""
    if isinstance(node, list):
        return [_shift(child, offset) for child in node]
    return node + offset if isinstance(node, int) else node


def _shift_texture(node: Any, texture_offset: int, uv_offset: int) -> Any:
    """Nested texture rings ``[texture, uv, uv, ...]`` moved by the offsets (``[null]`` stays)."""
    if node and not isinstance(node[0], list):
        if node[0] is None:
            return node
        return [node[0] + texture_offset, *(uv + uv_offset for uv in node[1:])]
    return [_shift_texture(child, texture_offset, uv_offset) for child in node]


@dataclass(slots=True)
class _Offsets:
    """Where one model's templates and appearance start in the merged output."""

    vertex: int = 0
    template: int = 0
    material: int = 0
    texture: int = 0
    uv: int = 0


def _geometry(geometry: Mapping[str, Any], offsets: _Offsets, moves: Moves) -> dict[str, Any]:
    out = {key: value for key, value in geometry.items() if key not in ("material", "texture")}
    out.setdefault("boundaries", [])
    if offsets.vertex:
        moves.append((out, offsets.vertex))
    if geometry.get("type") == "GeometryInstance" and offsets.template:
        out["template"] = geometry["template"] + offsets.template
    if "material" in geometry:
        out["material"] = {
            theme: {key: _shift(value, offsets.material) for key, value in spec.items()}
            for theme, spec in geometry["material"].items()
        }
    if "texture" in geometry:
        out["texture"] = {
            theme: {"values": _shift_texture(spec["values"], offsets.texture, offsets.uv)}
            for theme, spec in geometry["texture"].items()
        }
    return out


def _city_object(
    city_object: Mapping[str, Any],
    *,
    attributes: Mapping[str, Any] | None,
    present: Mapping[str, Any],
    offsets: _Offsets,
    moves: Moves,
    skip_geometry: bool,
) -> dict[str, Any]:
    """A CityObject as the hub writes it: ``attributes`` from the hub feature, links kept."""
    out: dict[str, Any] = {"type": city_object["type"]}
    if attributes:
        out["attributes"] = dict(attributes)
    if not skip_geometry:
        geometries = [_geometry(g, offsets, moves) for g in city_object.get("geometry") or ()]
        if geometries:
            out["geometry"] = geometries
        if "geographicalExtent" in city_object:
            out["geographicalExtent"] = city_object["geographicalExtent"]
    for link in _CITY_OBJECT_LINKS:
        listed = city_object.get(link) or []
        kept = [object_id for object_id in listed if object_id in present]
        if kept:
            out[link] = kept
        if link == "children" and "children_roles" in city_object and len(kept) == len(listed):
            out["children_roles"] = city_object["children_roles"]
    return out


def _objects_of(
    model: _Model, offsets: _Offsets, moves: Moves, skip_geometry: bool
) -> dict[str, dict[str, Any]]:
    """The model's CityObjects, rewritten; only the main object carries attributes."""
    objects = model.city_objects
    return {
        object_id: _city_object(
            city_object,
            attributes=model.attributes if object_id == model.object_id else None,
            present=objects,
            offsets=offsets,
            moves=moves,
            skip_geometry=skip_geometry,
        )
        for object_id, city_object in objects.items()
    }


@dataclass(slots=True)
class _Shared:
    """Templates and appearance gathered from several models, each source's set once."""

    templates: list[Any] = field(default_factory=list)
    template_vertices: list[Any] = field(default_factory=list)
    template_starts: dict[int, int] = field(default_factory=dict)
    materials: list[Any] = field(default_factory=list)
    textures: list[Any] = field(default_factory=list)
    uvs: list[Any] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    moves: Moves = field(default_factory=list)

    def add_templates(self, templates: Mapping[str, Any] | None, offsets: _Offsets) -> None:
        """Merge a source's templates once (sources hand the same object to every feature)."""
        if not templates:
            return
        key = id(templates)
        if key not in self.template_starts:
            self.template_starts[key] = len(self.templates)
            shifted = _Offsets(vertex=len(self.template_vertices))
            for template in templates.get("templates") or []:
                self.templates.append(_geometry(template, shifted, self.moves))
            self.template_vertices.extend(templates.get("vertices-templates") or [])
        offsets.template = self.template_starts[key]

    def add_appearance(self, appearance: Mapping[str, Any] | None, offsets: _Offsets) -> None:
        """Append a model's materials, textures and texture vertices; note where they start."""
        if not appearance:
            return
        offsets.material, offsets.texture, offsets.uv = len(self.materials), len(self.textures), len(self.uvs)
        self.materials.extend(appearance.get("materials") or [])
        self.textures.extend(appearance.get("textures") or [])
        self.uvs.extend(appearance.get("vertices-texture") or [])
        for key in ("default-theme-material", "default-theme-texture"):
            if key in appearance:
                self.defaults.setdefault(key, appearance[key])

    def templates_json(self) -> dict[str, Any] | None:
        if not self.templates:
            return None
        return {"templates": self.templates, "vertices-templates": self.template_vertices}

    def appearance_json(self) -> dict[str, Any] | None:
        members = {"materials": self.materials, "textures": self.textures, "vertices-texture": self.uvs}
        appearance = {key: value for key, value in members.items() if value}
        return {**self.defaults, **appearance} if appearance else None


def _metadata(title: str, extent: list[float] | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"referenceSystem": REFERENCE_SYSTEM, "title": title}
    if extent is not None:
        metadata["geographicalExtent"] = extent
    return metadata


def _malformed(exc: Exception) -> BadGateway:
    return BadGateway(f"a 3D model the source handed over is malformed ({type(exc).__name__}: {exc})")


def cityjson_document(
    features: Sequence[Feature], *, title: str, skip_geometry: bool = False
) -> dict[str, Any]:
    """One CityJSON 2.0 document holding every feature's model on one common ``transform``."""
    models = [_model(feature) for feature in features]
    try:
        target, blocks = _page_transform(models)
        if skip_geometry:
            blocks = [block[:0] for block in blocks]
        # Each model's vertices follow the previous ones'. Identical vertices of neighbouring
        # buildings are not merged: in the 3D BAG they are about 1 %, not worth a sort per page.
        starts = np.cumsum([0, *(len(block) for block in blocks)]).tolist()
        vertices = np.vstack(blocks) if blocks else np.zeros((0, 3), dtype=np.int64)
        shared = _Shared()
        city_objects: dict[str, dict[str, Any]] = {}
        for model, start in zip(models, starts, strict=False):
            offsets = _Offsets(vertex=start)
            shared.add_templates(model.templates, offsets)
            shared.add_appearance(model.appearance, offsets)
            for object_id, city_object in _objects_of(model, offsets, shared.moves, skip_geometry).items():
                if object_id in city_objects:  # a child of two features' objects: written once
                    earlier = city_objects[object_id]
                    parents = [*earlier.get("parents", []), *city_object.get("parents", [])]
                    if parents:
                        earlier["parents"] = list(dict.fromkeys(parents))
                    continue
                city_objects[object_id] = city_object
        _apply_moves(shared.moves)
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise _malformed(exc) from exc
    document: dict[str, Any] = {
        "type": "CityJSON",
        "version": CITYJSON_VERSION,
        "transform": target.as_json(),
        "metadata": _metadata(title, _extent(vertices, target)),
        "CityObjects": city_objects,
        "vertices": vertices,
    }
    templates, appearance = shared.templates_json(), shared.appearance_json()
    if templates is not None and not skip_geometry:
        document["geometry-templates"] = templates
    if appearance is not None and not skip_geometry:
        document["appearance"] = appearance
    return document


def cityjson_sequence(
    features: Sequence[Feature], *, title: str, skip_geometry: bool = False
) -> Iterator[dict[str, Any]]:
    """CityJSONSeq: the ``CityJSON`` header with the common ``transform``, then one
    ``CityJSONFeature`` per feature, each with its own vertices."""
    models = [_model(feature) for feature in features]
    try:
        target, blocks = _page_transform(models)
        if skip_geometry:
            blocks = [block[:0] for block in blocks]
        shared = _Shared()
        lines: list[dict[str, Any]] = []
        for model, block in zip(models, blocks, strict=True):
            offsets = _Offsets()
            shared.add_templates(model.templates, offsets)
            line: dict[str, Any] = {
                "type": "CityJSONFeature",
                "id": model.object_id,
                "CityObjects": _objects_of(model, offsets, shared.moves, skip_geometry),
                "vertices": block,
            }
            if model.appearance and not skip_geometry:
                line["appearance"] = model.appearance
            lines.append(line)
        _apply_moves(shared.moves)
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise _malformed(exc) from exc
    extents = [block for block in blocks if len(block)]
    everything = np.vstack(extents) if extents else np.zeros((0, 3), dtype=np.int64)
    header: dict[str, Any] = {
        "type": "CityJSON",
        "version": CITYJSON_VERSION,
        "transform": target.as_json(),
        "metadata": _metadata(title, _extent(everything, target)),
        "CityObjects": {},
        "vertices": [],
    }
    templates = shared.templates_json()
    if templates is not None and not skip_geometry:
        header["geometry-templates"] = templates
    yield header
    yield from lines


# --- encoding and responses --------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def encode(
    fmt: ModelFormat, features: Sequence[Feature], *, title: str, skip_geometry: bool = False
) -> bytes:
    """The body of a 3D response: a document, or CityJSONSeq lines each ending in a newline."""
    if fmt is ModelFormat.CITYJSON:
        document = cityjson_document(features, title=title, skip_geometry=skip_geometry)
        return orjson.dumps(document, default=_default, option=_OPTIONS)
    lines = cityjson_sequence(features, title=title, skip_geometry=skip_geometry)
    return b"".join(
        orjson.dumps(line, default=_default, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE) for line in lines
    )


def _href(url: str, params: Iterable[tuple[str, str]]) -> str:
    # commas percent-encoded too: naive Link header parsers split on them
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    return f"{url}?{query}" if query else url


def _link_header(links: Iterable[tuple[str, str, str, str]]) -> str:
    # titles are the hub's own ASCII texts: HTTP headers carry Latin-1 at most
    return ", ".join(
        f'<{href}>; rel="{rel}"; type="{media}"; title="{title}"' for href, rel, media, title in links
    )


def _response(
    body: bytes, fmt: ModelFormat, links: list[tuple[str, str, str, str]], extra: Mapping[str, str]
) -> Response:
    headers = {"Content-Crs": f"<{RD_NAP}>", "Link": _link_header(links), **extra}
    return Response(body, media_type=fmt.media_type, headers=headers)


def _alternates(url: str, fmt: ModelFormat, kept: list[tuple[str, str]]) -> list[tuple[str, str, str, str]]:
    others = [(other.value, other.media_type, f"This document as {other.label}") for other in ModelFormat]
    return [
        (_href(url, [("f", f), *kept]), "alternate", media, title)
        for f, media, title in (*others, *_OTHER_FORMATS)
        if f != fmt.value
    ]


async def items_response(
    result: ItemsResult,
    fmt: ModelFormat,
    *,
    collection_url: str,
    title: str,
    params: QueryParams,
    limit: int,
    offset: int,
    skip_geometry: bool,
) -> Response:
    """A page of features as CityJSON or CityJSONSeq, with its paging in ``Link`` headers."""
    body = await run_in_threadpool(encode, fmt, result.features, title=title, skip_geometry=skip_geometry)
    items_url = f"{collection_url}/items"
    kept = [(k, v) for k, v in params.multi_items() if k not in ("f", "offset")]
    at = [("offset", str(offset))] if offset else []
    links = [
        (
            _href(items_url, [("f", fmt.value), *at, *kept]),
            "self",
            fmt.media_type,
            f"This page as {fmt.label}",
        )
    ]
    links += _alternates(items_url, fmt, [*at, *kept])
    if offset > 0:
        previous = [("f", fmt.value), ("offset", str(max(0, offset - limit))), *kept]
        links.append((_href(items_url, previous), "prev", fmt.media_type, "Items (prev)"))
    returned = len(result.features)
    if result.number_matched is not None:
        more = result.number_matched > offset + returned
    else:
        more = result.has_more if result.has_more is not None else returned == limit
    if more:
        following = [("f", fmt.value), ("offset", str(offset + returned)), *kept]
        links.append((_href(items_url, following), "next", fmt.media_type, "Items (next)"))
    links.append((collection_url, "collection", "application/json", "The collection"))
    counts = {"OGC-NumberReturned": str(returned)}
    if result.number_matched is not None:
        counts["OGC-NumberMatched"] = str(result.number_matched)
    return _response(body, fmt, links, counts)


async def item_response(feature: Feature, fmt: ModelFormat, *, collection_url: str, title: str) -> Response:
    """One feature as a CityJSON document (or CityJSONSeq of one feature)."""
    body = await run_in_threadpool(encode, fmt, [feature], title=title)
    item_url = f"{collection_url}/items/{quote(str(feature.get('id')), safe='')}"
    links = [(_href(item_url, [("f", fmt.value)]), "self", fmt.media_type, f"This feature as {fmt.label}")]
    links += _alternates(item_url, fmt, [])
    links.append((collection_url, "collection", "application/json", "The collection"))
    return _response(body, fmt, links, {})


def collection_links(collection_url: str, title: str) -> list[dict[str, str]]:
    """The links a 3D collection's description adds: its items in both 3D formats."""
    return [
        {
            "type": fmt.media_type,
            "rel": "items",
            "title": f"{title}: items as {fmt.label} (EPSG:7415)",
            "href": f"{collection_url}/items?f={fmt.value}",
        }
        for fmt in ModelFormat
    ]


# --- OpenAPI -----------------------------------------------------------------------------

_CITYJSON_SCHEMA = {
    "type": "object",
    "description": "A CityJSON 2.0 document in EPSG:7415 (https://www.cityjson.org/specs/2.0.1/)",
    "required": ["type", "version", "transform", "CityObjects", "vertices"],
    "properties": {
        "type": {"type": "string", "enum": ["CityJSON"]},
        "version": {"type": "string", "enum": [CITYJSON_VERSION]},
        "transform": {"type": "object"},
        "metadata": {"type": "object"},
        "CityObjects": {"type": "object"},
        "vertices": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    },
}
_LINK_HEADER = {
    "description": "Links of a CityJSON or CityJSONSeq answer (RFC 8288): self, alternate, prev, next",
    "required": False,
    "schema": {"type": "string"},
}
_MODEL_RESPONSES = {"Features": "FeaturesWithModels", "Feature": "FeatureWithModels"}


def describe_in_openapi(operation: dict[str, Any], components: dict[str, Any], *, items: bool) -> None:
    """Offer CityJSON and CityJSONSeq in a 3D collection's items (or item) operation: the ``f``
    values, and the media types of the answer."""
    parameters = operation.setdefault("parameters", [])
    for index, parameter in enumerate(parameters):
        name = parameter.get("name") or str(parameter.get("$ref", "")).rsplit("/", 1)[-1]
        if name != "f":
            continue
        if "$ref" in parameter:
            parameter = components.get("parameters", {}).get("f", {})
        inline = copy.deepcopy(parameter)
        schema = inline.setdefault("schema", {"type": "string"})
        known = list(schema.get("enum") or [])
        schema["enum"] = [*known, *(fmt.value for fmt in ModelFormat if fmt.value not in known)]
        parameters[index] = inline
    plain = "Features" if items else "Feature"
    name = _MODEL_RESPONSES[plain]
    responses = components.setdefault("responses", {})
    if name not in responses:
        response = copy.deepcopy(responses.get(plain) or {"description": "Features", "content": {}})
        response["description"] = (
            f"{response.get('description', plain)}; 3D models as CityJSON or CityJSONSeq"
        )
        response.setdefault("headers", {})["Link"] = copy.deepcopy(_LINK_HEADER)
        content = response.setdefault("content", {})
        content[CITYJSON_MEDIA] = {"schema": {"$ref": "#/components/schemas/CityJson"}}
        content[CITYJSONSEQ_MEDIA] = {
            "schema": {
                "type": "string",
                "description": "CityJSONSeq: a CityJSON header line, then CityJSONFeature lines",
            }
        }
        responses[name] = response
        components.setdefault("schemas", {})["CityJson"] = copy.deepcopy(_CITYJSON_SCHEMA)
    operation.setdefault("responses", {})["200"] = {"$ref": f"#/components/responses/{name}"}
