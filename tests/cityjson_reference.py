"""Reading the shared CityJSON files apart from the connectors, as the tests' reference.

Nothing here goes through ``connectors``: lines are parsed with the json module, vertices
decoded with plain arithmetic (real = integer x scale + translate), footprints built from the
decoded rings with shapely, and attribute names mapped by the rule the connectors document
(``b3_`` prefix dropped, lower case).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import shapely

from tests.shared_data import SHARED

THREEDBAG_DIR = SHARED / "data" / "3dbag"
CURRENT_JSONL = THREEDBAG_DIR / "delft_3dbag.city.jsonl"
CURRENT_JSON = THREEDBAG_DIR / "delft_3dbag.city.json"
V20240420_JSONL = THREEDBAG_DIR / "delft_subset_v20240420.city.jsonl"
B2_JSONL = THREEDBAG_DIR / "3dbag_b2.city.jsonl"
B2_JSON = THREEDBAG_DIR / "3dbag_b2.city.json"
FEATURE_SCHEMA = SHARED / "data" / "schemas" / "cityjson" / "2.0" / "cityjsonfeature.min.schema.json"

HEIGHTS = ("h_maaiveld", "h_dak_min", "h_dak_50p", "h_dak_70p", "h_dak_max")


def read_sequence(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A CityJSONSeq file's header and feature lines."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def read_document(path: Path) -> dict[str, Any]:
    """A CityJSON document."""
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = json.load(handle)
    return document


def main_id(feature: dict[str, Any]) -> str:
    """A feature line's main object: its ``id``, else its one object without parents."""
    if "id" in feature:
        return str(feature["id"])
    (top,) = [i for i, o in feature["CityObjects"].items() if not o.get("parents")]
    return top


def decode(vertex: list[int], transform: dict[str, Any]) -> tuple[float, float, float]:
    """One vertex in real coordinates."""
    s, t = transform["scale"], transform["translate"]
    return (vertex[0] * s[0] + t[0], vertex[1] * s[1] + t[1], vertex[2] * s[2] + t[2])


def lod0_rings(
    city_objects: dict[str, Any], object_id: str, vertices: list[list[int]], transform: dict[str, Any]
) -> list[list[list[float]]] | None:
    """The rings of an object's single LoD 0 surface, x/y decoded and closed (None without)."""
    for geometry in city_objects[object_id].get("geometry", []):
        if str(geometry["lod"]) == "0":
            (surface,) = geometry["boundaries"]
            rings = []
            for ring in surface:
                points = [list(decode(vertices[i], transform)[:2]) for i in ring]
                rings.append([*points, points[0]])
            return rings
    return None


def ground_footprint(
    city_objects: dict[str, Any],
    object_id: str,
    vertices: list[list[int]],
    transform: dict[str, Any],
    lod: str,
) -> shapely.Geometry:
    """The union of the GroundSurface polygons of an object's children at one LoD."""
    polygons = []
    for child in city_objects[object_id].get("children", []):
        for geometry in city_objects[child].get("geometry", []):
            if geometry["lod"] != lod:
                continue
            kinds = [s["type"] for s in geometry["semantics"]["surfaces"]]
            for shell, values in zip(geometry["boundaries"], geometry["semantics"]["values"], strict=True):
                for surface, value in zip(shell, values, strict=True):
                    if value is not None and kinds[value] == "GroundSurface":
                        rings = [[decode(vertices[i], transform)[:2] for i in ring] for ring in surface]
                        polygons.append(shapely.Polygon(rings[0], rings[1:]))
    return shapely.union_all(polygons)


def canonical(name: str) -> str:
    """The documented canonical attribute name."""
    return name[3:].lower() if name.lower().startswith("b3_") else name


def expected_properties(attributes: dict[str, Any]) -> dict[str, Any]:
    """A building's attributes as the hub should show them."""
    expected = {canonical(name): value for name, value in attributes.items()}
    for name in HEIGHTS:
        if expected.get(name) is not None:
            expected[name] = float(expected[name])
    return expected


def feature_validator() -> jsonschema.Draft7Validator:
    """The official CityJSON 2.0 CityJSONFeature schema."""
    with FEATURE_SCHEMA.open(encoding="utf-8") as handle:
        return jsonschema.Draft7Validator(json.load(handle))


def vertex_indices(node: Any) -> list[int]:
    """Every vertex index in a ``boundaries`` array."""
    if isinstance(node, int):
        return [node]
    return [i for child in node for i in vertex_indices(child)]
