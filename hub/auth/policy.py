"""Access decisions: which collections a caller may read and which properties stay hidden.

Deny by default: a source that is not classified ``open`` is readable only by callers holding one
of the roles or scopes its registration lists; a protected property is shown only to a caller
whose role allows it *and* who named a registered processing activity they may use.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.auth.caller import ANONYMOUS, Caller
from hub.catalogue.registration import Classification, SourceRegistration
from hub.errors import BadRequest, Forbidden, Unauthorized
from hub.settings import ProcessingActivity, Settings

PURPOSE_PARAMETER = "purpose"
"""Query parameter naming the processing activity a request is made for."""


@dataclass(frozen=True, slots=True)
class Access:
    """A request's caller and the processing activity it named (if any)."""

    caller: Caller = ANONYMOUS
    activity: ProcessingActivity | None = None


def may_read(caller: Caller, registration: SourceRegistration) -> bool:
    """Whether ``caller`` may read the source's collections at all."""
    if registration.classification is Classification.OPEN:
        return True
    if caller.anonymous:
        return False
    policy = registration.access
    return bool(caller.roles.intersection(policy.roles) or caller.scopes.intersection(policy.scopes))


def hidden_properties(access: Access, registration: SourceRegistration) -> frozenset[str]:
    """The protected properties of a source that this request may not see."""
    hidden = set()
    for name, protection in registration.protected_fields.items():
        activity = access.activity
        entitled = (
            activity is not None
            and bool(access.caller.roles.intersection(protection.roles))
            and (protection.activities is None or activity.id in protection.activities)
        )
        if not entitled:
            hidden.add(name)
    return frozenset(hidden)


def refuse_unreadable(caller: Caller, registration: SourceRegistration) -> None:
    """401 for an anonymous caller, 403 for one without the source's roles or scopes."""
    if may_read(caller, registration):
        return
    if caller.anonymous:
        raise Unauthorized(f"source {registration.id!r} is not open; authenticate with a bearer token")
    raise Forbidden(f"your roles and scopes do not include access to source {registration.id!r}")


def resolve_activity(settings: Settings, caller: Caller, purpose: str | None) -> ProcessingActivity | None:
    """The registered processing activity a request names, checked against the caller's roles."""
    if purpose is None:
        return None
    activity = next((a for a in settings.processing_activities if a.id == purpose), None)
    if activity is None:
        raise BadRequest(f"{purpose!r} is not a registered processing activity")
    if caller.anonymous:
        raise Unauthorized(f"processing activity {purpose!r} needs an authenticated caller")
    if not caller.roles.intersection(activity.roles):
        raise Forbidden(f"your roles do not allow processing under activity {purpose!r}")
    return activity
