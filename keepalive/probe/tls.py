"""TLS certificates of https targets (SPEC section 14): why one is refused, and when it expires.

``tls_reason`` names a refused certificate in the check's reason (``TLS error: certificate
expired``, ``TLS error: untrusted certificate``): the HTTP clients map their verification
errors through it. ``CertWatch`` learns the leaf certificate's expiry and fingerprint with
a handshake of its own, at most once every CERT_RECHECK seconds per target (a certificate
changes rarely; a handshake per check would double the cost of every https check), and the
engine turns the days left into EXPIRING alerts (keepalive.expiry).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from keepalive.probe.detail import Detail
from keepalive.probe.resolver import Resolver
from keepalive.targets import Target

CERT_RECHECK = 3600.0
# After a failed look, try again at the next check but not more often than this.
CERT_RETRY = 60.0

# OpenSSL's X509_V_ERR_* codes an operator needs told apart.
_EXPIRED = 10
_NOT_YET_VALID = 9
_UNTRUSTED = frozenset({2, 18, 19, 20, 21, 27})
_REVOKED = 23
_HOST_MISMATCH = 62


def tls_reason(exc: BaseException) -> str:
    """The check's reason for a certificate verification error."""
    code = getattr(exc, "verify_code", None)
    if code == _EXPIRED:
        return "TLS error: certificate expired"
    if code == _NOT_YET_VALID:
        return "TLS error: certificate not yet valid"
    if code in _UNTRUSTED:
        return "TLS error: untrusted certificate"
    if code == _REVOKED:
        return "TLS error: certificate revoked"
    if code == _HOST_MISMATCH:
        return "TLS error: certificate is for another host name"
    message = getattr(exc, "verify_message", None)
    if isinstance(message, str) and message:
        shown = "".join(ch for ch in message if ch.isprintable())[:80]
        return f"TLS error: {shown}"
    return "TLS error: certificate verify failed"


@dataclass(frozen=True, slots=True)
class CertInfo:
    expires_at: float  # epoch seconds (notAfter)
    fingerprint: str  # SHA-256 of the DER certificate, hex


def cert_info(der: bytes, decoded: dict[str, object]) -> CertInfo | None:
    not_after = decoded.get("notAfter")
    if not isinstance(not_after, str):
        return None
    return CertInfo(float(ssl.cert_time_to_seconds(not_after)), hashlib.sha256(der).hexdigest())


class CertWatch:
    """The leaf certificate of each https target that warns before expiry, looked at most
    once every CERT_RECHECK seconds."""

    def __init__(
        self,
        resolver: Resolver,
        context_for: Callable[[Target], ssl.SSLContext],
        monotonic: Callable[[], float] = time.monotonic,
        recheck: float = CERT_RECHECK,
    ) -> None:
        self._resolver = resolver
        self._context_for = context_for
        self._monotonic = monotonic
        self._recheck = recheck
        self._known: dict[str, tuple[float, CertInfo | None]] = {}  # by target name

    def wants(self, target: Target) -> bool:
        return bool(target.cert_warn_days) and target.url.startswith("https://")

    def due(self, target: Target) -> bool:
        known = self._known.get(target.name)
        if known is None:
            return True
        wait = self._recheck if known[1] is not None else CERT_RETRY
        return self._monotonic() - known[0] >= wait

    def forget(self, target: Target) -> None:
        """Look again at the next check (the certificate may have changed)."""
        self._known.pop(target.name, None)

    async def look(self, target: Target) -> None:
        """Learn ``target``'s certificate; errors leave it unknown (the check says why)."""
        info: CertInfo | None = None
        try:
            info = await self._handshake(target)
        except (OSError, ssl.SSLError, ValueError):
            info = None
        self._known[target.name] = (self._monotonic(), info)

    async def _handshake(self, target: Target) -> CertInfo | None:
        parts = urlsplit(target.url)
        host, port = parts.hostname or "", parts.port or 443
        infos = await self._resolver.resolve(host, port)
        family, _, _, _, sockaddr = infos[0]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(
            asyncio.Protocol,
            sockaddr[0],
            sockaddr[1],
            family=family,
            ssl=self._context_for(target),
            server_hostname=host,
        )
        try:
            ssl_object = transport.get_extra_info("ssl_object")
            if not isinstance(ssl_object, ssl.SSLObject):
                return None
            der = ssl_object.getpeercert(binary_form=True)
            decoded = ssl_object.getpeercert()
            if not der or not decoded:
                return None
            return cert_info(der, dict(decoded))
        finally:
            transport.close()

    def detail(self, target: Target) -> Detail | None:
        known = self._known.get(target.name)
        if known is None or known[1] is None:
            return None
        return Detail(cert_expires_at=known[1].expires_at, cert_fingerprint=known[1].fingerprint)
