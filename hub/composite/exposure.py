"""What a linked or union collection may show of its members without widening their access.

A composite collection is read under its own registration's classification and access policy.
So that it never becomes a way around a member's, two rules hold (deny by default):

- every caller who may read the composite may read each member: a member that is not ``open``
  needs a composite that is classified at least as strictly, and whose roles and scopes are
  among the member's;
- a member's protected property (``protected_fields``) is left out, unless the composite's
  registration protects the property under its composite name at least as strictly.
"""

from __future__ import annotations

from hub.catalogue.registration import Classification, FieldProtection, SourceRegistration

_RANK = {
    Classification.OPEN: 0,
    Classification.INTERNAL: 1,
    Classification.CONFIDENTIAL: 2,
    Classification.PERSONAL: 3,
}


def access_problem(composite: SourceRegistration, member: SourceRegistration) -> str | None:
    """Why ``composite`` would show ``member`` to callers the member does not admit, or ``None``."""
    if member.classification is Classification.OPEN:
        return None
    if _RANK[composite.classification] < _RANK[member.classification]:
        return (
            f"source {member.id!r} is classified {member.classification.value}, more strictly than "
            f"this collection ({composite.classification.value})"
        )
    roles = set(composite.access.roles) - set(member.access.roles)
    scopes = set(composite.access.scopes) - set(member.access.scopes)
    if roles or scopes:
        granted = ", ".join(sorted(roles | scopes))
        return f"this collection admits {granted}, which source {member.id!r} does not"
    return None


def _covers(outer: FieldProtection, inner: FieldProtection) -> bool:
    """Whether ``outer`` admits nobody that ``inner`` refuses."""
    if _RANK[Classification(outer.classification)] < _RANK[Classification(inner.classification)]:
        return False
    if not set(outer.roles) <= set(inner.roles):
        return False
    if inner.activities is None:
        return True
    return outer.activities is not None and set(outer.activities) <= set(inner.activities)


def shown_protected(
    composite: SourceRegistration, member: SourceRegistration, rename: dict[str, str]
) -> frozenset[str]:
    """The member's protected properties the composite may carry: those it protects as strictly
    under their composite names (``rename`` maps member names to composite names)."""
    shown = set()
    for name, protection in member.protected_fields.items():
        own = composite.protected_fields.get(rename.get(name, name))
        if own is not None and _covers(own, protection):
            shown.add(name)
    return frozenset(shown)
