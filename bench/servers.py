"""The servers under test, each in its own process on 127.0.0.1: pygeoapi, the hub and PostGIS.

pygeoapi runs its own Starlette application under uvicorn (one worker), the hub runs
``create_app(settings)`` under uvicorn (one worker, ``bench.hub_server``); both without access
logs, so that the two stacks differ only in application code. PostGIS is a throwaway cluster
started with the test fixture's ``PostgisServer``, loaded with the BAG verblijfsobjecten layer.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg
import pyogrio
import pyogrio.raw
import shapely
import yaml
from psycopg import sql

from tests.fixtures import upstream as upstream_fixture
from tests.fixtures.postgis import SERVER_USER, PostgisServer, _find_bindir

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = upstream_fixture.DATA_DIR
AFVALBAKKEN = upstream_fixture.AFVALBAKKEN
BAG_GPKG = upstream_fixture.BAG_GPKG
BAG_LAYER = "verblijfsobjecten"
PG_DATABASE = "bench"
PG_TABLE = "verblijfsobjecten"
RD_SRID = 28992

MAX_ITEMS = 1000
"""Page size cap of the standalone pygeoapi: the largest page the benchmark asks for."""

STARTUP_SECONDS = 120.0


class ComponentError(RuntimeError):
    """A server the benchmark needs could not be started; the run cannot be complete."""

    def __init__(self, component: str, reason: str):
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason


@dataclass
class ServerProcess:
    """A server process we started, its base URL and its log file."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, to explain a failure (also after :meth:`stop`)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """Terminate the process we started (kill it when it lingers) and close its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    return upstream_fixture._free_port()


def _wait_until(
    server: ServerProcess,
    url: str,
    ready: Any,
    timeout: float = STARTUP_SECONDS,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Poll ``url`` until ``ready(response)`` holds; raise ComponentError with the log otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ComponentError(
                server.name,
                f"exited with code {server.process.returncode} during start-up\n{server.log_tail()}",
            )
        try:
            response = httpx.get(url, timeout=5.0, headers=headers)
            if ready(response):
                return
            last = f"HTTP {response.status_code}: {response.text[:2000]}"
        except (httpx.HTTPError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.2)
    server.stop()
    raise ComponentError(server.name, f"not ready within {timeout:.0f} s ({last})\n{server.log_tail()}")


def _spawn(name: str, command: list[str], workdir: Path, base_url: str, env: dict[str, str]) -> ServerProcess:
    """Start ``command`` with its output in ``workdir/<name>.log``."""
    log_path = workdir / f"{name}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    return ServerProcess(name, base_url, process, log_path, log)


def _uvicorn(app: str, port: int, *extra: str) -> list[str]:
    """The uvicorn command line both servers share: one worker, no access log."""
    return [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--log-level", "warning", "--no-access-log", *extra,
    ]  # fmt: skip


# --- PostGIS -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgisTable:
    """Where the verblijfsobjecten table lives."""

    host: str
    port: int
    user: str
    dbname: str
    table: str

    @property
    def libpq_url(self) -> str:
        """A libpq URL for the database."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


@contextlib.contextmanager
def postgis_cluster(*, durable: bool = False) -> Iterator[PostgisServer]:
    """Start a throwaway PostGIS cluster (as ``postgres`` when we are root) and remove it after;
    ``durable``: with PostgreSQL's default flushing of every commit, which tests turn off."""
    bindir = _find_bindir()
    if bindir is None:
        raise ComponentError(
            "postgis", "initdb/pg_ctl not found (install postgresql-15 and postgresql-15-postgis-3)"
        )
    # A directory of its own: the server's user must be able to reach it, and our private
    # work directory (mode 0700) is not reachable for it.
    pgdir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    as_user: str | None = None
    if os.geteuid() == 0:
        # initdb refuses to run as root
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise ComponentError("postgis", f"running as root and no {SERVER_USER!r} user") from None
        os.chown(pgdir, account.pw_uid, account.pw_gid)
        as_user = SERVER_USER
    server = PostgisServer(bindir, pgdir, as_user=as_user)
    try:
        try:
            server.start(durable=durable)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            raise ComponentError("postgis", str(exc)) from exc
        deadline = time.monotonic() + 30
        while True:
            try:
                available = server.has_postgis()
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ComponentError("postgis", f"server does not accept connections: {exc}") from exc
                time.sleep(0.2)
        if not available:
            raise ComponentError("postgis", "the postgis extension is not installed")
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(pgdir, ignore_errors=True)


_PG_TYPES = {"OFTInteger": "integer", "OFTInteger64": "bigint", "OFTReal": "double precision"}


def load_verblijfsobjecten(server: PostgisServer) -> PostgisTable:
    """Copy the GeoPackage layer into a fresh database as ``geometry(Point,28992)``, indexed."""
    server.create_database(PG_DATABASE)
    meta, fids, geometries, columns = pyogrio.raw.read(BAG_GPKG, layer=BAG_LAYER, return_fids=True)
    info = pyogrio.read_info(BAG_GPKG, layer=BAG_LAYER)
    names = [str(n) for n in meta["fields"]]
    types = [_PG_TYPES.get(t, "text") for t in info["ogr_types"]]
    id_column = str(info["fid_column"] or "fid")
    # The column is typed geometry(Point,28992): plain WKB (SRID 0) would be refused, so the
    # rows carry hex EWKB with the SRID, which COPY's text format parses directly.
    ewkb = shapely.to_wkb(
        shapely.set_srid(shapely.from_wkb(geometries), RD_SRID), hex=True, include_srid=True
    )
    column_defs = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in zip(names, types, strict=True)
    )
    with server.connect(PG_DATABASE) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} ({} bigint PRIMARY KEY, {}, geom geometry(Point, {}) NOT NULL)").format(
                sql.Identifier(PG_TABLE), sql.Identifier(id_column), column_defs, sql.Literal(RD_SRID)
            )
        )
        all_columns = sql.SQL(", ").join(sql.Identifier(c) for c in [id_column, *names, "geom"])
        with (
            conn.cursor() as cursor,
            cursor.copy(
                sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(PG_TABLE), all_columns)
            ) as copy,
        ):
            for row, fid in enumerate(fids):
                values = [None if _missing(col[row]) else col[row] for col in columns]
                copy.write_row([int(fid), *values, ewkb[row]])
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(sql.Identifier(PG_TABLE)))
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(PG_TABLE)))
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(PG_TABLE))).fetchone()
    if not count or count[0] != len(fids):
        raise ComponentError("postgis", f"loaded {count} rows of {len(fids)}")
    return PostgisTable(server.host, server.port, server.user, PG_DATABASE, PG_TABLE)


