"""FastAPI dependencies: who calls (bearer token), for which purpose, and the steward gate."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hub.audit.processing import current_processing
from hub.auth.caller import ANONYMOUS, Caller
from hub.auth.policy import PURPOSE_PARAMETER, Access, resolve_activity
from hub.errors import Forbidden, Unauthorized


async def authenticate(request: Request) -> Caller:
    """The caller of this request: anonymous without a token, 401 with an invalid one."""
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    caller = ANONYMOUS
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("only bearer tokens are accepted (Authorization: Bearer <token>)")
        validator = request.app.state.hub.tokens
        if validator is None:
            raise Unauthorized(
                "this hub accepts no tokens: no token issuer is configured", invalid_token=True
            )
        caller = await validator.validate(token.strip())
    request.state.caller = caller
    processing = current_processing()
    if processing is not None:  # the audit record names who processed the data
        processing.caller_subject = caller.subject
        processing.caller_issuer = caller.issuer
        processing.caller_client = caller.client
        processing.caller_roles = tuple(sorted(caller.roles))
    return caller


async def get_access(request: Request, caller: Annotated[Caller, Depends(authenticate)]) -> Access:
    """The caller and the processing activity the request names in ``purpose``."""
    purpose = request.query_params.get(PURPOSE_PARAMETER)
    activity = resolve_activity(request.app.state.hub.settings, caller, purpose)
    processing = current_processing()
    if processing is not None:
        processing.activity = activity
    return Access(caller, activity)


async def require_steward(request: Request, caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
    """Only stewards may manage sources and read the audit log."""
    auth = request.app.state.hub.settings.auth
    if caller.anonymous:
        if auth is None:
            raise Unauthorized("the management API needs a steward's token; no token issuer is configured")
        raise Unauthorized("the management API needs a steward's bearer token")
    if auth is None or auth.steward_role not in caller.roles:
        raise Forbidden("the management API is for stewards only")
    return caller


CurrentAccess = Annotated[Access, Depends(get_access)]
Steward = Annotated[Caller, Depends(require_steward)]
