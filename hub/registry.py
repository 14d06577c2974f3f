"""The running hub's sources: one connector per registration, and the collections they serve.

Registrations live in the catalogue database; this registry holds what is alive: connectors,
harvested collection descriptions and health. Every change notifies listeners (the OGC engine
rebuilds pygeoapi's configuration from ``collections()``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx
from pydantic import ValidationError

from connectors._network import network_policy
from connectors.base import CollectionInfo, Connector
from connectors.errors import ConnectorError
from connectors.registry import connector_class
from hub.catalogue.registration import SourceRegistration
from hub.errors import Conflict, HubError, InvalidRegistration, NotFound

if TYPE_CHECKING:
    from hub.features.service import FeatureService

LOG = logging.getLogger(__name__)


class HealthState(StrEnum):
    """Whether a source answered its last probe or query."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(slots=True)
class SourceHealth:
    """The last thing the hub learned about a source's availability."""

    state: HealthState = HealthState.UNKNOWN
    checked_at: datetime | None = None
    latency_ms: float | None = None
    error: str | None = None

    def record(self, *, latency_ms: float, error: str | None = None) -> None:
        """Note the outcome of a call to the source."""
        self.checked_at = datetime.now(UTC)
        self.latency_ms = round(latency_ms, 1)
        self.error = error
        self.state = HealthState.UNHEALTHY if error else HealthState.HEALTHY


@dataclass(slots=True, eq=False)
class LiveSource:
    """A registration with its open connector."""

    registration: SourceRegistration
    connector: Connector
    health: SourceHealth = field(default_factory=SourceHealth)
    described: bool = False


@dataclass(slots=True)
class SourceTrust:
    """What the hub learned a source does not honour; shared by every view of a collection."""

    filter_untrusted: bool = False
    """Set once the source returned features that fail a filter it claimed to apply."""
    datetime_untrusted: bool = False
    """Set once the source returned features outside a ``datetime`` it claimed to apply."""


@dataclass(slots=True, eq=False)
class CollectionBinding:
    """A hub collection: which source serves it, under which upstream id, and its description.

    Bindings travel inside pygeoapi's configuration dict, which pygeoapi deep-copies; they
    copy as themselves so that a copy still points at the live connector. A caller who may not
    see some properties gets a masked view (:meth:`masked`) of the same collection.
    """

    id: str
    source: LiveSource
    upstream_id: str
    info: CollectionInfo
    title: str
    description: str
    trust: SourceTrust = field(default_factory=SourceTrust)
    hidden: frozenset[str] = frozenset()
    """Properties removed from every answer of this view."""

    def masked(self, hidden: frozenset[str]) -> CollectionBinding:
        """This collection as seen by a caller who may not see ``hidden`` properties."""
        if not hidden:
            return self
        info = replace(
            self.info,
            fields=[f for f in self.info.fields if f.name not in hidden],
            time_field=None if self.info.time_field in hidden else self.info.time_field,
        )
        return replace(self, info=info, hidden=hidden)

    def __deepcopy__(self, memo: dict[int, Any]) -> CollectionBinding:
        return self

    @property
    def field_names(self) -> frozenset[str]:
        """The names of the collection's properties."""
        return frozenset(f.name for f in self.info.fields)

    @property
    def field_types(self) -> dict[str, str]:
        """JSON type per property name."""
        return {f.name: f.type for f in self.info.fields}


@dataclass(slots=True, eq=False)
class PreparedSource:
    """A source whose connector is open and whose collections are known, not yet served."""

    live: LiveSource
    infos: list[CollectionInfo]


Listener = Callable[[], Awaitable[None]]


@runtime_checkable
class BuiltFromCollections(Protocol):
    """A connector whose source is other hub collections (linked and union collections)."""

    def attach(self, registry: SourceRegistry, registration: SourceRegistration) -> None:
        """Receive the registry its members are served by, and its own registration."""
        ...


def collection_ids(registration: SourceRegistration, upstream_ids: list[str]) -> dict[str, str]:
    """Hub collection id per upstream id: explicit, ``<source>`` alone, or ``<source>-<id>``."""
    explicit = {spec.upstream: spec.id for spec in registration.collections or () if spec.id}
    single = len(upstream_ids) == 1
    return {
        upstream: explicit.get(upstream)
        or (registration.id if single else f"{registration.id}-{_slug(upstream)}")
        for upstream in upstream_ids
    }


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(filter(None, cleaned.split("-")))


