"""The catalogue store and its migrations, on SQLite and on a real PostgreSQL/PostGIS server."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import shapely
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from shapely.geometry.base import BaseGeometry
from sqlalchemy.dialects import sqlite as sqlite_dialect

from hub.catalogue import database
from hub.catalogue.models import Base, UTCDateTime
from hub.catalogue.registration import SourceRegistration
from hub.catalogue.store import CatalogueStore, SeedResult
from hub.errors import BadRequest, ConfigurationError, Conflict, NotFound
from tests.fixtures.postgis import PostgisServer

BACKENDS = ["sqlite", "postgis"]
_database_names = itertools.count()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which backend a test runs on."""
    return str(request.param)


@pytest.fixture
def new_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Make URLs of fresh, empty catalogue databases on the test's backend."""
    if backend == "sqlite":
        files = itertools.count()
        return lambda: f"sqlite:///{tmp_path}/hub-{next(files)}.db"
    server: PostgisServer = request.getfixturevalue("postgis_server")
    return lambda: server.create_database(f"catalogue_{next(_database_names)}")


@pytest.fixture
def url(new_url: Callable[[], str]) -> str:
    """The URL of a fresh, empty catalogue database."""
    return new_url()


@pytest.fixture
def store(url: str) -> Iterator[CatalogueStore]:
    """An open store on a fresh database."""
    with CatalogueStore.open(url) as opened:
        yield opened


def registration(source_id: str, **fields: Any) -> SourceRegistration:
    """A small valid registration; ``fields`` override or add to it."""
    values: dict[str, Any] = {
        "id": source_id,
        "title": f"Source {source_id}",
        "connector": "ogcapi-features",
        "url": f"https://example.org/{source_id}",
    }
    values.update(fields)
    return SourceRegistration.model_validate(values)


def full_registration() -> SourceRegistration:
    """A registration that sets every field, with connector settings of every JSON kind."""
    return SourceRegistration.model_validate(
        {
            "id": "bag-panden",
            "title": "BAG panden — Amsterdam",
            "description": "Gebouwen uit de Basisregistratie Adressen en Gebouwen.\nTweede regel.",
            "connector": "connectors.ogcapi.OgcApiFeatures",
            "classification": "personal",
            "collections": [
                "pand",
                {"upstream": "verblijfsobject", "id": "vbo", "title": "VBO", "description": "d"},
            ],
            "licence": "http://creativecommons.org/publicdomain/zero/1.0/deed.nl",
            "owner": "Kadaster",
            "contact_point": {
                "name": "Beheer",
                "email": "beheer@example.org",
                "url": "https://example.org",
            },
            "extent": (4.728756, 52.278174, 5.079162, 52.431064),
            "keywords": ["bag", "gebouwen", "ë"],
            "theme": ["http://standaarden.overheid.nl/owms/terms/Ruimte_en_infrastructuur"],
            # connector settings: everything that is not a registration key
            "url": "https://api.pdok.nl/kadaster/bag/ogc/v2",
            "timeout": 12.5,
            "page_size": 1000,
            "verify_tls": False,
            "headers": {"Accept-Language": "nl", "X-Nested": {"a": [1, 2.25, "drie", True]}},
            "token_env": "BAG_TOKEN",
        }
    )


# --- migrations ------------------------------------------------------------------------------


def test_upgrade_creates_the_schema_and_is_idempotent(url: str) -> None:
    engine = database.create_engine(url)
    try:
        assert database.current_revision(engine) is None
        database.upgrade(url)
        assert database.current_revision(engine) == database.head_revision()
        assert "sources" in sa.inspect(engine).get_table_names()
        with CatalogueStore.open(url) as store:
            store.add(registration("kept"))
        # a second upgrade (every start runs one) changes nothing and keeps the data
        database.upgrade(url)
        assert database.current_revision(engine) == database.head_revision()
        with CatalogueStore.open(url) as store:
            assert [s.id for s in store.list()] == ["kept"]
    finally:
        engine.dispose()


