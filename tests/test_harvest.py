"""Harvesting: candidate registrations from real catalogues, landing pages and capabilities,
written for review by ``hub sources harvest``, then registered and probed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connectors._network import GuardedClient, NetworkPolicy
from hub.catalogue.harvest import Harvest, HarvestKind, harvest, slug
from hub.catalogue.registration import SourceRegistration
from hub.errors import HarvestFailed
from tests.fixtures.hub import hub_settings, require_shared, serve_hub
from tests.fixtures.mapserver import MapServerWfs
from tests.fixtures.oidc import steward
from tests.fixtures.upstream import PygeoapiUpstream

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "config" / "demo-data" / "laadpalen.geojson"
LOOPBACK = NetworkPolicy.allowing(["127.0.0.0/8", "::1/128"])


def run_harvest(url: str, policy: NetworkPolicy = LOOPBACK, **options: Any) -> Harvest:
    """Harvest ``url`` through a guarded client, as the hub does."""

    async def run() -> Harvest:
        async with GuardedClient(policy) as http:
            return await harvest(url, http=http, **options)

    return asyncio.run(run())


def cli(*args: str, config: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``hub sources ...`` as a steward runs it (standard error is a pipe, not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "sources", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@contextlib.contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """Python's own file server for ``directory`` on loopback."""
    handler = partial(_QuietFiles, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


@pytest.fixture
def cli_config(tmp_path: Path) -> Path:
    """A configuration for the CLI: its own catalogue, loopback allowed as in every test hub."""
    folder = tmp_path / "cli"
    folder.mkdir()
    settings = hub_settings(folder, [], auth=None)
    assert settings.config_file is not None
    return settings.config_file


# --- OGC API ------------------------------------------------------------------------------


def test_ogcapi_landing_page_gives_one_candidate_with_its_collections(
    upstream_pygeoapi: PygeoapiUpstream,
) -> None:
    progress: list[tuple[str, int, int | None]] = []
    harvested = run_harvest(upstream_pygeoapi.base_url, progress=lambda *step: progress.append(step))
    assert harvested.kind is HarvestKind.OGCAPI
    assert harvested.skipped == []
    [candidate] = harvested.candidates
    assert candidate.connector == "ogcapi-features"
    assert candidate.connector_settings() == {"url": upstream_pygeoapi.base_url}
    assert candidate.title == "Test upstream" and candidate.id == "test-upstream"
    assert candidate.description == "pygeoapi serving the shared test data"
    assert [(c.upstream, c.title) for c in candidate.collections or []] == [
        ("afvalbakken", "Afvalbakken Amsterdam 2013"),
        ("bekendmakingen", "Bekendmakingen Amsterdam 2013"),
        ("verblijfsobjecten", "BAG verblijfsobjecten (Houthavens)"),
    ]
    assert candidate.keywords == ["test"]
    assert candidate.extent is not None
    minx, miny, maxx, maxy = candidate.extent
    assert 4.7 < minx < maxx < 5.1 and 52.3 < miny < maxy < 52.5  # Amsterdam
    assert candidate.classification.value == "internal"  # nothing said about access: not open
    # landing page, conformance, collections; the bar knew how many once it knew the kind
    assert [done for what, done, _ in progress if what.startswith("read ")] == [1, 2, 3]
    assert progress[-1][1:] == (3, 3)


def test_harvesting_the_collections_document_finds_the_same_candidate(
    upstream_pygeoapi: PygeoapiUpstream,
) -> None:
    from_landing = run_harvest(upstream_pygeoapi.base_url).candidates
    from_collections = run_harvest(f"{upstream_pygeoapi.base_url}/collections?f=json").candidates
    assert [c.public_dict() for c in from_collections] == [c.public_dict() for c in from_landing]


# --- WFS ----------------------------------------------------------------------------------


def test_wfs_capabilities_give_a_wfs_candidate_with_its_feature_types(wfs_mapserver: MapServerWfs) -> None:
    capabilities = f"{wfs_mapserver.url}&SERVICE=WFS&REQUEST=GetCapabilities&VERSION=2.0.0"
    harvested = run_harvest(capabilities)
    assert harvested.kind is HarvestKind.WFS
    [candidate] = harvested.candidates
    assert candidate.connector == "wfs"
    # the endpoint as registered: MapServer's own map= kept as written, request parameters gone
    assert candidate.connector_settings() == {"url": wfs_mapserver.url}
    assert [c.upstream for c in candidate.collections or []] == ["bgt_pand", "bgt_label", "perceel"]
    assert candidate.title == "Urban twin test WFS"
    assert candidate.extent is not None
    # a bare endpoint is asked for its capabilities
    assert [c.public_dict() for c in run_harvest(wfs_mapserver.url).candidates] == [candidate.public_dict()]


def test_wfs_service_metadata_becomes_owner_contact_licence_and_keywords(tmp_path: Path) -> None:
    shared = require_shared()
    with static_server(shared / "wfs") as base:
        harvested = run_harvest(f"{base}/pdok_kadastralekaart_v4_wfs200_capabilities.xml")
    [candidate] = harvested.candidates
    assert candidate.title == "kadastralekaart"
    assert candidate.description.startswith("Overzicht van de ligging van de kadastrale percelen")
    assert candidate.owner == "PDOK"
    assert candidate.contact_point is not None
    assert candidate.contact_point.model_dump() == {
        "name": "KlantContactCenter PDOK",
        "email": "BeheerPDOK@kadaster.nl",
        "url": "https://pdok.nl",
    }
    assert candidate.licence == "http://creativecommons.org/publicdomain/zero/1.0/deed.nl"
    assert candidate.keywords == ["PDOK", "Kadaster", "Kadastrale percelen"]
    [collection] = candidate.collections or []
    assert (collection.upstream, collection.title) == ("kadastralegrens", "kadastralegrens")
    assert (collection.description or "").startswith("Een Kadastrale Grens is de weergave van een grens")
    assert candidate.extent is not None


# --- DCAT ---------------------------------------------------------------------------------


@pytest.fixture
def catalogue_hub(tmp_path: Path) -> Iterator[str]:
    """A hub whose catalogue lists an open file source and a restricted one."""
    sources = [
        {
            "id": "laadpalen",
            "title": "Laadpalen",
            "description": "Laadpalen voor elektrische auto's",
            "connector": "file",
            "classification": "open",
            "path": str(DEMO),
            "owner": "Gemeente Delft",
            "licence": "https://creativecommons.org/publicdomain/zero/1.0/",
            "contact_point": {"name": "Geo-informatie", "email": "geo@example.org"},
            "keywords": ["mobiliteit", "energie"],
            "theme": ["http://publications.europa.eu/resource/authority/data-theme/TRAN"],
        },
        {
            "id": "intern",
            "title": "Interne laadpalen",
            "connector": "file",
            "classification": "internal",
            "path": str(DEMO),
            "collections": [{"upstream": "laadpalen", "id": "intern"}],
        },
    ]
    folder = tmp_path / "catalogue"
    folder.mkdir()
    with serve_hub(hub_settings(folder, sources, probe_on_start=True)) as base_url:
        deadline = time.monotonic() + 20
        while "laadpalen" not in {
            c["id"] for c in httpx.get(f"{base_url}/ogc/v1/collections").json()["collections"]
        }:
            assert time.monotonic() < deadline, "the catalogue hub did not serve its source"
            time.sleep(0.1)
        yield base_url


@pytest.mark.parametrize("rdf", ["ttl", "jsonld", "rdfxml"])
def test_a_hubs_dcat_catalogue_gives_a_candidate_per_open_dataset(catalogue_hub: str, rdf: str) -> None:
    harvested = run_harvest(f"{catalogue_hub}/api/v1/catalog?f={rdf}")
    assert harvested.kind is HarvestKind.DCAT
    [candidate] = harvested.candidates
    assert candidate.public_dict() == {
        "id": "laadpalen",
        "title": "Laadpalen",
        "description": "Laadpalen voor elektrische auto's",
        "connector": "ogcapi-features",
        "url": f"{catalogue_hub}/ogc/v1",
        "classification": "open",
        "collections": [{"upstream": "laadpalen"}],
        "licence": "https://creativecommons.org/publicdomain/zero/1.0/",
        "owner": "Gemeente Delft",
        "contact_point": {"name": "Geo-informatie", "email": "geo@example.org"},
        "keywords": ["energie", "mobiliteit"],
        "theme": ["http://publications.europa.eu/resource/authority/data-theme/TRAN"],
        "extent": candidate.public_dict()["extent"],
    }
    assert candidate.extent is not None and 4.3 < candidate.extent[0] < candidate.extent[2] < 4.5
    # the restricted source is listed, but nothing reaches its data
    [skipped] = harvested.skipped
    assert skipped.name == "Interne laadpalen"
    assert "RESTRICTED" in skipped.reason


def test_dcat_examples_without_distributions_are_reported_not_registered(tmp_path: Path) -> None:
    examples = require_shared() / "dcat" / "examples"
    with static_server(examples) as base:
        harvested = run_harvest(f"{base}/example-bee-population-dataset-series-gea-nha.ttl", language="en")
    assert harvested.kind is HarvestKind.DCAT
    assert harvested.candidates == []
    assert sorted(s.name for s in harvested.skipped) == [
        "Bee population 2000 in Greece",
        "Bee population 2022 in the region of Thessaloniki",
        "Bee population 2023 in the region of Thessaloniki and Athens",
    ]
    assert all("no distribution or data service" in s.reason for s in harvested.skipped)


def test_a_remote_json_ld_context_is_fetched_by_the_hub_not_by_rdflib(tmp_path: Path) -> None:
    examples = require_shared() / "dcat" / "examples"
    served = tmp_path / "served"
    served.mkdir()
    (served / "context.jsonld").write_bytes((examples / "context.jsonld").read_bytes())
    document = json.loads((examples / "example-bee-population-dataset-series-modified.jsonld").read_text())
    with static_server(served) as base:
        # the example names the context's published address; here it is served on loopback
        document["@context"] = f"{base}/context.jsonld"
        (served / "catalogue.jsonld").write_text(json.dumps(document))
        harvested = run_harvest(f"{base}/catalogue.jsonld", language="en")
        assert sorted(s.name for s in harvested.skipped) == [
            "Bee population 2000 in Greece",
            "Bee population 2022 in the region of Thessaloniki",
            "Bee population 2023 in the region of Thessaloniki and Athens",
        ]
        # a context at an address the policy does not allow is refused by the hub's guard (had
        # rdflib fetched it, nothing listens on 127.0.0.2 and the error would say so instead)
        port = base.rsplit(":", 1)[1]
        document["@context"] = f"http://127.0.0.2:{port}/context.jsonld"
        (served / "elsewhere.jsonld").write_text(json.dumps(document))
        with pytest.raises(HarvestFailed, match=r"the address 127\.0\.0\.2, a loopback address"):
            run_harvest(f"{base}/elsewhere.jsonld", NetworkPolicy.allowing(["127.0.0.1/32"]))


# --- the command --------------------------------------------------------------------------


def test_cli_writes_candidates_that_register_and_probe(
    cli_config: Path, tmp_path: Path, wfs_mapserver: MapServerWfs, upstream_pygeoapi: PygeoapiUpstream
) -> None:
    written = tmp_path / "wfs.yml"
    harvested = cli("harvest", wfs_mapserver.url, "--output", str(written), config=cli_config)
    assert harvested.returncode == 0, harvested.stderr
    assert harvested.stdout == ""
    assert "1 candidate(s) from wfs" in harvested.stderr
    assert "\r" not in harvested.stderr and "reading" not in harvested.stderr  # no bar in a pipe
    text = written.read_text(encoding="utf-8")
    assert text.startswith("# Registrations harvested from")
    [entry] = yaml.safe_load(text)["sources"]
    registration = SourceRegistration.model_validate(entry)
    assert registration.connector == "wfs"

    added = cli("add", str(written), config=cli_config)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"registered {registration.id} (healthy)"

    # straight to the catalogue, probing as add does; YAML on standard output otherwise
    printed = cli("harvest", upstream_pygeoapi.base_url, config=cli_config)
    assert printed.returncode == 0, printed.stderr
    assert yaml.safe_load(printed.stdout)["sources"][0]["id"] == "test-upstream"
    registered = cli("harvest", upstream_pygeoapi.base_url, "--register", config=cli_config)
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.strip() == "registered test-upstream (healthy)"
    listed = cli("list", config=cli_config)
    assert sorted(line.split("\t")[0] for line in listed.stdout.splitlines()) == [
        "test-upstream",
        registration.id,
    ]
    # again: already registered, said so, exit code 1
    again = cli("harvest", upstream_pygeoapi.base_url, "--register", config=cli_config)
    assert again.returncode == 1
    assert "not registered test-upstream" in again.stderr


def test_cli_harvest_of_a_hub_catalogue_round_trips(
    cli_config: Path, tmp_path: Path, catalogue_hub: str
) -> None:
    written = tmp_path / "catalogue.yml"
    harvested = cli("harvest", f"{catalogue_hub}/api/v1/catalog", "-o", str(written), config=cli_config)
    assert harvested.returncode == 0, harvested.stderr
    assert "skipped Interne laadpalen" in harvested.stderr
    assert "# skipped Interne laadpalen" in written.read_text(encoding="utf-8")
    added = cli("add", str(written), config=cli_config)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "registered laadpalen (healthy)"


def test_cli_draws_a_progress_bar_on_a_terminal(
    cli_config: Path, upstream_pygeoapi: PygeoapiUpstream
) -> None:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub.cli",
                "sources",
                "harvest",
                upstream_pygeoapi.base_url,
                "--config",
                str(cli_config),
            ],
            stdout=subprocess.PIPE,
            stderr=terminal,
            cwd=REPO,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
        )
        os.close(terminal)
        drawn = bytearray()
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break  # the terminal closed with the process
            if not chunk:
                break
            drawn += chunk
        stdout, _ = process.communicate(timeout=120)
    finally:
        os.close(controller)
    assert process.returncode == 0, drawn.decode(errors="replace")
    assert b"reading" in drawn and b"/collections" in drawn
    assert b"3/3" in drawn
    assert yaml.safe_load(stdout)["sources"][0]["id"] == "test-upstream"  # the bar never reaches stdout


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        ("missing.ttl", "answered 404"),
        ("garbage.txt", "neither a DCAT catalogue, an OGC API landing page nor a WFS capabilities document"),
        ("broken.ttl", "is not valid Turtle"),
        ("page.html", "is an HTML page"),
        ("entities.xml", "declares a document type"),
        ("other.json", "neither an OGC API landing page nor JSON-LD"),
    ],
)
def test_cli_explains_what_cannot_be_harvested(
    cli_config: Path, tmp_path: Path, served: str, expected: str
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "garbage.txt").write_text("dit is geen catalogus\n")
    (files / "broken.ttl").write_text(
        '@prefix dcat: <http://www.w3.org/ns/dcat#> .\n<a> a dcat:Dataset ; dct:title "x" .\n'
    )
    (files / "page.html").write_text("<!DOCTYPE html><html><body>Welkom</body></html>")
    (files / "entities.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<r>&x;</r>\n'
    )
    (files / "other.json").write_text('{"type": "FeatureCollection", "features": []}')
    with static_server(files) as base:
        result = cli("harvest", f"{base}/{served}", config=cli_config)
    assert result.returncode == 1
    assert result.stdout == ""
    assert expected in result.stderr, result.stderr