def _missing(value: Any) -> bool:
    """Whether a value read by pyogrio stands for NULL (None, or NaN in a numeric column)."""
    return value is None or (isinstance(value, float) and value != value)


# --- pygeoapi ------------------------------------------------------------------------------


def pygeoapi_config(port: int, table: PostgisTable | None) -> dict[str, Any]:
    """The test upstream's configuration, with pages up to 1000 and the PostGIS table added."""
    config = upstream_fixture.build_config(port)
    config["server"]["limits"]["max_items"] = MAX_ITEMS
    if table is not None:
        gpkg = config["resources"][BAG_LAYER]
        config["resources"]["verblijfsobjecten-pg"] = {
            **gpkg,
            "title": "BAG verblijfsobjecten (PostGIS)",
            "providers": [
                {
                    "type": "feature",
                    "name": "PostgreSQL",
                    "data": {
                        "host": table.host,
                        "port": table.port,
                        "dbname": table.dbname,
                        "user": table.user,
                        "search_path": ["public"],
                    },
                    "id_field": "feature_id",
                    "table": table.table,
                    "geom_field": "geom",
                    "crs": upstream_fixture.OFFERED_CRS,
                    "storage_crs": upstream_fixture.RD_NEW,
                }
            ],
        }
    return config


def check_pygeoapi_prerequisites(with_postgis: bool) -> None:
    """Fail early, saying what to install, when pygeoapi's OGR or PostgreSQL provider cannot load."""
    probes = {"GDAL bindings (run scripts/install-test-extras)": "from osgeo import ogr"}
    if with_postgis:
        probes["pygeoapi's PostgreSQL provider (pip install -e '.[bench]')"] = "import pygeoapi.provider.sql"
    for what, code in probes.items():
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise ComponentError("pygeoapi", f"{what} missing: {last}")


