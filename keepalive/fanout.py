"""Settings of SPEC 17: webhooks, Apprise, Alertmanager and replicas.

Kept apart from ``config.py`` (which holds one ``fanout`` field of this type) because they form
one feature: more channels, and more than one machine. Each bad value raises ``ConfigError``
naming the setting; URLs that carry tokens (webhooks, Apprise) are registered as secrets here,
before anything can log them, and are shown by ``--check-config`` only as ``scheme://host#hash``.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from keepalive.engine.replicas import Membership
from keepalive.errors import ConfigError
from keepalive.scrub import mask, register_secret
from keepalive.targets import check_url, public_url

DEFAULTS: dict[str, str] = {
    "WEBHOOK_URLS": "",
    "WEBHOOK_SECRET": "",
    "APPRISE_URLS": "",
    "ALERTMANAGER_URLS": "",
    "MONITOR_NAME": "",
    "MONITOR_REPLICAS": "",
    "MONITOR_COPIES": "2",
}
# Never shown as written: a webhook or Apprise URL holds its token in the path or user-info.
SECRET_NAMES = frozenset({"WEBHOOK_URLS", "WEBHOOK_SECRET", "APPRISE_URLS"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]{0,31}$")


def short_hash(url: str) -> str:
    """Eight hex digits that tell two URLs apart without showing either."""
    return hashlib.sha256(url.encode()).hexdigest()[:8]


def hidden_url(url: str) -> str:
    """``scheme://host[:port]#hash``: how a URL holding a token is named (a recipient in the
    outbox, logs, metrics, --check-config). The hash is of the whole URL, so two webhooks on
    one host stay two recipients."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        host, port = "", ""
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower() if sep else "url"
    if not _SCHEME.match(scheme):
        scheme = "url"
    return f"{scheme}://{host}{port}#{short_hash(url)}" if host else f"{scheme}://#{short_hash(url)}"


def apprise_name(url: str) -> str:
    """``scheme#hash``: an Apprise URL's host is often its token (``slack://TokenA/...``,
    ``ntfy://secret-topic``), so nothing but the scheme is shown."""
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower() if sep and _SCHEME.match(scheme.lower()) else "apprise"
    return f"{scheme}#{short_hash(url)}"


