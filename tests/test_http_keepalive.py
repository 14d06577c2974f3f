"""A source that hangs up on a kept-alive connection just as the hub reuses it.

Servers close idle connections after their own time-out (uvicorn after 5 s, as httpx's pool
keeps them 5 s): a request sent on such a connection meets a closed socket before any answer.
A raw socket server on loopback plays that server, so the exact moment is certain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from connectors._http import send
from connectors.errors import UpstreamUnavailable

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class HangingUpServer:
    """Answers the first request of every connection and hangs up on the ones after it
    (``always``: hangs up on every request without answering)."""

    always: bool = False
    requests: list[tuple[int, str]] = field(default_factory=list)
    """(connection number, request line) of every request received."""
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append((number, head.split(b"\r\n", 1)[0].decode()))
                if self.always or answered:
                    break  # hang up without a byte of an answer
                writer.write(OK)
                await writer.drain()
                answered += 1
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[HangingUpServer]:
    state = HangingUpServer()
    listening = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield state


async def test_a_get_on_a_connection_closed_under_it_is_sent_again(server: HangingUpServer) -> None:
    url = f"http://127.0.0.1:{server.port}/items"
    async with httpx.AsyncClient() as client:
        first = await send(client, "GET", url, source_id="s", seconds=5)
        second = await send(client, "GET", url, source_id="s", seconds=5)
    assert first.status_code == second.status_code == 200
    # the second request met the kept-alive connection's hang-up and went again on a new one
    line = "GET /items HTTP/1.1"
    assert server.requests == [(1, line), (1, line), (2, line)]


async def test_a_source_that_always_hangs_up_is_asked_twice_then_reported(server: HangingUpServer) -> None:
    server.always = True
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamUnavailable, match="closed the connection"):
            await send(client, "GET", f"http://127.0.0.1:{server.port}/items", source_id="s", seconds=5)
    assert len(server.requests) == 2


async def test_a_post_is_never_sent_twice(server: HangingUpServer) -> None:
    server.always = True
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamUnavailable):
            url = f"http://127.0.0.1:{server.port}/wfs"
            await send(client, "POST", url, source_id="s", seconds=5, content="<x/>")
    assert len(server.requests) == 1
