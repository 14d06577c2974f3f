"""The hub's one error hierarchy, rendered once as RFC 9457 problem details."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from connectors import errors as connector_errors

PROBLEM_JSON = "application/problem+json"


class HubError(Exception):
    """Base class: an HTTP status and a message that is safe to show to any caller."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    title: str = "Internal error"
    type_slug: str = "internal-error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    @property
    def headers(self) -> dict[str, str]:
        """Response headers this error needs besides its body."""
        return {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 body for this error."""
        body: dict[str, Any] = {
            "type": f"https://urban-twin-hub.readthedocs.io/problems/{self.type_slug}",
            "title": self.title,
            "status": int(self.status),
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class ConfigurationError(HubError):
    """The configuration file or environment is unusable (raised at start-up)."""

    title = "Invalid configuration"
    type_slug = "invalid-configuration"


class BadRequest(HubError):
    """A query parameter or body the caller sent is invalid or cannot be honoured."""

    status = HTTPStatus.BAD_REQUEST
    title = "Bad request"
    type_slug = "bad-request"


class Unauthorized(HubError):
    """No valid credentials: the caller must authenticate (RFC 6750 bearer token)."""

    status = HTTPStatus.UNAUTHORIZED
    title = "Authentication required"
    type_slug = "unauthorized"

    def __init__(self, detail: str, *, invalid_token: bool = False):
        super().__init__(detail)
        self.invalid_token = invalid_token

    @property
    def headers(self) -> dict[str, str]:
        challenge = 'Bearer realm="urban-twin-hub"'
        if self.invalid_token:
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}


class Forbidden(HubError):
    """The caller is known but not entitled to this resource or purpose."""

    status = HTTPStatus.FORBIDDEN
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(HubError):
    """The resource does not exist."""

    status = HTTPStatus.NOT_FOUND
    title = "Not found"
    type_slug = "not-found"


class Conflict(HubError):
    """The request conflicts with the catalogue's state (a duplicate id, say)."""

    status = HTTPStatus.CONFLICT
    title = "Conflict"
    type_slug = "conflict"


class InvalidRegistration(HubError):
    """A source registration fails validation or its probe."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    title = "Invalid source registration"
    type_slug = "invalid-registration"


class HarvestFailed(HubError):
    """Nothing can be harvested from a URL: it cannot be read or is no catalogue or service."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    title = "Nothing to harvest"
    type_slug = "harvest-failed"


class NotAcceptable(HubError):
    """No representation in the requested format."""

    status = HTTPStatus.NOT_ACCEPTABLE
    title = "Not acceptable"
    type_slug = "not-acceptable"


class BadGateway(HubError):
    """A source answered with an error or with something that is not what it promised."""

    status = HTTPStatus.BAD_GATEWAY
    title = "Source failed"
    type_slug = "upstream-error"


class GatewayTimeout(HubError):
    """A source did not answer in time."""

    status = HTTPStatus.GATEWAY_TIMEOUT
    title = "Source timed out"
    type_slug = "upstream-timeout"


class ServiceUnavailable(HubError):
    """The hub cannot serve the request right now (a dependency it must not skip is down)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    title = "Service unavailable"
    type_slug = "service-unavailable"


def from_connector_error(exc: connector_errors.ConnectorError) -> HubError:
    """Translate a connector's error at the boundary into the hub's own."""
    source = {"source": exc.source_id} if exc.source_id else {}
    if isinstance(exc, connector_errors.UpstreamTimeout):
        return GatewayTimeout(exc.message, extra=source)
    if isinstance(exc, connector_errors.UnsupportedQuery):
        return BadRequest(exc.message, extra=source)
    if isinstance(exc, connector_errors.ConnectorConfigError):
        return InvalidRegistration(exc.message, extra=source)
    return BadGateway(exc.message, extra=source)


class RequestFailed(HubError):
    """Any other client error, with the status it came with."""

    title = "Request failed"
    type_slug = "request-failed"

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status


def error_for_status(status: int, detail: str) -> HubError:
    """The hub error for an HTTP status reported by a component (pygeoapi, Starlette)."""
    known: dict[int, type[HubError]] = {
        400: BadRequest,
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
        406: NotAcceptable,
        409: Conflict,
        422: InvalidRegistration,
    }
    if status in known:
        return known[status](detail)
    return RequestFailed(status, detail)