def test_cli_gives_up_on_a_silent_server(cli_config: Path) -> None:
    with silent_server() as url:
        started = time.monotonic()
        result = cli("harvest", url, "--timeout", "1", config=cli_config)
    assert result.returncode == 1
    assert f"{url} did not answer within 1 s" in result.stderr
    assert time.monotonic() - started < 30


def test_harvest_urls_obey_allowed_networks(tmp_path: Path, upstream_pygeoapi: PygeoapiUpstream) -> None:
    strict = tmp_path / "strict.yml"
    strict.write_text(yaml.safe_dump({"database_url": f"sqlite:///{tmp_path / 'strict.db'}"}))
    result = cli("harvest", upstream_pygeoapi.base_url, config=strict)
    assert result.returncode == 1
    assert "the address 127.0.0.1, a loopback address" in result.stderr
    assert "allowed_networks" in result.stderr


def test_documents_are_read_up_to_a_size(upstream_pygeoapi: PygeoapiUpstream) -> None:
    with pytest.raises(HarvestFailed, match="larger than 100 bytes"):
        run_harvest(upstream_pygeoapi.base_url, max_bytes=100)


def test_only_http_urls_are_harvested() -> None:
    for url in ("file:///etc/passwd", "ftp://example.org/catalogue.ttl", "catalogue.ttl"):
        with pytest.raises(HarvestFailed, match="not an absolute http"):
            run_harvest(url)


