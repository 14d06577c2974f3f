"""What every ``hub`` command group shares: the configuration option and failing with a message."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.errors import HubError
from hub.settings import Settings

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file", envvar="HUB_CONFIG_FILE"),
]


def load_settings(config: Path | None) -> Settings:
    """The settings of ``config``; a usage error naming the problem when they are invalid."""
    try:
        return Settings.load(config)
    except HubError as exc:
        raise typer.BadParameter(exc.detail) from exc


def fail(message: str) -> typer.Exit:
    """Print ``message`` in red on stderr; raise the returned exit (code 1)."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)
