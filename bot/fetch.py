"""The guarded fetcher: HTTP(S) downloads that never reach an address the operator has not allowed.

Every TCP connection, the first and each redirect hop alike, goes through `GuardedBackend`: it
resolves the host once, vets every address it got, and connects to the vetted address itself,
so a DNS answer that changes between the check and the connection (rebinding) cannot switch the
target. TLS still verifies and sends the host name (httpcore passes it to `start_tls`). Every
read and write is clamped to one deadline for the whole download, so a server that trickles
its headers or body a byte at a time is cut off at `timeout` seconds in total.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import httpcore
import httpx

from bot.errors import BlockedAddress, FetchError, TooLarge
from bot.i18n import N_, Said, message_of

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to, as strings. Injectable for tests.
Resolver = Callable[[str, int], list[str]]

USER_AGENT = "Newsdesk/0.1 (+article ingest)"
ALLOW_HINT = N_("set NEWSDESK_FETCH_ALLOWED_NETWORKS to allow it")
REFUSED = N_("refused to fetch {where}: {reason} ({hint})")
TIMED_OUT = N_("{url} timed out after {seconds} s")
TIMED_OUT_SLOW = N_("{url} timed out after {seconds} s (download too slow)")
MAX_REDIRECTS = 10
METADATA = ipaddress.ip_address("169.254.169.254")
RFC1918 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class Fetched:
    """A finished download: where it ended up (after redirects), its media type and bytes."""

    url: str
    media_type: str
    data: bytes
    status: int = 200  # 304: not modified since the validators given (data is empty)
    etag: str = ""
    last_modified: str = ""


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def blocked_reason(ip: IPAddress) -> str:
    """Why `ip` is not a public internet address ("a loopback address"), or "" if it is."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return blocked_reason(inner)
    if ip.is_loopback:
        return Said("a loopback address")
    if ip == METADATA:
        return Said("the cloud metadata address")
    if ip.is_link_local:
        return Said("a link-local address")
    if ip.is_unspecified:
        return Said("an unspecified address")
    if ip.is_multicast:
        return Said("a multicast address")
    if any(ip in net for net in RFC1918) or ip in UNIQUE_LOCAL:
        return Said("a private address")
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return Said("a site-local address")
    if ip.is_reserved:
        return Said("a reserved address")
    if ip.is_private or not ip.is_global:
        return Said("a special-purpose (non-global) address")
    return ""