def test_ids_are_slugs_of_titles() -> None:
    assert slug("Bebouwing & Percelen (Kadaster) ") == "bebouwing-percelen-kadaster"
    assert slug("Ĳsselmeer wegen") == "ijsselmeer-wegen"
    assert slug("数据") == "source"
    assert len(slug("x" * 100)) == 64


# --- the management API -------------------------------------------------------------------


def test_api_returns_candidates_without_registering(
    tmp_path: Path, upstream_pygeoapi: PygeoapiUpstream
) -> None:
    with serve_hub(hub_settings(tmp_path, [])) as hub:
        answer = steward().post(f"{hub}/api/v1/harvest", json={"url": upstream_pygeoapi.base_url})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["kind"] == "ogcapi-features"
        assert [c["id"] for c in body["candidates"]] == ["test-upstream"]
        assert steward().get(f"{hub}/api/v1/sources").json() == []
        # a candidate is a registration as it stands
        created = steward().post(f"{hub}/api/v1/sources", json=body["candidates"][0])
        assert created.status_code == 201, created.text

        failed = steward().post(
            f"{hub}/api/v1/harvest", json={"url": f"{upstream_pygeoapi.base_url}/nope"}
        )
        assert failed.status_code == 422
        assert failed.headers["content-type"].startswith("application/problem+json")
        assert "answered 404" in failed.json()["detail"]
        unknown = steward().post(f"{hub}/api/v1/harvest", json={"url": "http://x", "register": True})
        assert unknown.status_code == 400
        anonymous = httpx.post(f"{hub}/api/v1/harvest", json={"url": upstream_pygeoapi.base_url})
        assert anonymous.status_code == 401
