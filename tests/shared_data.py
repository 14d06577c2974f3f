"""Where the shared test data kit lies, and a GeoPackage reader that bypasses GDAL.

The kit is read in place (never copied into the repository); tests that need it skip only
when it is absent. ``gpkg_rows`` decodes a GeoPackage with the standard library's sqlite3
and shapely alone, so it serves as an independent reference for code that reads through
pyogrio/GDAL.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import shapely

SHARED = Path(__file__).resolve().parents[2] / "shared"
AFVALBAKKEN = SHARED / "data" / "municipal" / "amsterdam_afvalbakken_2013.geojson"
BAG_GPKG = SHARED / "data" / "bag" / "amsterdam_bag_adressen.gpkg"

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"needs the shared test data kit at {SHARED}, which is absent"
)


def require_shared() -> None:
    """Skip the calling test or fixture when the shared data kit is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"needs the shared test data kit at {SHARED}, which is absent")


def gpkg_geometry(blob: bytes) -> shapely.Geometry:
    """Decode a GeoPackage geometry blob: 8-byte header, optional envelope, then WKB."""
    assert blob[:2] == b"GP", "not a GeoPackage geometry"
    envelope_bytes = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(blob[3] >> 1) & 0b111]
    return shapely.from_wkb(blob[8 + envelope_bytes :])


def gpkg_rows(table: str, path: Path = BAG_GPKG) -> list[dict[str, Any]]:
    """Every row of a GeoPackage feature table by fid: ``{fid, geometry, properties}``."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        (fid_column, geometry_column) = conn.execute(
            "SELECT c.name, g.column_name FROM gpkg_geometry_columns g, pragma_table_info(g.table_name) c "
            "WHERE g.table_name = ? AND c.pk = 1",
            (table,),
        ).fetchone()
        rows = conn.execute(f'SELECT * FROM "{table}" ORDER BY "{fid_column}"').fetchall()
    result = []
    for row in rows:
        record = dict(row)
        fid = record.pop(fid_column)
        geometry = gpkg_geometry(record.pop(geometry_column))
        result.append({"fid": fid, "geometry": geometry, "properties": record})
    return result