class AddressPolicy:
    """Public addresses pass; others only inside a network the operator listed."""

    def __init__(self, allowed: Iterable[IPNetwork | str] = ()) -> None:
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allowed]

    def refusal(self, address: str) -> str:
        """Why connecting to `address` is refused ("a loopback address"), or "" if it is not."""
        ip = ipaddress.ip_address(address.split("%")[0])  # drop an IPv6 zone (fe80::1%eth0)
        candidates = [ip] + [e for e in [embedded_ipv4(ip)] if e is not None]
        if any(c in net for c in candidates for net in self.allowed if c.version == net.version):
            return ""
        return blocked_reason(ip)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every wait is cut to what is left of the download's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self.stream = stream
        self.deadline = deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise error("the download's deadline has passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = self._left(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(
            self.stream.start_tls(ssl_context, server_hostname, wait), self.deadline
        )

    def get_extra_info(self, info: str) -> typing.Any:
        return self.stream.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve, vet every address, connect to a vetted one; all before the deadline."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver, deadline: float) -> None:
        self.policy = policy
        self.resolver = resolver
        self.deadline = deadline
        self.inner = httpcore.SyncBackend()

    def _resolve(self, host: str, port: int) -> list[str]:
        # getaddrinfo has no timeout of its own: wait for it only until the deadline.
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            addresses = pool.submit(self.resolver, host, port).result(
                max(0.0, self.deadline - time.monotonic())
            )
        except FutureTimeout:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        finally:
            pool.shutdown(wait=False)
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        for address in addresses:  # one bad answer refuses the host: it may be picked later
            reason = self.policy.refusal(address)
            if reason and address == host.strip("[]"):
                raise BlockedAddress(Said("{address} is {reason}", address=address, reason=reason))
            if reason:
                raise BlockedAddress(
                    Said(
                        "{host} resolves to {address}, {reason}",
                        host=host,
                        address=address,
                        reason=reason,
                    )
                )
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception = httpcore.ConnectError(f"cannot connect to {host}")
        for address in self._resolve(host, port):
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host} took too long")
            wait = left if timeout is None else min(timeout, left)
            try:
                stream = self.inner.connect_tcp(
                    address, port, wait, local_address, socket_options or []
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return DeadlineStream(stream, self.deadline)
        raise last

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport (exception mapping, streaming) over a pool using our backend.

    httpx has no public option for the network backend, so the pool it built is replaced by an
    identical one (no proxy: trust_env is off) that connects through `backend`.
    """

    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(trust_env=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=backend,
            max_connections=4,
        )


class Fetcher:
    """Downloads one URL at a time: address checks on every hop, one deadline, a size limit."""

    def __init__(
        self,
        allowed_networks: Sequence[IPNetwork | str] = (),
        timeout: float = 20.0,
        max_bytes: int = 20 * 2**20,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.policy = AddressPolicy(allowed_networks)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.resolver = resolver

    def fetch(self, url: str, etag: str = "", last_modified: str = "") -> Fetched:
        """GET `url`, following redirects; raise FetchError, BlockedAddress or TooLarge.

        With `etag` or `last_modified` (from an earlier answer) the GET is conditional: an
        unchanged resource comes back as status 304 with no data."""
        if not url.startswith(("http://", "https://")):
            raise FetchError(Said("not an http(s) URL: {url}", url=url))
        deadline = time.monotonic() + self.timeout
        hops: list[str] = []
        backend = GuardedBackend(self.policy, self.resolver, deadline)
        try:
            with (
                httpx.Client(
                    transport=_GuardedTransport(backend),
                    follow_redirects=True,
                    max_redirects=MAX_REDIRECTS,
                    timeout=self.timeout,
                    trust_env=False,
                    headers={"User-Agent": USER_AGENT},
                    event_hooks={"request": [lambda request: hops.append(str(request.url))]},
                ) as client,
                client.stream("GET", url, headers=_conditional(etag, last_modified)) as response,
            ):
                return self._read(url, response, deadline)
        except BlockedAddress as exc:
            where = url if not hops or hops[-1] == url else f"{url} (redirected to {hops[-1]})"
            raise BlockedAddress(
                Said(REFUSED, where=where, reason=message_of(exc), hint=Said(ALLOW_HINT))
            ) from None
        except httpx.TimeoutException as exc:
            raise FetchError(Said(TIMED_OUT, url=url, seconds=f"{self.timeout:g}")) from exc
        except httpx.TooManyRedirects as exc:
            raise FetchError(
                Said("{url}: too many redirects (more than {n})", url=url, n=MAX_REDIRECTS)
            ) from exc
        except httpx.HTTPError as exc:
            raise FetchError(Said("cannot fetch {url}: {error}", url=url, error=exc)) from exc
        except (httpx.InvalidURL, UnicodeError) as exc:  # neither is an httpx.HTTPError
            raise FetchError(Said("not a valid URL: {url} ({error})", url=url, error=exc)) from exc

    def _read(self, url: str, response: httpx.Response, deadline: float) -> Fetched:
        if response.status_code >= 400:
            raise FetchError(
                Said(
                    "{url} answered HTTP {status}",
                    url=url,
                    status=f"{response.status_code} {response.reason_phrase}".rstrip(),
                )
            )
        limit = mb(self.max_bytes)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise TooLarge(
                Said(
                    "{url} is {size} MB, over the {limit} MB limit",
                    url=url,
                    size=mb(int(declared)),
                    limit=limit,
                )
            )
        chunks: list[bytes] = []
        total = 0
        for part in response.iter_bytes():
            total += len(part)
            if total > self.max_bytes:
                raise TooLarge(Said("{url} is over the {limit} MB limit", url=url, limit=limit))
            if time.monotonic() > deadline:  # decoding can outlast the network's deadline
                seconds = f"{self.timeout:g}"
                raise FetchError(Said(TIMED_OUT_SLOW, url=url, seconds=seconds))
            chunks.append(part)
        media_type = response.headers.get("content-type", "")
        return Fetched(
            url=str(response.url),
            media_type=media_type,
            data=b"".join(chunks),
            status=response.status_code,
            etag=response.headers.get("etag", ""),
            last_modified=response.headers.get("last-modified", ""),
        )


def _conditional(etag: str, last_modified: str) -> dict[str, str]:
    """If-None-Match / If-Modified-Since headers (dropping values that cannot be headers)."""
    given = {"If-None-Match": etag, "If-Modified-Since": last_modified}
    return {k: v for k, v in given.items() if v and v.isprintable() and len(v) < 512}


def mb(n: int) -> str:
    """Bytes as the MiB that `max_file_mb` counts in: 20971520 -> "20", 524288 -> "0.5"."""
    return f"{n / 2**20:.1f}".removesuffix(".0")
