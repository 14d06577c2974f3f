"""What linked and union collections share: members resolved from the running registry, queried
through the feature service, and failures handled as the steward configured.

A composite collection is a source like any other (a registration, a connector, a collection
served through pygeoapi and the native GeoJSON writer), but its connector reads *other hub
collections* instead of an upstream. It therefore needs the hub's registry and feature service,
which the registry hands it when it builds the connector (:meth:`CompositeConnector.attach`).
Members are looked up on every request, so a withdrawn or replaced member takes effect at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from connectors.base import Connector, FieldInfo
from connectors.errors import (
    ConnectorConfigError,
    ConnectorError,
    UnsupportedQuery,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from hub.catalogue.registration import SourceRegistration
from hub.composite.exposure import access_problem, shown_protected
from hub.composite.refresh import follow_members
from hub.composite.settings import CompositeSettings, MemberSpec, OnMemberError
from hub.errors import HubError
from hub.features.warnings import ResponseWarning, warn

if TYPE_CHECKING:
    from hub.features.service import FeatureService
    from hub.registry import CollectionBinding, SourceRegistry

LOG = logging.getLogger(__name__)
T = TypeVar("T")

MEMBER_PROBE_WAIT = 5.0
"""Seconds a composite's probe waits for members whose own probe is still running."""

_ACTIVE: ContextVar[frozenset[str]] = ContextVar("ACTIVE_COMPOSITES", default=frozenset())
"""Composite sources whose answer is being built in this context: the guard against a cycle that
appeared after registration (two seeded composites naming each other)."""


@dataclass(frozen=True, slots=True)
class Member:
    """A member as the running hub serves it now."""

    spec: MemberSpec
    binding: CollectionBinding
    hidden: frozenset[str]
    """The member's protected properties this composite may not carry."""

    @property
    def name(self) -> str:
        """The member's name in property names and warnings."""
        return self.spec.label

    @property
    def fields(self) -> list[FieldInfo]:
        """The member's properties that the composite carries."""
        return [f for f in self.binding.info.fields if f.name not in self.hidden]


@dataclass(frozen=True, slots=True)
class MemberFailure:
    """A member that could not answer, with the status it would have answered on its own."""

    member: MemberSpec
    status: int
    detail: str
    source_id: str | None = None

    def warning(self) -> ResponseWarning:
        """The warning a partial answer carries for this failure."""
        return ResponseWarning(self.member.label, self.member.collection, self.status, self.detail)

    def error(self) -> ConnectorError:
        """The error an answer that cannot do without this member fails with."""
        message = f"member {self.member.label} ({self.member.collection}) failed: {self.detail}"
        if self.status == 504:
            return UpstreamTimeout(message, source_id=self.source_id)
        if self.status == 400:
            return UnsupportedQuery(message, source_id=self.source_id)
        return UpstreamUnavailable(message, source_id=self.source_id)


