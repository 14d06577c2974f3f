"""The OpenAPI documents: self-contained, served without authentication, and committed.

The committed copies under ``openapi/`` are those of the demo configuration. Regenerate them
after a change with ``UPDATE_OPENAPI=1 .venv/bin/python -m pytest tests/test_openapi_documents.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hub.ogc.openapi import remote_refs
from hub.settings import Settings
from tests.fixtures.hub import free_port, serve_hub
from tests.fixtures.oidc import shared_issuer, steward

REPO = Path(__file__).resolve().parents[1]
COMMITTED = {
    "/ogc/v1/openapi.json": REPO / "openapi" / "ogc-features-v1.json",
    "/api/v1/openapi.json": REPO / "openapi" / "management-v1.json",
    "/records/v1/openapi.json": REPO / "openapi" / "records-v1.json",
}
PUBLIC_URL = "http://localhost:8000"


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo configuration with only its local source probed, so the document is the same
    online and offline."""
    tmp = tmp_path_factory.mktemp("demo")
    demo = yaml.safe_load((REPO / "config" / "demo.yml").read_text(encoding="utf-8"))
    for source in demo["sources"]:
        if "path" in source:
            source["path"] = str((REPO / "config" / source["path"]).resolve())
    port = free_port()
    demo.update(
        database_url=f"sqlite:///{tmp / 'demo.db'}",
        probe_on_start=False,
        probe_interval=0,
        server={**demo.get("server", {}), "base_url": f"http://127.0.0.1:{port}"},
        auth=shared_issuer().auth_settings(),  # the probe below is a steward's call
    )
    config = tmp / "demo.yml"
    config.write_text(yaml.safe_dump(demo), encoding="utf-8")
    with serve_hub(Settings.load(config)) as base_url:
        for source in demo["sources"]:
            if "path" in source:
                probed = steward().post(f"{base_url}/api/v1/sources/{source['id']}/probe", timeout=30)
                assert probed.json()["state"] == "healthy", probed.text
        yield base_url


def _normalised(document: dict[str, Any], base_url: str) -> dict[str, Any]:
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    normalised: dict[str, Any] = json.loads(text.replace(base_url, PUBLIC_URL))
    return normalised


@pytest.mark.parametrize("path", sorted(COMMITTED))
def test_documents_are_self_contained_and_public(demo_hub: str, path: str) -> None:
    response = httpx.get(f"{demo_hub}{path}")
    assert response.status_code == 200 and response.headers["API-Version"]
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert remote_refs(document) == set()


def test_features_document_describes_what_is_served(demo_hub: str) -> None:
    document = httpx.get(f"{demo_hub}/ogc/v1/openapi.json").json()
    # paths are relative to the server URL, which carries the major version
    (server,) = document["servers"]
    assert server["url"] == f"{demo_hub}/ogc/v1"
    paths = document["paths"]
    assert "/" in paths and not any(path.startswith("/ogc/") for path in paths)
    items = paths["/collections/laadpalen/items"]
    assert set(items) == {"get"}
    names = {p.get("name") or p["$ref"].rsplit("/", 1)[-1] for p in items["get"]["parameters"]}
    assert {"bbox", "crs", "bbox-crs", "filter", "filter-lang", "datetime", "naam"} <= names
    assert "vendorSpecificParameters" not in names
    for path, operations in paths.items():
        assert set(operations) == {"get"}, path
        if "{" not in path and "/bag-" not in path:  # the BAG source is live, unreachable offline
            served = httpx.get(f"{server['url']}{path}")
            assert served.status_code == 200, (path, served.text)


@pytest.mark.parametrize("path", sorted(COMMITTED))
def test_committed_copy_is_current(demo_hub: str, path: str) -> None:
    served = _normalised(httpx.get(f"{demo_hub}{path}").json(), demo_hub)
    committed_file = COMMITTED[path]
    if os.environ.get("UPDATE_OPENAPI") == "1":
        committed_file.write_text(json.dumps(served, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    committed = json.loads(committed_file.read_text(encoding="utf-8"))
    assert served == committed, (
        f"{committed_file.relative_to(REPO)} is stale; regenerate it with "
        "UPDATE_OPENAPI=1 .venv/bin/python -m pytest tests/test_openapi_documents.py"
    )
