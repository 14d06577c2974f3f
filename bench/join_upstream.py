"""The 3D BAG API as a remote upstream for the join benchmark:
``python -m bench.join_upstream --port P --latency-ms L``.

Serves the test suite's emulator of the 3D BAG API (``tests/fixtures/threedbag.py``) for two
releases of the Delft data, ``/current`` (``delft_3dbag.city.jsonl``) and ``/v20240420``
(``delft_subset_v20240420.city.jsonl``), and holds every request for ``L`` ms before answering,
as the network and the API's own work would for a source on the internet. The wait does not
block: concurrent requests wait at the same time, as they would at a real remote API.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.fixtures.threedbag import CURRENT_JSONL, V20240420_JSONL, ThreeDBagEmulator

RELEASES = {"current": CURRENT_JSONL, "v20240420": V20240420_JSONL}


def delayed(app: Any, seconds: float) -> Any:
    """``app`` answering every HTTP request ``seconds`` later."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and seconds > 0:
            await asyncio.sleep(seconds)
        await app(scope, receive, send)

    return wrapped


def application(latency_ms: float) -> Any:
    """Both releases, each under its own path, behind the latency."""
    mounts = [Mount(f"/{name}", ThreeDBagEmulator(path).app()) for name, path in RELEASES.items()]
    return delayed(Starlette(routes=mounts), latency_ms / 1000)


def main(argv: list[str] | None = None) -> None:
    """Serve the emulated releases on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    uvicorn.run(
        application(args.latency_ms),
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