def _schema_differences(url: str, metadata: sa.MetaData) -> list[Any]:
    engine = database.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"include_object": database.include_object, "compare_type": True},
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(url: str) -> None:
    database.upgrade(url)
    assert _schema_differences(url, Base.metadata) == []
    # The comparison does see a difference when there is one.
    changed = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["sources"].append_column(sa.Column("surplus", sa.Integer()))
    differences = _schema_differences(url, changed)
    assert [(d[0], d[3].name) for d in differences] == [("add_column", "surplus")]


def test_downgrade_to_base_and_upgrade_again(url: str) -> None:
    database.upgrade(url)
    engine = database.create_engine(url)
    try:
        with engine.begin() as connection:
            command.downgrade(database.alembic_config(url, connection=connection), "base")
        assert "sources" not in sa.inspect(engine).get_table_names()
        assert database.current_revision(engine) is None
        database.upgrade(url)
        assert "sources" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "postgis"),
    [("sqlite:///hub.db", False), ("postgresql://hub@db.example/hub", True)],
    ids=["sqlite", "postgresql"],
)
def test_offline_migration_sql(url: str, postgis: bool) -> None:
    config = database.alembic_config(url)
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    script = config.output_buffer.getvalue()
    assert "CREATE TABLE sources" in script
    for postgis_only in [
        "CREATE EXTENSION IF NOT EXISTS postgis",
        "GENERATED ALWAYS AS",
        "USING gist",
    ]:
        assert (postgis_only in script) is postgis, postgis_only


def test_upgrade_runs_from_several_processes_at_once(new_url: Callable[[], str]) -> None:
    url = new_url()
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        database.upgrade(url)

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(start) for _ in range(4)]:
            future.result()
    engine = database.create_engine(url)
    try:
        assert database.current_revision(engine) == database.head_revision()
    finally:
        engine.dispose()


def test_sqlite_has_no_geometry_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    database.upgrade(url)
    engine = database.create_engine(url)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("sources")}
        with engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    finally:
        engine.dispose()
    assert {"minx", "miny", "maxx", "maxy"} <= columns
    assert "extent" not in columns
    assert mode == "wal"


def test_postgis_extent_is_a_generated_indexed_polygon(postgis_server: PostgisServer) -> None:
    url = postgis_server.create_database("catalogue_geometry")
    with CatalogueStore.open(url) as store:
        store.add(registration("box", extent=(4.0, 52.0, 5.0, 53.0)))
        store.add(registration("point", extent=(5.1, 52.1, 5.1, 52.1)))
        store.add(registration("unknown"))
        with store.engine.connect() as connection:
            column = connection.execute(
                sa.text(
                    "SELECT type, srid FROM geometry_columns"
                    " WHERE f_table_name = 'sources' AND f_geometry_column = 'extent'"
                )
            ).one()
            generated = connection.execute(
                sa.text(
                    "SELECT is_generated FROM information_schema.columns"
                    " WHERE table_name = 'sources' AND column_name = 'extent'"
                )
            ).scalar_one()
            index = connection.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_sources_extent'")
            ).scalar_one()
            shapes: dict[str, str | None] = dict(
                connection.execute(sa.text("SELECT id, ST_AsText(extent) FROM sources ORDER BY id")).all()
            )
    assert tuple(column) == ("POLYGON", 4326)
    assert generated == "ALWAYS"
    assert "USING gist (extent)" in index
    assert shapes["unknown"] is None
    assert shapely.from_wkt(shapes["box"]).equals(shapely.box(4.0, 52.0, 5.0, 53.0))
    assert shapely.from_wkt(shapes["point"]).bounds == (5.1, 52.1, 5.1, 52.1)


def test_upgrade_installs_postgis_when_missing(postgis_server: PostgisServer) -> None:
    name = "catalogue_without_postgis"
    with postgis_server.connect() as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    database.upgrade(postgis_server.url(name))
    with postgis_server.connect(name) as connection:
        row = connection.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone()
    assert row is not None


