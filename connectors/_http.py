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
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


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
    max_bytes: int | None = None,
) -> httpx.Response:
    """One request to a source, following redirects that stay on its host; connector errors only.

    With ``max_bytes`` the body is read as it arrives and refused once it (decoded) grows
    larger, for documents whose size nobody vouches for.
    """
    own = origin(str(url))
    target: str | httpx.URL = url
    # the source's own log can then name the hub's operation as its caller (W3C Trace Context)
    headers = with_trace_headers(headers)
    for _ in range(MAX_REDIRECTS + 1):
        response = await _exchange(
            client, method, target, params, headers, content, auth, seconds, max_bytes, source_id
        )
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


async def _exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
    content: bytes | str | None,
    auth: httpx.Auth | None,
    seconds: float,
    max_bytes: int | None,
    source_id: str,
) -> httpx.Response:
    """One request and its answer (a redirect included), connector errors only; an idempotent
    request the source hung up on before answering is sent once more."""
    for attempt in (1, 2):
        try:
            if max_bytes is None:
                response = await client.request(
                    method,
                    url,
                    params=params,
                    headers=headers,
                    content=content,
                    auth=auth,
                    timeout=seconds,
                    follow_redirects=False,
                )
            else:
                request = client.build_request(
                    method, url, params=params, headers=headers, content=content, timeout=seconds
                )
                response = await _read_limited(client, request, auth, max_bytes, source_id)
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
                if attempt == 1 and method in IDEMPOTENT:
                    # a kept-alive connection the source closed just as it was reused (a
                    # server's idle time-out races the pool's): once more, on a new one
                    continue
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
        return response
    raise AssertionError("unreachable: the second attempt returns or raises")


# decoded by the time the body is held: these would describe the bytes on the wire instead
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def _read_limited(
    client: httpx.AsyncClient, request: httpx.Request, auth: httpx.Auth | None, max_bytes: int, source_id: str
) -> httpx.Response:
    """Send ``request`` and read at most ``max_bytes`` of its decoded body."""
    streamed = await client.send(request, auth=auth, follow_redirects=False, stream=True)
    body = bytearray()
    try:
        async for chunk in streamed.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise UpstreamInvalidResponse(
                    f"the answer is larger than {max_bytes:,} bytes, which is more than is read",
                    source_id=source_id,
                )
    finally:
        await streamed.aclose()
    return httpx.Response(
        streamed.status_code,
        headers=[(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in _WIRE_HEADERS],
        content=bytes(body),
        request=streamed.request,
        extensions=streamed.extensions,
    )
