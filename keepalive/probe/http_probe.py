"""The HTTP probe (SPEC section 5): GET the URL, follow redirects, judge the answer.

Redirects are followed here, for both transports alike: 301, 302, 303, 307 and 308 with a
Location, at most MAX_REDIRECTS hops, each hop a GET, to http or https URLs only
(``invalid redirect`` otherwise), each hop on the transport its URL needs. A target with
``follow_redirects = false`` judges the redirect itself (``HTTP 302``). A hop that lands on
the monitor's own endpoint fails (``redirected to the monitor itself``): otherwise a target
redirecting to the monitor's /health would pass as healthy. An answer from another host
than the target's is judged as usual, but no text of its body reaches the reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from urllib.parse import urljoin, urlsplit

from keepalive.probe.answer import Answer, Failure
from keepalive.probe.judge import judge
from keepalive.probe.transport import Transport
from keepalive.targets import Target

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
TO_SELF = "redirected to the monitor itself"
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class OwnEndpoints:
    """The monitor's own host:port pairs, which a redirect must never land on."""

    def __init__(self, endpoints: Iterable[tuple[str, int]] = ()) -> None:
        self._endpoints = tuple((host.strip("[]").lower(), port) for host, port in endpoints)

    def __bool__(self) -> bool:
        return bool(self._endpoints)

    def matches(self, host: str, port: int, same_machine: bool = False) -> bool:
        """Whether ``host:port`` is one of ours; ``same_machine``: a connection whose peer is
        this machine (its peer address equals its local address)."""
        host = host.strip("[]").lower()
        for own_host, own_port in self._endpoints:
            if port != own_port:
                continue
            if host == own_host:
                return True
            if (own_host in _WILDCARDS or _is_local(own_host)) and (_is_local(host) or same_machine):
                return True
        return False

    def url_matches(self, url: str) -> bool:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
        return self.matches(parts.hostname or "", port)

    def answer_matches(self, answer: Answer) -> bool:
        if answer.peer is None:
            return False
        return self.matches(answer.peer[0], answer.peer[1], same_machine=answer.peer[0] == answer.local_ip)


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def next_url(url: str, location: str) -> str:
    """Where a redirect from ``url`` to ``location`` leads. Raises Failure."""
    try:
        target = urljoin(url, location.strip())
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise Failure("invalid redirect") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Failure("invalid redirect")
    return target


class HttpProbe:
    """http(s) targets, through the first transport that handles each URL."""

    def __init__(self, transports: Sequence[Transport], own: OwnEndpoints | None = None) -> None:
        self._transports = tuple(transports)
        self._own = own if own is not None else OwnEndpoints()

    def handles(self, target: Target) -> bool:
        return target.url.startswith(("http://", "https://"))

    def _transport(self, url: str, reuse: bool) -> Transport:
        for transport in self._transports:
            if transport.handles(url, reuse):
                return transport
        raise Failure("invalid URL")

    async def run(self, target: Target) -> str | None:
        url, reuse = target.url, target.reuse_connection
        for hop in range(MAX_REDIRECTS + 1):
            if hop and self._own and self._own.url_matches(url):
                return TO_SELF
            check_peer = hop > 0 and bool(self._own)
            answer = await self._transport(url, reuse).fetch(url, reuse, check_peer)
            if check_peer and self._own.answer_matches(answer):
                return TO_SELF
            location = answer.headers.get("location") if answer.status in REDIRECTS else None
            if not location or not target.follow_redirects:
                # Parsed only after a redirect: most checks never need it (CPU per check).
                return judge(
                    answer,
                    target.expect_status,
                    foreign=hop > 0 and _host(url) != _host(target.url),
                    conditions=target.conditions,
                )
            if hop == MAX_REDIRECTS:
                return "too many redirects"
            url = next_url(url, location)
        raise AssertionError("unreachable: the loop returns on its last turn")

    async def close(self) -> None:
        for transport in self._transports:
            await transport.close()
