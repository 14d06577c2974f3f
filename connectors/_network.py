"""Which addresses the hub may connect to for its sources: the guard against request forgery.

Stewards register URLs and database hosts that the hub then connects to on its own behalf, from
inside the network it runs in. Unguarded, a registration could make the hub read its cloud's
metadata service, an admin interface on loopback or anything else on the private network, and
serve the answer as a source. So the hub connects to public addresses only, unless the
configuration's ``allowed_networks`` opens a range explicitly.

The check is made on the address actually connected to. The guarded HTTP client resolves a host
name itself, checks *every* address the name resolves to, and then connects to one of those
checked addresses, never to the name again. A name that resolves to a public address when it is
checked and to a private one when the connection is made (DNS rebinding) therefore cannot slip
through, and every new connection (each redirect hop, each reconnect after the DNS changed) is
checked again. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

import httpcore
import httpx

from connectors.errors import UpstreamUnavailable

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolves a host name and port to address strings (the event loop's ``getaddrinfo`` by default)."""

# Named apart from the link-local range they sit in, because they are what an attacker is after.
_METADATA = frozenset({ip_address("169.254.169.254"), ip_address("fd00:ec2::254")})
_CGNAT = ip_network("100.64.0.0/10")
_PRIVATE = (
    ip_network("10.0.0.0/8"),
    ip_network("172.16.0.0/12"),
    ip_network("192.168.0.0/16"),
    ip_network("fc00::/7"),
)
# NAT64 gateways translate these to the IPv4 address in their last 32 bits.
_NAT64 = ip_network("64:ff9b::/96")


def non_public(address: IPAddress) -> str | None:
    """Why ``address`` is no public internet address (``"a loopback address"``), or ``None``."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = non_public(embedded)
            return None if reason is None else f"{reason} ({embedded}) in IPv6 form"
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in _PRIVATE if network.version == address.version):
        return "a private address"
    if address in _CGNAT:
        return "a carrier-grade NAT address"
    if isinstance(address, IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a special-purpose address that is not publicly routable"
    return None


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4 or NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def host_of(url: str | httpx.URL) -> tuple[str, int]:
    """Host (without brackets) and port of an http(s) URL."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return parsed.host, port


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        return None


LOCAL_SOCKET = "a local socket"


class AddressNotAllowed(UpstreamUnavailable):
    """A source's host is, or resolves to, an address the hub may not connect to (502)."""

    def __init__(self, host: str, address: IPAddress, reason: str, *, source_id: str | None = None):
        # the IPv4 range also allows the IPv4-mapped form, and is what a reader recognises
        shown = address.ipv4_mapped if isinstance(address, IPv6Address) and address.ipv4_mapped else address
        allow = f"add it (e.g. {shown}/{32 if shown.version == 4 else 128}) to allowed_networks"
        if reason == LOCAL_SOCKET:
            what = f"{host} reaches this machine, as a loopback address does,"
            allow = "add loopback (e.g. 127.0.0.1/32) to allowed_networks"
        elif _literal(host) == address:
            what = f"the address {address}, {reason},"
        else:
            what = f"{host} resolves to {address}, {reason},"
        super().__init__(
            f"{what} which sources may not reach; to allow it, {allow} in the hub's configuration",
            source_id=source_id,
        )
        self.host = host
        self.address = address
        self.reason = reason


class UnresolvableHost(UpstreamUnavailable):
    """A source's host name does not resolve (502)."""


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Public addresses, plus the non-public ranges of ``allowed``: where sources may be."""

    allowed: tuple[IPNetwork, ...] = ()
    resolver: Resolver | None = None
    """How host names are resolved; the event loop's ``getaddrinfo`` when absent."""

    @classmethod
    def allowing(
        cls, networks: Iterable[IPNetwork | str], *, resolver: Resolver | None = None
    ) -> NetworkPolicy:
        """A policy that allows these CIDR ranges besides public addresses."""
        return cls(tuple(ip_network(n) if isinstance(n, str) else n for n in networks), resolver)

    def refusal(self, address: IPAddress) -> str | None:
        """Why the hub may not connect to ``address``, or ``None`` when it may."""
        reason = non_public(address)
        if reason is None:
            return None
        # an IPv4-mapped IPv6 address is the IPv4 host itself, so its IPv4 range allows it
        candidates = [address]
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        for candidate in candidates:
            if any(candidate in network for network in self.allowed if network.version == candidate.version):
                return None
        return reason

    def check(self, host: str, address: IPAddress) -> None:
        """Raise :class:`AddressNotAllowed` unless the hub may connect to ``address`` of ``host``."""
        reason = self.refusal(address)
        if reason is not None:
            raise AddressNotAllowed(host, address, reason)

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to, all of them checked; refused if any one is not allowed.

        All must pass, not just one: the connection may go to any of them.
        """
        literal = _literal(host)
        if literal is not None:
            self.check(host, literal)
            return [literal]
        resolve = self.resolver or _getaddrinfo
        try:
            found = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnresolvableHost(f"the host name {host} cannot be resolved ({exc})") from exc
        addresses: list[IPAddress] = []
        for text in found:
            address = ip_address(text.split("%", 1)[0])  # an IPv6 zone does not change the address
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UnresolvableHost(f"the host name {host} resolves to no address")
        for address in addresses:
            self.check(host, address)
        return addresses

    async def check_host(self, host: str, port: int) -> None:
        """Refuse a host that is, or now resolves to, an address not allowed.

        A name that does not resolve passes: the source may be down for now, and its address
        is checked again on every connection anyway.
        """
        try:
            await self.addresses(host, port)
        except UnresolvableHost:
            return

    async def check_url(self, url: str | httpx.URL) -> None:
        """:meth:`check_host` for the host of an http(s) URL."""
        host, port = host_of(url)
        if host:
            await self.check_host(host, port)

    def check_local_socket(self, path: str) -> None:
        """Refuse a local (Unix) socket unless loopback is allowed: it reaches this machine."""
        for loopback in (IPv4Address("127.0.0.1"), IPv6Address("::1")):
            if self.refusal(loopback) is None:
                return
        raise AddressNotAllowed(path, IPv4Address("127.0.0.1"), LOCAL_SOCKET)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses the policy allows, resolving names itself."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = await self._policy.addresses(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout:g} s") from exc
        except UnresolvableHost as exc:
            raise httpcore.ConnectError(exc.message) from exc
        failure: Exception | None = None
        # connect to the checked address itself: resolving the name again could give another
        for address in addresses:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host} took longer than {timeout:g} s")
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses is never empty
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self._policy.check_local_socket(path)
        return await self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, whose connections go through the policy's guard.

    httpx offers no parameter for a network backend, so the connection pool it builds is
    replaced by an equal one that has the guard; environment proxies are not used (through a
    proxy the hub could not see which address it reaches).
    """

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        limits: httpx.Limits,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(limits=limits, verify=verify)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy),
        )


DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class GuardedClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that connects only to addresses its network policy allows.

    Requests to a refused address raise :class:`AddressNotAllowed` (not an ``httpx`` error).
    """

    def __init__(
        self, policy: NetworkPolicy, *, limits: httpx.Limits = DEFAULT_LIMITS, **kwargs: Any
    ) -> None:
        super().__init__(transport=GuardedTransport(policy, limits=limits), **kwargs)
        self.network_policy = policy


def network_policy(client: httpx.AsyncClient) -> NetworkPolicy | None:
    """The policy a client enforces, or ``None`` for a plain client (which enforces none)."""
    return client.network_policy if isinstance(client, GuardedClient) else None