def test_unreachable_database_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot prepare"):
        CatalogueStore.open("postgresql+psycopg://hub:secret@127.0.0.1:1/hub")
    with pytest.raises(ConfigurationError) as raised:
        CatalogueStore.open("postgresql+psycopg://hub:secret@127.0.0.1:1/hub")
    assert "secret" not in str(raised.value)
    with pytest.raises(ConfigurationError):
        CatalogueStore.open("nosuchdb://x")
    with pytest.raises(ConfigurationError, match="invalid database URL"):
        CatalogueStore.open("not a url")


# --- CRUD ------------------------------------------------------------------------------------


def test_round_trip_preserves_every_field(store: CatalogueStore, url: str) -> None:
    original = full_registration()
    before = datetime.now(UTC)
    added = store.add(original)
    after = datetime.now(UTC)

    assert added.registration == original
    assert added.registration.public_dict() == original.public_dict()
    assert added.registration.connector_settings() == original.connector_settings()
    assert added.seeded is False
    assert added.created_at.tzinfo is UTC and added.updated_at.tzinfo is UTC
    assert before <= added.created_at == added.updated_at <= after

    fetched = store.get("bag-panden")
    assert fetched == added
    assert store.list() == [added]
    # read back through a new engine: the data is in the database, not in a cache
    with CatalogueStore.open(url) as reopened:
        again = reopened.get("bag-panden")
    assert again == added
    # the steward's key order survives too (JSONB would have reordered it)
    assert again is not None
    assert list(again.registration.public_dict()) == list(original.public_dict())
    headers = again.registration.connector_settings()["headers"]
    assert list(headers) == ["Accept-Language", "X-Nested"]


def test_round_trip_of_a_minimal_registration(store: CatalogueStore) -> None:
    minimal = SourceRegistration.model_validate({"id": "m", "title": "M", "connector": "wfs"})
    stored = store.add(minimal, seeded=True)
    assert stored.registration == minimal
    assert stored.registration.extent is None
    assert store.get("m") == stored
    assert stored.seeded is True


def test_get_and_list(store: CatalogueStore) -> None:
    assert store.list() == []
    assert store.get("nope") is None
    for source_id in ["c", "a", "b"]:
        store.add(registration(source_id))
    assert [s.id for s in store.list()] == ["a", "b", "c"]


def test_duplicate_id_is_a_conflict(store: CatalogueStore) -> None:
    first = store.add(registration("dup", title="First"))
    with pytest.raises(Conflict, match="dup"):
        store.add(registration("dup", title="Second"))
    assert store.get("dup") == first


def test_replace(store: CatalogueStore) -> None:
    first = store.add(registration("r", extent=(4.0, 52.0, 5.0, 53.0)), seeded=True)
    new = registration("r", title="Renamed", classification="open", extent=(6.0, 50.0, 7.0, 51.0))
    replaced = store.replace(new)
    assert replaced.registration == new
    assert replaced.created_at == first.created_at
    assert replaced.updated_at >= first.updated_at
    # edited through the API, the source is the steward's from now on
    assert replaced.seeded is False
    assert store.get("r") == replaced
    assert store.intersecting((4.5, 52.5, 4.6, 52.6)) == []
    assert store.intersecting((6.5, 50.5, 6.6, 50.6)) == ["r"]


def test_replace_or_delete_of_a_missing_source_is_not_found(store: CatalogueStore) -> None:
    store.add(registration("present"))
    with pytest.raises(NotFound, match="absent"):
        store.replace(registration("absent"))
    with pytest.raises(NotFound, match="absent"):
        store.delete("absent")
    assert [s.id for s in store.list()] == ["present"]


def test_delete(store: CatalogueStore) -> None:
    store.add(registration("a"))
    store.add(registration("b"))
    store.delete("a")
    assert store.get("a") is None
    assert [s.id for s in store.list()] == ["b"]
    # the id is free again
    assert store.add(registration("a")).id == "a"


# --- spatial filter --------------------------------------------------------------------------

