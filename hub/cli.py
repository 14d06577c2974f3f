"""The ``hub`` command: serve the hub and manage its source registrations."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from pydantic import ValidationError

from connectors._network import GuardedClient, NetworkPolicy
from hub.audit.cli import audit_app
from hub.catalogue.harvest import Harvest, harvest
from hub.catalogue.registration import SourceRegistration
from hub.catalogue.store import CatalogueStore
from hub.cli_options import ConfigOption, fail, load_settings
from hub.errors import HubError
from hub.features.service import FeatureService
from hub.progress import terminal_progress
from hub.registry import SourceRegistry
from hub.settings import Settings

app = typer.Typer(help="The urban twin data hub.", no_args_is_help=True, add_completion=False)
sources_app = typer.Typer(help="Manage source registrations.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
app.add_typer(audit_app, name="audit")


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """Start the hub."""
    import uvicorn

    from hub.app import create_app

    overrides: dict[str, Any] = {}
    settings = load_settings(config)
    if "base_url" not in settings.server.model_fields_set and "HUB_SERVER__BASE_URL" not in os.environ:
        shown_host = "localhost" if host in ("0.0.0.0", "127.0.0.1", "::") else host
        overrides["server"] = {
            **settings.server.model_dump(),
            "base_url": f"http://{shown_host}:{port}",
        }
        settings = Settings.load(config, **overrides)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def _load_registrations(file: Path) -> list[SourceRegistration]:
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"cannot read {file}: {exc}") from exc
    entries = loaded.get("sources", [loaded]) if isinstance(loaded, dict) else loaded
    if not isinstance(entries, list):
        raise fail(f"{file} holds neither a registration nor a list of them")
    try:
        return [SourceRegistration.model_validate(entry) for entry in entries]
    except ValidationError as exc:
        raise fail(f"{file}: {exc}") from exc


def _client(settings: Settings) -> httpx.AsyncClient:
    """An HTTP client that reaches sources where the running hub may: public addresses and
    the configuration's ``allowed_networks``."""
    return GuardedClient(NetworkPolicy.allowing(settings.allowed_networks), follow_redirects=False)


async def _with_registry(settings: Settings, work: Any) -> Any:
    async with _client(settings) as http:
        base_dir = settings.config_file.parent if settings.config_file else Path.cwd()
        service = FeatureService(max_scan_features=settings.server.max_scan_features)
        registry = SourceRegistry(http, base_dir=base_dir, service=service)
        try:
            return await work(registry)
        finally:
            await registry.close()


COMPOSITE_KINDS = frozenset({"linked", "union"})
"""Connectors made of other hub collections: probed against the hub's other sources."""


async def _serve_members(
    registry: SourceRegistry, stored: list[SourceRegistration], probed: list[SourceRegistration]
) -> None:
    """Before a linked or union registration is probed, serve the other registered sources, its
    possible members, as the running hub does (a source that fails its probe is served unhealthy)."""
    if not any(r.connector in COMPOSITE_KINDS for r in probed):
        return
    probing = {r.id for r in probed}
    others = [r for r in stored if r.id not in probing]
    await asyncio.gather(
        *(registry.activate(r, probe=True, force=True) for r in others), return_exceptions=True
    )


@sources_app.command("list")
def list_sources(config: ConfigOption = None) -> None:
    """List the registered sources."""
    store = CatalogueStore.open(load_settings(config).database_url)
    try:
        for stored in store.list():
            reg = stored.registration
            typer.echo(f"{reg.id}\t{reg.connector}\t{reg.classification}\t{reg.title}")
    finally:
        store.close()


@sources_app.command("add")
def add_source(
    file: Annotated[Path, typer.Argument(help="YAML or JSON file with one or more registrations")],
    config: ConfigOption = None,
    force: Annotated[bool, typer.Option(help="Register even when the probe fails")] = False,
) -> None:
    """Probe and register sources; a running hub serves them within seconds."""
    settings = load_settings(config)
    registrations = _load_registrations(file)
    store = CatalogueStore.open(settings.database_url)

    async def probe_all(registry: SourceRegistry) -> None:
        await _serve_members(registry, [s.registration for s in store.list()], registrations)
        for registration in registrations:
            live = await registry.activate(registration, probe=True, force=force)
            store.add(registration)
            state = live.health.state.value
            typer.echo(f"registered {registration.id} ({state})")

    try:
        asyncio.run(_with_registry(settings, probe_all))
    except HubError as exc:
        raise fail(exc.detail) from exc
    finally:
        store.close()