def start_pygeoapi(workdir: Path, table: PostgisTable | None) -> ServerProcess:
    """Start pygeoapi 0.24 (its Starlette app under uvicorn) serving the shared data."""
    check_pygeoapi_prerequisites(table is not None)
    port = free_port()
    config_path = workdir / "pygeoapi-config.yml"
    openapi_path = workdir / "pygeoapi-openapi.yml"
    config_path.write_text(yaml.safe_dump(pygeoapi_config(port, table), sort_keys=False))
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config_path), "PYGEOAPI_OPENAPI": str(openapi_path)}
    log_path = workdir / "pygeoapi-openapi.log"
    with log_path.open("wb") as log:
        done = subprocess.run(
            [sys.executable, "-c", "from pygeoapi import cli; cli()", "openapi", "generate",
             str(config_path), "--output-file", str(openapi_path)],
            env=env, stdout=log, stderr=subprocess.STDOUT, timeout=300, check=False,
        )  # fmt: skip
    if done.returncode != 0 or not openapi_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise ComponentError("pygeoapi", f"could not generate its OpenAPI document\n{tail}")
    server = _spawn(
        "pygeoapi", _uvicorn("pygeoapi.starlette_app:APP", port), workdir, f"http://127.0.0.1:{port}", env
    )
    _wait_until(server, f"{server.base_url}/conformance?f=json", lambda r: r.status_code == 200)
    return server


# --- emulated upstreams ---------------------------------------------------------------------


def start_module_server(
    name: str, module: str, args: Sequence[str], workdir: Path, ready_path: str
) -> ServerProcess:
    """Start ``python -m <module> --port <free port> <args>`` and wait until ``ready_path``
    answers 200 (the join benchmark's emulated 3D BAG API, say)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", module, "--port", str(port), *args]
    server = _spawn(name, command, workdir, base_url, env)
    _wait_until(server, f"{base_url}{ready_path}", lambda r: r.status_code == 200)
    return server


# --- the hub -------------------------------------------------------------------------------


def start_hub(
    workdir: Path,
    sources: list[dict[str, Any]],
    collections: list[str],
    *,
    name: str = "hub",
    settings: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Start the hub with ``sources`` and wait until every one of ``collections`` is healthy.

    ``name`` names its configuration, database and log in ``workdir`` (several hubs can share
    one), ``settings`` are added to its configuration (``auth``, ``audit``, ...), and
    ``headers`` go with the health checks (a token, when the collections are not open: the
    health endpoint lists only the sources its caller may read).
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    config_path = workdir / f"{name}.yml"
    config = {
        "database_url": f"sqlite:///{workdir / f'{name}.db'}",
        "server": {"base_url": base_url, "title": "Benchmark hub"},
        "sources": sources,
        # one probe at start-up harvests the schemas; none during the measurements
        "probe_interval": 0,
        "catalogue_poll_interval": 3600,
        # the benchmark's upstreams listen on loopback, which the hub refuses by default
        "allowed_networks": ["127.0.0.0/8", "::1/128"],
        **(settings or {}),
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "bench.hub_server", "--config", str(config_path), "--port", str(port)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    server = _spawn(name, command, workdir, base_url, env)

    wanted_sources = {str(source["id"]) for source in sources}

    def healthy(response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        sources_now = response.json()["sources"]
        # The registry is filled before the server accepts requests: a source absent from
        # the first answer was refused (an unknown connector, invalid settings).
        refused = wanted_sources - {s["id"] for s in sources_now}
        if refused:
            server.stop()
            raise ComponentError(name, f"refused source(s) {', '.join(sorted(refused))}\n{server.log_tail()}")
        # An unhealthy source is waited for, not failed at once: a linked collection is described
        # again when its members answer their probes, which can take a while on a loaded machine.
        # Should it stay unhealthy, the time-out reports the health answer with its errors.
        served = {c for s in sources_now if s["state"] == "healthy" for c in s["collections"]}
        return set(collections) <= served

    _wait_until(server, f"{base_url}/api/v1/health", healthy, timeout=60, headers=headers)
    return server