EXTENTS: dict[str, tuple[float, float, float, float] | None] = {
    "amsterdam": (4.728756, 52.278174, 5.079162, 52.431064),
    "utrecht": (4.97, 52.02, 5.2, 52.14),
    "nederland": (3.2, 50.75, 7.22, 53.7),
    "corner": (5.079162, 52.431064, 5.2, 52.5),  # touches amsterdam's north-east corner
    "point": (5.1, 52.1, 5.1, 52.1),
    "meridian-line": (6.0, 52.0, 6.0, 53.0),
    "world": (-180.0, -90.0, 180.0, 90.0),
    "fiji": (177.0, -19.0, 180.0, -16.0),
    "unknown": None,
    "also-unknown": None,
}

QUERIES: list[tuple[float, ...]] = [
    (4.85, 52.33, 4.95, 52.38),  # inside amsterdam
    (5.079162, 52.2, 5.1, 52.25),  # touches amsterdam's east edge only
    (5.1, 52.1, 5.1, 52.1),  # the point itself
    (5.0, 52.0, 5.0999999, 52.2),  # stops just short of the point
    (5.9, 52.5, 6.1, 52.6),  # crosses the line
    (6.0000001, 52.5, 6.1, 52.6),  # just east of the line
    (-130.0, 10.0, -120.0, 20.0),  # eastern Pacific: only the world
    (179.0, -20.0, -179.0, -15.0),  # across the antimeridian
    (-180.0, -90.0, 180.0, 90.0),
    (4.85, 52.33, -10.0, 4.95, 52.38, 100.0),  # 3D box
]


def _shape(minx: float, miny: float, maxx: float, maxy: float) -> BaseGeometry:
    if minx == maxx and miny == maxy:
        return shapely.Point(minx, miny)
    if minx == maxx or miny == maxy:
        return shapely.LineString([(minx, miny), (maxx, maxy)])
    return shapely.box(minx, miny, maxx, maxy)


def _brute_force(query: tuple[float, ...]) -> list[str]:
    minx, miny, maxx, maxy = query if len(query) == 4 else (*query[:2], *query[3:5])
    if minx <= maxx:
        area = _shape(minx, miny, maxx, maxy)
    else:
        area = shapely.union(_shape(minx, miny, 180.0, maxy), _shape(-180.0, miny, maxx, maxy))
    return sorted(
        source_id
        for source_id, extent in EXTENTS.items()
        if extent is None or area.intersects(_shape(*extent))
    )


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: ",".join(map(str, q)))
def test_intersecting_agrees_with_brute_force(store: CatalogueStore, query: tuple[float, ...]) -> None:
    for source_id, extent in EXTENTS.items():
        store.add(registration(source_id, extent=extent))
    expected = _brute_force(query)
    assert store.intersecting(query) == expected


def test_the_spatial_cases_discriminate() -> None:
    # Every source with an extent is kept by some query and dropped by another, so a filter
    # that keeps everything (or drops everything) fails the comparison above.
    answers = [set(_brute_force(query)) for query in QUERIES]
    for source_id, extent in EXTENTS.items():
        kept = sum(source_id in answer for answer in answers)
        if extent is None or source_id == "world":
            assert kept == len(QUERIES), source_id
        else:
            assert 0 < kept < len(QUERIES), source_id


def test_intersecting_rejects_a_malformed_bbox(store: CatalogueStore) -> None:
    for bad in [
        (1.0, 2.0, 3.0),
        (0.0, 10.0, 1.0, 5.0),
        (0.0, 0.0, 200.0, 1.0),
        (0.0, 0.0, float("nan"), 1.0),
    ]:
        with pytest.raises(BadRequest):
            store.intersecting(bad)


# --- seeding ---------------------------------------------------------------------------------


