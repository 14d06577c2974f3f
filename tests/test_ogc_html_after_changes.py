"""HTML pages stay right when the catalogue changes while the hub runs.

pygeoapi keeps the configuration it renders HTML with in a module-wide cache, one per language;
the hub builds a new configuration for every catalogue change (and every caller's view), so a
page must be rendered from the configuration that is served now.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.fixtures.conformance import hub_sources
from tests.fixtures.hub import hub_settings, require_shared, serve_hub, wait_until_served
from tests.fixtures.oidc import steward


def test_a_collection_registered_later_has_its_html_pages(tmp_path: Path) -> None:
    first, _, later = hub_sources(require_shared())
    with serve_hub(hub_settings(tmp_path, [first])) as base_url:
        wait_until_served(base_url, "afvalbakken")
        ogc = f"{base_url}/ogc/v1"
        for language in ("en-US", "nl-NL"):
            page = httpx.get(f"{ogc}/collections/afvalbakken", params={"f": "html", "lang": language})
            assert page.status_code == 200, page.text[:300]
        registered = steward().post(f"{base_url}/api/v1/sources", json=later)
        assert registered.status_code == 201, registered.text
        for path in ("/collections", "/collections/laadpalen", "/collections/laadpalen/items"):
            for language in ("en-US", "nl-NL"):
                page = httpx.get(f"{ogc}{path}", params={"f": "html", "lang": language})
                assert page.status_code == 200, (path, language, page.text[:300])
                assert "Laadpalen" in page.text
        withdrawn = steward().delete(f"{base_url}/api/v1/sources/laadpalen")
        assert withdrawn.status_code == 204
        index = httpx.get(f"{ogc}/collections", params={"f": "html"})
        assert index.status_code == 200 and "Laadpalen" not in index.text
        assert "Afvalbakken" in index.text
