"""Talking HTTP to a source: redirects followed on its own host only, failures translated.

Every HTTP connector sends its requests through :func:`send`, so that a source that hangs,
drops the connection, speaks something other than HTTP or redirects elsewhere is reported the
same way whatever its kind. The hub's client checks the address of every connection, each
redirect hop included, against its network policy (``connectors._network``); a refusal is
reported as :class:`~connectors._network.AddressNotAllowed` for the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from connectors._network import AddressNotAllowed
from connectors.errors import UpstreamInvalidResponse, UpstreamTimeout, UpstreamUnavailable
from connectors.tracing import with_trace_headers

MAX_REDIRECTS = 5


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port: what must match before credentials, redirects or links are followed."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), parts.port or default)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    source_id: str,
    seconds: float,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    content: bytes | str | None = None,
    auth: httpx.Auth | None = None,
) -> httpx.Response:
    """One request to a source, following redirects that stay on its host; connector errors only."""
    own = origin(str(url))
    target: str | httpx.URL = url
    # the source's own log can then name the hub's operation as its caller (W3C Trace Context)
    headers = with_trace_headers(headers)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response = await client.request(
                method,
                target,
                params=params,
                headers=headers,
                content=content,
                auth=auth,
                timeout=seconds,
                follow_redirects=False,
            )
        except AddressNotAllowed as exc:
            # raised by the guarded client's transport, which does not know the source
            exc.source_id = source_id
            raise
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                f"the source did not answer within {seconds:g} s", source_id=source_id
            ) from exc
        except httpx.RemoteProtocolError as exc:
            if "disconnected" in str(exc).lower():
                raise UpstreamUnavailable(
                    "the source closed the connection without answering", source_id=source_id
                ) from exc
            raise UpstreamInvalidResponse("the source does not speak HTTP", source_id=source_id) from exc
        except httpx.DecodingError as exc:
            raise UpstreamInvalidResponse(
                "the source's response cannot be decoded", source_id=source_id
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the source cannot be reached ({type(exc).__name__})", source_id=source_id
            ) from exc
        except (httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict) as exc:
            raise UpstreamInvalidResponse(
                f"the request to the source failed: {exc}", source_id=source_id
            ) from exc
        if not response.is_redirect:
            return response
        try:
            target = response.url.join(response.headers.get("location", ""))
        except httpx.InvalidURL as exc:
            raise UpstreamInvalidResponse(
                "the source redirects to an unreadable address", source_id=source_id
            ) from exc
        if origin(str(target)) != own:
            raise UpstreamInvalidResponse(
                "the source redirects to another host, which is not followed", source_id=source_id
            )
        if response.status_code in {301, 302, 303}:
            method, content = "GET", None
        params = None  # the new address carries its own query
    raise UpstreamInvalidResponse("the source redirects too often", source_id=source_id)