@sources_app.command("check")
def check_source(
    source_id: Annotated[str, typer.Argument(help="Id of the source")], config: ConfigOption = None
) -> None:
    """Probe a registered source and report its health and collections."""
    settings = load_settings(config)
    store = CatalogueStore.open(settings.database_url)
    try:
        stored = store.get(source_id)
        everything = [s.registration for s in store.list()]
    finally:
        store.close()
    if stored is None:
        raise fail(f"no source {source_id!r}")

    async def probe(registry: SourceRegistry) -> dict[str, Any]:
        await _serve_members(registry, everything, [stored.registration])
        live = await registry.activate(stored.registration, probe=True, force=True)
        return {
            "id": source_id,
            "state": live.health.state.value,
            "latency_ms": live.health.latency_ms,
            "error": live.health.error,
            "collections": sorted(cid for cid, b in registry.collections().items() if b.source is live),
        }

    try:
        report = asyncio.run(_with_registry(settings, probe))
    except HubError as exc:
        raise fail(exc.detail) from exc
    typer.echo(json.dumps(report, indent=2))
    if report["state"] != "healthy":
        raise typer.Exit(code=1)


@sources_app.command("harvest")
def harvest_sources(
    url: Annotated[str, typer.Argument(help="DCAT catalogue, OGC API landing page or WFS capabilities URL")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the candidates as YAML here (default: standard output)"),
    ] = None,
    register: Annotated[bool, typer.Option(help="Probe and register the candidates, as `add` does")] = False,
    config: ConfigOption = None,
    seconds: Annotated[float, typer.Option("--timeout", help="Seconds each request may take")] = 30.0,
) -> None:
    """Pre-fill registrations from a catalogue, landing page or capabilities, for review."""
    settings = load_settings(config)

    async def run() -> Harvest:
        async with _client(settings) as http:
            with terminal_progress() as update:
                return await harvest(
                    url, http=http, language=settings.catalogue.language, seconds=seconds, progress=update
                )

    try:
        harvested = asyncio.run(run())
    except HubError as exc:
        raise fail(exc.detail) from exc
    for skipped in harvested.skipped:
        typer.secho(f"skipped {skipped.name}: {skipped.reason}", fg=typer.colors.YELLOW, err=True)
    if not harvested.candidates:
        raise fail(f"nothing to register from {url}")
    typer.echo(
        f"{len(harvested.candidates)} candidate(s) from {harvested.kind.value} at {harvested.url}", err=True
    )
    document = candidates_yaml(harvested)
    if output is not None:
        output.write_text(document, encoding="utf-8")
        typer.echo(f"wrote {output}; review it, then register with: hub sources add {output}", err=True)
    elif not register:
        typer.echo(document, nl=False)
    if register:
        _register_all(settings, harvested.candidates)


def candidates_yaml(harvested: Harvest) -> str:
    """The candidates as the ``sources:`` of a configuration file, with what to review."""
    header = [
        f"# Registrations harvested from {harvested.url} ({harvested.kind.value}).",
        "# Review before registering: the classification of a source whose access rights were not",
        "# stated is 'internal'; licence, owner and contact point are what the source says of itself.",
    ]
    header += [f"# skipped {s.name}: {s.reason}" for s in harvested.skipped]
    body = yaml.safe_dump(
        {"sources": [c.public_dict() for c in harvested.candidates]}, sort_keys=False, allow_unicode=True
    )
    return "\n".join(header) + "\n" + body


def _register_all(settings: Settings, registrations: list[SourceRegistration]) -> None:
    """Probe and register each; the others still are when one fails."""
    store = CatalogueStore.open(settings.database_url)
    failed = 0

    async def probe_all(registry: SourceRegistry) -> None:
        nonlocal failed
        with terminal_progress() as update:
            for done, registration in enumerate(registrations):
                update(f"probing {registration.id}", done, len(registrations))
                try:
                    live = await registry.activate(registration, probe=True)
                    await asyncio.to_thread(store.add, registration)
                except HubError as exc:
                    failed += 1
                    typer.secho(
                        f"not registered {registration.id}: {exc.detail}", fg=typer.colors.RED, err=True
                    )
                    continue
                typer.echo(f"registered {registration.id} ({live.health.state.value})")

    try:
        asyncio.run(_with_registry(settings, probe_all))
    finally:
        store.close()
    if failed:
        raise typer.Exit(code=1)


@sources_app.command("remove")
def remove_source(
    source_id: Annotated[str, typer.Argument(help="Id of the source")], config: ConfigOption = None
) -> None:
    """Remove a registration; a running hub withdraws it within seconds."""
    store = CatalogueStore.open(load_settings(config).database_url)
    try:
        store.delete(source_id)
    except HubError as exc:
        raise fail(exc.detail) from exc
    finally:
        store.close()
    typer.echo(f"removed {source_id}")


def main() -> None:
    """Entry point of the ``hub`` console script."""
    app()


if __name__ == "__main__":
    main()
