"""Linked and union collections follow their members: described again when a member changes.

A composite collection's schema, extent and CRS come from its members, which are probed,
re-registered and withdrawn independently (and, at start-up, probed after the composite was
served). After every change of the served collections, each composite whose members' state
differs from the state it was last described with is probed again: it then serves the new
schema, or shows as unhealthy with the reason (a member withdrawn, not yet probed, or now
more restricted than the composite).
"""

from __future__ import annotations

import logging
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hub.errors import HubError

if TYPE_CHECKING:
    from hub.registry import SourceRegistry

LOG = logging.getLogger(__name__)


@runtime_checkable
class FollowsMembers(Protocol):
    """A connector whose description depends on other collections (linked and union)."""

    described_with: tuple[Any, ...] | None

    def member_state(self) -> tuple[Any, ...]:
        """What its description depends on now."""
        ...

    def members_pending(self) -> bool:
        """Whether a member has yet to answer its first probe."""
        ...

    def note_change(self) -> None:
        """Wake a probe that waits for its members."""
        ...


_FOLLOWED: weakref.WeakSet[SourceRegistry] = weakref.WeakSet()


def follow_members(registry: SourceRegistry) -> None:
    """Make ``registry`` re-describe its composite collections when their members change (once)."""
    if registry in _FOLLOWED:
        return
    _FOLLOWED.add(registry)
    registry.subscribe(partial(refresh_composites, registry))


async def refresh_composites(registry: SourceRegistry) -> None:
    """Probe every composite source whose members changed since it was last described."""
    for live in registry.sources():
        connector = live.connector
        if not isinstance(connector, FollowsMembers):
            continue
        connector.note_change()
        state = connector.member_state()
        if state == connector.described_with or connector.members_pending():
            continue  # unchanged, or a member's probe is still running: its end notifies again
        # noted before probing: a probe that fails must not be retried on every change
        connector.described_with = state
        try:
            # the probe notifies the listeners again when it succeeds; by then the state matches
            await registry.probe(live.registration.id)
        except HubError as exc:
            LOG.info("composite source %s not refreshed: %s", live.registration.id, exc.detail)
