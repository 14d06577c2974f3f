"""Run the hub under uvicorn with one worker: ``python -m bench.hub_server --config F --port P``."""

from __future__ import annotations

import argparse

import uvicorn

from hub.app import create_app
from hub.settings import Settings


def main(argv: list[str] | None = None) -> None:
    """Serve ``create_app`` for the configuration file on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="hub YAML configuration file")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings.load(args.config)
    # The same server options as the pygeoapi process: one worker, no access log.
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