def test_seed(store: CatalogueStore) -> None:
    config = [
        registration("a", extent=(0.0, 0.0, 1.0, 1.0)),
        registration("b", extent=(4.0, 52.0, 5.0, 53.0)),
    ]
    assert store.seed(config) == SeedResult(added=("a", "b"))
    assert all(s.seeded for s in store.list())

    again = store.seed(config)
    assert again == SeedResult(unchanged=("a", "b"))
    assert not again.changed

    # a steward registers a source the configuration file also declares later
    steward = store.add(registration("c", title="Steward's own", extent=(0.0, 0.0, 1.0, 1.0)))
    b_before = store.get("b")
    config = [config[0], registration("b", title="Changed"), registration("c")]
    result = store.seed(config)
    assert result == SeedResult(updated=("b",), unchanged=("a",), skipped=("c",))
    assert result.changed
    assert store.get("c") == steward
    b_after = store.get("b")
    assert b_before is not None and b_after is not None
    assert b_after.registration.title == "Changed"
    assert b_after.registration.extent is None
    assert b_after.seeded and b_after.created_at == b_before.created_at
    assert store.intersecting((10.0, 10.0, 11.0, 11.0)) == ["b"]  # extent now unknown

    # a seeded source the file no longer declares goes; the steward's stays
    assert store.seed([registration("b", title="Changed")]) == SeedResult(removed=("a",), unchanged=("b",))
    assert [s.id for s in store.list()] == ["b", "c"]

    # once a steward edits a seeded source, the file no longer overrides it
    store.replace(registration("b", title="Edited by steward"))
    assert store.seed([registration("b", title="From file")]) == SeedResult(skipped=("b",))
    edited = store.get("b")
    assert edited is not None and edited.registration.title == "Edited by steward"


def test_seed_refuses_an_id_declared_twice(store: CatalogueStore) -> None:
    with pytest.raises(ConfigurationError, match="more than once"):
        store.seed([registration("x"), registration("x", title="Other")])
    assert store.list() == []


def test_seed_from_several_processes_at_once(new_url: Callable[[], str]) -> None:
    url = new_url()
    database.upgrade(url)
    config = [registration(f"s{i}") for i in range(5)]
    stores = [CatalogueStore.open(url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))

    def seed(store: CatalogueStore) -> SeedResult:
        barrier.wait()
        return store.seed(config)

    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(seed, stores))
    finally:
        for store in stores:
            store.close()
    assert sorted(r.added for r in results) == [(), (), (), tuple(f"s{i}" for i in range(5))]


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_adds_and_reads(store: CatalogueStore) -> None:
    threads, per_thread = 8, 15
    barrier = threading.Barrier(threads)

    def work(worker: int) -> int:
        barrier.wait()
        seen = 0
        for n in range(per_thread):
            store.add(registration(f"w{worker}-{n}", extent=(4.0, 52.0, 4.0 + n / 100, 52.5)))
            seen = max(seen, len(store.list()))
            store.intersecting((4.0, 52.0, 4.05, 52.1))
        return seen

    with ThreadPoolExecutor(threads) as pool:
        seen = list(pool.map(work, range(threads)))
    assert len(store.list()) == threads * per_thread
    assert all(per_thread <= count <= threads * per_thread for count in seen)


def test_concurrent_adds_of_one_id_give_one_winner(store: CatalogueStore) -> None:
    threads = 8
    barrier = threading.Barrier(threads)

    def add(worker: int) -> str:
        barrier.wait()
        try:
            store.add(registration("contested", title=f"by {worker}"))
        except Conflict:
            return "conflict"
        return "added"

    with ThreadPoolExecutor(threads) as pool:
        outcomes = sorted(pool.map(add, range(threads)))
    assert outcomes == ["added"] + ["conflict"] * (threads - 1)


# --- timestamps ------------------------------------------------------------------------------


def test_timestamps_are_stored_as_utc_and_refuse_naive_datetimes() -> None:
    column = UTCDateTime()
    sqlite = sqlite_dialect.dialect()
    with pytest.raises(ValueError, match="timezone-aware"):
        column.process_bind_param(datetime(2026, 1, 1), sqlite)
    winter = datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=1)))
    assert column.process_bind_param(winter, sqlite) == datetime(2026, 1, 1, 13)
    back = column.process_result_value(datetime(2026, 1, 1, 13), sqlite)
    assert back == winter and back is not None and back.tzinfo is UTC
