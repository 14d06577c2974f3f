"""Stewards manage sources at run time: the API, the CLI, and what the OGC API serves."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures.hub import hub_settings, require_shared, serve_hub
from tests.fixtures.oidc import steward

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "config" / "demo-data" / "laadpalen.geojson"


def registration(source_id: str = "laadpalen", **extra: Any) -> dict[str, Any]:
    """A valid registration of the demo file."""
    return {
        "id": source_id,
        "title": "Laadpalen",
        "connector": "file",
        "classification": "open",
        "path": str(DEMO),
        "owner": "Gemeente Delft",
        "licence": "https://creativecommons.org/publicdomain/zero/1.0/",
        "contact_point": {"name": "Geo-informatie", "email": "geo@example.org"},
        "keywords": ["mobiliteit"],
        "theme": ["http://standaarden.overheid.nl/owms/terms/Verkeer_(thema)"],
        "extent": [4.3, 51.9, 4.5, 52.1],
        **extra,
    }


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[str]:
    """A hub with no sources and a fast catalogue poll."""
    with serve_hub(hub_settings(tmp_path, [], catalogue_poll_interval=0.2)) as base_url:
        yield base_url


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert a problem-details response and return it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def collection_ids(hub: str) -> set[str]:
    """The collections the OGC API serves now."""
    return {c["id"] for c in httpx.get(f"{hub}/ogc/v1/collections").json()["collections"]}


def test_register_serve_replace_and_remove_without_restart(hub: str) -> None:
    created = steward().post(f"{hub}/api/v1/sources", json=registration())
    assert created.status_code == 201, created.text
    assert created.headers["Location"].endswith("/api/v1/sources/laadpalen")
    assert created.json()["status"]["state"] == "healthy"
    assert "laadpalen" in collection_ids(hub)
    items = httpx.get(f"{hub}/ogc/v1/collections/laadpalen/items", params={"limit": 100}).json()
    assert items["numberMatched"] == 24

    stored = steward().get(f"{hub}/api/v1/sources/laadpalen").json()
    assert stored == registration() | {"description": ""}
    assert [s["id"] for s in steward().get(f"{hub}/api/v1/sources").json()] == ["laadpalen"]

    replaced = steward().put(f"{hub}/api/v1/sources/laadpalen", json=registration(title="Laadpunten"))
    assert replaced.status_code == 200, replaced.text
    collection = httpx.get(f"{hub}/ogc/v1/collections/laadpalen").json()
    assert collection["title"] == "Laadpunten"

    assert steward().delete(f"{hub}/api/v1/sources/laadpalen").status_code == 204
    assert "laadpalen" not in collection_ids(hub)
    problem(httpx.get(f"{hub}/ogc/v1/collections/laadpalen/items"), 404)
    problem(steward().get(f"{hub}/api/v1/sources/laadpalen"), 404)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"id": "Not A Slug", "title": "x", "connector": "file", "path": "a.geojson"}, "id"),
        (registration(connector="ftp"), "unknown connector kind"),
        (registration(path=None), "path"),
        (registration(classification="secret"), "classification"),
        (registration(password="hunter2"), "secret in clear"),
        (registration(dsn="postgresql://hub:hunter2@db/x"), "password"),
        (registration(extent=[10, 10, 0, 0]), "extent"),
        (registration(unknown_setting=1), "unknown_setting"),
    ],
)
def test_invalid_registrations_are_refused(hub: str, body: dict[str, Any], fragment: str) -> None:
    detail = problem(steward().post(f"{hub}/api/v1/sources", json=body), 422)["detail"]
    assert fragment in detail
    assert steward().get(f"{hub}/api/v1/sources").json() == []


def test_a_source_failing_its_probe_is_refused_unless_forced(hub: str, tmp_path: Path) -> None:
    missing = registration("kapot", path=str(tmp_path / "missing.geojson"))
    detail = problem(steward().post(f"{hub}/api/v1/sources", json=missing), 422)["detail"]
    assert "kapot" in detail and "probe" in detail
    assert steward().get(f"{hub}/api/v1/sources").json() == []

    forced = steward().post(f"{hub}/api/v1/sources", params={"force": "true"}, json=missing)
    assert forced.status_code == 201, forced.text
    assert forced.json()["status"]["state"] == "unhealthy"
    health = steward().get(f"{hub}/api/v1/health").json()
    assert health["status"] == "degraded"
    assert {s["id"]: s["state"] for s in health["sources"]} == {"kapot": "unhealthy"}


def test_missing_upstream_collection_is_named(hub: str) -> None:
    body = registration(collections=["laadpalen", "fietsenstallingen"])
    detail = problem(steward().post(f"{hub}/api/v1/sources", json=body), 422)["detail"]
    assert "fietsenstallingen" in detail and "laadpalen" in detail


def test_duplicate_registration_conflicts(hub: str) -> None:
    assert steward().post(f"{hub}/api/v1/sources", json=registration()).status_code == 201
    problem(steward().post(f"{hub}/api/v1/sources", json=registration()), 409)
    problem(
        steward().post(
            f"{hub}/api/v1/sources",
            json=registration("ander", collections=[{"upstream": "laadpalen", "id": "laadpalen"}]),
        ),
        409,
    )


def _cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_changes_reach_a_running_hub(tmp_path: Path) -> None:
    settings = hub_settings(tmp_path, [], catalogue_poll_interval=0.2)
    assert settings.config_file is not None
    source_file = tmp_path / "laadpalen.yml"
    source_file.write_text(yaml.safe_dump(registration()), encoding="utf-8")
    with serve_hub(settings) as base_url:
        added = _cli("sources", "add", str(source_file), config=settings.config_file)
        assert added.returncode == 0, added.stderr
        assert "registered laadpalen (healthy)" in added.stdout
        _wait_for(lambda: "laadpalen" in collection_ids(base_url))

        listed = _cli("sources", "list", config=settings.config_file)
        assert listed.stdout.split("\t")[:3] == ["laadpalen", "file", "open"]
        checked = _cli("sources", "check", "laadpalen", config=settings.config_file)
        assert checked.returncode == 0 and '"state": "healthy"' in checked.stdout

        removed = _cli("sources", "remove", "laadpalen", config=settings.config_file)
        assert removed.returncode == 0, removed.stderr
        _wait_for(lambda: "laadpalen" not in collection_ids(base_url))
        assert _cli("sources", "remove", "laadpalen", config=settings.config_file).returncode == 1


def test_cli_refuses_a_source_that_fails_its_probe(tmp_path: Path) -> None:
    settings = hub_settings(tmp_path, [])
    assert settings.config_file is not None
    source_file = tmp_path / "kapot.yml"
    source_file.write_text(yaml.safe_dump(registration("kapot", path="nowhere.geojson")), encoding="utf-8")
    result = _cli("sources", "add", str(source_file), config=settings.config_file)
    assert result.returncode == 1 and "probe" in result.stderr
    assert _cli("sources", "list", config=settings.config_file).stdout == ""


def test_seeded_sources_are_served_and_probed_in_the_background(tmp_path: Path) -> None:
    data = require_shared()
    sources = [
        registration(),
        {
            "id": "bag",
            "title": "BAG",
            "connector": "file",
            "classification": "open",
            "path": str(data / "bag" / "amsterdam_bag_adressen.gpkg"),
        },
    ]
    with serve_hub(hub_settings(tmp_path, sources)) as base_url:
        _wait_for(
            lambda: {"laadpalen", "bag-verblijfsobjecten", "bag-ligplaatsen"} <= collection_ids(base_url)
        )
        health = steward().get(f"{base_url}/api/v1/health").json()
        assert {s["id"]: s["state"] for s in health["sources"]} == {"laadpalen": "healthy", "bag": "healthy"}
        assert all(s["latency_ms"] is not None for s in health["sources"])


def _wait_for(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)