class SourceRegistry:
    """Connectors and collections of the running hub, changed at run time without restart."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_dir: Path | None = None,
        service: FeatureService | None = None,
    ):
        self._http = http
        self._base_dir = base_dir
        self._service = service
        self._sources: dict[str, LiveSource] = {}
        self._collections: dict[str, CollectionBinding] = {}
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._unservable: dict[str, tuple[SourceRegistration, str]] = {}

    @property
    def service(self) -> FeatureService:
        """The feature service through which linked and union collections query their members."""
        if self._service is None:
            raise RuntimeError("this registry was built without a feature service")
        return self._service

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` after every change of the served collections."""
        self._listeners.append(listener)

    def sources(self) -> list[LiveSource]:
        """Every live source, in registration order."""
        return list(self._sources.values())

    def source(self, source_id: str) -> LiveSource:
        """One live source, or NotFound."""
        try:
            return self._sources[source_id]
        except KeyError:
            raise NotFound(f"no source {source_id!r}") from None

    def unservable(self) -> list[tuple[SourceRegistration, str]]:
        """Stored registrations that cannot be served (their connector cannot be built), and why."""
        return list(self._unservable.values())

    def collections(self) -> dict[str, CollectionBinding]:
        """A snapshot of the served collections by hub id."""
        return dict(self._collections)

    def build_connector(self, registration: SourceRegistration) -> Connector:
        """Validate a registration's connection settings and construct its connector."""
        try:
            cls = connector_class(registration.connector)
            settings = cls.settings_model.model_validate(
                registration.connector_settings(), context={"base_dir": self._base_dir}
            )
        except ConnectorError as exc:
            raise InvalidRegistration(exc.message) from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
            )
            raise InvalidRegistration(
                f"connection settings for connector {registration.connector!r}: {problems}"
            ) from exc
        connector = cls(settings, source_id=registration.id, http=self._http)
        if isinstance(connector, BuiltFromCollections):
            connector.attach(self, registration)
        return connector

    async def _check_network(self, registration: SourceRegistration, connector: Connector) -> None:
        """Refuse a registration whose source sits at an address the hub may not reach.

        Not even ``force`` registers it: that is for a source that is down, not for one that is
        out of bounds. The policy is the one the hub's HTTP client enforces.
        """
        policy = network_policy(self._http)
        if policy is None:
            return
        try:
            await connector.check_network(policy)
        except ConnectorError as exc:
            raise InvalidRegistration(f"source {registration.id!r}: {exc.message}") from exc

    async def activate(
        self, registration: SourceRegistration, *, probe: bool = True, force: bool = False
    ) -> LiveSource:
        """Open a registration's connector and serve its collections (``prepare`` + ``serve``)."""
        return await self.serve(await self.prepare(registration, probe=probe, force=force))

    async def prepare(
        self, registration: SourceRegistration, *, probe: bool = True, force: bool = False
    ) -> PreparedSource:
        """Open a registration's connector and harvest its collections, without serving them.

        With ``probe`` the source must answer and offer the registered collections, unless
        ``force`` is set, in which case it is served and shown as unhealthy.
        """
        connector = self.build_connector(registration)
        await self._check_network(registration, connector)
        live = LiveSource(registration, connector)
        infos: list[CollectionInfo] = []
        if probe:
            try:
                infos = await self._describe(live)
            except InvalidRegistration:
                if not force:
                    await connector.close()
                    raise
        try:
            self._refuse_clash(registration.id, self._bind(live, infos))
        except Conflict:
            await connector.close()
            raise
        return PreparedSource(live, infos)

    async def serve(self, prepared: PreparedSource) -> LiveSource:
        """Serve a prepared source's collections, replacing its previous version."""
        live = prepared.live
        source_id = live.registration.id
        async with self._lock:
            bindings = self._bind(live, prepared.infos)
            try:
                self._refuse_clash(source_id, bindings)
            except Conflict:
                await live.connector.close()
                raise
            previous = self._sources.get(source_id)
            self._drop_bindings(source_id)
            self._sources[source_id] = live
            self._collections.update(bindings)
            self._unservable.pop(source_id, None)
        if previous is not None:
            await previous.connector.close()
        await self._notify()
        return live

    def _refuse_clash(self, source_id: str, bindings: dict[str, CollectionBinding]) -> None:
        clash = {
            cid: other.source.registration.id
            for cid, other in self._collections.items()
            if cid in bindings and other.source.registration.id != source_id
        }
        if clash:
            raise Conflict(
                "collection id(s) already served by another source: "
                + ", ".join(f"{cid} ({src})" for cid, src in clash.items())
            )

    async def deactivate(self, source_id: str) -> None:
        """Withdraw a source and its collections."""
        async with self._lock:
            live = self._sources.pop(source_id, None)
            if live is None:
                raise NotFound(f"no source {source_id!r}")
            self._drop_bindings(source_id)
        await live.connector.close()
        await self._notify()

    async def probe(self, source_id: str) -> LiveSource:
        """Probe a live source again; refresh its collections when it answers."""
        live = self.source(source_id)
        try:
            infos = await self._describe(live)
        except InvalidRegistration:
            return live
        async with self._lock:
            if self._sources.get(source_id) is not live:
                return live
            self._drop_bindings(source_id)
            self._collections.update(self._bind(live, infos))
        await self._notify()
        return live

    async def sync(self, registrations: list[SourceRegistration]) -> list[str]:
        """Serve exactly these registrations (as stored by another process); return changed ids.

        New or changed registrations are served unprobed, as seeded ones are; the caller probes
        them in the background.
        """
        wanted = {registration.id: registration for registration in registrations}
        changed = []
        for source_id in [sid for sid in self._sources if sid not in wanted]:
            await self.deactivate(source_id)
            changed.append(source_id)
        for source_id in [sid for sid in self._unservable if sid not in wanted]:
            del self._unservable[source_id]
        for source_id, registration in wanted.items():
            live = self._sources.get(source_id)
            if live is not None and live.registration == registration:
                continue
            failed = self._unservable.get(source_id)
            if failed is not None and failed[0] == registration:
                continue  # already reported; try again when the registration changes
            try:
                await self.activate(registration, probe=False)
            except HubError as exc:
                LOG.error("source %s cannot be served: %s", source_id, exc.detail)
                self._unservable[source_id] = (registration, exc.detail)
                continue
            changed.append(source_id)
        return changed

    async def close(self) -> None:
        """Close every connector."""
        for live in list(self._sources.values()):
            await live.connector.close()
        self._sources.clear()
        self._collections.clear()

    async def _describe(self, live: LiveSource) -> list[CollectionInfo]:
        """Open and describe the source; record health; fail with what went wrong."""
        registration = live.registration
        started = time.perf_counter()
        try:
            if not live.described:
                await live.connector.open()
            infos = await live.connector.describe()
        except ConnectorError as exc:
            live.health.record(latency_ms=(time.perf_counter() - started) * 1000, error=exc.message)
            raise InvalidRegistration(f"source {registration.id!r} failed its probe: {exc.message}") from exc
        live.health.record(latency_ms=(time.perf_counter() - started) * 1000)
        live.described = True
        offered = {info.id for info in infos}
        wanted = [spec.upstream for spec in registration.collections or ()]
        missing = [name for name in wanted if name not in offered]
        if missing:
            message = (
                f"source {registration.id!r} has no collection(s) {', '.join(missing)}; "
                f"it offers: {', '.join(sorted(offered)) or 'none'}"
            )
            live.health.record(latency_ms=live.health.latency_ms or 0.0, error=message)
            raise InvalidRegistration(message)
        if wanted:
            infos = [info for info in infos if info.id in wanted]
        return infos

    def _bind(self, live: LiveSource, infos: list[CollectionInfo]) -> dict[str, CollectionBinding]:
        registration = live.registration
        specs = {spec.upstream: spec for spec in registration.collections or ()}
        if not infos:
            # not (yet) described: serve the registered collections with what is declared
            infos = [CollectionInfo(id=upstream, title=upstream) for upstream in specs]
        ids = collection_ids(registration, [info.id for info in infos])
        bindings = {}
        for info in infos:
            spec = specs.get(info.id)
            cid = ids[info.id]
            title = (spec.title if spec else None) or (
                registration.title if len(infos) == 1 else f"{registration.title}: {info.title}"
            )
            description = (spec.description if spec else None) or info.description or registration.description
            bindings[cid] = CollectionBinding(cid, live, info.id, info, title, description)
        return bindings

    def _drop_bindings(self, source_id: str) -> None:
        for cid in [c for c, b in self._collections.items() if b.source.registration.id == source_id]:
            del self._collections[cid]

    async def _notify(self) -> None:
        for listener in self._listeners:
            await listener()