class CompositeConnector(Connector):
    """Base of the ``linked`` and ``union`` connectors."""

    settings: CompositeSettings

    def __init__(self, settings: Any, *, source_id: str, http: Any):
        super().__init__(settings, source_id=source_id, http=http)
        self._registry: SourceRegistry | None = None
        self._registration: SourceRegistration | None = None
        self.described_with: tuple[Any, ...] | None = None
        """The members' state (:meth:`member_state`) when the collection was last described."""
        self._changed = asyncio.Event()

    def note_change(self) -> None:
        """The served collections changed (a member may have answered its probe)."""
        self._changed.set()

    @property
    def member_specs(self) -> list[MemberSpec]:
        """The declared members, in order."""
        raise NotImplementedError

    def attach(self, registry: SourceRegistry, registration: SourceRegistration) -> None:
        """Give the connector the registry it reads its members from, and its own registration."""
        self._registry = registry
        self._registration = registration
        follow_members(registry)

    @property
    def registry(self) -> SourceRegistry:
        """The registry the members are served by."""
        if self._registry is None:
            raise ConnectorConfigError(
                f"{self.kind} collections are served by the hub only (no registry)", source_id=self.source_id
            )
        return self._registry

    @property
    def service(self) -> FeatureService:
        """The feature service members are queried through (push-down, checks, timeouts, health)."""
        return self.registry.service

    @property
    def registration(self) -> SourceRegistration:
        """The composite's own registration."""
        if self._registration is None:
            raise ConnectorConfigError("the registration is not known", source_id=self.source_id)
        return self._registration

    # -- members -----------------------------------------------------------------------------

    def member_state(self) -> tuple[Any, ...]:
        """What the composite's description depends on: each member's registration, schema and
        whether it is served; when this changes the composite is described again."""
        collections = self.registry.collections()
        state: list[Any] = []
        for spec in self.member_specs:
            binding = collections.get(spec.collection)
            if binding is None:
                state.append((spec.collection, None))
                continue
            info = binding.info
            state.append(
                (
                    spec.collection,
                    binding.source.registration.model_dump_json(),
                    binding.source.described,
                    tuple((f.name, f.type) for f in info.fields),
                    info.storage_crs,
                    info.extent_crs84,
                    info.temporal_extent,
                    info.time_field,
                    info.geometry_type,
                    info.capabilities,
                )
            )
        return tuple(state)

    def resolve(self) -> list[Member | MemberFailure]:
        """The members as served now, or why one cannot be used: withdrawn, part of a cycle, or
        more restricted than this collection."""
        collections = self.registry.collections()
        resolved: list[Member | MemberFailure] = []
        for spec in self.member_specs:
            binding = collections.get(spec.collection)
            problem = None
            if binding is None:
                problem = f"no collection {spec.collection!r} is served (withdrawn or not registered)"
            elif self._reaches_self(binding, set()):
                problem = f"collection {spec.collection!r} includes this collection itself (a cycle)"
            else:
                problem = access_problem(self.registration, binding.source.registration)
            if binding is None or problem is not None:
                resolved.append(MemberFailure(spec, 502, problem or "unusable", self.source_id))
                continue
            member_registration = binding.source.registration
            rename = {f.name: self.composite_field_name(spec, f.name) for f in binding.info.fields}
            protected = set(member_registration.protected_fields)
            hidden = frozenset(protected - shown_protected(self.registration, member_registration, rename))
            resolved.append(Member(spec, binding, hidden))
        return resolved

    def members_pending(self) -> bool:
        """Whether a member is served but has not answered a probe yet (as at start-up, when
        every source is probed at once): describing the composite must wait for it."""
        return any(isinstance(m, Member) and not m.binding.source.described for m in self.resolve())

    async def described_members(self) -> list[Member]:
        """Every member, probed and usable, for describing the collection; raises otherwise.

        Members still being probed are waited for a moment; one that takes longer leaves the
        composite unhealthy until it answers (then the composite is described again).
        """
        deadline = time.monotonic() + MEMBER_PROBE_WAIT
        while self.members_pending() and (remaining := deadline - time.monotonic()) > 0:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        members = []
        for found in self.resolve():
            if isinstance(found, MemberFailure):
                raise ConnectorConfigError(
                    f"member {found.member.label}: {found.detail}", source_id=self.source_id
                )
            if not found.binding.source.described:
                raise UpstreamUnavailable(
                    f"member {found.name}: source {found.binding.source.registration.id!r} has not "
                    "answered a probe yet",
                    source_id=self.source_id,
                )
            members.append(found)
        return members

    def composite_field_name(self, spec: MemberSpec, name: str) -> str:
        """The name a member's property has in this collection."""
        return name

    def _reaches_self(self, binding: CollectionBinding, seen: set[str]) -> bool:
        """Whether a member collection is, or is built from, this collection."""
        source = binding.source.registration.id
        if source == self.source_id:
            return True
        if source in seen:
            return False
        seen.add(source)
        connector = binding.source.connector
        if not isinstance(connector, CompositeConnector):
            return False
        collections = self.registry.collections()
        for spec in connector.member_specs:
            inner = collections.get(spec.collection)
            if inner is not None and self._reaches_self(inner, seen):
                return True
        return False

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Mark this composite as being answered; refuse when it already is (a cycle)."""
        active = _ACTIVE.get()
        if self.source_id in active:
            raise UnsupportedQuery(
                f"collection {self.source_id!r} includes itself through its members", source_id=self.source_id
            )
        reset = _ACTIVE.set(active | {self.source_id})
        try:
            yield
        finally:
            _ACTIVE.reset(reset)

    async def guarded(self, spec: MemberSpec, work: Awaitable[T]) -> T | MemberFailure:
        """Run a member call; a failure becomes a :class:`MemberFailure` instead of an error."""
        try:
            return await work
        except HubError as exc:
            source = exc.extra.get("source") if isinstance(exc.extra.get("source"), str) else None
            return MemberFailure(spec, int(exc.status), exc.detail, source)
        except ConnectorError as exc:
            return MemberFailure(spec, 502, exc.message, exc.source_id)

    def tolerate(self, failures: list[MemberFailure]) -> None:
        """Apply ``on_member_error`` to failed members: raise, or record warnings for the answer."""
        if not failures:
            return
        if self.settings.on_member_error is OnMemberError.ERROR:
            raise failures[0].error()
        for failure in failures:
            LOG.warning(
                "collection %s answers without member %s: %s",
                self.source_id,
                failure.member.label,
                failure.detail,
            )
            warn(failure.warning())