def _items(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Fanout:
    """The validated settings of SPEC 17."""

    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = None
    apprise_urls: tuple[str, ...] = ()
    alertmanager_urls: tuple[str, ...] = ()
    membership: Membership = field(default_factory=lambda: Membership(name="monitor"))
    # How many targets the file holds, once engine/share.py kept this replica's share.
    total_targets: int | None = None

    def channels(self) -> tuple[tuple[str, bool, str], ...]:
        """(name, on, why) of each channel of SPEC 17, for the channel summary and snapshots."""
        return (
            (
                "webhook",
                bool(self.webhook_urls),
                f"{len(self.webhook_urls)} URL(s)" if self.webhook_urls else "WEBHOOK_URLS is not set",
            ),
            (
                "apprise",
                bool(self.apprise_urls),
                f"{len(self.apprise_urls)} URL(s)" if self.apprise_urls else "APPRISE_URLS is not set",
            ),
            (
                "alertmanager",
                bool(self.alertmanager_urls),
                f"{len(self.alertmanager_urls)} instance(s)"
                if self.alertmanager_urls
                else "ALERTMANAGER_URLS is not set",
            ),
        )

    @property
    def monitor_name(self) -> str:
        return self.membership.name


def default_name() -> str:
    """The host name up to its first dot, made a valid replica name."""
    host = socket.gethostname().split(".")[0]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", host).strip("-.")[:63]
    return cleaned if cleaned and _NAME.match(cleaned) else "monitor"


def _http_urls(name: str, value: str, *, secret: bool) -> tuple[str, ...]:
    urls = _items(value)
    for url in urls:
        problem = check_url(url)
        if problem:
            shown = hidden_url(url) if secret else repr(public_url(url))
            raise ConfigError(f"{name} entry {shown} is invalid: {problem}")
    if len(set(urls)) != len(urls):
        raise ConfigError(f"{name} is invalid: the same URL is listed twice")
    return urls


def load_fanout(raw: Mapping[str, str]) -> Fanout:
    """Validate the SPEC 17 settings from the merged raw settings (``DEFAULTS`` filled in)."""

    def get(key: str) -> str:
        return raw.get(key, DEFAULTS[key]).strip()

    webhooks = _http_urls("WEBHOOK_URLS", get("WEBHOOK_URLS"), secret=True)
    secret = get("WEBHOOK_SECRET")
    if secret and len(secret) < 16:
        raise ConfigError(f"WEBHOOK_SECRET={mask(secret)} is invalid: expected at least 16 characters")
    apprise = _items(get("APPRISE_URLS"))
    for url in apprise:
        scheme, sep, rest = url.partition("://")
        if not sep or not rest or not _SCHEME.match(scheme.lower()):
            raise ConfigError(
                f"APPRISE_URLS entry {apprise_name(url)} is invalid: expected an Apprise URL such as "
                "discord://webhook_id/webhook_token or ntfys://topic"
            )
    if len(set(apprise)) != len(apprise):
        raise ConfigError("APPRISE_URLS is invalid: the same URL is listed twice")
    # Registered before anything else can fail and print them.
    register_secret(*webhooks, secret, *apprise)
    register_secret(*(part for url in apprise for part in _url_parts(url)))
    managers = tuple(
        url.rstrip("/") for url in _http_urls("ALERTMANAGER_URLS", get("ALERTMANAGER_URLS"), secret=False)
    )
    register_secret(*(p for url in managers for p in _passwords(url)))

    name = get("MONITOR_NAME") or default_name()
    if not _NAME.match(name):
        raise ConfigError(f"MONITOR_NAME={name!r} is invalid: expected 1-63 letters, digits, '.', '_' or '-'")
    replicas = _items(get("MONITOR_REPLICAS"))
    for replica in replicas:
        if not _NAME.match(replica):
            raise ConfigError(
                f"MONITOR_REPLICAS entry {replica!r} is invalid: "
                "expected 1-63 letters, digits, '.', '_' or '-'"
            )
    if len(set(replicas)) != len(replicas):
        raise ConfigError(f"MONITOR_REPLICAS={get('MONITOR_REPLICAS')!r} is invalid: a name is listed twice")
    if replicas and name not in replicas:
        raise ConfigError(
            f"MONITOR_REPLICAS={get('MONITOR_REPLICAS')!r} is invalid: expected every replica's name, "
            f"this one's (MONITOR_NAME={name!r}) included"
        )
    copies_text = get("MONITOR_COPIES")
    try:
        copies = int(copies_text)
    except ValueError:
        copies = 0
    if copies < 1 or copies > 100:
        raise ConfigError(f"MONITOR_COPIES={copies_text!r} is invalid: expected an integer from 1 to 100")
    return Fanout(
        webhook_urls=webhooks,
        webhook_secret=secret or None,
        apprise_urls=apprise,
        alertmanager_urls=managers,
        membership=Membership(name=name, replicas=replicas, copies=copies),
    )


def _passwords(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password] if password else []


def _url_parts(url: str) -> list[str]:
    """The parts of an Apprise URL long enough to be a token (path segments, user-info): a
    library error message may quote one alone."""
    rest = url.partition("://")[2]
    parts = re.split(r"[/@:?&=#]", rest)
    return [part for part in parts if len(part) >= 12]


def shown(name: str, value: str) -> str:
    """How --check-config shows one of these settings."""
    if name == "WEBHOOK_SECRET":
        return mask(value)
    if name == "WEBHOOK_URLS":
        return ", ".join(hidden_url(url) for url in _items(value)) or "(empty)"
    if name == "APPRISE_URLS":
        return ", ".join(apprise_name(url) for url in _items(value)) or "(empty)"
    if name == "ALERTMANAGER_URLS":
        return ", ".join(public_url(url) for url in _items(value)) or "(empty)"
    if name == "MONITOR_NAME" and not value:
        return f"{default_name()} (the host name)"
    if name == "MONITOR_REPLICAS" and not value:
        return "(empty: this monitor checks every target)"
    return value
