"""Schemathesis against each OpenAPI document of the hub: no server error, no answer that the
document does not describe.

Each API gets a hub of its own (the management run registers, replaces and deletes sources) with
real sources, and Schemathesis gets the real ids of that hub: every collection is named in the
OGC document's paths, and each item and source operation is given an existing feature or source
id, so that fuzzing reaches data instead of 404s. All of Schemathesis's checks run, in all four
phases (examples, coverage, fuzzing, stateful), with a fixed seed; ``MAX_EXAMPLES`` bounds the
cases per operation and phase so that the whole module stays within a few minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.conformance import (
    APIS,
    HubApi,
    conformance_hub,
    fetch_document,
    run_schemathesis,
    schemathesis_config,
)

MAX_EXAMPLES = 20

# Settings for every API; each API adds its own (``HubApi.schemathesis``), then real ids follow.
BASE_CONFIG = """
request-timeout = 30
"""


@pytest.mark.timeout(900)  # the first run installs Schemathesis into the conformance cache
@pytest.mark.parametrize("api", APIS, ids=[api.name for api in APIS])
def test_schemathesis_finds_nothing(api: HubApi, tmp_path: Path) -> None:
    with conformance_hub(tmp_path / "hub") as base_url:
        document = fetch_document(base_url, api)
        (server,) = document["servers"]
        api_url = server["url"]
        assert api_url == f"{base_url}{api.prefix}"
        headers = api.headers()
        operations = api.real_ids(api_url, document, headers)
        config = schemathesis_config(BASE_CONFIG, api, operations)
        run = run_schemathesis(
            f"{api_url}/openapi.json",
            api_url,
            config,
            tmp_path,
            max_examples=MAX_EXAMPLES,
            headers=headers,
        )
    print(f"Schemathesis on {api.name}: {run.summary()}")
    assert run.operations > 0 and run.test_cases > 0, run.output[-5000:]
    assert run.returncode == 0 and run.failures == 0, run.output[-20000:]
